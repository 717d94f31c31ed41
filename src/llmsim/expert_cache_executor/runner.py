"""Warm-up then timed runs of the executor: ``run_prefill``, ``run_decode``, ``run_benchmark``.

``run_benchmark`` is what ``llmsim executor run`` does:

1. build the model (seeded random weights) and a seeded random prompt;
2. routing: forced (a distribution or a trace file, resolved exactly as the simulator does; a
   trace file fixes the prompt length and bounds the decode steps) or
   the model's router; with the router an untimed reference pass records the routing, which
   then serves as the prefetcher's oracle and the static policy's profile;
3. ``warmup`` untimed passes (prefill + decode), then ``repeats`` timed passes, each starting from
   the initial expert cache and an empty KV cache. Reported times are the best over the passes
   (prefill: the fastest; decode: per step the fastest, averaged over the steps), because other
   processes only ever add time; medians are reported too. Hit counts are identical across
   passes (everything is deterministic).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmsim.errors import ConfigError
from llmsim.expert_cache.config import MoEModelConfig, OffloadConfig, check_seed, load_moe_config
from llmsim.expert_cache.routing import RoutingTrace, check_routing, resolve_routing
from llmsim.expert_cache.simulate import check_context
from llmsim.expert_cache_executor._torch import (
    dtype_name,
    require_torch,
    resolve_device,
    resolve_dtype,
)
from llmsim.io import prepare_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseReport:
    """One timed phase (the prefill, or the decode steps after it)."""

    phase: str
    tokens: int
    time_s: float
    step_s: tuple[float, ...]
    layer_s: tuple[float, ...]  # per layer, mean over the phase's steps
    hits: int
    misses: int
    kv_len: int
    next_token: Any  # int; a tuple of one per sequence for a batch
    generated: tuple[Any, ...] = ()

    @property
    def hit_rate(self) -> float:
        """NaN for a phase without expert accesses (e.g. zero decode steps)."""
        n = self.hits + self.misses
        return self.hits / n if n else math.nan

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.time_s if self.time_s > 0 and self.tokens else math.nan

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(hit_rate=self.hit_rate, tokens_per_s=self.tokens_per_s)
        return out


def _phase(ex: Any, phase: str, records: list, next_token: int,
           generated: tuple[int, ...] = ()) -> PhaseReport:
    n_layers = ex.config.num_layers
    layer = tuple(float(np.mean([r.layer_s[i] for r in records])) for i in range(n_layers)) \
        if records else tuple(0.0 for _ in range(n_layers))
    return PhaseReport(phase, sum(r.tokens for r in records), sum(r.time_s for r in records),
                       tuple(r.time_s for r in records), layer, sum(r.hits for r in records),
                       sum(r.misses for r in records), ex.kv_len, next_token, generated)


def run_prefill(ex: Any, prompt: Sequence[int] | Any, warmup: int = 1,
                prior_counts: np.ndarray | None = None, forced: RoutingTrace | None = None,
                oracle: RoutingTrace | None = None) -> PhaseReport:
    """Warm up (``warmup`` untimed prefills), reset, then time one prefill of ``prompt``.

    Leaves the executor after the prompt (KV cache filled) so :func:`run_decode` can follow.
    """
    for _ in range(warmup):
        ex.reset(prior_counts, forced, oracle)
        ex.forward(prompt)
    ex.reset(prior_counts, forced, oracle)
    logits = ex.forward(prompt)
    return _phase(ex, "prefill", ex.records[-1:], _next(logits))


def _next(logits: Any) -> Any:
    """Greedy next token: an int for one sequence's ``[vocab]``, a tuple for ``[B, vocab]``."""
    if logits.ndim == 1:
        return int(logits.argmax())
    return tuple(int(t) for t in logits.argmax(dim=-1))


