"""Per-layer op lists: turn a layer template, a batch shape and a parallel plan into the ops one
device runs, each priced by ``kernels`` / ``collectives``.

Shapes are per device: attention heads and dense-MLP widths split by TP (KV heads replicated when
TP exceeds them), experts split by EP and each expert by ``moe_tp``; every TP rank of a DP rank
processes all of that DP rank's tokens. Communication follows the Megatron-LM pattern (one
all-reduce after the attention output projection and one after the MLP down projection; one in
all for a parallel-residual layer) and, for MoE, token dispatch/combine as vLLM / SGLang do it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from llmsim.catalog.blocks import AttentionBlock, CommBlock, CommGroup, FFNBlock, MoEBlock
from llmsim.catalog.cluster import Cluster
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.parallel import ParallelSpec
from llmsim.costmodel import kernels
from llmsim.costmodel.collectives import collective
from llmsim.costmodel.ep_comm import ep_transfer, ep_volumes, ranks_per_node, token_bytes
from llmsim.costmodel.expert_routing import load_imbalance
from llmsim.costmodel.opcases import kv_bytes_per_token
from llmsim.costmodel.ops import OpCost, OpKind, Precision
from llmsim.costmodel.profile import HardwareProfile
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.sharding import device_matrix


@dataclass(frozen=True)
class Layout:
    """Everything the op builders need that does not depend on the batch."""

    model: ModelSpec
    cluster: Cluster
    plan: ParallelSpec
    precision: Precision
    prof: HardwareProfile

    @property
    def hw(self):
        return self.cluster.hardware

    # --- attention, per device -------------------------------------------------------------
    def heads(self, attn: AttentionBlock) -> float:
        return attn.num_heads / self.plan.tp

    def kv_heads(self, attn: AttentionBlock) -> float:
        """KV heads held per device: kv/tp, or 1 when tp exceeds kv (replicated copies)."""
        return max(1.0, attn.num_kv_heads / self.plan.tp)

    def kv_bytes_per_token(self, attn: AttentionBlock) -> float:
        """This device's KV-cache bytes per token for one layer (the one formula).

        MHA/GQA: ``opcases.kv_bytes_per_token(kv_heads_per_device, head_dim, v_head_dim)``;
        MLA: (kv_lora_rank + qk_rope_head_dim) x kv bytes, replicated on every TP rank (group
        scales of int4 / fp4 caches included in both).
        """
        kv = self.precision.kv
        if attn.is_mla:
            return attn.kv_cache_elements_per_token * kv.bytes_with_scales
        return kv_bytes_per_token(self.kv_heads(attn), attn.head_dim, attn.value_head_dim, kv)

    def attention_dims(self, attn: AttentionBlock, decode: bool) -> tuple[int, int]:
        """(qk_dim, v_dim) of the attention kernel. MLA decode runs weight-absorbed over the
        latent (qk = kv_lora_rank + rope, v = kv_lora_rank; DeepSeek-V2 paper section 2.1.3)."""
        if attn.is_mla and decode:
            return attn.kv_lora_rank + attn.qk_rope_head_dim, attn.kv_lora_rank  # type: ignore
        return attn.qk_head_dim, attn.value_head_dim

    @cached_property
    def act_bytes(self) -> float:
        return max(self.precision.activation.bytes, 2.0)


def _gemm_dims(w, layout: Layout, tokens: float) -> tuple[float, float, float]:
    """Per-device (m, n, k) of a dense weight's GEMM (split per ``sharding.device_matrix``)."""
    k, n, _ = device_matrix(w, layout.plan)
    return tokens, n, k


def _tp_all_reduce(layout: Layout, tokens: float, name: str) -> OpCost:
    size = tokens * layout.model.hidden_size * layout.act_bytes
    return collective(OpKind.ALL_REDUCE, size, layout.plan.tp, layout.cluster, layout.prof,
                      name=name)


def _norm(layout: Layout, tokens: float, name: str) -> OpCost:
    """Fused residual-add + norm: reads x and the residual, writes both (4 x T x h values)."""
    nbytes = tokens * layout.model.hidden_size * layout.act_bytes
    return kernels.elementwise(name, 2 * nbytes, 2 * nbytes, layout.hw, layout.prof,
                               flops=8.0 * tokens * layout.model.hidden_size)


