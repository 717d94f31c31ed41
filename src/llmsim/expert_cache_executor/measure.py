"""Measure this machine into a hardware spec, a host spec and a calibration profile.

What is measured (best of repeated timings, see :func:`_time`; CUDA timings synchronise first).
These are micro-benchmarks of kernels and of the executor's building blocks at shapes of their
own -- never the executor run being predicted:

- ``matmul_flops_per_s``: a large square matmul in the run's dtype (and fp32): the compute
  peak, at compute efficiency 1.0.
- ``memory_bandwidth_bytes_per_s``: weight streaming, a matrix-vector product over a matrix far
  larger than the last-level cache (what decode does). ``copy_bandwidth`` (STREAM-copy style,
  read + write bytes) is reported too.
- shape efficiency: ``F.linear`` at the model's attention weight shapes, and the executor's
  expert call (gather, gate/up, SwiGLU, down, scatter) at its expert shape, each timed over
  token counts ``m = 1 .. prompt`` with weights not in cache; per family (gemm, moe) the
  compute efficiency ``c <= 1``, its saturation ``m_half`` (``eta = c m / (m + m_half)``) and
  the weight-streaming efficiency ``memory_eff`` are fitted (least squares on log time).
- attention: causal ``scaled_dot_product_attention`` at two prompt lengths gives the prefill
  attention's compute efficiency.
- the host CPU that runs CPU experts: its matmul peak and the expert fit's ``m_half`` and
  effective weight-streaming bandwidth (``GEMV x memory_eff``) feed the CPU roofline. On a CPU-only
  machine that CPU is the "device" and the same numbers serve both.
- host<->device: pinned ``copy_`` H2D / D2H bandwidth on a GPU; on a CPU-only machine the
  "device" pool is other host memory and the bandwidth is that of copying one expert from the
  host pool into the device pool (neither in cache). The link latency is the fixed cost of one
  (tiny) expert load through the executor's store.
- fixed costs ("launch" overheads per op family) of the executor's own building blocks timed
  alone at tiny shapes: one ``F.linear`` (gemm), RMSNorm / RoPE / residual add and the MoE
  routing + combine (elementwise), the attention core in prefill and decode, one expert call
  (moe), one host expert call (CPU experts); then a tiny 1- and 2-layer executor step gives the
  per-layer and per-step remainder (Python bookkeeping), folded into the elementwise fixed cost
  and the profile's ``step_overhead_s``.

On a CPU-only machine the accelerator spec *is* the CPU (peaks as measured) and the platform
has no copy engine and no concurrent host compute (see ``Platform``).
"""

from __future__ import annotations

import logging
import os
import platform as _platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from llmsim.catalog import HardwareSpec, HostSpec, LinkSpec
from llmsim.costmodel import BatchShape, Precision
from llmsim.costmodel.profile import (
    KernelEfficiency,
    Profile,
    ProfileEntry,
    ProfileFile,
)
from llmsim.dtypes import DType
from llmsim.expert_cache.config import MoEModelConfig, OffloadConfig
from llmsim.expert_cache.costs import OffloadCosts, Platform
from llmsim.expert_cache_executor._torch import dtype_name, require_torch

torch = require_torch()
F = torch.nn.functional
log = logging.getLogger(__name__)

# Elementwise-family ops per MoE layer in the simulation's pricing: attn_norm, rope, moe_norm
# (core cost model) + routing + combine (expert_cache.costs).
_ELEMENTWISE_PER_LAYER = 5