def run_decode(ex: Any, steps: int, first_token: int) -> PhaseReport:
    """Greedy-decode ``steps`` tokens from the executor's current state, one timed step each
    (the first step consumes ``first_token``, e.g. the prefill's ``next_token``; a tuple of
    one token per sequence for a batch)."""
    start = len(ex.records)
    token = first_token
    out = []
    for _ in range(steps):
        logits = ex.forward([[t] for t in token] if isinstance(token, tuple) else [token])
        token = _next(logits)
        out.append(token)
    return _phase(ex, "decode", ex.records[start:], token, tuple(out))


@dataclass(frozen=True)
class ExecutorResult:
    """Measured performance of one executor configuration (best of the timed passes)."""

    device: str
    dtype: str
    model: dict[str, Any]
    offload: dict[str, Any]
    routing: str
    prompt_tokens: int
    decode_steps: int
    warmup: int
    repeats: int
    prefill_s: float
    decode_s_per_token: float
    decode_step_s: tuple[float, ...]
    prefill_s_median: float
    decode_s_per_token_median: float
    tokens_per_s: float
    prefill_tokens_per_s: float
    prefill_layer_s: tuple[float, ...]
    decode_layer_s: tuple[float, ...]
    hits: int
    misses: int
    hit_rate: float
    prefill_hit_rate: float
    decode_hit_rate: float
    token_hit_rate: float
    prefetch_accuracy: float
    stats: dict[str, dict[str, float]]
    h2d_bytes: float
    d2h_bytes: float
    kv_len: int
    generated: tuple[int, ...]
    repeat_prefill_s: tuple[float, ...]
    repeat_decode_s_per_token: tuple[float, ...]
    trace_path: str | None = None
    routing_trace: RoutingTrace | None = field(default=None, compare=False, repr=False)
    batch: int = 1  # sequences decoded together (prompt_tokens each)

    @property
    def pcie_bytes(self) -> float:
        return self.h2d_bytes + self.d2h_bytes

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "routing_trace"}
        if self.batch == 1:  # batch-1 results read as before batches existed
            out.pop("batch")
        out["pcie_bytes"] = self.pcie_bytes
        for key in ("decode_step_s", "prefill_layer_s", "decode_layer_s", "generated",
                    "repeat_prefill_s", "repeat_decode_s_per_token"):
            out[key] = list(out[key])
        return out


def prompt_ids(vocab_size: int, tokens: int, seed: int) -> list[int]:
    """A seeded random prompt (token ids)."""
    rng = np.random.default_rng([seed, 7])
    return [int(t) for t in rng.integers(0, vocab_size, size=tokens)]


def build_executor(model: str | MoEModelConfig, offload: OffloadConfig, device: str | None,
                   dtype: str | None, seed: int, max_tokens: int, nvtx: bool = False,
                   batch: int = 1) -> Any:
    """An executor for a config (preset name, ``llmsim-moe`` file or executor-buildable
    catalog model) on ``device`` (default: cuda when present), decoding ``batch`` sequences
    together (``max_tokens`` each)."""
    require_torch()
    from llmsim.expert_cache_executor.decoder import MoEExecutor

    dev = resolve_device(device)
    cfg = load_moe_config(model)
    default = "fp16" if dev.startswith("cuda") and cfg.weight_dtype.value == "fp16" else (
        "bf16" if dev.startswith("cuda") else "fp32")
    tdt = resolve_dtype(dtype, dev, default)
    cfg = cfg.replace(weight_dtype=dtype_name(tdt))
    _check_memory(cfg, offload, dev, max_tokens * batch)
    return MoEExecutor(cfg, offload, dev, tdt, seed=seed, max_tokens=max_tokens, nvtx=nvtx,
                       batch=batch)