def attention_ops(attn: AttentionBlock, shape: BatchShape, layout: Layout,
                  skip_reduce: bool = False) -> list[OpCost]:
    """Pre-norm, Q/K/V (or MLA) projections, RoPE, attention kernels, output projection and the
    TP all-reduce (``skip_reduce`` for parallel-residual layers, reduced after the MLP)."""
    hw, prof, prec = layout.hw, layout.prof, layout.precision
    t = float(shape.num_tokens)
    ops = [_norm(layout, t, "attn_norm")]
    for w in attn.weights():
        m, n, k = _gemm_dims(w, layout, t)
        ops.append(kernels.gemm(m, n, k, hw, prof, prec.weight, prec.activation, name=w.name))
    heads = layout.heads(attn)
    if attn.rope:
        rope_dim = attn.qk_rope_head_dim if attn.is_mla else attn.head_dim
        rope_heads = heads + (1 if attn.is_mla else layout.kv_heads(attn))
        nbytes = t * rope_heads * rope_dim * layout.act_bytes
        ops.append(kernels.elementwise("rope", nbytes, nbytes, hw, prof,
                                       flops=3.0 * t * rope_heads * rope_dim))
    kv_bpt = layout.kv_bytes_per_token(attn)
    if shape.prefill_tokens:
        qk, v = layout.attention_dims(attn, decode=False)
        pairs, ctx = _windowed_prefill(attn, shape)
        ops.append(kernels.attention_prefill(shape.prefill_seqs, shape.prefill_tokens, pairs, ctx,
                                             heads, kv_bpt, qk, v, hw, prof, prec.activation,
                                             name="attention_prefill"))
    if shape.decode_seqs:
        qk, v = layout.attention_dims(attn, decode=True)
        ops.append(kernels.attention_decode(shape.decode_seqs, windowed_decode(attn, shape),
                                            heads, kv_bpt, qk, v, hw, prof, prec.activation,
                                            name="attention_decode"))
    if layout.plan.tp > 1 and not skip_reduce:
        ops.append(_tp_all_reduce(layout, t, "attn_all_reduce"))
    return ops


def window_pairs(chunk: float, past: float, window: float) -> float:
    """Causal (query, key) pairs of a chunk of ``chunk`` tokens after ``past`` cached ones when
    each query sees at most ``window`` keys: ``sum_{i=past+1}^{past+chunk} min(window, i)``."""
    first, last = past + 1.0, past + chunk
    if last <= window:
        return (first + last) * chunk / 2.0
    if first > window:
        return chunk * window
    return (first + window) * (window - first + 1.0) / 2.0 + (last - window) * window


def _windowed_prefill(attn: AttentionBlock, shape: BatchShape) -> tuple[float, float]:
    """(pairs, keys read) of the prefill chunks under a sliding window of ``w`` keys per query
    (:func:`window_pairs`; keys read per chunk: ``min(past + chunk, w + chunk - 1)``), on the
    per-sequence averages of the shape's sums (exact when the chunks are alike)."""
    w = attn.sliding_window
    if not w or shape.prefill_seqs == 0:
        return shape.prefill_attn_pairs, shape.prefill_ctx_tokens
    seqs = shape.prefill_seqs
    chunk = shape.prefill_tokens / seqs
    past = shape.prefill_ctx_tokens / seqs - chunk
    if past + chunk <= w:
        return shape.prefill_attn_pairs, shape.prefill_ctx_tokens
    return seqs * window_pairs(chunk, past, w), seqs * min(past + chunk, w + chunk - 1.0)


def windowed_decode(attn: AttentionBlock, shape: BatchShape) -> float:
    """Keys the decode sequences attend to, capped at the sliding window per sequence
    (on aggregates: exact when every sequence is past the window or none is)."""
    w = attn.sliding_window
    if not w or shape.decode_seqs == 0:
        return shape.decode_ctx_tokens
    return min(shape.decode_ctx_tokens, float(shape.decode_seqs) * w)


def ffn_ops(ffn: FFNBlock, shape: BatchShape, layout: Layout, reduce: bool = True) -> list[OpCost]:
    """(Norm,) up/gate GEMM, activation, down GEMM, TP all-reduce."""
    hw, prof, prec = layout.hw, layout.prof, layout.precision
    t = float(shape.num_tokens)
    ops = [_norm(layout, t, "mlp_norm")] if ffn.has_norm else []
    up, down = ffn.weights()
    m, n, k = _gemm_dims(up, layout, t)
    ops.append(kernels.gemm(m, n, k, hw, prof, prec.weight, prec.activation, name=up.name))
    width = ffn.intermediate_size / layout.plan.tp
    read = t * width * (2 if ffn.gated else 1) * layout.act_bytes
    ops.append(kernels.elementwise("activation", read, t * width * layout.act_bytes, hw, prof,
                                   flops=5.0 * t * width))
    m, n, k = _gemm_dims(down, layout, t)
    ops.append(kernels.gemm(m, n, k, hw, prof, prec.weight, prec.activation, name=down.name))
    if layout.plan.tp > 1 and reduce:
        ops.append(_tp_all_reduce(layout, t, "mlp_all_reduce"))
    return ops


