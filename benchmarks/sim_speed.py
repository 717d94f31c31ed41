"""Serving-simulator speed: simulated requests per wall-second and peak memory.

OffloadRun: the Azure LLM inference trace 2023, conversation (19,366 requests over one hour,
``../shared/data/traces/azure_2023/AzureLLMInferenceTrace_conv.csv``), replayed at its own
timestamps and *tiled* with time offsets to reach 100k requests (tile k is shifted by k x (the
trace span + one mean gap)); without ``../shared`` the packaged 2,000-request sample is tiled
instead. Model Llama-3.1-8B on one H100-SXM (bf16), continuous batching (vLLM v0 style) and
chunked prefill (vLLM v1 style), analytic step-time model.

Each case runs in a fresh subprocess so that its peak RSS is its own: ``rss_before_mb`` is
measured after imports, trace loading and setup; ``peak_rss_mb`` is the process maximum
(``ru_maxrss``); the difference is what the simulation itself added. ``step_time_s`` is the
wall time spent inside the cost model pricing prefill / mixed steps; ``sim s`` in the table is
the rest, the simulator's own time. On a shared machine, ``--repeat N`` runs every case ``N``
times (each in a fresh process) and keeps the fastest (as ``timeit`` does).

Usage::

    python benchmarks/sim_speed.py            # 10k and 100k requests, both schedulers
    python benchmarks/sim_speed.py --smoke    # < 30 s (CI)
    python benchmarks/sim_speed.py --repeat 3 --out results.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from importlib import resources
from pathlib import Path

SHARED_TRACE = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "traces"
                / "azure_2023" / "AzureLLMInferenceTrace_conv.csv")


def default_trace() -> tuple[str, str]:
    if SHARED_TRACE.exists():
        return str(SHARED_TRACE.resolve()), "Azure 2023 conversation trace (19,366 requests)"
    sample = resources.files("llmsim.data").joinpath("traces", "azure_conv_2023_sample.csv")
    return str(sample), "packaged Azure 2023 conversation sample (2,000 requests)"


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mb()


def run_case(case: dict, queue: mp.Queue) -> None:
    """Child process: one simulation, timed."""
    from llmsim.serving.config import load_config
    from llmsim.serving.results import SimulationReport
    from llmsim.serving.simulator import ServingSetup, Simulation

    cfg = load_config({
        "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "scheduler": {"name": case["scheduler"]},
        "workload": {"trace": case["trace"], "num_requests": case["requests"],
                     "rate_scale": case["rate_scale"]},
    })
    t_setup = time.perf_counter()
    setup = ServingSetup(cfg)
    sim = Simulation(setup)
    setup_s = time.perf_counter() - t_setup
    priced = [0.0, 0]
    step_s = sim.pricer.step_s

    def timed(*args, **kwargs):  # wall time inside the cost model for prefill / mixed steps
        t = time.perf_counter()
        out = step_s(*args, **kwargs)
        priced[0] += time.perf_counter() - t
        priced[1] += 1
        return out

    sim.pricer.step_s = timed
    rss_before = _current_rss_mb()
    cpu0 = time.process_time()
    sim.run()
    cpu = time.process_time() - cpu0
    report = SimulationReport.from_simulation(sim)
    s = report.summary()
    queue.put({
        **case,
        "wall_s": sim.wall_s, "cpu_s": cpu, "setup_s": setup_s,
        "requests_per_wall_s": case["requests"] / sim.wall_s,
        "step_time_s": priced[0], "priced_steps": priced[1],
        "events": sim.loop.num_events, "engine_steps": s["num_steps"],
        "simulated_s": s["duration_s"], "completed": s["num_completed"],
        "rejected": s["num_rejected"], "output_tokens_per_s": s["output_tokens_per_s"],
        "ttft_p50_s": s["ttft_s"]["p50"], "tpot_p50_s": s["tpot_s"]["p50"],
        "rss_before_mb": rss_before, "peak_rss_mb": _rss_mb(),
        "rss_growth_mb": _rss_mb() - rss_before,
    })


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes (< 30 s), for CI")
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--trace", help="trace file (default: the Azure 2023 conversation trace)")
    ap.add_argument("--sizes", type=int, nargs="+", help="request counts")
    ap.add_argument("--schedulers", nargs="+", default=["continuous", "chunked"])
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every case this many times and keep the fastest")
    args = ap.parse_args(argv)
    trace, trace_desc = (args.trace, args.trace) if args.trace else default_trace()
    sizes = args.sizes or ([2_000, 10_000] if args.smoke else [10_000, 100_000])
    ctx = mp.get_context("spawn")
    results = []
    print(f"trace: {trace_desc}, tiled with time offsets beyond its length; "
          f"rate scale {args.rate_scale:g}")
    print("llama-3.1-8b on 1x h100-sxm (bf16), analytic step-time model; one process per case")
    if args.repeat > 1:
        print(f"best of {args.repeat} runs per case")
    header = (f"{'scheduler':<11} {'requests':>9} {'sim time':>9} {'wall s':>7} {'cpu s':>7} "
              f"{'req/wall-s':>10} {'cost model s':>12} {'sim s':>6} {'events':>8} "
              f"{'steps':>9} {'peak RSS MB':>11} {'RSS growth MB':>13}")
    print(header)
    print("-" * len(header))
    for scheduler in args.schedulers:
        for n in sizes:
            case = {"scheduler": scheduler, "requests": n, "trace": trace,
                    "rate_scale": args.rate_scale}
            runs = []
            for _ in range(max(args.repeat, 1)):
                q: mp.Queue = ctx.Queue()
                proc = ctx.Process(target=run_case, args=(case, q))
                proc.start()
                runs.append(_result(proc, q, case))
            res = min(runs, key=lambda r: r["wall_s"])
            res["runs_wall_s"] = [r["wall_s"] for r in runs]
            results.append(res)
            print(f"{scheduler:<11} {n:>9,} {res['simulated_s']:>8,.0f}s {res['wall_s']:>7.2f} "
                  f"{res['cpu_s']:>7.2f} {res['requests_per_wall_s']:>10,.0f} "
                  f"{res['step_time_s']:>12.2f} {res['wall_s'] - res['step_time_s']:>6.2f} "
                  f"{res['events']:>8,} {res['engine_steps']:>9,} "
                  f"{res['peak_rss_mb']:>11.0f} {res['rss_growth_mb']:>13.1f}", flush=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(),
               "processor": platform.processor() or _cpu_model(), "cpus": os.cpu_count(),
               "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    print(f"machine: {machine['processor']}, {machine['cpus']} CPUs, Python "
          f"{machine['python']}, load average {machine['load_avg_1m']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"trace": trace_desc, "machine": machine,
                                              "results": results}, indent=2) + "\n")
    return 0


def _result(proc, queue: mp.Queue, case: dict) -> dict:
    """The child's result; a child that dies (exception, OOM kill) fails the run, never hangs it."""
    import queue as queue_mod

    while True:
        try:
            res = queue.get(timeout=1.0)
            proc.join()
            return res
        except queue_mod.Empty:
            if not proc.is_alive():
                proc.join()
                try:  # it may have put its result just before exiting
                    return queue.get(timeout=1.0)
                except queue_mod.Empty:
                    pass
                msg = (f"sim_speed: case {case['scheduler']} x {case['requests']} failed "
                       f"(child exit code {proc.exitcode}); see its traceback above")
                raise SystemExit(msg) from None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
