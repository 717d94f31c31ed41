"""How FlexGen's runtime moves and computes, where that differs from a fused-kernel engine.

The offload model prices FlexGen's schedule (``costmodel.py``); this module holds the structure
of its PyTorch implementation that the schedule alone does not give: how many memory passes a
(de)quantisation takes, the extra copies of its unfused attention, the bytes its CPU attention
moves in fp32, and which host buffers are pinned. Every number is derived from the code of
FMInference/FlexLLMGen at commit 004ffef8 (the commit whose published throughput
``benchmarks/offload_accuracy.py`` compares with; Apache-2.0; read, not copied), file by file:

``flexllmgen/compression.py`` -- ``TorchCompressedDevice`` (4-bit, groups of 64, asymmetric)

- ``decompress`` of ``n`` values into a buffer of ``o`` bytes per value (fp16 on the GPU, the fp32
  workspace on the CPU) runs six passes: ``packed >> 4`` and ``packed & 0xF`` (read ``n/2`` bytes,
  write ``n/2`` uint8 each), two strided stores of those halves into the output (read ``n/2``,
  write ``n/2 x o`` each), then ``div_(scale)`` and ``add_(mn)`` over the whole output (read and
  write ``n x o`` each, plus the group scales): ``13 n`` bytes for fp16 output, where a fused
  kernel would move ``0.5625 n + 2 n``.
- ``compress`` of ``n`` fp16 values: group ``min`` and ``max`` (read ``2n`` each), ``B/(mx - mn)``
  (per group), ``data - mn``, ``mul_``, ``clamp_``, ``round_`` (read and write ``2n`` each),
  ``.to(uint8)`` (read ``2n``, write ``n``), the 4-bit packing ``left << 4`` and ``| right``
  (``n/2`` each way, then ``n`` read and ``n/2`` written), ``cat(scale, mn)`` (per group):
  ``25.5 n`` bytes in twelve kernels.
- Compressed weights are decompressed inside every GPU batch's ``mha``/``mlp`` call; a compressed
  cache is decompressed whole (all ``s + n - 1`` allocated positions) in every decode step.

``flexllmgen/pytorch_backend.py`` -- ``TorchDevice.mha`` / ``mha_gen``

- Prefill attention materialises the scores: ``bmm`` writes ``(b x heads, s, s)`` in fp16,
  ``torch.where`` (causal mask) reads and writes them, ``softmax`` reads and writes them, the
  second ``bmm`` reads them: 3 reads + 3 writes of the scores beyond a fused kernel, and Q, K, V
  are made contiguous by ``permute(...).reshape(...)`` (one read + one write each).
- Decode attention on the GPU makes the cache contiguous the same way
  (``k.permute(1, 2, 0).reshape(...)``, ``v.permute(1, 0, 2).reshape(...)``): one more read and
  write of every K and V value in use, before the two ``bmm``.
- Decode attention on the CPU (``cpu_cache_compute``): ``load_cache`` copies the fp16 cache into
  an fp32 workspace (``init_attention_compute_workspace``: "Only CPU requires this fp32
  workspace"; read 2, write 4 bytes per value), the same permute/reshape copies it (read 4,
  write 4) and ``bmm`` reads it (4): 18 bytes per fp16 cache value, in fp32 arithmetic; the
  scores (fp32) are written by ``bmm``, read and written by ``where`` and ``softmax`` and read by
  the second ``bmm``.
- Host buffers: the KV cache on the CPU is allocated with ``pin_memory=False`` ("disable
  pin_memory due to high memory overhead"); weights are pinned unless ``--pin-weight 0`` (the
  OPT-175B benchmark runs); activations and 1-D weights are pinned. ``general_copy`` stages a
  pageable source through ``tensor.pin_memory()`` and a pageable destination through a pinned
  relay buffer (copy threads); disk data goes through a pinned relay too.

The efficiencies of these passes and copies (``pageable_eff``, ``cpu_memory_eff``, ...) are rates,
not structure: they live in the calibration profile.

Two runtimes (``--runtime``): ``flexgen`` (the above; the default, since the schedule is
FlexGen's) and ``fused``: an engine with fused attention and (de)quantisation kernels, a pinned
CPU cache and CPU attention reading the cache as stored -- the core cost model's ops as they are,
so an all-on-GPU policy prices exactly like ``llmsim estimate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.errors import UnknownNameError
from llmsim.placement.policy import GroupQuantization

# Bytes per value of the fp32 workspace FlexGen's CPU attention computes in.
CPU_ATTENTION_BYTES = 4.0


@dataclass(frozen=True)
class Pass:
    """One elementwise kernel over ``n`` values: bytes read and written per value."""

    name: str
    read_per_value: float
    write_per_value: float


def dequantize_passes(q: GroupQuantization, out_bytes: float) -> tuple[Pass, ...]:
    """FlexGen's ``decompress`` of 4-bit group-packed values into ``out_bytes``-byte values."""
    packed = q.bits / 8.0  # two 4-bit codes per byte
    half = 0.5
    scales = q.scale_bytes_per_group / q.group_size / 2.0  # one of (scale, min) per pass
    return (
        Pass("unpack_high", packed, packed),
        Pass("store_high", packed, half * out_bytes),
        Pass("unpack_low", packed, packed),
        Pass("store_low", packed, half * out_bytes),
        Pass("div_scale", out_bytes + scales, out_bytes),
        Pass("add_min", out_bytes + scales, out_bytes),
    )