def moe_ops(moe: MoEBlock, shape: BatchShape, layout: Layout) -> list[OpCost]:
    """Router, token dispatch, routed experts, shared experts, combine.

    The MoE group is the tp x dp ranks of a stage. Each DP rank brings its own ``T`` tokens, so
    the group routes ``T x dp`` tokens. dp == 1: every rank already holds all tokens, experts
    (EP-split or TP-split) compute their share and one all-reduce over TP combines (vLLM).
    dp > 1 with EP: all-to-all dispatch and combine of each rank's ``T x top_k / tp`` token
    copies (DeepEP-style; with ``plan.ep_kernel`` DeepEP's own volumes and rates,
    ``ep_comm.py``); dp > 1 without EP: all-gather tokens, reduce-scatter results.
    Under EP the most loaded rank sets the time: its routed tokens and received bytes are the
    balanced ones times ``expert_routing.load_imbalance`` (1 without ``expert_skew``).
    """
    hw, prof, prec, plan, cl = layout.hw, layout.prof, layout.precision, layout.plan, layout.cluster
    h = moe.hidden_size
    t = float(shape.num_tokens)
    group = plan.tp * plan.dp
    t_group = t * plan.dp
    imbalance = (load_imbalance(moe.num_experts, plan.ep, plan.expert_skew,
                                plan.redundant_experts) if plan.ep > 1 else 1.0)
    ops = [_norm(layout, t, "moe_norm")]
    ops.append(kernels.gemm(t, moe.num_experts, h, hw, prof, prec.unquantized,
                            prec.unquantized, name="router"))
    tok_bytes = h * layout.act_bytes
    deepep = plan.ep_kernel if plan.dp > 1 and plan.ep > 1 else None
    if deepep is not None:
        per_node = ranks_per_node(plan, cl)
        fp8 = prec.activation.bits == 8
        dispatch = ep_volumes(deepep, moe.num_experts, moe.top_k, plan.ep, per_node,
                              token_bytes(h, fp8))
        ops.append(ep_transfer(deepep, t / plan.tp, dispatch, cl, imbalance, "moe_dispatch"))
    elif plan.dp > 1 and plan.ep > 1:
        ops.append(collective(OpKind.ALL_TO_ALL, t * moe.top_k * tok_bytes / plan.tp * imbalance,
                              group, cl, prof, name="moe_dispatch"))
    elif plan.dp > 1:
        ops.append(collective(OpKind.ALL_GATHER, t_group * tok_bytes, plan.dp, cl, prof,
                              stride=plan.tp, name="moe_gather"))
    ops.append(kernels.moe_experts(t_group * imbalance, h, moe.expert_intermediate_size,
                                   moe.num_experts, moe.top_k, hw, prof, plan.ep, plan.moe_tp,
                                   prec.weight, prec.activation, moe.gated, name="experts"))
    if moe.num_shared_experts:
        for w in moe.weights():
            if w.name.startswith("shared"):
                m, n, k = _gemm_dims(w, layout, t)
                ops.append(kernels.gemm(m, n, k, hw, prof, prec.weight, prec.activation,
                                        name=w.name))
    if plan.dp > 1 and plan.ep > 1:
        if deepep is not None:
            combine = ep_volumes(deepep, moe.num_experts, moe.top_k, plan.ep, per_node,
                                 token_bytes(h, False))
            ops.append(ep_transfer(deepep, t / plan.tp, combine, cl, imbalance, "moe_combine"))
        else:
            ops.append(collective(OpKind.ALL_TO_ALL,
                                  t * moe.top_k * tok_bytes / plan.tp * imbalance, group, cl,
                                  prof, name="moe_combine"))
        if plan.moe_tp > 1:
            routed = t_group * moe.top_k / plan.ep * imbalance
            ops.append(collective(OpKind.ALL_REDUCE, routed * tok_bytes, plan.moe_tp, cl, prof,
                                  name="moe_tp_all_reduce"))
    elif plan.dp > 1:
        ops.append(collective(OpKind.REDUCE_SCATTER, t_group * tok_bytes, group, cl, prof,
                              name="moe_scatter"))
    elif plan.tp > 1:
        ops.append(_tp_all_reduce(layout, t, "moe_all_reduce"))
    return ops


