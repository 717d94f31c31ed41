"""The decoder's building blocks as plain functions of tensors (PyTorch).

Kept as functions so that ``measure.py`` can time each one alone at a tiny shape (its fixed
cost) and the executor runs exactly the code that was measured. Shapes: ``x`` is
``[tokens, hidden]`` (batch 1).

- :func:`rms_norm`: ``x / sqrt(mean(x^2) + eps) * w`` in fp32, cast back (Zhang & Sennrich 2019).
- :func:`rope`: rotary embedding, rotate-half form (Su et al. 2021; the Llama convention).
- :func:`attention`: GQA projections, RoPE, KV-cache write, ``scaled_dot_product_attention``
  (causal for a prefill from position 0; explicit mask for a chunk after cached tokens).
- :func:`route`: router logits in fp32, top-k, softmax over the k (Mixtral convention), or the
  given expert ids with their router weights.
- :func:`expert_ffn`: one SwiGLU expert ``down(silu(gate(x)) * up(x))``, gate/up fused.
"""

from __future__ import annotations

from typing import Any

from llmsim.expert_cache_executor._torch import require_torch

torch = require_torch()
F = torch.nn.functional


def rms_norm(x: Any, weight: Any, eps: float) -> Any:
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return xf.to(x.dtype) * weight


def rope_tables(head_dim: int, max_positions: int, theta: float, device: Any,
                dtype: Any) -> tuple[Any, Any]:
    """cos/sin tables ``[max_positions, head_dim]`` (frequencies ``theta^(-2i/d)``)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    pos = torch.arange(max_positions, dtype=torch.float64)
    ang = torch.outer(pos, inv)
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(device=device, dtype=dtype), ang.sin().to(device=device, dtype=dtype)


def _rotate_half(x: Any) -> Any:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rope(q: Any, k: Any, cos: Any, sin: Any) -> tuple[Any, Any]:
    """Rotate ``q [T, H, D]`` and ``k [T, Hkv, D]`` by the positions' ``cos/sin [T, D]``."""
    c, s = cos[:, None, :], sin[:, None, :]
    return q * c + _rotate_half(q) * s, k * c + _rotate_half(k) * s


def attention(x: Any, wq: Any, wkv: Any, wo: Any, k_cache: Any, v_cache: Any, pos0: int,
              cos: Any, sin: Any, num_heads: int, num_kv_heads: int, head_dim: int) -> Any:
    """Self-attention of ``T`` new tokens at positions ``pos0..pos0+T-1`` (normed input ``x``).

    Writes their K/V into ``k_cache``/``v_cache`` (``[max_len, Hkv, D]``) and attends over the
    ``pos0 + T`` cached positions. Returns the output projection ``[T, hidden]``.
    """
    t = x.shape[0]
    q = F.linear(x, wq).view(t, num_heads, head_dim)
    kv = F.linear(x, wkv).view(t, 2, num_kv_heads, head_dim)
    out = _attend(q, kv, k_cache, v_cache, pos0, cos, sin, num_heads, num_kv_heads, head_dim)
    return F.linear(out, wo)


def attention_batched(x: Any, wq: Any, wkv: Any, wo: Any, k_caches: list[Any],
                      v_caches: list[Any], pos0: int, cos: Any, sin: Any, num_heads: int,
                      num_kv_heads: int, head_dim: int, t: int) -> Any:
    """:func:`attention` of ``B`` sequences of ``t`` new tokens each (rows sequence-major, all
    at positions ``pos0..pos0+t-1``): the Q/KV and output projections over all ``B t`` rows at
    once (one GEMM each, as serving engines batch them), the rotary embedding, the KV write
    and the attention per sequence over its own cache (``k_caches[b]``)."""
    n = x.shape[0]
    q = F.linear(x, wq).view(n, num_heads, head_dim)
    kv = F.linear(x, wkv).view(n, 2, num_kv_heads, head_dim)
    outs = [_attend(q[b * t:(b + 1) * t], kv[b * t:(b + 1) * t], k_caches[b], v_caches[b],
                    pos0, cos, sin, num_heads, num_kv_heads, head_dim)
            for b in range(n // t)]
    return F.linear(torch.cat(outs), wo)


def _attend(q: Any, kv: Any, k_cache: Any, v_cache: Any, pos0: int, cos: Any, sin: Any,
            num_heads: int, num_kv_heads: int, head_dim: int) -> Any:
    """RoPE, the KV write and scaled dot-product attention of one sequence's ``t`` new
    tokens (``q [t, H, D]``, ``kv [t, 2, Hkv, D]``); returns ``[t, H D]``."""
    t = q.shape[0]
    q, k = rope(q, kv[:, 0], cos[pos0:pos0 + t], sin[pos0:pos0 + t])
    end = pos0 + t
    k_cache[pos0:end] = k
    v_cache[pos0:end] = kv[:, 1]
    qh = q.transpose(0, 1).unsqueeze(0)
    kh = k_cache[:end].transpose(0, 1).unsqueeze(0)
    vh = v_cache[:end].transpose(0, 1).unsqueeze(0)
    gqa = num_heads != num_kv_heads
    if t == 1:
        out = F.scaled_dot_product_attention(qh, kh, vh, enable_gqa=gqa)
    elif pos0 == 0:
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, enable_gqa=gqa)
    else:
        rows = torch.arange(pos0, end, device=q.device)[:, None]
        cols = torch.arange(end, device=q.device)[None, :]
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=cols <= rows, enable_gqa=gqa)
    return out.squeeze(0).transpose(0, 1).reshape(t, num_heads * head_dim)


def route(x: Any, router: Any, top_k: int, forced_ids: Any = None) -> tuple[Any, Any]:
    """Expert ids ``[T, k]`` and their combine weights (softmax over the k chosen logits).

    ``forced_ids``: replay these ids instead of the router's top-k (weights still from the
    router's logits at those experts).
    """
    logits = F.linear(x, router).float()
    if forced_ids is None:
        vals, ids = logits.topk(top_k, dim=-1)
    else:
        ids = forced_ids
        vals = logits.gather(-1, ids)
    return ids, torch.softmax(vals, dim=-1).to(x.dtype)


def expert_ffn(x: Any, w13: Any, w2: Any) -> Any:
    """SwiGLU expert: ``w13 [2I, h]`` (gate rows then up rows), ``w2 [h, I]``."""
    gate, up = F.linear(x, w13).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, w2)


def expert_into(hn: Any, ybuf: Any, rows: Any, k: int, w13: Any, w2: Any) -> None:
    """Run one expert on its routed assignments: ``rows`` index the flat ``[T k]`` assignment
    list (token ``row // k``); outputs land in ``ybuf[rows]``."""
    ybuf.index_copy_(0, rows, expert_ffn(hn.index_select(0, rows // k), w13, w2))


def combine(ybuf: Any, weights: Any, residual: Any) -> Any:
    """``residual + sum_k weights[t, k] * y[t, k]`` (fixed order: placement-independent)."""
    t, k = weights.shape
    return residual + (ybuf.view(t, k, -1) * weights.unsqueeze(-1)).sum(1)