def quantize_passes(q: GroupQuantization, in_bytes: float = 2.0) -> tuple[Pass, ...]:
    """FlexGen's ``compress`` of ``in_bytes``-byte values into 4-bit groups."""
    g = 1.0 / q.group_size  # per-group tensors relative to the values
    packed = q.bits / 8.0
    return (
        Pass("group_min", in_bytes, in_bytes * g),
        Pass("group_max", in_bytes, in_bytes * g),
        Pass("range", 2.0 * in_bytes * g, in_bytes * g),
        Pass("scale", in_bytes * g, in_bytes * g),
        Pass("sub_min", in_bytes + in_bytes * g, in_bytes),
        Pass("mul_scale", in_bytes + in_bytes * g, in_bytes),
        Pass("clamp", in_bytes, in_bytes),
        Pass("round", in_bytes, in_bytes),
        Pass("to_uint8", in_bytes, 1.0),
        Pass("shift_high", 0.5, 0.5),
        Pass("pack", 1.0, packed),
        Pass("cat_scales", 2.0 * in_bytes * g, 2.0 * in_bytes * g),
    )


def pass_bytes(passes: tuple[Pass, ...]) -> float:
    """Total bytes per value of a pass list (read + written)."""
    return sum(p.read_per_value + p.write_per_value for p in passes)


def fused_dequantize_passes(q: GroupQuantization, out_bytes: float) -> tuple[Pass, ...]:
    """One fused kernel: read the 4-bit groups and their scales, write ``out_bytes`` values."""
    return (Pass("dequantize", q.bytes_per_element, out_bytes),)


def fused_quantize_passes(q: GroupQuantization, in_bytes: float = 2.0) -> tuple[Pass, ...]:
    """One fused kernel: read ``in_bytes`` values, write the 4-bit groups and their scales."""
    return (Pass("quantize", in_bytes, q.bytes_per_element),)


def cpu_attention_bytes_per_kv_value(kv_bytes: float, compressed: GroupQuantization | None
                                     ) -> float:
    """Bytes FlexGen's CPU attention moves per cache value in use: into the fp32 workspace
    (a dtype-converting copy, or decompression into it), the permute/reshape copy, the bmm."""
    w = CPU_ATTENTION_BYTES
    into_workspace = (pass_bytes(dequantize_passes(compressed, w)) if compressed is not None
                      else kv_bytes + w)
    return into_workspace + 2.0 * w + w


def attention_scores_passes(score_bytes: float) -> Pass:
    """Materialised attention scores beyond a fused kernel, per score: written by ``bmm``, read
    and written by ``where`` and by ``softmax``, read by the second ``bmm``."""
    return Pass("scores", 3.0 * score_bytes, 3.0 * score_bytes)


@dataclass(frozen=True)
class Runtime:
    """The implementation details the offload cost model prices (see the module docstring).

    ``unfused_attention``: materialised prefill scores and contiguous copies of Q/K/V and of the
    decode cache (FlexGen) -- else the core model's fused attention ops as they are;
    ``passwise_quantization``: FlexGen's six/twelve (de)quantisation passes -- else one fused
    pass; ``whole_cache_decompress``: a compressed cache is decompressed over all allocated
    positions each step -- else over the context in use; ``fp32_cpu_attention``: CPU attention
    copies the cache into an fp32 workspace -- else reads it as stored; ``pageable_cache``: the
    CPU cache is pageable (staged before each copy to the GPU) -- else pinned.

    ``whole_tensor_placement``: each weight tensor lives whole on one tier, chosen by where its
    midpoint falls in its layer's cumulative size (FlexLLMGen ``init_weight_list`` with
    ``get_choice``: the disk, CPU, GPU percentages in that order) -- else the fractions split
    every tensor; ``compress_tables``: ``--compress-weight`` also compresses the 2-D embedding
    and head tables (every 2-D weight; 1-D ones stay 16-bit) -- else they stay 16-bit;
    ``prefill_score_copies``: prefill score matrices resident at once (``torch.where`` and
    ``softmax`` each allocate a new one while the old is alive: 2).
    """

    name: str
    unfused_attention: bool
    passwise_quantization: bool
    whole_cache_decompress: bool
    fp32_cpu_attention: bool
    pageable_cache: bool
    whole_tensor_placement: bool = False
    compress_tables: bool = False
    prefill_score_copies: int = 1

    def dequantize_passes(self, q: GroupQuantization, out_bytes: float) -> tuple[Pass, ...]:
        return (dequantize_passes(q, out_bytes) if self.passwise_quantization
                else fused_dequantize_passes(q, out_bytes))

    def quantize_passes(self, q: GroupQuantization, in_bytes: float = 2.0) -> tuple[Pass, ...]:
        return (quantize_passes(q, in_bytes) if self.passwise_quantization
                else fused_quantize_passes(q, in_bytes))


FLEXGEN = Runtime("flexgen", unfused_attention=True, passwise_quantization=True,
                  whole_cache_decompress=True, fp32_cpu_attention=True, pageable_cache=True,
                  whole_tensor_placement=True, compress_tables=True, prefill_score_copies=2)
FUSED = Runtime("fused", unfused_attention=False, passwise_quantization=False,
                whole_cache_decompress=False, fp32_cpu_attention=False, pageable_cache=False)
RUNTIMES = {r.name: r for r in (FLEXGEN, FUSED)}


def get_runtime(runtime: str | Runtime) -> Runtime:
    """A runtime by name (``flexgen``, ``fused``) or as given."""
    if isinstance(runtime, Runtime):
        return runtime
    try:
        return RUNTIMES[str(runtime).strip().lower()]
    except KeyError:
        raise UnknownNameError("offload runtime", str(runtime), RUNTIMES) from None