def _check_memory(cfg: MoEModelConfig, offload: OffloadConfig, device: str,
                  max_tokens: int) -> None:
    """Refuse configs whose weights cannot fit before allocating them (one-line error)."""
    import os

    from llmsim.errors import DoesNotFitError
    from llmsim.units import fmt_bytes

    el = cfg.weight_dtype.bytes
    expert = cfg.expert_params() * el
    host_need = cfg.num_layers * cfg.num_experts * expert
    dense = (2 * cfg.vocab_size * cfg.hidden_size + cfg.num_layers * cfg.hidden_size * (
        2 * cfg.num_heads * cfg.head_dim + 2 * cfg.num_kv_heads * cfg.head_dim
        + cfg.num_experts)) * el
    kv = 2 * cfg.num_layers * max_tokens * cfg.num_kv_heads * cfg.head_dim * el
    dev_need = dense + kv + (cfg.num_layers * offload.capacity + 2 * offload.prefetch + 2) * \
        expert
    try:
        ram = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return
    if device == "cpu":
        host_need += dev_need
    if host_need > 0.85 * ram:
        raise DoesNotFitError(
            f"{cfg.name} needs {fmt_bytes(host_need)} of host memory for its weights but this "
            f"machine has {fmt_bytes(ram)}; use a smaller config (e.g. --config cpu-small)",
            host_need, ram)
    if device.startswith("cuda"):
        torch = require_torch()
        have = float(torch.cuda.get_device_properties(device).total_memory)
        if dev_need > 0.9 * have:
            raise DoesNotFitError(
                f"{cfg.name} with {offload.capacity} cached experts per layer needs "
                f"{fmt_bytes(dev_need)} on the GPU, which has {fmt_bytes(have)}; lower "
                "--cache-capacity", dev_need, have)


