"""Compute kernels: GEMM, grouped expert GEMM, attention (prefill/decode, MHA/GQA/MQA/MLA),
elementwise ops, embedding and sampling. Pure functions of shapes, hardware and profile.

Every time comes from :func:`kernel_time` (one roofline formula, see ``profile.py``); every
FLOP count is ``2 x multiply-accumulates``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel.ops import Bound, OpCost, OpKind, kernel_bound
from llmsim.costmodel.profile import HardwareProfile, ResolvedKernel, kernel_family
from llmsim.dtypes import DType, compute_dtype

# Output activations of 8-bit GEMMs are written in 16-bit (the usual fp8/int8 kernel epilogue).
_OUT_MIN_BYTES = 2.0
# Tensor-core GEMMs compute rows in tiles of at least 16 (the m16n8k16 MMA shape): a GEMM of
# fewer rows runs the same tile, so its efficiency is that of 16 rows. Measured GEMMs agree: time
# is flat (rising 1-7%) from m = 1 to 16 (AIConfigurator vLLM tables, A100 and H100), never falls.
GEMM_TILE_ROWS = 16.0


class KernelWork(NamedTuple):
    """What one kernel asks of the hardware: work, traffic, the peak it runs at and the GEMM-like
    dims (m, n, k) its efficiency depends on. Fields are floats or numpy arrays (every
    ``*_work`` function is vectorised over its shape arguments, which is how the calibration
    fitter prices thousands of measured shapes with exactly the formulas below).

    ``ramp_rho`` / ``ramp_unit`` place the break-even floors of the memory ramp (see
    :meth:`~llmsim.costmodel.profile.ResolvedKernel.memory_efficiency`; 0: no floors) and
    ``causal`` marks FLOPs that grow as causal pairs ``m (n + 1) / 2`` (prefill attention),
    whose compute dims are floored too: with them the time never falls as a dimension grows."""

    flops: Any
    bytes_read: Any
    bytes_written: Any
    peak_flops_per_s: float
    m: Any
    n: Any
    k: Any
    ramp_rho: Any = 0.0
    ramp_unit: Any = 1.0
    causal: bool = False

    @property
    def bytes(self):
        return self.bytes_read + self.bytes_written


def kernel_time(flops, nbytes, peak_flops_per_s: float, bandwidth_bytes_per_s: float,
                eff: ResolvedKernel, m=0.0, n=0.0, k=0.0, ramp_rho=0.0, ramp_unit=1.0,
                causal: bool = False):
    """Roofline time of one kernel (the one formula; see ``profile.py``)::

        time = launch + max(F / (P * eta_c(m, n, k)), B / (W * eta_m(m, n)))

    Returns ``(time_s, compute_s, memory_s, overhead_s)``; accepts floats or numpy arrays.
    ``ramp_rho``, ``ramp_unit`` and ``causal``: the floors that keep it monotone
    (:class:`KernelWork`).
    """
    compute_s = flops / (peak_flops_per_s * eff.compute_efficiency(m, n, k, causal))
    memory_s = nbytes / (bandwidth_bytes_per_s
                         * eff.memory_efficiency(m, n, ramp_rho, ramp_unit))
    overhead_s = eff.launch_s
    if isinstance(compute_s, float) and isinstance(memory_s, float):  # scalar fast path
        return (overhead_s + (compute_s if compute_s > memory_s else memory_s), compute_s,
                memory_s, overhead_s)
    return overhead_s + np.maximum(compute_s, memory_s), compute_s, memory_s, overhead_s


def _at_least(x, floor: float):
    """``max(x, floor)`` for scalars and arrays alike."""
    if isinstance(x, (int, float)):
        return x if x > floor else floor
    return np.maximum(x, floor)


def work_time(work: KernelWork, hw: HardwareSpec, eff: ResolvedKernel):
    """:func:`kernel_time` of a :class:`KernelWork` on ``hw``."""
    return kernel_time(work.flops, work.bytes, work.peak_flops_per_s,
                       hw.memory_bandwidth_bytes_per_s, eff, work.m, work.n, work.k,
                       work.ramp_rho, work.ramp_unit, work.causal)


def _op(name: str, kind: OpKind, work: KernelWork, hw: HardwareSpec, eff: ResolvedKernel,
        shape: dict[str, float], case: tuple[tuple[str, object], ...] = ()) -> OpCost:
    flops, nbytes = float(work.flops), float(work.bytes)
    if flops <= 0 and nbytes <= 0:
        return OpCost(name, kind, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, Bound.OVERHEAD,
                      shape=shape, case=case)
    t, c, mem, o = work_time(work, hw, eff)
    return OpCost(name, kind, flops, float(work.bytes_read), float(work.bytes_written),
                  float(c), float(mem), 0.0, float(o), float(t),
                  kernel_bound(float(c), float(mem), float(o)), shape=shape, case=case)


def gemm_work(m, n, k, hw: HardwareSpec, weight: DType = DType.BF16,
              activation: DType = DType.BF16, copies=1) -> KernelWork:
    """``[m, k] x [k, n]``: FLOPs = 2mnk; bytes = m*k (activations in) + k*n (weights, incl.
    group scales) + m*n (out, at least 16-bit). Efficiency dims: (max(m, 16), n, k).

    Memory-ramp floors (``ramp_rho = sqrt(weight bytes / activation bytes)``): with ``h`` the
    ramp's ``mn_half`` the time ``B (1 + h / (m n))`` has the terms ``h k w / m`` and
    ``h k a / n`` that fall as m or n grows; they are outgrown by ``k a`` and ``k w`` once
    ``m >= sqrt(h w / a)`` and ``n >= sqrt(h a / w)``, the floors of the ramp's dims."""
    peak = hw.peak_flops(compute_dtype(weight, activation, hw.supported_dtypes))
    flops = 2.0 * m * n * k * copies
    read = (m * k * activation.bytes + k * n * weight.bytes_with_scales) * copies
    written = m * n * max(activation.bytes, _OUT_MIN_BYTES) * copies
    rho = (weight.bytes_with_scales / activation.bytes) ** 0.5
    return KernelWork(flops, read, written, peak, _at_least(m, GEMM_TILE_ROWS), n, k, rho)


