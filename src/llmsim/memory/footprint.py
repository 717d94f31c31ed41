"""Memory per device: weights, KV cache, activations, framework reserve; what fits.

Weights per device are summed over the heaviest pipeline stage from each block's weight list,
split per ``costmodel.sharding`` (the same split the GEMMs use). Quantized formats apply to the
decoder's linear layers; embedding, LM head, router and norms stay 16-bit (what vLLM, TensorRT-LLM
and the AWQ/GPTQ/FP8 checkpoints do). Group scales are included (``DType.bytes_with_scales``).

KV bytes per token per device come from ``Layout.kv_bytes_per_token`` (one formula) summed over
the layers of the stage. Usable memory is ``capacity x memory_utilization`` (vLLM's
``gpu_memory_utilization``, default 0.9) minus a fixed reserve for the CUDA context and
communication buffers (``reserve_bytes``, default 1 GiB; NCCL buffers of a few hundred MB per
aiconfigurator's measurements). The activation peak is that of the largest forward pass
(``max_tokens`` tokens), the transient buffers of its widest block plus the logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmsim import checks, units
from llmsim.catalog.blocks import AttentionBlock, CommBlock, FFNBlock, MoEBlock
from llmsim.catalog.cluster import Cluster
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.parallel import ParallelSpec
from llmsim.costmodel.layers import Layout
from llmsim.costmodel.ops import Precision
from llmsim.costmodel.profile import Profile
from llmsim.costmodel.sharding import device_params
from llmsim.dtypes import DType
from llmsim.errors import DoesNotFitError

DEFAULT_MEMORY_UTILIZATION = 0.9
DEFAULT_RESERVE_BYTES = 1.0 * units.GiB


@dataclass(frozen=True)
class MemoryReport:
    """Per-device memory of the heaviest pipeline stage. Bytes unless named otherwise."""

    capacity_bytes: float
    memory_utilization: float
    reserve_bytes: float
    usable_bytes: float
    weight_bytes: float
    kv_bytes_per_token: float
    activation_bytes: float
    kv_budget_bytes: float
    max_kv_tokens: int
    kv_bytes: float
    peak_bytes: float
    fits: bool
    stage: int

    @property
    def free_bytes(self) -> float:
        return self.usable_bytes - self.peak_bytes

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def stage_weight_params(model: ModelSpec, plan: ParallelSpec, counts: list[tuple[int, int]],
                         first: bool, last: bool) -> tuple[float, float]:
    """(quantizable linear params, 16-bit params) on one device holding the layers ``counts``
    (``(template_index, layer_count)`` pairs), plus the embedding when ``first`` and the final
    norm and LM head when ``last``. The one weight-split entry point (memory, offload)."""
    linear, plain = 0.0, 0.0
    for idx, count in counts:
        template = model.layers[idx]
        for block in template.blocks:
            if isinstance(block, CommBlock):
                continue
            for w in block.weights():
                p = device_params(w, plan) * count
                if w.name == "router":
                    plain += p
                else:
                    linear += p
            plain += block.vector_params() * count
    if first:
        plain += model.embedding_params / plan.tp
    if last:
        plain += model.final_norm_params
        head = model.lm_head_params if not model.tie_word_embeddings else model.embedding_params
        if not first or not model.tie_word_embeddings:
            plain += head / plan.tp
    return linear, plain


def weight_bytes_per_device(model: ModelSpec, plan: ParallelSpec, precision: Precision,
                            stage: int | None = None) -> float:
    """Weight bytes on one device of ``stage`` (default: the heaviest stage)."""
    stages = plan.stage_layers(model)
    values = []
    for s, counts in enumerate(stages):
        linear, plain = stage_weight_params(model, plan, counts, s == 0, s == len(stages) - 1)
        values.append(linear * precision.weight.bytes_with_scales
                      + plain * precision.unquantized.bytes)
    return values[stage] if stage is not None else max(values)


def kv_bytes_per_token_per_device(layout: Layout, stage: int | None = None) -> float:
    """KV-cache bytes one token occupies on one device (summed over the stage's layers)."""
    stages = layout.plan.stage_layers(layout.model)
    values = []
    for counts in stages:
        total = 0.0
        for idx, count in counts:
            attn = layout.model.layers[idx].attention
            if attn is not None:
                total += count * layout.kv_bytes_per_token(attn)
        values.append(total)
    return values[stage] if stage is not None else max(values)


def activation_bytes_per_device(layout: Layout, max_tokens: int, max_logits: int) -> float:
    """Peak transient activation bytes of one forward pass of ``max_tokens`` tokens.

    Per token: the residual stream and normed input (2h), plus the widest block's intermediate
    outputs on this device (QKV / MLA projections and scores-free attention output; MLP gate+up
    and activation; MoE routed copies and expert intermediates). Plus fp32 logits of the sampled
    rows over the device's vocabulary shard (x2 for softmax). Engines pre-allocate this (vLLM
    profiles a dummy run of ``max_num_batched_tokens``).
    """
    model, plan = layout.model, layout.plan
    b = max(layout.precision.activation.bytes, 2.0)
    h = model.hidden_size
    widest = 0.0
    for template in model.layers:
        for block in template.blocks:
            if isinstance(block, AttentionBlock):
                w = (block.num_heads / plan.tp) * (block.qk_head_dim * 2 + block.value_head_dim)
            elif isinstance(block, FFNBlock):
                w = block.intermediate_size / plan.tp * (3 if block.gated else 2)
            elif isinstance(block, MoEBlock):
                routed = block.top_k * plan.dp / plan.ep
                w = routed * (h + block.expert_intermediate_size / plan.moe_tp * 3) \
                    + block.num_experts
            else:
                w = 0.0
            widest = max(widest, w)
    per_token = (2 * h + widest) * b
    logits = max_logits * model.vocab_size / plan.tp * 4.0 * 2
    return max_tokens * per_token + logits


def _check_args(model: object, cluster: object, plan: object, precision: object,
                memory_utilization: object) -> None:
    """The specs a memory analysis needs, and the share of memory it may use (0.05..1)."""
    for value, name, typ, what in ((model, "model", ModelSpec, "a ModelSpec (get_model)"),
                                   (cluster, "cluster", Cluster, "a Cluster (get_cluster)"),
                                   (plan, "plan", ParallelSpec, "a ParallelSpec"),
                                   (precision, "precision", Precision,
                                    "a Precision (Precision.resolve)")):
        checks.one_of_types(value, name, (typ,), what)
    checks.number(memory_utilization, "memory_utilization", 0.05, 1.0)


def analyze_memory(model: ModelSpec, cluster: Cluster, plan: ParallelSpec, precision: Precision,
                   kv_tokens: float = 0.0, max_tokens: int = 0, max_logits: int = 0,
                   memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
                   reserve_bytes: float = DEFAULT_RESERVE_BYTES) -> MemoryReport:
    """Memory report for a device holding ``kv_tokens`` cached tokens and running forward passes
    of up to ``max_tokens`` tokens (``max_logits`` sampled rows)."""
    _check_args(model, cluster, plan, precision, memory_utilization)
    checks.number(kv_tokens, "kv_tokens", 0.0)
    checks.whole(max_tokens, "max_tokens", low=0)
    checks.whole(max_logits, "max_logits", low=0)
    checks.number(reserve_bytes, "reserve_bytes", 0.0)
    layout = Layout(model, cluster, plan, precision, Profile.empty().for_hardware(cluster.hardware))
    capacity = cluster.hardware.memory_bytes
    usable = capacity * memory_utilization - reserve_bytes
    stages = plan.stage_layers(model)
    best: MemoryReport | None = None
    for s in range(len(stages)):
        weights = weight_bytes_per_device(model, plan, precision, stage=s)
        kv_pt = kv_bytes_per_token_per_device(layout, stage=s)
        act = activation_bytes_per_device(layout, max_tokens, max_logits)
        budget = usable - weights - act
        max_kv = int(budget // kv_pt) if kv_pt > 0 and budget > 0 else 0
        kv = kv_tokens * kv_pt
        peak = weights + act + kv
        report = MemoryReport(capacity, memory_utilization, reserve_bytes, usable, weights, kv_pt,
                              act, budget, max_kv, kv, peak, peak <= usable, s)
        if best is None or report.free_bytes < best.free_bytes:
            best = report
    assert best is not None
    return best


def max_sequences(model: ModelSpec, cluster: Cluster, plan: ParallelSpec, precision: Precision,
                  seq_len: int, max_tokens: int | None = None,
                  memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
                  prefill_tokens: int | None = None, logits_per_seq: int = 1) -> int:
    """The most sequences holding ``seq_len`` tokens of KV each that one replica can keep
    (weights stay fixed).

    With ``max_tokens`` (an engine's ``max_num_batched_tokens``) the activation budget is fixed
    and the rest holds KV: ``max_kv_tokens // seq_len``. Without it the whole batch is one
    forward pass (a static batch's prefill of ``prefill_tokens`` per sequence, default
    ``seq_len``, sampling ``logits_per_seq`` rows each), so activations grow with the batch too;
    both are linear in the number of sequences B, hence
    ``B = (usable - weights) // (seq_len x kv_bytes_per_token + activations(1 sequence))``.
    """
    if max_tokens:
        rep = analyze_memory(model, cluster, plan, precision, max_tokens=max_tokens,
                             max_logits=1, memory_utilization=memory_utilization)
        return rep.max_kv_tokens // seq_len
    one = analyze_memory(model, cluster, plan, precision, kv_tokens=seq_len,
                         max_tokens=prefill_tokens or seq_len, max_logits=logits_per_seq,
                         memory_utilization=memory_utilization)
    per_seq = one.kv_bytes + one.activation_bytes
    room = one.usable_bytes - one.weight_bytes
    return max(0, int(room // per_seq)) if per_seq > 0 else 0


def batch_fix(max_batch: int, model: ModelSpec, cluster: Cluster, plan: ParallelSpec,
              precision: Precision, need_bytes: float) -> str:
    """What to try when a batch does not fit: the batch that does, else :func:`fit_suggestion`."""
    if max_batch >= 1:
        return f"--batch {max_batch}"
    return fit_suggestion(model, cluster, plan, precision, need_bytes)


def fit_suggestion(model: ModelSpec, cluster: Cluster, plan: ParallelSpec,
                   precision: Precision, need_bytes: float) -> str:
    """A concrete fix for a model that does not fit: more TP (or PP), or narrower weights."""
    hw = cluster.hardware
    usable = hw.memory_bytes * DEFAULT_MEMORY_UTILIZATION - DEFAULT_RESERVE_BYTES
    tries: list[str] = []
    for tp in (2, 4, 8, 16, 32, 64):
        if tp <= plan.tp:
            continue
        candidate = plan.model_copy(update={"tp": tp})
        try:
            candidate.validate_for(model)
        except Exception:
            continue
        if weight_bytes_per_device(model, candidate, precision) < 0.8 * usable:
            tries.append(f"--tp {tp}")
            break
    for pp in (2, 4, 8, 16):
        if pp <= plan.pp or pp > model.num_layers:
            continue
        candidate = plan.model_copy(update={"pp": pp})
        if weight_bytes_per_device(model, candidate, precision) < 0.8 * usable:
            tries.append(f"--pp {pp}")
            break
    for dt in (DType.FP8, DType.INT4):
        if dt.bits < precision.weight.bits:
            p = Precision(dt, precision.activation, precision.kv)
            if weight_bytes_per_device(model, plan, p) < 0.8 * usable:
                tries.append(f"--weight-dtype {dt.value}")
                break
    return " or ".join(tries) if tries else "a larger GPU or more GPUs"


def check_weights_fit(model: ModelSpec, cluster: Cluster, plan: ParallelSpec,
                      precision: Precision, memory_utilization: float =
                      DEFAULT_MEMORY_UTILIZATION) -> None:
    """Raise :class:`DoesNotFitError` when the weights alone exceed usable memory."""
    _check_args(model, cluster, plan, precision, memory_utilization)
    weights = weight_bytes_per_device(model, plan, precision)
    usable = cluster.hardware.memory_bytes * memory_utilization - DEFAULT_RESERVE_BYTES
    if weights > usable:
        hint = fit_suggestion(model, cluster, plan, precision, weights)
        raise DoesNotFitError(
            f"{model.name} weights need {units.fmt_bytes(weights)} per GPU "
            f"({precision.weight.value}, tp {plan.tp}, pp {plan.pp}, ep {plan.ep}) but one "
            f"{cluster.hardware.name} gives {units.fmt_bytes(usable)} usable; try {hint}",
            need_bytes=weights, have_bytes=usable,
        )