_EP_COMM = ("moe_dispatch", "moe_combine")
_NOT_OVERLAPPED = (OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


def two_batch_overlap(ops: list[OpCost]) -> list[OpCost]:
    """A layer's ops run as two micro-batches (SGLang / DeepSeek two-batch overlap): one
    micro-batch's EP dispatch / combine hides behind the other's compute, so the layer takes
    ``max(C, M)`` instead of ``C + M`` (``M``: the dispatch and combine time, ``C``: the other
    ops' time, attention kernels left out so the memoised dense path agrees). The comm ops keep
    their exposed part ``max(0, M - C)``, pro rata. The half-size kernels' lower efficiency is
    not modelled (an optimistic assumption)."""
    comm = sum(o.time_s * o.count for o in ops if o.name in _EP_COMM)
    if comm <= 0:
        return ops
    compute = sum(o.time_s * o.count for o in ops
                  if o.name not in _EP_COMM and o.kind not in _NOT_OVERLAPPED)
    keep = max(0.0, comm - compute) / comm
    return [replace(o, comm_s=o.comm_s * keep, overhead_s=o.overhead_s * keep,
                    time_s=o.time_s * keep) if o.name in _EP_COMM else o for o in ops]


def comm_ops(block: CommBlock, shape: BatchShape, layout: Layout) -> list[OpCost]:
    """An explicit scenario collective of ``bytes_per_token x tokens`` over its group."""
    plan = layout.plan
    sizes = {CommGroup.TP: (plan.tp, 1), CommGroup.EP: (plan.ep, 1),
             CommGroup.DP: (plan.dp, plan.tp), CommGroup.PP: (2, 1),
             CommGroup.WORLD: (plan.num_gpus, 1)}
    group, stride = sizes[block.group]
    size = block.bytes_per_token * shape.num_tokens
    name = f"{block.collective.value}_{block.group.value}"
    return [collective(OpKind(block.collective.value), size, group, layout.cluster,
                       layout.prof, stride=stride, name=name)]


def template_ops(template_index: int, shape: BatchShape, layout: Layout) -> list[OpCost]:
    """All ops of one decoder layer of the given template, in execution order."""
    template = layout.model.layers[template_index]
    ops: list[OpCost] = []
    parallel = template.parallel_residual
    for block in template.blocks:
        if isinstance(block, AttentionBlock):
            ops += attention_ops(block, shape, layout, skip_reduce=parallel)
        elif isinstance(block, FFNBlock):
            ops += ffn_ops(block, shape, layout)
        elif isinstance(block, MoEBlock):
            ops += moe_ops(block, shape, layout)
        elif isinstance(block, CommBlock):
            ops += comm_ops(block, shape, layout)
    if layout.plan.two_batch_overlap:
        ops = two_batch_overlap(ops)
    return ops


def embedding_ops(shape: BatchShape, layout: Layout) -> list[OpCost]:
    """Token (and learned position) embedding gather; vocab-parallel under TP (+ all-reduce)."""
    t = float(shape.num_tokens)
    model = layout.model
    row_bytes = model.hidden_size * layout.act_bytes
    rows = 2 if model.learned_position_rows else 1
    ops = [kernels.elementwise("embedding", t * row_bytes * rows, t * row_bytes, layout.hw,
                               layout.prof, kind=OpKind.EMBEDDING)]
    if layout.plan.tp > 1:
        ops.append(_tp_all_reduce(layout, t, "embedding_all_reduce"))
    return ops


def lm_head_ops(shape: BatchShape, layout: Layout) -> list[OpCost]:
    """Final norm, LM-head GEMM over the sampled rows, logits all-gather, sampling."""
    hw, prof, prec = layout.hw, layout.prof, layout.precision
    model = layout.model
    t = float(shape.num_tokens)
    rows = float(shape.num_logits)
    ops = [_norm(layout, t, "final_norm")]
    if rows <= 0:
        return ops
    vocab_dev = model.vocab_size / layout.plan.tp
    ops.append(kernels.gemm(rows, vocab_dev, model.hidden_size, hw, prof, prec.unquantized,
                            prec.unquantized, name="lm_head"))
    if layout.plan.tp > 1:
        ops.append(collective(OpKind.ALL_GATHER, rows * model.vocab_size * layout.act_bytes,
                              layout.plan.tp, layout.cluster, prof, name="logits_all_gather"))
    logits_bytes = rows * model.vocab_size * 4.0
    ops.append(kernels.elementwise("sampling", logits_bytes, rows * 8.0, hw, prof,
                                   flops=5.0 * rows * model.vocab_size, kind=OpKind.SAMPLING))
    return ops


def stage_p2p(shape: BatchShape, layout: Layout) -> OpCost:
    """Activations (hidden state and residual) sent from one pipeline stage to the next."""
    size = 2.0 * shape.num_tokens * layout.model.hidden_size * layout.act_bytes
    return collective(OpKind.P2P, size, 2, layout.cluster, layout.prof,
                      stride=layout.plan.tp * layout.plan.dp, name="pp_send")