def gemm(m: float, n: float, k: float, hw: HardwareSpec, prof: HardwareProfile,
         weight: DType = DType.BF16, activation: DType = DType.BF16, name: str = "gemm",
         copies: int = 1) -> OpCost:
    """``[m, k] x [k, n]``: activations times a weight matrix stored in ``weight`` format.

    FLOPs = 2mnk. Bytes = m*k (activations in) + k*n (weights, incl. group scales) + m*n (out).
    ``copies`` batches identical GEMMs (e.g. per-head bmm) into one op.
    """
    work = gemm_work(m, n, k, hw, weight, activation, copies)
    case = (("m", m), ("n", n), ("k", k), ("dtype", weight.value),
            ("act_dtype", activation.value)) if copies == 1 else ()
    family = kernel_family("gemm", compute_dtype(weight, activation, hw.supported_dtypes))
    return _op(name, OpKind.GEMM, work, hw, prof.kernel(family), {"m": m, "n": n, "k": k}, case)


#: a measured MoE table's evenly dealt routing (AIConfigurator's ``distribution`` value)
BALANCED = "balanced"
#: how a batch's tokens pick their experts (``llmsim op --routing``)
ROUTINGS = ("uniform", BALANCED)


def expected_experts_touched(num_experts: float, top_k: float, num_tokens: float,
                             balanced: Any = False):
    """Expected distinct experts hit by ``num_tokens`` tokens routing top-k of E: uniformly
    at random ``E * (1 - (1 - k/E)^tokens)`` (each expert is missed by one token with prob
    1 - k/E; what a served model's routing is priced as); ``balanced`` (a measured kernel
    table's ``balanced`` distribution: the ``tokens x k`` assignments dealt evenly, so
    ``min(E, tokens x k)``; AIConfigurator's H100 balanced MoE times grow linearly in it up to
    the plateau, e.g. top-8 of 128 at 4 / 8 / 16 tokens: 0.23 / 0.42 / 0.82 ms). Works on numpy
    arrays."""
    if np.isscalar(num_experts) and num_experts <= 0:
        return 0.0
    uniform = num_experts * (1.0 - np.power(1.0 - top_k / num_experts, num_tokens))
    if np.isscalar(balanced) and not balanced:
        return uniform
    return np.where(balanced, np.minimum(num_experts, num_tokens * top_k), uniform)


def moe_work(num_tokens, hidden_size, intermediate_size, num_experts, top_k, hw: HardwareSpec,
             ep=1, moe_tp=1, weight: DType = DType.BF16, activation: DType = DType.BF16,
             gated: bool = True, balanced: Any = False) -> tuple[KernelWork, Any]:
    """Grouped expert GEMMs on one EP rank (see :func:`moe_experts`); returns the work and the
    expected experts touched on this rank (``balanced``: routing dealt evenly, as a measured
    table's ``balanced`` rows, :func:`expected_experts_touched`). Efficiency dims: (tokens per
    touched expert, at least a 16-row tile; expert width; hidden)."""
    peak = hw.peak_flops(compute_dtype(weight, activation, hw.supported_dtypes))
    mats = 3 if gated else 2
    width = intermediate_size / moe_tp
    routed = num_tokens * top_k / ep
    touched = expected_experts_touched(num_experts, top_k, num_tokens, balanced) / ep
    flops = 2.0 * routed * hidden_size * width * mats
    weight_bytes = touched * mats * hidden_size * width * weight.bytes_with_scales
    act_bytes = routed * hidden_size * activation.bytes * 2 + routed * width * (mats - 1) * 2.0
    written = routed * hidden_size * max(activation.bytes, _OUT_MIN_BYTES)
    tokens_per_expert = _at_least(routed / _at_least(touched, 1e-9), GEMM_TILE_ROWS)
    # per touched expert a GEMM: bytes per row (no width) h (2a + out), per width column
    # mats h w: the ramp floors of gemm_work with that ratio
    rho = (mats * weight.bytes_with_scales
           / (2 * activation.bytes + max(activation.bytes, _OUT_MIN_BYTES))) ** 0.5
    work = KernelWork(flops, weight_bytes + act_bytes, written, peak, tokens_per_expert, width,
                      hidden_size, rho)
    return work, touched


