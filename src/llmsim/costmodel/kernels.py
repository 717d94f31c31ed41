"""Compute kernels: GEMM, grouped expert GEMM, attention (prefill/decode, MHA/GQA/MQA/MLA),
elementwise ops, embedding and sampling. Pure functions of shapes, hardware and profile.

Every time comes from :func:`kernel_time` (one roofline formula, see ``profile.py``); every
FLOP count is ``2 x multiply-accumulates``.
"""

from __future__ import annotations

import numpy as np

from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel.ops import Bound, OpCost, OpKind, kernel_bound
from llmsim.costmodel.profile import HardwareProfile, ResolvedKernel
from llmsim.dtypes import DType, compute_dtype

# Output activations of 8-bit GEMMs are written in 16-bit (the usual fp8/int8 kernel epilogue).
_OUT_MIN_BYTES = 2.0


def kernel_time(flops, nbytes, peak_flops_per_s: float, bandwidth_bytes_per_s: float,
                eff: ResolvedKernel, m=0.0, n=0.0, k=0.0):
    """Roofline time of one kernel: ``launch + max(F / (P * eta_c(m,n,k)), B / (W * eta_m))``.

    Returns ``(time_s, compute_s, memory_s, overhead_s)``; accepts floats or numpy arrays.
    """
    compute_s = flops / (peak_flops_per_s * eff.compute_efficiency(m, n, k))
    memory_s = nbytes / (bandwidth_bytes_per_s * eff.memory_eff)
    overhead_s = eff.launch_s
    return overhead_s + np.maximum(compute_s, memory_s), compute_s, memory_s, overhead_s


def _op(name: str, kind: OpKind, flops: float, bytes_read: float, bytes_written: float,
        peak: float, hw: HardwareSpec, eff: ResolvedKernel, m: float, n: float, k: float,
        shape: dict[str, float]) -> OpCost:
    if flops <= 0 and bytes_read + bytes_written <= 0:
        return OpCost(name, kind, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, Bound.OVERHEAD,
                      shape=shape)
    t, c, mem, o = kernel_time(flops, bytes_read + bytes_written, peak,
                               hw.memory_bandwidth_bytes_per_s, eff, m, n, k)
    return OpCost(name, kind, float(flops), float(bytes_read), float(bytes_written), float(c),
                  float(mem), 0.0, float(o), float(t), kernel_bound(c, mem, o), shape=shape)


def gemm(m: float, n: float, k: float, hw: HardwareSpec, prof: HardwareProfile,
         weight: DType = DType.BF16, activation: DType = DType.BF16, name: str = "gemm",
         copies: int = 1) -> OpCost:
    """``[m, k] x [k, n]``: activations times a weight matrix stored in ``weight`` format.

    FLOPs = 2mnk. Bytes = m*k (activations in) + k*n (weights, incl. group scales) + m*n (out).
    ``copies`` batches identical GEMMs (e.g. per-head bmm) into one op.
    """
    cdt = compute_dtype(weight, activation, hw.supported_dtypes)
    peak = hw.peak_flops(cdt)
    flops = 2.0 * m * n * k * copies
    read = (m * k * activation.bytes + k * n * weight.bytes_with_scales) * copies
    written = m * n * max(activation.bytes, _OUT_MIN_BYTES) * copies
    return _op(name, OpKind.GEMM, flops, read, written, peak, hw, prof.kernel("gemm"), m, n, k,
               {"m": m, "n": n, "k": k})


def expected_experts_touched(num_experts: float, top_k: float, num_tokens: float):
    """Expected distinct experts hit by ``num_tokens`` tokens routing top-k of E uniformly:
    ``E * (1 - (1 - k/E)^tokens)`` (each expert is missed by one token with prob 1 - k/E).
    Works on numpy arrays."""
    if num_experts <= 0:
        return 0.0
    return num_experts * (1.0 - np.power(1.0 - top_k / num_experts, num_tokens))


