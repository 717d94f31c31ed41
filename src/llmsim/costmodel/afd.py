"""Attention-FFN disaggregation (AFD): attention instances (holding the KV cache) and FFN /
expert instances, a step's batch split into micro-batches that ping-pong A -> F -> A per layer
(MegaScale-Infer, arXiv 2504.02263, section 4; Step-3's AFD, arXiv 2507.19427).

**Instances.** ``attention`` instances of ``tp`` GPUs each (the deployment's plan: the
attention, embedding and LM head of every layer, and the KV of their sequences) and ``ffn``
single-GPU FFN instances (every layer's dense MLP data-parallel over them, its experts
expert-parallel over them: ``ep = dp = ffn``). Each side is priced by its own step model from
the one factory (the deployment's estimator) on a model holding only that side's blocks
(:func:`side_models`), so a side's records and memory are its own.

**A step** of shape ``S`` (all the unit's sequences) runs as ``m`` micro-batches. Per
micro-batch, each attention instance holds ``S / (A m)`` (its sequences, rounded up: the most
loaded one), each FFN instance ``T_f = ceil(T / (m F))`` tokens (``T`` the step's tokens).
Per layer ``l`` the four stages of one micro-batch are

- ``a_l``: the attention ops of the layer on an attention instance (its records);
- ``s_l`` (A -> F) and ``r_l`` (F -> A): the activations over the link, alpha-beta
  (``collectives.collective_time`` p2p):
  ``bytes = tokens x hidden x act_bytes x fanout``, ``fanout`` = the FFN instances a token
  reaches (1 for a dense MLP; ``expected_groups_hit(E, k, F)`` for a MoE layer, a token sent
  once per instance holding one of its experts); the link carries the larger of what one
  attention instance sends (``T_a`` tokens) and what one FFN instance receives (``T / m / F``
  tokens x the routing imbalance);
- ``f_l``: the FFN / MoE ops on an FFN instance (its records; the colocated design's
  dispatch / combine are replaced by the two transfers).

**Pipeline.** With ``t_l = max(a_l, s_l, f_l, r_l)`` (the bottleneck stage) and
``R_l = a_l + s_l + f_l + r_l`` (one micro-batch's round trip), a layer is issued every
``P_l = max(R_l, m t_l)`` (the bottleneck busy with all ``m``, or each micro-batch waiting for
its own round trip), and the step's layers take

    T_layers = sum_l P_l + min(R_L - t_L, (m - 1) t_L)        (L: the last layer)

exact for identical layers (a flow shop of ``m`` identical jobs recirculating ``L`` times:
``R + (m L - 1) t`` when ``m t >= R``, else ``L R + (m - 1) t``; tests check it against a
brute-force schedule) and ``m = 1`` gives the serial sum ``sum_l R_l``. The step adds the
embedding and LM head of each micro-batch on the attention instances (``m`` times their
time) and the step overhead: ``T = T_layers + m (embed + lm_head) + overhead``.
Not modelled: the half-size kernels' lower efficiency beyond what the roofline gives at their
size, the attention instances' imbalance, the memory of in-flight activations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from llmsim.catalog.blocks import AttentionBlock, LayerTemplate, MoEBlock
from llmsim.catalog.cluster import Cluster
from llmsim.catalog.hardware import LinkKind, LinkSpec
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.parallel import ParallelSpec
from llmsim.costmodel.afd_spec import AFDSpec
from llmsim.costmodel.collectives import collective_time
from llmsim.costmodel.expert_routing import expected_groups_hit, load_imbalance
from llmsim.costmodel.ops import Bound, OpCost, OpKind
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import LayerRecord, StepCost, StepTimeModelBase
from llmsim.errors import ConfigError

if TYPE_CHECKING:
    from llmsim.costmodel.deployment import Deployment

_ETHERNET = LinkSpec(kind=LinkKind.ETHERNET, bandwidth_bytes_per_s=100e9 / 8, latency_s=20e-6,
                     source="100 GbE (assumed), as disagg.kv_transfer's ethernet link")
_DROPPED = ("moe_dispatch", "moe_combine")  # replaced by the A -> F / F -> A transfers
STAGES = ("attention", "a_to_f", "ffn", "f_to_a")
_ATTENTION_KERNELS = (OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


# ---------------------------------------------------------------------------- the two sides
def _side(model: ModelSpec, attention: bool) -> tuple[LayerTemplate, ...]:
    """The model's layer templates with only their attention blocks (``attention``) or only
    the others; a template with none keeps its place with no block (it prices nothing)."""
    return tuple(t.model_copy(update={"blocks": tuple(
        b for b in t.blocks if isinstance(b, AttentionBlock) == attention)})
        for t in model.layers)


def side_models(model: ModelSpec) -> tuple[ModelSpec, ModelSpec]:
    """``(attention side, FFN side)``: the model's layers with only their attention blocks
    (plus embedding and LM head), and with only their other blocks (FFN, MoE, comm; vocabulary
    1 so no embedding or LM head is counted there). Templates stay in place (index-aligned)."""
    attn, ffn = _side(model, True), _side(model, False)
    if not any(t.blocks for t in attn):
        raise ConfigError(f"{model.name} has no attention layer to put on attention instances")
    if not any(t.blocks for t in ffn):
        raise ConfigError(f"{model.name} has no FFN / MoE layer to put on FFN instances")
    a = model.model_copy(update={"layers": attn, "name": f"{model.name}/attention"})
    f = model.model_copy(update={"layers": ffn, "name": f"{model.name}/ffn", "vocab_size": 1,
                                 "tie_word_embeddings": True, "learned_position_rows": 0})
    return a, f


def sized_cluster(cluster: Cluster, num_gpus: int) -> Cluster:
    """``cluster`` with nodes enough for ``num_gpus`` (same node layout and links)."""
    if cluster.num_gpus >= num_gpus:
        return cluster
    return replace(cluster, num_nodes=-(-num_gpus // cluster.gpus_per_node))


def side_deployments(dep: Deployment) -> tuple[Deployment, Deployment]:
    """The attention-instance and FFN-instance deployments of an AFD deployment (each one
    instance's view: ``tp`` GPUs for attention; ``ep = dp = ffn`` for the FFN side)."""
    from llmsim.costmodel.deployment import Deployment

    spec = dep.afd
    assert spec is not None
    attn_model, ffn_model = side_models(dep.model)
    a_plan = ParallelSpec(tp=dep.plan.tp)
    moe = ffn_model.moe
    f_plan = ParallelSpec(tp=1, dp=spec.ffn, ep=spec.ffn if moe is not None else 1,
                          expert_skew=spec.expert_skew if moe is not None else 0.0,
                          redundant_experts=spec.redundant_experts if moe is not None else 0)
    common = {"precision": dep.precision, "profile": dep.profile, "efficiency": dep.efficiency,
              "estimator": dep.estimator, "estimator_model": dep.estimator_model}
    a = Deployment(attn_model, sized_cluster(dep.cluster, a_plan.num_gpus), a_plan, **common)
    f = Deployment(ffn_model, sized_cluster(dep.cluster, f_plan.num_gpus), f_plan, **common)
    return a, f


# ---------------------------------------------------------------------------- the pipeline
def pipeline_time_s(stages: list[tuple[float, ...]], microbatches: int) -> float:
    """``sum_l max(R_l, m t_l) + min(R_L - t_L, (m - 1) t_L)`` over the layers' stage times
    ``stages[l] = (a, s, f, r)`` (module docstring); ``m = 1``: the serial sum."""
    if not stages:
        return 0.0
    m = microbatches
    total = sum(max(sum(s), m * max(s)) for s in stages)
    last = stages[-1]
    return total + min(sum(last) - max(last), (m - 1) * max(last))


@dataclass(frozen=True)
class AFDLayer:
    """One layer template's stage times per micro-batch (seconds) and transfer bytes."""

    name: str
    repeat: int
    attention_s: float
    a_to_f_s: float
    ffn_s: float
    f_to_a_s: float
    transfer_bytes: float
    attention_bound: str
    ffn_bound: str

    @property
    def stages(self) -> tuple[float, float, float, float]:
        return (self.attention_s, self.a_to_f_s, self.ffn_s, self.f_to_a_s)

    @property
    def bottleneck(self) -> str:
        return STAGES[max(range(4), key=lambda i: self.stages[i])]

    def period_s(self, microbatches: int) -> float:
        """``max(R, m t)``: the interval between this layer's issues."""
        return max(sum(self.stages), microbatches * max(self.stages))

    def as_dict(self, microbatches: int) -> dict[str, object]:
        return {**asdict(self), "round_trip_s": sum(self.stages),
                "period_s": self.period_s(microbatches), "bottleneck": self.bottleneck}


@dataclass(frozen=True)
class AFDStep:
    """A priced AFD step: its time, the layers, and the parts outside the layer pipeline."""

    time_s: float
    layers_s: float
    head_s: float
    overhead_s: float
    microbatches: int
    layers: tuple[AFDLayer, ...]
    attention_cost: StepCost
    ffn_cost: StepCost

    @property
    def bottleneck(self) -> str:
        """The stage that bounds most of the step's layers (time-weighted)."""
        totals = dict.fromkeys(STAGES, 0.0)
        for layer in self.layers:
            totals[layer.bottleneck] += layer.period_s(self.microbatches) * layer.repeat
        return max(totals, key=totals.get)  # type: ignore[arg-type]


class AFDStepTimeModel(StepTimeModelBase):
    """The :class:`StepTimeModel` of an AFD deployment (``deployment.afd`` set): its step time
    is the micro-batch pipeline of the module docstring over the two sides' step models."""

    def __init__(self, deployment: Deployment, build):
        self.deployment = deployment
        self.spec: AFDSpec = deployment.afd  # type: ignore[assignment]
        self.attention_deployment, self.ffn_deployment = side_deployments(deployment)
        self.attention_model = build(self.attention_deployment)
        self.ffn_model = build(self.ffn_deployment)
        self._ffn_cache: dict[int, StepCost] = {}

    @property
    def num_stages(self) -> int:
        return 1

    @cached_property
    def _fanout(self) -> list[float]:
        """Per layer template, the FFN instances one token is sent to."""
        out: list[float] = []
        for t in self.ffn_deployment.model.layers:
            moe = next((b for b in t.blocks if isinstance(b, MoEBlock)), None)
            out.append(expected_groups_hit(moe.num_experts, moe.top_k, self.spec.ffn)
                       if moe is not None else 1.0)
        return out

    @cached_property
    def _imbalance(self) -> float:
        moe = self.ffn_deployment.model.moe
        p = self.ffn_deployment.plan
        if moe is None or p.ep <= 1:
            return 1.0
        return load_imbalance(moe.num_experts, p.ep, p.expert_skew, p.redundant_experts)

    @cached_property
    def _link(self) -> tuple[Cluster, int]:
        """A two-node view of the cluster carrying the AFD link, and the stride that puts a
        pair of GPUs on it (1: inside a node; ``gpus_per_node``: across)."""
        cl = self.deployment.cluster
        bw = self.spec.link_bandwidth_bytes_per_s
        per_node = max(2, cl.gpus_per_node)
        if self.spec.link == "nvlink":
            link = cl.intra_node
        elif self.spec.link == "rdma":
            link = cl.inter_node
        else:
            link = _ETHERNET
        if bw is not None:
            link = link.model_copy(update={"bandwidth_bytes_per_s": bw})
        view = replace(cl, gpus_per_node=per_node, num_nodes=2, intra_node=link
                       if self.spec.link == "nvlink" else cl.intra_node,
                       inter_node=link if self.spec.link != "nvlink" else cl.inter_node)
        return view, (1 if self.spec.link == "nvlink" else per_node)

    def transfer_s(self, nbytes: float) -> float:
        """One A -> F (or F -> A) transfer of ``nbytes`` per GPU over the link (alpha-beta)."""
        cl, stride = self._link
        return collective_time(OpKind.P2P, nbytes, 2, cl,
                               self.attention_deployment.hardware_profile, stride)

    # ------------------------------------------------------------------ shapes
    def _attention_shape(self, shape: BatchShape) -> BatchShape:
        """One micro-batch on the most loaded attention instance (counts rounded up, sums in
        proportion)."""
        parts = self.spec.attention * self.microbatches(shape)
        return split_shape(shape, parts)

    def microbatches(self, shape: BatchShape) -> int:
        """The micro-batches a step runs: at most one per sequence."""
        seqs = shape.decode_seqs + shape.prefill_seqs
        return max(1, min(self.spec.microbatches, seqs))

    def _ffn_cost(self, tokens: int) -> StepCost:
        hit = self._ffn_cache.get(tokens)
        if hit is None:
            hit = self.ffn_model.price(BatchShape(decode_seqs=tokens,
                                                  decode_ctx_tokens=float(tokens),
                                                  logits_seqs=0))
            if len(self._ffn_cache) < 100_000:
                self._ffn_cache[tokens] = hit
        return hit

    # ------------------------------------------------------------------ pricing
    def breakdown(self, shape: BatchShape) -> AFDStep:
        """The stage times of every layer template and the pipelined step (docstring)."""
        m = self.microbatches(shape)
        a_shape = self._attention_shape(shape)
        a_tokens = a_shape.num_tokens
        mb_tokens = math.ceil(shape.num_tokens / m)
        f_tokens = max(1, math.ceil(mb_tokens / self.spec.ffn))
        a_cost = self.attention_model.price(a_shape)
        f_cost = self._ffn_cost(f_tokens)
        a_rec = _decoders(a_cost)
        f_rec = _decoders(f_cost)
        h = self.deployment.model.hidden_size
        act = max(self.deployment.precision.activation.bytes, 2.0)
        layers = []
        for i, t in enumerate(self.deployment.model.layers):
            a = a_rec[i] if a_rec[i].ops else None
            f = f_rec[i] if f_rec[i].ops else None
            a_s = a.time_s if a is not None else 0.0
            f_s = (sum(o.time_s * o.count for o in f.ops if o.name not in _DROPPED)
                   if f is not None else 0.0)
            s_s = r_s = nbytes = 0.0
            if a is not None and f is not None:
                fan = self._fanout[i]
                sent = a_tokens * h * act * fan
                received = shape.num_tokens / m / self.spec.ffn * h * act * fan * (
                    self._imbalance if fan > 1.0 else 1.0)
                nbytes = max(sent, received)
                s_s = r_s = self.transfer_s(nbytes)
            layers.append(AFDLayer(
                t.name, t.repeat, a_s, s_s, f_s, r_s, nbytes,
                a.bound.value if a is not None else "", f.bound.value if f is not None else ""))
        expanded = [layer.stages for layer in layers for _ in range(layer.repeat)]
        layers_s = pipeline_time_s(expanded, m)
        head_s = m * sum(r.time_s * r.repeat for r in a_cost.layers if r.kind != "decoder")
        overhead = a_cost.overhead_s
        return AFDStep(layers_s + head_s + overhead, layers_s, head_s, overhead, m,
                       tuple(layers), a_cost, f_cost)

    def step_time(self, shape: BatchShape) -> float:
        return self.breakdown(shape).time_s

    def price(self, shape: BatchShape) -> StepCost:
        """The step's time with one record per layer template: its attention ops (one
        attention instance, one micro-batch), the two transfers and its FFN ops (one FFN
        instance), each record's ops counted ``m`` times; the records' sum is the serial work,
        ``time_s`` the pipelined step."""
        step = self.breakdown(shape)
        m = step.microbatches
        a_rec = _decoders(step.attention_cost)
        f_rec = _decoders(step.ffn_cost)
        records: list[LayerRecord] = []
        for r in step.attention_cost.layers:
            if r.kind == "embedding":
                records.append(_times(r, m))
        for i, layer in enumerate(step.layers):
            ops: list[OpCost] = list(a_rec[i].ops)
            if layer.transfer_bytes:
                ops += [_transfer_op("afd_a_to_f", layer.a_to_f_s, layer.transfer_bytes),
                        _transfer_op("afd_f_to_a", layer.f_to_a_s, layer.transfer_bytes)]
            ops += [o for o in f_rec[i].ops if o.name not in _DROPPED]
            records.append(LayerRecord(layer.name, "decoder", 0, layer.repeat,
                                       tuple(replace(o, count=o.count * m) for o in ops)))
        for r in step.attention_cost.layers:
            if r.kind == "lm_head":
                records.append(_times(r, m))
        return StepCost(step.time_s, step.time_s, tuple(records), step.overhead_s)

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        """``step_time(BatchShape.decode(num_seqs, c))`` for every ``c``, vectorised: only the
        attention kernels depend on the context (the attention side's vectorised
        ``_decode_attention_times``), the rest of the pipeline formula is evaluated on arrays."""
        ctx = np.asarray(context_per_seq, dtype=float)
        hook = getattr(self.attention_model, "_decode_attention_times", None)
        if hook is None or ctx.size == 0:
            return super().decode_step_times(num_seqs, ctx)
        first = BatchShape.decode(num_seqs, float(ctx[0]))
        step = self.breakdown(first)
        m = step.microbatches
        seqs_a = self._attention_shape(first).decode_seqs
        records = _decoders(step.attention_cost)
        total = np.zeros_like(ctx)
        last_r = last_t = total
        for i, layer in enumerate(step.layers):
            if any(o.kind in _ATTENTION_KERNELS for o in records[i].ops):
                fixed = sum(o.time_s * o.count for o in records[i].ops
                            if o.kind not in _ATTENTION_KERNELS)
                a = fixed + hook(i, seqs_a, ctx)
            else:
                a = np.full_like(ctx, layer.attention_s)
            rest = (layer.a_to_f_s, layer.ffn_s, layer.f_to_a_s)
            last_r = a + sum(rest)
            last_t = np.maximum(a, max(rest))
            total = total + layer.repeat * np.maximum(last_r, m * last_t)
        total = total + np.minimum(last_r - last_t, (m - 1) * last_t)
        return total + step.head_s + step.overhead_s

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return self.decode_step_times(num_seqs, context_per_seq)[None, :]

    def describe(self) -> dict[str, object]:
        return {**self.deployment.describe(), "afd": self.spec.describe()}


def _decoders(cost: StepCost) -> list[LayerRecord]:
    """The decoder records of a one-stage step, one per layer template in order."""
    return [r for r in cost.layers if r.kind == "decoder"]


def _times(record: LayerRecord, m: int) -> LayerRecord:
    return replace(record, ops=tuple(replace(o, count=o.count * m) for o in record.ops))


def _transfer_op(name: str, time_s: float, nbytes: float) -> OpCost:
    return OpCost(name, OpKind.P2P, 0.0, 0.0, 0.0, 0.0, 0.0, time_s, 0.0, time_s,
                  Bound.COMMUNICATION, comm_bytes=nbytes, shape={"message_bytes": nbytes})


def split_shape(shape: BatchShape, parts: int) -> BatchShape:
    """``shape`` split ``parts`` ways: counts rounded up (the most loaded part), the pairs and
    keys in proportion to them."""
    def up(n: int) -> int:
        return -(-n // parts) if n else 0

    p_seqs, p_tok, d_seqs = up(shape.prefill_seqs), up(shape.prefill_tokens), up(shape.decode_seqs)
    p_frac = p_tok / shape.prefill_tokens if shape.prefill_tokens else 0.0
    d_frac = d_seqs / shape.decode_seqs if shape.decode_seqs else 0.0
    logits = -1 if shape.logits_seqs < 0 else up(shape.logits_seqs)
    return BatchShape(p_seqs, p_tok, shape.prefill_attn_pairs * p_frac,
                      shape.prefill_ctx_tokens * p_frac, d_seqs, shape.decode_ctx_tokens * d_frac,
                      logits)