def moe_experts(num_tokens: float, hidden_size: int, intermediate_size: int, num_experts: int,
                top_k: int, hw: HardwareSpec, prof: HardwareProfile, ep: int = 1,
                moe_tp: int = 1, weight: DType = DType.BF16, activation: DType = DType.BF16,
                gated: bool = True, name: str = "experts", balanced: bool = False) -> OpCost:
    """Grouped expert GEMMs (gate/up and down) on one EP rank, uniformly random routing
    (``balanced``: dealt evenly, :func:`expected_experts_touched`).

    Tokens routed to this rank: ``T*k/ep``; experts it holds: ``E/ep``, of which
    ``expected_experts_touched`` are hit and have their weights read (I/moe_tp wide each).
    FLOPs = 2 * (T*k/ep) * h * I/moe_tp * (3 if gated else 2).
    """
    work, touched = moe_work(num_tokens, hidden_size, intermediate_size, num_experts, top_k, hw,
                             ep, moe_tp, weight, activation, gated, balanced)
    # the case folds moe_tp into the expert width (one rank's experts), as measured tables do
    case = (("num_tokens", num_tokens), ("hidden_size", hidden_size),
            ("intermediate_size", intermediate_size / moe_tp), ("num_experts", num_experts),
            ("top_k", top_k), ("ep", ep), ("dtype", weight.value),
            ("act_dtype", activation.value)) if gated else ()
    family = kernel_family("moe", compute_dtype(weight, activation, hw.supported_dtypes))
    return _op(name, OpKind.MOE, work, hw, prof.kernel(family),
               {"num_tokens": num_tokens, "local_experts": num_experts / ep,
                "touched": float(touched),
                "tokens_per_expert": num_tokens * top_k / ep / max(float(touched), 1e-9)}, case)


def attention_prefill_work(num_seqs, new_tokens, attn_pairs, ctx_tokens, num_heads,
                           kv_bytes_per_token, qk_dim, v_dim, hw: HardwareSpec,
                           activation: DType = DType.BF16) -> KernelWork:
    """See :func:`attention_prefill`. Efficiency dims: (query tokens per sequence, keys per
    sequence, qk_dim)."""
    peak = hw.peak_flops(_attn_dtype(activation, hw))
    flops = 2.0 * attn_pairs * num_heads * (qk_dim + v_dim)
    read = new_tokens * num_heads * qk_dim * activation.bytes + ctx_tokens * kv_bytes_per_token
    written = new_tokens * num_heads * v_dim * activation.bytes + new_tokens * kv_bytes_per_token
    seqs = _at_least(num_seqs, 1e-9)
    # bytes grow as the tokens (m n = tokens^2 per sequence): square floors (rho 1); FLOPs as
    # the causal pairs
    return KernelWork(flops, read, written, peak, new_tokens / seqs, ctx_tokens / seqs, qk_dim,
                      1.0, 1.0, True)


def attention_prefill(num_seqs: float, new_tokens: float, attn_pairs: float, ctx_tokens: float,
                      num_heads: float, kv_bytes_per_token: float, qk_dim: int, v_dim: int,
                      hw: HardwareSpec, prof: HardwareProfile, activation: DType = DType.BF16,
                      name: str = "attention") -> OpCost:
    """Causal attention over prompt chunks (FlashAttention-style: scores stay on chip).

    ``attn_pairs`` = sum over sequences of causal (query, key) pairs; ``ctx_tokens`` = keys each
    chunk reads (cached past + its own). FLOPs = 2 * pairs * heads * (qk_dim + v_dim).
    Bytes = Q in + O out + K/V read for ``ctx_tokens`` + K/V written for ``new_tokens``.
    ``kv_bytes_per_token`` is this device's KV bytes per token for one layer.
    """
    work = attention_prefill_work(num_seqs, new_tokens, attn_pairs, ctx_tokens, num_heads,
                                  kv_bytes_per_token, qk_dim, v_dim, hw, activation)
    return _op(name, OpKind.ATTENTION_PREFILL, work, hw, prof.kernel("attention_prefill"),
               {"num_seqs": num_seqs, "new_tokens": new_tokens, "ctx_tokens": ctx_tokens,
                "num_heads": num_heads})