def moe_experts(num_tokens: float, hidden_size: int, intermediate_size: int, num_experts: int,
                top_k: int, hw: HardwareSpec, prof: HardwareProfile, ep: int = 1,
                moe_tp: int = 1, weight: DType = DType.BF16, activation: DType = DType.BF16,
                gated: bool = True, name: str = "experts") -> OpCost:
    """Grouped expert GEMMs (gate/up and down) on one EP rank, balanced routing.

    Tokens routed to this rank: ``T*k/ep``; experts it holds: ``E/ep``, of which
    ``expected_experts_touched`` are hit and have their weights read (I/moe_tp wide each).
    FLOPs = 2 * (T*k/ep) * h * I/moe_tp * (3 if gated else 2).
    """
    cdt = compute_dtype(weight, activation, hw.supported_dtypes)
    peak = hw.peak_flops(cdt)
    mats = 3 if gated else 2
    width = intermediate_size / moe_tp
    local_experts = num_experts / ep
    routed = num_tokens * top_k / ep
    touched = float(expected_experts_touched(num_experts, top_k, num_tokens)) / ep
    flops = 2.0 * routed * hidden_size * width * mats
    weight_bytes = touched * mats * hidden_size * width * weight.bytes_with_scales
    act_bytes = routed * hidden_size * activation.bytes * 2 + routed * width * (mats - 1) * 2.0
    written = routed * hidden_size * max(activation.bytes, _OUT_MIN_BYTES)
    tokens_per_expert = routed / max(touched, 1e-9)
    return _op(name, OpKind.MOE, flops, weight_bytes + act_bytes, written, peak, hw,
               prof.kernel("moe"), tokens_per_expert, width, hidden_size,
               {"num_tokens": num_tokens, "local_experts": local_experts, "touched": touched,
                "tokens_per_expert": tokens_per_expert})


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
    peak = hw.peak_flops(_attn_dtype(activation, hw))
    flops = 2.0 * attn_pairs * num_heads * (qk_dim + v_dim)
    read = new_tokens * num_heads * qk_dim * activation.bytes + ctx_tokens * kv_bytes_per_token
    written = new_tokens * num_heads * v_dim * activation.bytes + new_tokens * kv_bytes_per_token
    seqs = max(num_seqs, 1e-9)
    q_len = new_tokens / seqs
    kv_len = ctx_tokens / seqs
    return _op(name, OpKind.ATTENTION_PREFILL, flops, read, written, peak, hw,
               prof.kernel("attention_prefill"), q_len, kv_len, qk_dim,
               {"num_seqs": num_seqs, "new_tokens": new_tokens, "ctx_tokens": ctx_tokens,
                "num_heads": num_heads})


def attention_decode(num_seqs: float, ctx_tokens: float, num_heads: float,
                     kv_bytes_per_token: float, qk_dim: int, v_dim: int, hw: HardwareSpec,
                     prof: HardwareProfile, activation: DType = DType.BF16,
                     name: str = "attention") -> OpCost:
    """One query token per sequence against its cached context (paged KV reads).

    FLOPs = 2 * ctx_tokens * heads * (qk_dim + v_dim); bytes = the cached K/V of every context
    token (``kv_bytes_per_token`` per token on this device) + Q in and O out. Memory-bound except
    for MLA with many heads sharing one latent.
    """
    t, c, mem, o = attention_decode_time(num_seqs, ctx_tokens, num_heads, kv_bytes_per_token,
                                         qk_dim, v_dim, hw, prof, activation)
    flops = 2.0 * ctx_tokens * num_heads * (qk_dim + v_dim)
    read = ctx_tokens * kv_bytes_per_token + num_seqs * num_heads * qk_dim * activation.bytes
    written = num_seqs * num_heads * v_dim * activation.bytes
    if num_seqs <= 0:
        return OpCost(name, OpKind.ATTENTION_DECODE, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                      Bound.OVERHEAD)
    return OpCost(name, OpKind.ATTENTION_DECODE, flops, read, written, float(c), float(mem), 0.0,
                  float(o), float(t), kernel_bound(float(c), float(mem), float(o)),
                  shape={"num_seqs": num_seqs, "ctx_tokens": ctx_tokens, "num_heads": num_heads})


def attention_decode_time(num_seqs, ctx_tokens, num_heads: float, kv_bytes_per_token: float,
                          qk_dim: int, v_dim: int, hw: HardwareSpec, prof: HardwareProfile,
                          activation: DType = DType.BF16):
    """Vectorisable core of :func:`attention_decode`: ``(time, compute, memory, overhead)``."""
    peak = hw.peak_flops(_attn_dtype(activation, hw))
    flops = 2.0 * ctx_tokens * num_heads * (qk_dim + v_dim)
    nbytes = (ctx_tokens * kv_bytes_per_token
              + num_seqs * num_heads * (qk_dim + v_dim) * activation.bytes)
    seqs = np.maximum(num_seqs, 1e-9)
    return kernel_time(flops, nbytes, peak, hw.memory_bandwidth_bytes_per_s,
                       prof.kernel("attention_decode"), seqs, ctx_tokens / seqs, qk_dim)


def elementwise(name: str, bytes_read: float, bytes_written: float, hw: HardwareSpec,
                prof: HardwareProfile, flops: float = 0.0,
                kind: OpKind = OpKind.ELEMENTWISE) -> OpCost:
    """A memory-bound pointwise / reduction kernel (norm, activation, RoPE, residual add)."""
    peak = hw.peak_flops(_vector_dtype(hw))
    return _op(name, kind, flops, bytes_read, bytes_written, peak, hw, prof.kernel("elementwise"),
               0.0, 0.0, 0.0, {"bytes": bytes_read + bytes_written})


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