def run_benchmark(model: str | MoEModelConfig, offload: OffloadConfig, device: str | None = None,
                  dtype: str | None = None, routing: str = "router",
                  prompt_tokens: int | None = None, decode_steps: int | None = None,
                  warmup: int = 1, repeats: int = 1,
                  profile_dir: str | None = None, nvtx: bool = False,
                  trace_out: str | None = None, executor: Any = None,
                  batch: int = 1) -> ExecutorResult:
    """Build, warm up and time prefill + decode (see the module docstring). With zero decode
    steps the decode metrics (time per token, tokens/s, decode hit rate) are NaN. ``batch``:
    sequences decoded together, each with its own seeded prompt of ``prompt_tokens``
    (``executor`` must then be a batch-``batch`` executor)."""
    torch = require_torch()
    if repeats < 1 or warmup < 0:
        raise ConfigError("repeats must be >= 1 and warmup >= 0")
    seed = check_seed(offload.seed)
    if routing != "router":
        check_routing(routing)
    if profile_dir:  # a folder that cannot be made fails now, not after the timed runs
        prepare_dir(profile_dir, "--profile-dir", "the profiler writes a folder "
                                                  "(executor_trace.json)")
    forced: RoutingTrace | None = None
    prior = None
    description = "router"
    spec = load_moe_config(model).to_model_spec()
    if routing != "router":
        source = resolve_routing(routing, spec, prompt_tokens, decode_steps, seed, batch)
        forced, prior, description = source.trace, source.prior_counts, source.description
    prompt_tokens = forced.prompt_tokens // batch if forced is not None else (
        prompt_tokens or 256)
    decode_steps = forced.decode_steps if forced is not None else (
        10 if decode_steps is None else decode_steps)
    check_context(spec, prompt_tokens, decode_steps)
    ex = executor or build_executor(model, offload, device, dtype, seed,
                                    max_tokens=prompt_tokens + decode_steps + 1, nvtx=nvtx,
                                    batch=batch)
    if ex.batch != batch:
        raise ConfigError(f"the executor decodes batches of {ex.batch}, not {batch}")
    prompt: Any = prompt_ids(ex.config.vocab_size, prompt_tokens * batch, seed)
    if batch > 1:  # one seeded prompt per sequence (sequence 0's is the batch-1 prompt)
        prompt = [prompt[b * prompt_tokens:(b + 1) * prompt_tokens] for b in range(batch)]
    oracle = forced
    passes = warmup
    if forced is None:  # reference pass: record the router's choices (untimed)
        no_prefetch = offload.replace(prefetch=0)
        saved, ex.offload = ex.offload, no_prefetch
        ex.reset()
        pre = run_prefill(ex, prompt, warmup=0)
        run_decode(ex, decode_steps, pre.next_token)
        ex.offload = saved
        oracle = ex.recorded
        prior = oracle.expert_counts()
        passes = max(warmup - 1, 0)
    for _ in range(passes):
        pre = run_prefill(ex, prompt, 0, prior, forced, oracle)
        run_decode(ex, decode_steps, pre.next_token)
    prefills, decodes, decode_steps_s, best = [], [], [], None
    dec = pre_rep = None
    for r in range(repeats):
        ctx = _profiler(torch, profile_dir) if (profile_dir and r == repeats - 1) else None
        if ctx is not None:
            ctx.__enter__()
        pre_rep = run_prefill(ex, prompt, 0, prior, forced, oracle)
        dec = run_decode(ex, decode_steps, pre_rep.next_token)
        if ctx is not None:
            ctx.__exit__(None, None, None)
            path = Path(profile_dir) / "executor_trace.json"  # type: ignore[arg-type]
            ctx.export_chrome_trace(str(path))
            log.info("wrote torch.profiler trace %s", path)
        prefills.append(pre_rep.time_s)
        decodes.append(dec.time_s / dec.tokens if dec.tokens else math.nan)
        decode_steps_s.append(dec.step_s)
        if best is None or pre_rep.time_s < best[0].time_s:
            best = (pre_rep, dec)
    assert dec is not None and pre_rep is not None
    engine = ex.engine
    total = engine.total
    if forced is None and oracle is not None and any(
            not np.array_equal(a[k], b[k])
            for a, b in zip(ex.recorded.steps, oracle.steps, strict=True) for k in a):
        log.warning("the timed pass routed differently from the reference pass (numerics); "
                    "prefetch accuracy may differ from the setting")
    if trace_out:
        ex.recorded.write(trace_out)
    # best of the timed passes (other processes only add time): the prefill's minimum, and
    # per decode step the minimum over passes, averaged over the steps
    per_step = np.min(np.array(decode_steps_s), axis=0) if decode_steps else np.zeros(0)
    decode_s = float(per_step.mean()) if decode_steps else math.nan
    prefill_s = min(prefills)
    assert best is not None
    return ExecutorResult(
        device=ex.device, dtype=dtype_name(ex.dtype), model=ex.config.model_dump(mode="json"),
        offload=ex.offload.model_dump(mode="json"), routing=description,
        prompt_tokens=prompt_tokens, decode_steps=decode_steps, warmup=warmup, repeats=repeats,
        prefill_s=prefill_s, decode_s_per_token=decode_s,
        decode_step_s=tuple(float(x) for x in per_step),
        prefill_s_median=statistics.median(prefills),
        decode_s_per_token_median=statistics.median(decodes),
        tokens_per_s=batch / decode_s if decode_s > 0 else math.nan,
        prefill_tokens_per_s=batch * prompt_tokens / prefill_s if prefill_s > 0 else 0.0,
        prefill_layer_s=best[0].layer_s, decode_layer_s=best[1].layer_s, hits=total.hits,
        misses=total.misses, hit_rate=total.hit_rate,
        prefill_hit_rate=engine.stats["prefill"].hit_rate,
        decode_hit_rate=engine.stats["decode"].hit_rate, token_hit_rate=total.token_hit_rate,
        prefetch_accuracy=total.prefetch_accuracy,
        stats={"prefill": engine.stats["prefill"].as_dict(),
               "decode": engine.stats["decode"].as_dict(), "total": total.as_dict()},
        h2d_bytes=ex.store.h2d_bytes, d2h_bytes=ex.d2h_bytes, kv_len=ex.kv_len,
        generated=(pre_rep.next_token,) + dec.generated,
        repeat_prefill_s=tuple(prefills), repeat_decode_s_per_token=tuple(decodes),
        trace_path=trace_out, routing_trace=ex.recorded, batch=batch,
    )


def _profiler(torch: Any, profile_dir: str) -> Any:
    acts = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    return torch.profiler.profile(activities=acts, record_shapes=True)