def attention_decode_work(num_seqs, ctx_tokens, num_heads, kv_bytes_per_token, qk_dim, v_dim,
                          hw: HardwareSpec, activation: DType = DType.BF16) -> KernelWork:
    """See :func:`attention_decode`. Efficiency dims: (query rows = sequences x heads, keys per
    sequence, qk_dim): the rows are the kernel's parallel work, the keys its serial loop."""
    peak = hw.peak_flops(_attn_dtype(activation, hw))
    flops = 2.0 * ctx_tokens * num_heads * (qk_dim + v_dim)
    read = ctx_tokens * kv_bytes_per_token + num_seqs * num_heads * qk_dim * activation.bytes
    written = num_seqs * num_heads * v_dim * activation.bytes
    seqs = _at_least(num_seqs, 1e-9)
    # ramp floors: B = b c kv + b H q (q = Q+O bytes per head); h B / (b H c) falls in H and c
    # until H >= sqrt(h kv / q) and c >= sqrt(h q / kv), in units of sequences for the rows
    rho = (kv_bytes_per_token / ((qk_dim + v_dim) * activation.bytes)) ** 0.5
    return KernelWork(flops, read, written, peak, seqs * num_heads, ctx_tokens / seqs, qk_dim,
                      rho, seqs)


def attention_decode(num_seqs: float, ctx_tokens: float, num_heads: float,
                     kv_bytes_per_token: float, qk_dim: int, v_dim: int, hw: HardwareSpec,
                     prof: HardwareProfile, activation: DType = DType.BF16,
                     name: str = "attention") -> OpCost:
    """One query token per sequence against its cached context (paged KV reads).

    FLOPs = 2 * ctx_tokens * heads * (qk_dim + v_dim); bytes = the cached K/V of every context
    token (``kv_bytes_per_token`` per token on this device) + Q in and O out. Memory-bound except
    for MLA with many heads sharing one latent.
    """
    if num_seqs <= 0:
        return OpCost(name, OpKind.ATTENTION_DECODE, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                      Bound.OVERHEAD)
    work = attention_decode_work(num_seqs, ctx_tokens, num_heads, kv_bytes_per_token, qk_dim,
                                 v_dim, hw, activation)
    return _op(name, OpKind.ATTENTION_DECODE, work, hw, prof.kernel("attention_decode"),
               {"num_seqs": num_seqs, "ctx_tokens": ctx_tokens, "num_heads": num_heads})


def attention_decode_time(num_seqs, ctx_tokens, num_heads: float, kv_bytes_per_token: float,
                          qk_dim: int, v_dim: int, hw: HardwareSpec, prof: HardwareProfile,
                          activation: DType = DType.BF16):
    """Vectorisable core of :func:`attention_decode`: ``(time, compute, memory, overhead)``."""
    work = attention_decode_work(num_seqs, ctx_tokens, num_heads, kv_bytes_per_token, qk_dim,
                                 v_dim, hw, activation)
    return work_time(work, hw, prof.kernel("attention_decode"))


def elementwise_work(bytes_read, bytes_written, hw: HardwareSpec, flops=0.0) -> KernelWork:
    """A memory-bound kernel: no GEMM-like dims (0: every shape factor is skipped)."""
    return KernelWork(flops, bytes_read, bytes_written, hw.peak_flops(_vector_dtype(hw)),
                      0.0, 0.0, 0.0)


def elementwise(name: str, bytes_read: float, bytes_written: float, hw: HardwareSpec,
                prof: HardwareProfile, flops: float = 0.0,
                kind: OpKind = OpKind.ELEMENTWISE) -> OpCost:
    """A memory-bound pointwise / reduction kernel (norm, activation, RoPE, residual add)."""
    work = elementwise_work(bytes_read, bytes_written, hw, flops)
    return _op(name, kind, work, hw, prof.kernel("elementwise"),
               {"bytes": bytes_read + bytes_written},
               (("bytes_read", bytes_read), ("bytes_written", bytes_written)))


def _attn_dtype(activation: DType, hw: HardwareSpec) -> DType:
    """Attention math runs in the activation format (fp8 only where the part has fp8)."""
    if activation in hw.supported_dtypes and activation.bits >= 8 and activation.is_float:
        return activation
    for dt in (DType.BF16, DType.FP16, DType.FP32):
        if dt in hw.supported_dtypes:
            return dt
    return next(iter(hw.supported_dtypes))


def _vector_dtype(hw: HardwareSpec) -> DType:
    for dt in (DType.FP32, DType.BF16, DType.FP16):
        if dt in hw.supported_dtypes:
            return dt
    return next(iter(hw.supported_dtypes))
