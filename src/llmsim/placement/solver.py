"""``solve``: the best FlexGen policy for a model, lengths and memory budgets; ``evaluate``: the
throughput, memory per tier and feasibility of a given policy.

The search (FlexGen section 4.3) enumerates GPU batch sizes and numbers of GPU batches; for each
candidate the six placement fractions come from the LP in :mod:`llmsim.placement.lp`. Every
memory expression grows with the batch, so once a candidate is infeasible all larger ones with
the same GPU batch size (or the same number of batches) are too and the scan moves on. The best
candidate maximises ``block_size x gen_len / T``; ties go to the smaller block.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

from llmsim import units
from llmsim.catalog import ModelSpec
from llmsim.costmodel import Profile
from llmsim.errors import ConfigError, InfeasibleError, UnknownNameError
from llmsim.expert_cache.config import load_model_spec
from llmsim.placement.lp import LPSolution, refine, shortfall, solve_candidate
from llmsim.placement.lp_costs import (
    STAGES,
    TIERS,
    CandidateModel,
    build_candidate,
    peaks,
    stage_cost,
)
from llmsim.placement.policy import MoEExpertTraffic, OffloadPolicy
from llmsim.placement.result import OffloadResult
from llmsim.placement.run import OffloadRun
from llmsim.placement.runtime import FLEXGEN, Runtime
from llmsim.placement.system import OffloadSystem, build_system

log = logging.getLogger(__name__)

GPU_BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
                   1024, 1536, 2048)
NUM_GPU_BATCHES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

# FlexGen's cost model evaluates a given policy with alpha 1.2 (its peak estimate is conservative)
EVALUATE_MAX_ALPHA = 1.5

_FIX = {
    "gpu": "raise --gpu-mem or --alpha-g, use --compress-w, or shorten --prompt-len",
    "cpu": "raise --cpu-mem or --alpha-c, or give the disk more room (--nvme-mem)",
    "disk": "raise --nvme-mem or --alpha-n, or use --compress-w / --compress-cache",
}


#: the keyword overrides ``solve`` / ``evaluate`` pass on to :func:`build_system` (sizes in bytes)
_MACHINE_KEYS = frozenset(
    name for name, par in inspect.signature(build_system).parameters.items()
    if par.kind is inspect.Parameter.KEYWORD_ONLY
) - {"profile", "efficiency", "host_efficiency", "max_alpha"}


def _workload(model: str | ModelSpec, prompt_len: int, gen_len: int, hardware: Any,
              host: Any, system: OffloadSystem | None, moe_experts: MoEExpertTraffic | str,
              profile: Profile | str | None, efficiency: float | None,
              machine: dict[str, Any], runtime: str | Runtime = FLEXGEN,
              max_alpha: float = 1.0, estimator: str = "calibrated",
              estimator_model: str | None = None,
              max_model_len: int | None = None) -> OffloadRun:
    spec = load_model_spec(model)  # catalog / HF config / llmsim-moe file, as moe-offload
    prof = profile if isinstance(profile, Profile) or profile is None else Profile.load(profile)
    unknown = sorted(set(machine) - _MACHINE_KEYS)
    if unknown:
        raise UnknownNameError("machine override", unknown[0], _MACHINE_KEYS)
    if system is None:
        system = build_system(hardware, host, profile=prof, efficiency=efficiency,
                              max_alpha=max_alpha, **machine)
    elif machine or hardware is not None or host is not None:
        raise ConfigError("give either system= or hardware/host/overrides, not both")
    try:
        traffic = MoEExpertTraffic(moe_experts)
    except ValueError:
        raise ConfigError(f"--moe-experts must be 'all' or 'expected', got {moe_experts!r}"
                          ) from None
    return OffloadRun(spec, system, prompt_len, gen_len, traffic, profile=prof,
                      efficiency=efficiency, runtime=runtime, estimator=estimator,
                      estimator_model=estimator_model, max_model_len=max_model_len)


def placed_fractions(wl: OffloadRun, policy: OffloadPolicy) -> tuple[float, ...]:
    """The six fractions the runtime realises for ``policy`` (the weights' by whole tensors
    for FlexLLMGen: ``OffloadRun.placed_weight_fractions``)."""
    wg, wc = wl.placed_weight_fractions(policy.w_gpu_frac, policy.w_cpu_frac,
                                        policy.compress_weight)
    return (wg, wc) + tuple(policy.fractions[2:])


def _fits(wl: OffloadRun, cm: CandidateModel, fractions: tuple[float, ...]) -> bool:
    pk, limits = peaks(cm, fractions), wl.system.limits()
    return all(pk[st][t] <= limits[t] * (1 + 1e-9) + 1.0 for st in STAGES for t in TIERS)


def _time(cm: CandidateModel, fractions: tuple[float, ...]) -> float:
    return (stage_cost(cm, "prefill", fractions).time_s
            + cm.decode_steps * stage_cost(cm, "decode", fractions).time_s)


#: how many whole-tensor placements around the LP's ``realisable`` tries (towards less GPU,
#: and one step towards and away from the disk)
_GPU_STEPS, _DISK_STEPS = 4, 1


def realisable(wl: OffloadRun, cm: CandidateModel, policy: OffloadPolicy
               ) -> tuple[OffloadPolicy, float] | None:
    """``policy`` (or one with nearby weight fractions) whose placement as the runtime realises
    it fits, with its total time; None when none of them fits.

    The LP's fractions split tensors; FlexLLMGen places them whole
    (:meth:`OffloadRun.placed_weight_fractions`), which can round the GPU share up past its
    limit. The placements it can realise change only at tensor midpoints, so the neighbours
    are the classes between consecutive midpoints: up to ``_GPU_STEPS`` with less GPU, and
    the disk cut one class either way. The fastest that fits wins (its fractions sit in the
    middle of their class, so rounding them to whole percent keeps the placement)."""
    placed = placed_fractions(wl, policy)
    if _fits(wl, cm, placed):
        return policy, _time(cm, placed)
    if not wl.runtime.whole_tensor_placement:
        return None
    mids = sorted({round(m, 9) for m, _ in wl.weight_midpoints(policy.compress_weight)})
    cuts = [0.0] + [(a + b) / 2.0 for a, b in zip(mids, mids[1:], strict=False)] + [100.0]
    disk_cut = 100.0 * policy.w_disk_frac
    gpu_cut = disk_cut + 100.0 * policy.w_cpu_frac
    i0 = sum(m < disk_cut for m in mids)
    j0 = sum(m < gpu_cut for m in mids)
    best: tuple[float, OffloadPolicy] | None = None
    for j in range(j0, min(j0 + _GPU_STEPS, len(cuts) - 1) + 1):
        for i in range(max(0, i0 - _DISK_STEPS), min(i0 + _DISK_STEPS, j) + 1):
            wn, wc = cuts[i] / 100.0, (cuts[j] - cuts[i]) / 100.0
            cand = policy.with_fractions((max(0.0, 1.0 - wn - wc), wc)
                                         + tuple(policy.fractions[2:]))
            f = placed_fractions(wl, cand)
            if not _fits(wl, cm, f):
                continue
            t = _time(cm, f)
            if best is None or t < best[0]:
                best = (t, cand)
    return None if best is None else (best[1], best[0])


def _result(wl: OffloadRun, cm: CandidateModel, policy: OffloadPolicy,
            candidates: int = 0) -> OffloadResult:
    f = placed_fractions(wl, policy)
    pre = stage_cost(cm, "prefill", f)
    dec = stage_cost(cm, "decode", f)
    steps = cm.decode_steps
    total = pre.time_s + steps * dec.time_s
    pk = peaks(cm, f)
    limits = wl.system.limits()
    reasons = []
    for tier in TIERS:
        for stage in STAGES:
            need = pk[stage][tier]
            if need > limits[tier] * (1 + 1e-9) + 1.0:
                reasons.append(
                    f"{tier} peak in {stage} {units.fmt_bytes(need)} exceeds the limit "
                    f"{units.fmt_bytes(limits[tier])} ({wl.system.alphas()[tier]:g} x "
                    f"{units.fmt_bytes(wl.system.capacities()[tier])}) by "
                    f"{units.fmt_bytes(need - limits[tier])}")
                break
    moved = {st: cm.weight_moved_bytes[st] * (1.0 - f[0]) for st in STAGES}
    return OffloadResult(
        model=wl.model.name, hardware=wl.system.hardware.name, host=wl.system.host.name,
        runtime=wl.runtime.name,
        prompt_len=wl.prompt_len, gen_len=wl.gen_len, moe_experts=wl.moe_traffic.value,
        policy=policy, feasible=not reasons, reason="; ".join(reasons),
        throughput_tokens_per_s=policy.block_size * wl.gen_len / total if total > 0 else 0.0,
        total_time_s=total, prefill_time_s=pre.time_s, decode_time_s=steps * dec.time_s,
        decode_step_time_s=dec.time_s,
        peak_gpu_bytes=max(pk[st]["gpu"] for st in STAGES),
        peak_cpu_bytes=max(pk[st]["cpu"] for st in STAGES),
        peak_disk_bytes=max(pk[st]["disk"] for st in STAGES),
        peak_bytes=pk, limit_bytes=limits, weight_bytes=cm.weight_bytes,
        kv_cache_bytes=cm.kv_bytes, weight_moved_bytes_per_step=moved, prefill=pre,
        decode=dec, system=wl.system, candidates_evaluated=candidates,
        weight_placement={"gpu": f[0], "cpu": f[1], "disk": max(0.0, 1.0 - f[0] - f[1])},
    )


def evaluate(model: str | ModelSpec, policy: OffloadPolicy, prompt_len: int = 512,
             gen_len: int = 32, *, hardware: Any = None, host: Any = None,
             system: OffloadSystem | None = None,
             moe_experts: MoEExpertTraffic | str = MoEExpertTraffic.ALL,
             profile: Profile | str | None = None, efficiency: float | None = None,
             runtime: str | Runtime = FLEXGEN, estimator: str = "calibrated",
             estimator_model: str | None = None, max_model_len: int | None = None,
             **machine: Any) -> OffloadResult:
    """Throughput, peak memory per tier and feasibility of ``policy``.

    ``machine`` overrides the catalog values (``gpu_mem_bytes``, ``cpu_mem_bytes``,
    ``disk_mem_bytes``, ``h2d_bytes_per_s``, ..., ``alpha_g/alpha_c/alpha_n``; see
    :func:`llmsim.placement.system.build_system`). ``profile`` / ``efficiency`` calibrate the GPU
    (kernels) and the host (its ``host:`` entry) alike; ``system=`` fixes the host side.
    ``runtime``: ``flexgen`` (FlexLLMGen's implementation, the default) or ``fused``
    (``runtime.py``). An infeasible policy is returned with ``feasible=False`` and the tier,
    stage and excess in ``reason``.
    """
    if not isinstance(policy, OffloadPolicy):
        raise ConfigError(f"policy must be an OffloadPolicy, got {type(policy).__name__}")
    wl = _workload(model, prompt_len, gen_len, hardware, host, system, moe_experts, profile,
                   efficiency, machine, runtime, max_alpha=EVALUATE_MAX_ALPHA,
                   estimator=estimator, estimator_model=estimator_model,
                   max_model_len=max_model_len)
    return evaluate_run(wl, policy)


def evaluate_run(wl: OffloadRun, policy: OffloadPolicy) -> OffloadResult:
    """:func:`evaluate` on a prepared :class:`OffloadRun` (e.g. one re-priced under other host
    efficiencies with ``OffloadRun.with_system``: the host calibration fit does that)."""
    if not isinstance(policy, OffloadPolicy):
        raise ConfigError(f"policy must be an OffloadPolicy, got {type(policy).__name__}")
    return _result(wl, build_candidate(wl, policy), policy)


def _grid(values: Iterable[int] | None, default: tuple[int, ...], flag: str) -> list[int]:
    """The candidate values of one batch dimension (``flag`` names it in errors)."""
    if values is not None and (isinstance(values, (str, bytes, dict))
                               or not isinstance(values, Iterable)):
        raise ConfigError(f"{flag} takes a list of candidate values (e.g. [{values!r}]), got "
                          f"{type(values).__name__} {values!r}; leave it out to search")
    given = list(default if values is None else values)
    if not given:
        raise ConfigError(f"{flag} needs at least one value")
    for v in given:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{flag} must be an integer >= 1, got {v!r}; leave it out to "
                              "search")
    return sorted(set(given))


def solve(model: str | ModelSpec, prompt_len: int = 512, gen_len: int = 32, *,
          hardware: Any = None, host: Any = None, system: OffloadSystem | None = None,
          compress_weight: bool = False, compress_cache: bool = False,
          cpu_cache_compute: bool | None = None, overlap: bool = True, pin_weight: bool = True,
          gpu_batch_sizes: Iterable[int] | None = None,
          num_gpu_batches: Iterable[int] | None = None,
          moe_experts: MoEExpertTraffic | str = MoEExpertTraffic.ALL,
          profile: Profile | str | None = None, efficiency: float | None = None,
          runtime: str | Runtime = FLEXGEN, estimator: str = "calibrated",
          estimator_model: str | None = None, max_model_len: int | None = None,
          **machine: Any) -> OffloadResult:
    """The policy with the highest generation throughput within every tier's memory limit.

    ``cpu_cache_compute`` None tries both (attention on the GPU, and on the CPU for CPU/disk
    resident cache); compression and ``pin_weight`` are the user's choice, as in FlexGen.
    Candidate batch sizes default to :data:`GPU_BATCH_SIZES` x :data:`NUM_GPU_BATCHES`. Raises
    :class:`InfeasibleError` naming the short tier and by how much when nothing fits.
    """
    gbs_grid = _grid(gpu_batch_sizes, GPU_BATCH_SIZES, "--gpu-batch-size")
    ngb_grid = _grid(num_gpu_batches, NUM_GPU_BATCHES, "--num-gpu-batches")
    wl = _workload(model, prompt_len, gen_len, hardware, host, system, moe_experts, profile,
                   efficiency, machine, runtime, estimator=estimator,
                   estimator_model=estimator_model, max_model_len=max_model_len)
    cpu_options = [False, True] if cpu_cache_compute is None else [bool(cpu_cache_compute)]
    best: tuple[float, OffloadPolicy, CandidateModel, LPSolution] | None = None
    count = 0
    for cpu in cpu_options:
        for gbs in gbs_grid:
            feasible_here = False
            for ngb in ngb_grid:
                template = OffloadPolicy(gbs, ngb, compress_weight=compress_weight,
                                         compress_cache=compress_cache, cpu_cache_compute=cpu,
                                         overlap=overlap, pin_weight=pin_weight)
                cm = build_candidate(wl, template)
                sol = solve_candidate(cm, wl.system)
                count += 1
                if sol is None:
                    break
                feasible_here = True
                found = realisable(wl, cm, template.with_fractions(sol.fractions))
                if found is None:  # no whole-tensor placement near the LP's fits
                    continue
                policy, total = found
                tput = policy.block_size * gen_len / total
                log.debug("%s: %.4g tokens/s", policy.describe(), tput)
                if best is None or tput > best[0] * (1 + 1e-9) or (
                        tput >= best[0] * (1 - 1e-9)
                        and policy.block_size < best[1].block_size):
                    best = (tput, policy, cm, sol)
            if not feasible_here:
                break
    if best is None:
        raise _infeasible(wl, gbs_grid[0], ngb_grid[0], cpu_options, compress_weight,
                          compress_cache, overlap, pin_weight)
    _, policy, cm, sol = best
    refined = policy.with_fractions(refine(cm, wl.system, sol).fractions)
    if _fits(wl, cm, placed_fractions(wl, refined)) and (
            _time(cm, placed_fractions(wl, refined))
            <= _time(cm, placed_fractions(wl, policy)) * (1 + 1e-9)):
        policy = refined
    if len(gbs_grid) > 1 and policy.gpu_batch_size == gbs_grid[-1] or \
            len(ngb_grid) > 1 and policy.num_gpu_batches == ngb_grid[-1]:
        log.warning("the best policy (%s) sits at the edge of the candidate grid; larger "
                    "batches may do better", policy.describe())
    log.info("best of %d candidates: %s", count, policy.describe())
    return _result(wl, cm, policy, candidates=count)


def _infeasible(wl: OffloadRun, gbs: int, ngb: int, cpu_options: list[bool], cw: bool, cq: bool,
                overlap: bool, pin_weight: bool = True) -> InfeasibleError:
    """Which tier is short (and by how much) at the least-demanding candidate."""
    best = None
    for cpu in cpu_options:
        cm = build_candidate(wl, OffloadPolicy(gbs, ngb, compress_weight=cw, compress_cache=cq,
                                               cpu_cache_compute=cpu, overlap=overlap,
                                               pin_weight=pin_weight))
        sf = shortfall(cm, wl.system)
        score = sum(sf.short_bytes.values()) + 1e6 * sf.short_bytes["gpu"]
        if best is None or score < best[0]:
            best = (score, sf)
    assert best is not None
    sf = best[1]
    sysm = wl.system
    parts = []
    for tier in TIERS:
        short = sf.short_bytes[tier]
        if short <= 0:
            continue
        parts.append(
            f"the {tier} tier is short by {units.fmt_bytes(short)} (needs "
            f"{units.fmt_bytes(sf.need_bytes[tier])}, usable {sysm.alphas()[tier]:g} x "
            f"{units.fmt_bytes(sysm.capacities()[tier])} = {units.fmt_bytes(sysm.limits()[tier])}"
            f"); {_FIX[tier]}")
    detail = "; ".join(parts) or "no candidate satisfies the memory limits"
    exc = InfeasibleError(
        f"no feasible offloading policy for {wl.model.name} (prompt {wl.prompt_len}, "
        f"gen {wl.gen_len}) even at gpu batch {gbs} x {ngb}: {detail}")
    exc.short_bytes = dict(sf.short_bytes)  # type: ignore[attr-defined]
    return exc