@dataclass(frozen=True)
class MachineMeasurement:
    """Measured peaks and fixed costs of one machine for one device and dtype (SI units)."""

    device: str
    device_name: str
    dtype: str
    matmul_flops_per_s: float
    fp32_matmul_flops_per_s: float
    gemm_compute_eff: float
    gemm_m_half: float
    gemm_memory_eff: float
    expert_compute_eff: float
    expert_m_half: float
    expert_memory_eff: float
    attention_compute_eff: float
    memory_bandwidth_bytes_per_s: float
    copy_bandwidth_bytes_per_s: float
    h2d_bandwidth_bytes_per_s: float
    d2h_bandwidth_bytes_per_s: float
    link_latency_s: float
    host_matmul_flops_per_s: float
    host_memory_bandwidth_bytes_per_s: float
    host_m_half: float
    memory_bytes: float
    host_memory_bytes: float
    launch_s: dict[str, float]
    cpu_expert_overhead_s: float
    step_overhead_s: float
    threads: int
    details: dict[str, float] = field(default_factory=dict)

    @property
    def is_cpu(self) -> bool:
        return self.device == "cpu"

    def hardware_spec(self) -> HardwareSpec:
        """The accelerator as measured (the CPU itself on a CPU-only machine)."""
        peaks = {DType.parse(self.dtype): self.matmul_flops_per_s,
                 DType.FP32: self.fp32_matmul_flops_per_s}
        link = LinkSpec(kind="none" if self.is_cpu else "pcie",
                        bandwidth_bytes_per_s=self.h2d_bandwidth_bytes_per_s,
                        latency_s=self.link_latency_s,
                        source="measured by llmsim executor check")
        return HardwareSpec(
            name=f"measured-{self.device.replace(':', '')}", vendor="measured",
            family="measured", memory_bytes=self.memory_bytes,
            memory_bandwidth_bytes_per_s=self.memory_bandwidth_bytes_per_s,
            peak_flops_per_s=peaks, host_link=link, default_gpus_per_node=1,
            source=f"measured on {self.device_name} by llmsim.expert_cache_executor.measure",
            notes="peaks are the measured matmul rate and weight-streaming bandwidth")

    def host_spec(self) -> HostSpec:
        peaks = {DType.parse(self.dtype): self.host_matmul_flops_per_s}
        if DType.FP32 not in peaks:
            peaks[DType.FP32] = self.host_matmul_flops_per_s
        return HostSpec(
            name="measured-host", cpu=_platform.processor() or _platform.machine(),
            cpu_memory_bytes=self.host_memory_bytes,
            cpu_memory_bandwidth_bytes_per_s=self.host_memory_bandwidth_bytes_per_s,
            cpu_peak_flops_per_s=peaks, h2d_bandwidth_bytes_per_s=self.h2d_bandwidth_bytes_per_s,
            d2h_bandwidth_bytes_per_s=self.d2h_bandwidth_bytes_per_s,
            disk_bytes=1.0, disk_read_bandwidth_bytes_per_s=1.0,
            disk_write_bandwidth_bytes_per_s=1.0,
            source="measured by llmsim.expert_cache_executor.measure",
            notes="disk not measured (placeholder values; the MoE offload model does not use it)")

    def profile(self) -> Profile:
        """A calibration profile for :meth:`hardware_spec` (peaks as measured): GEMMs and
        experts each with their fitted compute efficiency, ``m_half`` and weight-streaming
        efficiency, attention with its measured efficiency, and the measured fixed costs."""
        ls = self.launch_s
        gemm = KernelEfficiency(compute_eff=self.gemm_compute_eff,
                                memory_eff=self.gemm_memory_eff,
                                launch_s=ls["gemm"], m_half=self.gemm_m_half, n_half=0.0,
                                k_half=0.0)
        moe = KernelEfficiency(compute_eff=self.expert_compute_eff,
                               memory_eff=self.expert_memory_eff,
                               launch_s=ls["moe"], m_half=self.expert_m_half, n_half=0.0,
                               k_half=0.0)

        def flat(key: str, compute_eff: float = 1.0) -> KernelEfficiency:
            return KernelEfficiency(compute_eff=compute_eff, memory_eff=1.0, launch_s=ls[key],
                                    m_half=0.0, n_half=0.0, k_half=0.0)

        entry = ProfileEntry(gemm=gemm, moe=moe,
                             attention_prefill=flat("attention_prefill",
                                                    self.attention_compute_eff),
                             attention_decode=flat("attention_decode"),
                             elementwise=flat("elementwise"),
                             step_overhead_s=self.step_overhead_s,
                             fit={"source": "llmsim.expert_cache_executor.measure"})
        data = ProfileFile(description="measured by llmsim executor check",
                           generated_by="llmsim.expert_cache_executor.measure",
                           entries={self.hardware_spec().name: entry})
        return Profile(data, "measured")

    def platform(self) -> Platform:
        return Platform(self.hardware_spec(), self.host_spec(), async_copy=not self.is_cpu,
                        concurrent_host=not self.is_cpu, cpu_efficiency=1.0,
                        cpu_overhead_s=self.cpu_expert_overhead_s, cpu_m_half=self.host_m_half,
                        description=(f"measured {self.device_name} ({self.dtype}, "
                                     f"{self.threads} threads)"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- timing helpers
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: str, reps: int, inner: int = 1) -> float:
    """Seconds per call of ``fn``: the best of ``reps`` samples of ``inner`` calls each.

    The minimum, not the median: other processes on a shared machine only ever add time, so
    the fastest sample is the closest to the machine's own cost (``timeit``'s advice).
    """
    fn()
    _sync(device)
    samples = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        samples.append((time.perf_counter() - t0) / inner)
    return min(samples)


def _total_memory(device: str) -> float:
    if device.startswith("cuda"):
        return float(torch.cuda.get_device_properties(device).total_memory)
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16e9


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"{_platform.processor() or _platform.machine()} CPU"


# ---------------------------------------------------------------------- peaks
def measure_matmul(device: str, dtype: Any, quick: bool) -> float:
    """FLOP/s of a large square matmul (``2 n^3`` FLOP)."""
    n = (512 if quick else 1024) if device == "cpu" else (4096 if quick else 8192)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    t = _time(lambda: a @ b, device, reps=3 if quick else 7)
    return 2.0 * n ** 3 / t


def measure_stream(device: str, dtype: Any, quick: bool) -> tuple[float, float]:
    """(weight-streaming GEMV bandwidth, copy bandwidth) in bytes/s, on buffers far larger
    than the last-level cache."""
    total = (64 if quick else 256) * 2 ** 20 if device == "cpu" else 1 * 2 ** 30
    cols = 4096
    el = torch.empty((), dtype=dtype).element_size()
    rows = total // (cols * el)
    w = torch.randn(rows, cols, device=device).to(dtype)
    x = torch.randn(1, cols, device=device).to(dtype)
    reps = 3 if quick else 7
    t = _time(lambda: F.linear(x, w), device, reps)
    gemv = w.numel() * el / t
    src = w.view(-1)
    dst = torch.empty_like(src)
    t = _time(lambda: dst.copy_(src), device, reps)
    copy = 2.0 * src.numel() * el / t
    return gemv, copy


def _rotating(make: Callable[[], Any], budget_bytes: float, each_bytes: float) -> list[Any]:
    """Enough copies of a tensor that together they exceed the last-level cache (each call
    then touches memory that is not in cache, as in the model's weight streaming)."""
    return [make() for _ in range(max(2, int(budget_bytes // max(each_bytes, 1))))]


def _cold_budget(device: str, quick: bool) -> float:
    return (64 if quick else 128) * 2 ** 20 if device == "cpu" else 2 ** 30


def measure_links(config: MoEModelConfig, device: str, dtype: Any,
                  quick: bool) -> tuple[float, float]:
    """(h2d, d2h) bytes/s. GPU: pinned host <-> device copies; CPU: copying one expert from
    the host pool into the device pool, sources and destinations not in cache."""
    el = torch.empty((), dtype=dtype).element_size()
    if device.startswith("cuda"):
        n = (64 if quick else 256) * 2 ** 20 // el
        host = torch.empty(n, dtype=dtype).pin_memory()
        dev = torch.empty(n, dtype=dtype, device=device)
        reps = 3 if quick else 7
        h2d = n * el / _time(lambda: dev.copy_(host, non_blocking=True), device, reps)
        d2h = n * el / _time(lambda: host.copy_(dev, non_blocking=True), device, reps)
        return h2d, d2h
    per = config.expert_params()
    budget = _cold_budget(device, quick)
    src = _rotating(lambda: torch.randn(per).to(dtype), budget, per * el)
    dst = _rotating(lambda: torch.zeros(per, dtype=dtype), budget, per * el)
    it = iter(range(10 ** 9))

    def one() -> None:
        i = next(it)
        dst[i % len(dst)].copy_(src[(7 * i) % len(src)])

    bw = per * el / _time(one, device, reps=(1 if quick else 3) * len(src), inner=1)
    return bw, bw


def _fit_roofline(points: list[tuple[float, float, float, float]], peak: float,
                  bandwidth: float, launch: float) -> tuple[float, float, float, float]:
    """Least squares on log time of
    ``launch + max(F / (P c m / (m + m_half)), B / (W eff))`` over ``points`` = (m, F, B, t):
    grid search of ``(c, m_half, eff)`` (compute efficiency at most 1); returns them and the rms
    log error."""
    m_arr, f_arr, b_arr, t_arr = (np.array(v, dtype=float) for v in zip(*points, strict=True))
    log_t = np.log(t_arr)
    effs = np.linspace(0.2, 1.2, 51)[:, None]
    memory = b_arr[None, :] / (bandwidth * effs)  # [eff, point]
    best = (1.0, 0.0, 1.0, np.inf)
    for ce in np.linspace(0.3, 1.0, 15):
        for mh in np.concatenate([[0.0], np.geomspace(0.25, 4096, 97)]):
            compute = f_arr / (peak * ce * m_arr / (m_arr + mh))
            pred = launch + np.maximum(compute[None, :], memory)
            err = np.sum((np.log(pred) - log_t[None, :]) ** 2, axis=1)
            i = int(np.argmin(err))
            if err[i] < best[3]:
                best = (float(ce), float(mh), float(effs[i, 0]), float(err[i]))
    return best[0], best[1], best[2], float(np.sqrt(best[3] / len(points)))


def _token_counts(max_tokens: int, quick: bool) -> list[int]:
    ms = [m for m in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if m <= max(max_tokens, 8)]
    return ms[::2] if quick else ms


def fit_gemm(config: MoEModelConfig, device: str, dtype: Any, peak: float, bandwidth: float,
             launch: float, max_tokens: int, quick: bool
             ) -> tuple[float, float, float, dict[str, float]]:
    """Fit ``(compute_eff, m_half, memory_eff)`` of the GEMM roofline to ``F.linear`` timings.

    ``t = launch + max(F / (P c m / (m + m_half)), B / (W * memory_eff))`` over token counts
    ``m`` (1 .. the prompt) at the model's attention weight shapes (query and key/value
    projections), weights streamed from memory (least squares on log time, grid search).
    """
    el = torch.empty((), dtype=dtype).element_size()
    h = config.hidden_size
    shapes = [(h, config.num_heads * config.head_dim), (h, 2 * config.num_kv_heads *
                                                        config.head_dim)]
    points = []
    raw: dict[str, float] = {}
    budget = _cold_budget(device, quick)
    for k, n in shapes:
        ws = _rotating(lambda n=n, k=k: torch.randn(n, k, device=device).to(dtype), budget,
                       n * k * el)
        for m in _token_counts(max_tokens, quick):
            x = torch.randn(m, k, device=device).to(dtype)

            def call(x: Any = x, ws: list = ws, it: Any = iter(range(10 ** 9))) -> Any:
                return F.linear(x, ws[next(it) % len(ws)])

            t = _time(call, device, reps=len(ws) if quick else 2 * len(ws), inner=1)
            points.append((m, 2.0 * m * n * k, (m * k + k * n + m * n) * el, t))
            raw[f"linear_{m}x{k}x{n}_s"] = t
        del ws
    ce, m_half, eff, rms = _fit_roofline(points, peak, bandwidth, launch)
    raw["gemm_fit_rms_log_error"] = rms
    return ce, m_half, eff, raw


def fit_expert(config: MoEModelConfig, device: str, dtype: Any, peak: float, bandwidth: float,
               launch: float, max_tokens: int, quick: bool
               ) -> tuple[float, float, float, dict[str, float]]:
    """Fit ``(compute_eff, m_half, memory_eff)`` of the expert op to the executor's own call
    (:func:`~llmsim.expert_cache_executor.functional.expert_into`: gather, gate/up, SwiGLU, down,
    scatter) over
    ``m`` routed tokens, expert weights streamed from memory. FLOPs and bytes are those of
    ``kernels.moe_experts`` for one expert (the formula the simulation prices with)."""
    from llmsim.catalog import get_hardware
    from llmsim.costmodel import kernels
    from llmsim.expert_cache_executor import functional as L

    c = config
    h, inter, k = c.hidden_size, c.expert_intermediate_size, c.top_k
    el = torch.empty((), dtype=dtype).element_size()
    pool = _rotating(lambda: (torch.randn(2 * inter, h, device=device).to(dtype),
                              torch.randn(h, inter, device=device).to(dtype)),
                     _cold_budget(device, quick), 3 * h * inter * el)
    ref_hw = get_hardware("h100-sxm")  # FLOPs and bytes do not depend on the part
    ref_prof = Profile.empty().for_hardware(ref_hw)
    wdt = DType.parse(dtype_name(dtype))
    points = []
    raw: dict[str, float] = {}
    for m in _token_counts(max_tokens, quick):
        hn = torch.randn(m, h, device=device).to(dtype)
        ybuf = torch.empty((m * k, h), device=device, dtype=dtype)
        rows = torch.arange(m, device=device) * k

        def call(hn: Any = hn, ybuf: Any = ybuf, rows: Any = rows,
                 it: Any = iter(range(10 ** 9))) -> None:
            w13, w2 = pool[next(it) % len(pool)]
            L.expert_into(hn, ybuf, rows, k, w13, w2)

        t = _time(call, device, reps=len(pool) if quick else 2 * len(pool), inner=1)
        op = kernels.moe_experts(m, h, inter, 1, 1, ref_hw, ref_prof, weight=wdt,
                                 activation=wdt)
        points.append((m, op.flops, op.bytes, t))
        raw[f"expert_{m}_s"] = t
    ce, m_half, eff, rms = _fit_roofline(points, peak, bandwidth, launch)
    raw["expert_fit_rms_log_error"] = rms
    return ce, m_half, eff, raw


def measure_attention(config: MoEModelConfig, device: str, dtype: Any, peak: float,
                      max_tokens: int, quick: bool) -> tuple[float, dict[str, float]]:
    """Compute efficiency of causal ``scaled_dot_product_attention`` relative to the matmul
    peak: FLOPs ``2 x pairs x heads x (qk + v dims)`` over time, mean over prompt lengths."""
    c = config
    raw: dict[str, float] = {}
    effs = []
    for t in sorted({max(16, max_tokens // 4), max(32, max_tokens)}):
        q = torch.randn(1, c.num_heads, t, c.head_dim, device=device).to(dtype)
        k = torch.randn(1, c.num_kv_heads, t, c.head_dim, device=device).to(dtype)
        gqa = c.num_heads != c.num_kv_heads

        def call(q: Any = q, k: Any = k, gqa: bool = gqa) -> Any:
            return F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=gqa)

        secs = _time(call, device, reps=5 if quick else 15)
        flops = 2.0 * t * (t + 1) / 2 * c.num_heads * 2 * c.head_dim
        raw[f"sdpa_causal_{t}_s"] = secs
        effs.append(flops / secs / peak)
    return float(min(max(np.mean(effs), 1e-3), 1.5)), raw


# ---------------------------------------------------------------------- fixed costs
_TINY = MoEModelConfig(name="measure-tiny", hidden_size=64, num_layers=1, num_heads=4,
                       num_kv_heads=2, head_dim=16, num_experts=4, top_k=2,
                       expert_intermediate_size=64, vocab_size=64)


def _tiny_executor(config: MoEModelConfig, device: str, dtype: Any, layers: int) -> Any:
    from llmsim.expert_cache_executor.decoder import MoEExecutor

    cfg = _TINY.replace(num_layers=layers, top_k=config.top_k,
                        num_experts=max(config.top_k + 2, 4), weight_dtype=dtype_name(dtype))
    off = OffloadConfig(capacity=cfg.num_experts, prefetch=0, policy="static")
    return MoEExecutor(cfg, off, device, dtype, seed=0, max_tokens=4096)


def measure_fixed_costs(config: MoEModelConfig, device: str, dtype: Any,
                        quick: bool) -> tuple[dict[str, float], float, float, dict[str, float]]:
    """Per-family fixed costs, the CPU-expert fixed cost, the per-step remainder and the raw
    component timings (see the module docstring)."""
    from llmsim.expert_cache.cache import STAGING, Load
    from llmsim.expert_cache_executor import functional as L

    reps, inner = (9, 5) if quick else (25, 10)
    ex = _tiny_executor(config, device, dtype, layers=1)
    c = ex.config
    w = ex.w
    x1 = torch.randn(1, c.hidden_size, device=device).to(dtype)
    x8 = torch.randn(8, c.hidden_size, device=device).to(dtype)
    lin = torch.randn(c.hidden_size, c.hidden_size, device=device).to(dtype)
    raw: dict[str, float] = {}
    raw["gemm"] = _time(lambda: F.linear(x1, lin), device, reps, inner)
    raw["norm"] = _time(lambda: L.rms_norm(x1, w.attn_norm[0], c.rms_norm_eps), device, reps,
                        inner)
    raw["add"] = _time(lambda: x1 + x1, device, reps, inner)
    q = torch.randn(1, c.num_heads, c.head_dim, device=device).to(dtype)
    k = torch.randn(1, c.num_kv_heads, c.head_dim, device=device).to(dtype)
    raw["rope"] = _time(lambda: L.rope(q, k, ex.cos[:1], ex.sin[:1]), device, reps, inner)

    def attn(x: Any, pos0: int) -> Any:
        return L.attention(x, w.wq[0], w.wkv[0], w.wo[0], ex.k_cache[0], ex.v_cache[0], pos0,
                           ex.cos, ex.sin, c.num_heads, c.num_kv_heads, c.head_dim)

    raw["attention_decode_block"] = _time(lambda: attn(x1, 16), device, reps, inner)
    raw["attention_prefill_block"] = _time(lambda: attn(x8, 0), device, reps, inner)
    ex.reset()
    ybuf = torch.empty((c.top_k, c.hidden_size), device=device, dtype=dtype)
    r = torch.arange(c.top_k, device=device)

    def expert() -> None:
        ex._gpu_expert(0, 0, 0, x1, ybuf, r, c.top_k)

    raw["expert"] = _time(expert, device, reps, inner)
    hw13, hw2 = ex.store.host_weights(0, 1)
    xr = torch.zeros(1, dtype=torch.long)
    raw["cpu_expert"] = _time(lambda: L.expert_ffn(x1.cpu().index_select(0, xr), hw13, hw2),
                              device, reps, inner)
    raw["expert_load"] = _time(lambda: ex.store.load(0, Load(1, 1)), device, reps, inner)
    ex.store.load(0, Load(2, STAGING))
    ex.store.drop_staged(0)
    ex.reset()
    ex.engine.begin_step(1)  # type: ignore[union-attr]
    ex.recorded.steps.append({})
    raw["moe_block_1tok"] = _time(lambda: ex.moe(0, x1, x1, 1), device, reps, inner)
    launch = {
        "gemm": raw["gemm"],
        "moe": raw["expert"],
        "attention_decode": max(raw["attention_decode_block"] - 3 * raw["gemm"] - raw["rope"],
                                0.0),
        "attention_prefill": max(raw["attention_prefill_block"] - 3 * raw["gemm"]
                                 - raw["rope"], 0.0),
    }
    routing_combine = max(raw["moe_block_1tok"] - c.top_k * raw["expert"] - raw["gemm"], 0.0)
    layer_ew = 2 * raw["norm"] + raw["add"] + raw["rope"] + routing_combine
    launch["elementwise"] = layer_ew / _ELEMENTWISE_PER_LAYER
    # per-layer and per-step remainder from tiny executor steps (1 and 2 layers)
    steps = []
    for n_layers in (1, 2):
        tiny = _tiny_executor(config, device, dtype, layers=n_layers)
        tiny.reset()
        tiny.forward([1, 2, 3, 4])

        def one(tiny: Any = tiny) -> None:
            if tiny.kv_len >= tiny.max_tokens - 1:
                tiny.reset()
                tiny.forward([1, 2, 3, 4])
            tiny.forward([5])

        steps.append(_time(one, device, reps, inner))
    raw["tiny_step_1layer"], raw["tiny_step_2layer"] = steps
    return launch, raw["cpu_expert"], raw["expert_load"], raw


def _tiny_prediction(config: MoEModelConfig, device: str, dtype: Any, m: MachineMeasurement,
                     layers: int) -> float:
    """The simulation's price of the tiny decode step (before the remainder is added)."""
    cfg = _TINY.replace(num_layers=layers, top_k=config.top_k,
                        num_experts=max(config.top_k + 2, 4), weight_dtype=dtype_name(dtype))
    spec = cfg.to_model_spec()
    precision = Precision.resolve(spec.weight_dtype)
    costs = OffloadCosts(spec, m.platform(), precision, m.profile())
    base = costs.step_base(BatchShape.decode(1, 8))
    experts = sum(costs.gpu_expert_s(1) for _ in range(config.top_k)) * layers
    return base.embedding_s + sum(base.layer_s) + base.lm_head_s + base.overhead_s + experts


def measure_machine(config: MoEModelConfig, device: str, dtype: Any, quick: bool = False,
                    max_tokens: int = 256) -> MachineMeasurement:
    """Measure peaks, links and fixed costs for ``config`` on ``device`` in ``dtype``."""
    t_start = time.perf_counter()
    torch.manual_seed(0)
    peak = measure_matmul(device, dtype, quick)
    fp32 = peak if dtype == torch.float32 else measure_matmul(device, torch.float32, quick)
    gemv, copy = measure_stream(device, dtype, quick)
    h2d, d2h = measure_links(config, device, dtype, quick)
    launch, cpu_over, load_s, raw = measure_fixed_costs(config, device, dtype, quick)
    g_ce, m_half, mem_eff, sweep = fit_gemm(config, device, dtype, peak, gemv,
                                            launch["gemm"], max_tokens, quick)
    e_ce, e_half, e_eff, e_sweep = fit_expert(config, device, dtype, peak, gemv,
                                              launch["moe"], max_tokens, quick)
    attn_eff, attn_raw = measure_attention(config, device, dtype, peak, max_tokens, quick)
    raw.update(sweep, **e_sweep, **attn_raw)
    if device == "cpu":  # CPU experts run the same expert code on the same CPU
        host_flops, host_bw, host_m_half = peak * e_ce, gemv * e_eff, e_half
    else:  # the host CPU that runs CPU experts, measured the same way (shorter)
        host_flops = measure_matmul("cpu", dtype, quick=True)
        host_gemv, _ = measure_stream("cpu", dtype, quick=True)
        host_ce, host_m_half, host_eff, host_raw = fit_expert(
            config, "cpu", dtype, host_flops, host_gemv, cpu_over, max_tokens, True)
        host_flops, host_bw = host_flops * host_ce, host_gemv * host_eff
        raw.update({f"host_{k}": v for k, v in host_raw.items()})
    m = MachineMeasurement(
        device=device, device_name=_device_name(device), dtype=dtype_name(dtype),
        matmul_flops_per_s=peak, fp32_matmul_flops_per_s=fp32, gemm_compute_eff=g_ce,
        gemm_m_half=m_half, gemm_memory_eff=mem_eff, expert_compute_eff=e_ce,
        expert_m_half=e_half, expert_memory_eff=e_eff,
        attention_compute_eff=attn_eff,
        memory_bandwidth_bytes_per_s=gemv, copy_bandwidth_bytes_per_s=copy,
        h2d_bandwidth_bytes_per_s=h2d, d2h_bandwidth_bytes_per_s=d2h,
        link_latency_s=load_s,
        host_matmul_flops_per_s=host_flops, host_memory_bandwidth_bytes_per_s=host_bw,
        host_m_half=host_m_half,
        memory_bytes=_total_memory(device), host_memory_bytes=_total_memory("cpu"),
        launch_s=launch, cpu_expert_overhead_s=cpu_over, step_overhead_s=0.0,
        threads=torch.get_num_threads(), details=raw)
    # remainder: what tiny executor steps take beyond the priced components
    pred1 = _tiny_prediction(config, device, dtype, m, 1)
    pred2 = _tiny_prediction(config, device, dtype, m, 2)
    per_layer = (raw["tiny_step_2layer"] - raw["tiny_step_1layer"]) - (pred2 - pred1)
    launch = dict(launch, elementwise=launch["elementwise"]
                  + max(per_layer, 0.0) / _ELEMENTWISE_PER_LAYER)
    m = _replace(m, launch_s=launch)
    step_rest = raw["tiny_step_1layer"] - _tiny_prediction(config, device, dtype, m, 1)
    m = _replace(m, step_overhead_s=max(step_rest, 0.0),
                 details=dict(raw, per_layer_remainder_s=per_layer, step_remainder_s=step_rest,
                              measure_wall_s=time.perf_counter() - t_start))
    log.info("measured %s in %.1f s", m.device_name, time.perf_counter() - t_start)
    return m


def _replace(m: MachineMeasurement, **changes: Any) -> MachineMeasurement:
    from dataclasses import replace

    return replace(m, **changes)
