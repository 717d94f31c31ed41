"""Speed of ``llmsim search``: layouts per second of the analytic stage (cold: building every
step model; warm: cached) for the aggregated and the disaggregated (xPyD) layouts, plans per
second of the simulation stage with the local backend at 1 and 2 workers and on Ray (when
installed), xPyD layouts per second of their static-estimate stage (serving confirmation
off), and one full search over three GPU types (``--disagg auto``, the default: xPyD
survivors confirmed in the serving simulation), timed, with what each layout kind cost.

    PYTHONPATH=src python benchmarks/search_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

from llmsim.search import run_search
from llmsim.search.analytic import AnalyticStage, Lengths
from llmsim.search.config import load_search_config
from llmsim.search.disagg import verdicts as layout_verdicts
from llmsim.search.space import disagg_layouts, layouts
from llmsim.workload.stream import build_workload

FULL = {
    "model": "llama-3.1-70b",
    "workload": {"trace": "azure-conv", "rate": 10, "num_requests": 300},
    "slo": "ttft_p99=1s,tpot_p99=50ms",
    "space": {"gpus": ["h100-sxm", "h200-sxm", "mi300x"], "max_gpus": 64},
    "search": {"intervals": False},
}


def analytic_speed() -> None:
    cfg = load_search_config(FULL)
    wl = build_workload(cfg.workload.model_copy(update={"num_requests": 300}))
    lengths = Lengths.of(wl.input_tokens, wl.output_tokens, 131072)
    lays = layouts(cfg.space)
    stage = AnalyticStage(cfg.deployment_args(), lengths, cfg.targets, rate=cfg.load)
    t0 = time.perf_counter()
    layout_verdicts(stage, lays)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    layout_verdicts(stage, lays)
    warm = time.perf_counter() - t0
    plans = len({lay.plan.step_key for lay in lays})
    print(f"analytic stage, one core: {len(lays):,} layouts ({plans} step models)")
    print(f"  cold (builds every step model): {cold:.2f} s = {len(lays) / cold:,.0f} layouts/s")
    print(f"  warm (cached):                  {warm:.3f} s = {len(lays) / warm:,.0f} layouts/s")
    dis = disagg_layouts(cfg.space)
    t0 = time.perf_counter()
    layout_verdicts(stage, dis)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    layout_verdicts(stage, dis)
    warm = time.perf_counter() - t0
    print(f"analytic stage, one core, xPyD: {len(dis):,} disaggregated layouts (after the "
          f"aggregated ones: step models built)")
    print(f"  first pass (pool bounds):       {cold:.2f} s = {len(dis) / cold:,.0f} layouts/s")
    print(f"  warm (cached):                  {warm:.3f} s = {len(dis) / warm:,.0f} layouts/s")


def simulation_speed(backend: str, workers: int) -> None:
    cfg = {**FULL, "space": {"gpus": ["h100-sxm"], "tp": [2, 4, 8], "pp": [1],
                             "max_num_seqs": [128, 256], "max_num_batched_tokens": [8192],
                             "weight_dtype": ["bf16", "fp8"], "kv_dtype": ["bf16"],
                             "max_gpus": 16, "disagg": "off"},
           "search": {"intervals": False, "prune": False}}
    t0 = time.perf_counter()
    res = run_search(cfg, backend=backend, workers=workers)
    wall = time.perf_counter() - t0
    n, sims = res.counts["plans_simulated"], res.counts["simulations"]
    print(f"simulation stage, {backend} x{workers}: {n} plans ({sims} simulations of 300 "
          f"requests) in {res.timing['simulate_wall_s']:.1f} s = "
          f"{n / res.timing['simulate_wall_s']:.2f} plans/s, "
          f"{sims / res.timing['simulate_wall_s']:.1f} simulations/s (wall {wall:.1f} s); "
          f"best {res.best['layout'] if res.best else None}")


def disagg_speed() -> None:
    cfg = {**FULL, "space": {"gpus": ["h100-sxm", "h200-sxm"], "tp": [2, 4, 8],
                             "max_num_seqs": [256], "max_num_batched_tokens": [8192],
                             "weight_dtype": ["fp8"], "kv_dtype": ["fp8"], "max_gpus": 32,
                             "disagg": "only"},
           # the static estimate alone (confirming every layout in the serving simulation
           # would time the simulator, not this stage)
           "search": {"intervals": False, "prune": False, "disagg_serving": False}}
    t0 = time.perf_counter()
    res = run_search(cfg, workers=1)
    wall = time.perf_counter() - t0
    n, est = res.counts["disaggregated_estimated"], res.counts["static_estimates"]
    s = res.timing["simulate_wall_s"]
    print(f"xPyD static-estimate stage, local x1: {n} layouts ({est} estimates) in {s:.1f} s = "
          f"{n / s:.1f} layouts/s, {est / s:.0f} estimates/s (wall {wall:.1f} s); best "
          f"{res.best['layout'] if res.best else None}")


def full_search(workers: int) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_search(FULL, workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    c, t = res.counts, res.timing
    print(f"full search, 3 GPU types, local x{workers}: {c['layouts']:,} layouts, "
          f"{c['plans']} plans after the analytic stage, {c['plans_simulated']} simulated "
          f"({c['simulations']} simulations), {c['plans_pruned_by_bound']} pruned by bound; "
          f"analytic {t['analytic_wall_s']:.1f} s, simulation {t['simulate_wall_s']:.1f} s, "
          f"total {wall:.1f} s wall, {cpu:.1f} s CPU of this process"
          f"{' (workers not counted)' if workers > 1 else ''}")
    ts = t["task_s"]
    print(f"  of which xPyD: {c['disaggregated_layouts']:,} layouts, "
          f"{c['disaggregated_estimated']} estimated ({c['static_estimates']} estimates) in "
          f"{ts['disaggregated']:.1f} s; aggregated simulations {ts['aggregated']:.1f} s")
    b = res.best
    print(f"  best: {b['layout']} goodput {b['goodput_rps_per_gpu']:.3g} req/s/GPU" if b
          else "  best: none")
    bd = res.best_disaggregated
    if bd:  # only when no xPyD row was serving-confirmed (run.py: comparison groups)
        print(f"  best xPyD (static estimate only, ranked on its own): {bd['layout']} goodput "
              f"{bd['goodput_rps_per_gpu']:.3g} req/s/GPU")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="analytic stage only")
    args = ap.parse_args()
    analytic_speed()
    if args.quick:
        return
    for workers in (1, 2):
        simulation_speed("local", workers)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("simulation stage, ray: skipped (Ray is not installed)")
    else:
        simulation_speed("ray", 2)
        ray.shutdown()
    disagg_speed()
    full_search(1)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
