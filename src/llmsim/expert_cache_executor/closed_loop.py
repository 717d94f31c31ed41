"""The closed loop: measure this machine, run the executor, simulate the same run, compare.

1. :func:`~llmsim.expert_cache_executor.measure.measure_machine` turns micro-benchmarks into a
   hardware spec, a host spec, a calibration profile and a :class:`Platform` (CPU-only: no copy
   engine, no concurrent host compute).
2. :func:`~llmsim.expert_cache_executor.runner.run_benchmark` runs the executor (warm-up, timed
   passes).
3. :func:`~llmsim.expert_cache.simulate` prices the same model, dtype, cache settings, prompt and
   decode steps on the measured platform:

   - ``predicted``: routing drawn independently -- the same distribution and seed when the
     executor forced one (identical routing by construction), else ``sim_routing`` (default
     ``uniform``) standing in for the random-weight router: a real prediction of hit rate too;
   - ``predicted_replay``: the executor's recorded routing replayed (hit accounting identical
     by construction, so the time error is the cost model's alone).

``error_frac = (predicted - measured) / measured``. No number measured on the executor run
being predicted enters the prediction.

``batch = B``: the executor decodes ``B`` sequences together (one prefill step of the ``B``
prompts, then steps of one token each; each MoE layer loads / caches the union of the batch's
experts) and the simulation prices the same batch with ``simulate(..., batch=B)`` -- the
per-step timeline the serving simulator's expert offload runs for ``B`` requests arriving
together (``tests/serving/test_expert_offload_serving.py`` checks that they agree). The check
then also compares the decode step times one by one (``step_error_frac``: per decode step,
``(predicted - measured) / measured``) and the bytes copied host -> device.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from llmsim.expert_cache.config import OffloadConfig, load_moe_config
from llmsim.expert_cache.result import OffloadResult
from llmsim.expert_cache.routing import RoutingSource
from llmsim.expert_cache.simulate import simulate
from llmsim.expert_cache_executor.measure import MachineMeasurement, measure_machine
from llmsim.expert_cache_executor.runner import ExecutorResult, build_executor, run_benchmark

log = logging.getLogger(__name__)

METRICS = ("prefill_s", "decode_s_per_token", "hit_rate")


def _errors(pred: dict[str, float], meas: dict[str, float]) -> dict[str, float]:
    out = {}
    for k in METRICS:
        m = meas[k]
        out[k] = (pred[k] - m) / m if m else pred[k] - m
    return out


def _pick(obj: Any) -> dict[str, float]:
    return {k: float(getattr(obj, k)) for k in METRICS}


@dataclass(frozen=True)
class CheckResult:
    """Predicted vs measured prefill time, decode time per token and hit rate."""

    measured: dict[str, float]
    predicted: dict[str, float]
    error_frac: dict[str, float]
    predicted_replay: dict[str, float]
    error_frac_replay: dict[str, float]
    sim_routing: str
    machine: MachineMeasurement
    executor: ExecutorResult
    simulation: OffloadResult
    simulation_replay: OffloadResult
    wall_s: float
    load_avg_before: float = 0.0  # 1-minute load average when the check started
    cpu_count: int = 1
    batch: int = 1

    @property
    def step_error_frac(self) -> tuple[float, ...]:
        """Per decode step: (predicted - measured) / measured (replayed routing: the same
        hits and misses step by step, so the error is the cost model's)."""
        meas = self.executor.decode_step_s
        pred = self.simulation_replay.decode_step_s
        return tuple((p - m) / m for p, m in zip(pred, meas, strict=True))

    @property
    def bytes_copied(self) -> dict[str, float]:
        """Host -> device bytes: measured by the executor, predicted (both routings)."""
        return {"measured": self.executor.h2d_bytes, "predicted": self.simulation.h2d_bytes,
                "predicted_replay": self.simulation_replay.h2d_bytes}

    @property
    def contended(self) -> bool:
        """Other processes were busy when the check started (timings may be inflated)."""
        return self.load_avg_before > 0.5
    def as_dict(self, details: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "measured": self.measured, "predicted": self.predicted,
            "error_frac": self.error_frac, "predicted_replay": self.predicted_replay,
            "error_frac_replay": self.error_frac_replay, "sim_routing": self.sim_routing,
            "device": self.executor.device, "dtype": self.executor.dtype,
            "model": self.executor.model, "offload": self.executor.offload,
            "routing": self.executor.routing, "prompt_tokens": self.executor.prompt_tokens,
            "decode_steps": self.executor.decode_steps, "wall_s": self.wall_s,
            "load_avg_before": self.load_avg_before, "cpu_count": self.cpu_count,
            "machine": self.machine.as_dict(),
        }
        if self.batch > 1:
            errs = self.step_error_frac
            out.update(batch=self.batch, measured_step_s=list(self.executor.decode_step_s),
                       predicted_step_s=list(self.simulation_replay.decode_step_s),
                       step_error_frac=list(errs), bytes_copied=self.bytes_copied,
                       stall_s={"predicted": self.simulation.stall_s,
                                "predicted_replay": self.simulation_replay.stall_s})
        if details:
            out["executor"] = self.executor.as_dict()
            out["simulation"] = self.simulation.as_dict(timeline=False)
            out["simulation_replay"] = self.simulation_replay.as_dict(timeline=False)
        return out


def run_check(model: Any, offload: OffloadConfig, device: str | None = None,
              dtype: str | None = None, routing: str = "router", sim_routing: str = "uniform",
              prompt_tokens: int | None = 128, decode_steps: int | None = 16, warmup: int = 1,
              repeats: int = 5, quick: bool = False, batch: int = 1) -> CheckResult:
    """Measure, run and simulate (see the module docstring). Every input that needs no
    measurement (seed, routing specs, context length) is checked before measuring."""
    _check_inputs(model, offload, routing, sim_routing, prompt_tokens, decode_steps, batch)
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load0 > 0.5:
        log.warning("load average %.1f on %d CPUs: other processes compete for the machine; "
                    "timings may be inflated (on a shared box try --threads 1)", load0,
                    os.cpu_count() or 1)
    max_tokens = (prompt_tokens or 256) + (16 if decode_steps is None else decode_steps) + 1
    if _is_file(routing):
        from llmsim.expert_cache.routing import read_trace

        trace = read_trace(routing, load_moe_config(model).to_model_spec())
        max_tokens = trace.prompt_tokens + trace.decode_steps + 1
    ex = build_executor(model, offload, device, dtype, offload.seed, max_tokens=max_tokens,
                        batch=batch)
    # a batch's prefill step runs B prompts through the GEMMs at once
    machine = measure_machine(ex.config, ex.device, ex.dtype, quick=quick,
                              max_tokens=min(max_tokens * batch, 4000))
    log.info("measured: %.1f GFLOP/s, %.1f GB/s", machine.matmul_flops_per_s / 1e9,
             machine.memory_bandwidth_bytes_per_s / 1e9)
    result = run_benchmark(ex.config, offload, routing=routing, prompt_tokens=prompt_tokens,
                           decode_steps=decode_steps, warmup=warmup, repeats=repeats,
                           executor=ex, batch=batch)
    spec = ex.config.to_model_spec()
    platform, profile = machine.platform(), machine.profile()
    sim_spec = routing if routing != "router" else sim_routing
    sim = simulate(spec, config=offload, routing=sim_spec,
                   prompt_tokens=None if _is_file(sim_spec) else result.prompt_tokens,
                   decode_steps=result.decode_steps, platform=platform, profile=profile,
                   allow_overflow=True, batch=batch)
    trace = result.routing_trace
    assert trace is not None
    replay = RoutingSource("executor's recorded routing", trace, trace.expert_counts()) \
        if routing == "router" else sim_spec
    sim_replay = simulate(spec, config=offload, routing=replay,
                          prompt_tokens=None if _is_file(replay) else result.prompt_tokens,
                          decode_steps=result.decode_steps,
                          platform=platform, profile=profile, allow_overflow=True,
                          batch=batch)
    measured = _pick(result)
    predicted, predicted_replay = _pick(sim), _pick(sim_replay)
    return CheckResult(measured, predicted, _errors(predicted, measured), predicted_replay,
                       _errors(predicted_replay, measured), sim.routing, machine, result, sim,
                       sim_replay, time.perf_counter() - t0, load0, os.cpu_count() or 1,
                       batch)


def _check_inputs(model: Any, offload: OffloadConfig, routing: str, sim_routing: str,
                  prompt_tokens: int | None, decode_steps: int | None, batch: int = 1) -> None:
    """What would otherwise fail only after the slow measurement and run."""
    from llmsim.errors import ConfigError, LLMSimError
    from llmsim.expert_cache.config import check_seed
    from llmsim.expert_cache.routing import check_routing, trace_path
    from llmsim.expert_cache.simulate import check_context

    check_seed(offload.seed)
    spec = load_moe_config(model).to_model_spec()
    if routing != "router":
        check_routing(routing)
    else:
        try:
            check_routing(sim_routing)
        except LLMSimError as exc:  # name the flag: --routing takes the same values
            raise ConfigError(f"--sim-routing: {exc}") from None
    offload.for_model(spec.moe.num_experts)  # type: ignore[union-attr]
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    if batch > 1:
        from llmsim.expert_cache.routing import RoutingSampler, parse_distribution

        for spec_text in (routing, sim_routing):
            if spec_text == "router":
                continue
            if trace_path(spec_text) is not None:
                raise ConfigError("a routing trace file records one sequence; --batch needs "
                                  "--routing router or a distribution")
            RoutingSampler.check_batchable(parse_distribution(spec_text))
    if routing != "router" and trace_path(routing) is not None:
        return  # the trace fixes the shape; resolve_routing checks it against the flags
    check_context(spec, prompt_tokens or 256, 16 if decode_steps is None else decode_steps)


def _is_file(spec: object) -> bool:
    from llmsim.expert_cache.routing import is_trace_path

    return isinstance(spec, str) and is_trace_path(spec)  # a RoutingSource is not a path
