"""Serving-simulator speed: simulated requests per wall-second and peak memory.

OffloadRun: the Azure LLM inference trace 2023, conversation (19,366 requests over one hour,
``../shared/data/traces/azure_2023/AzureLLMInferenceTrace_conv.csv``), replayed at its own
timestamps and *tiled* with time offsets to reach 100k requests (tile k is shifted by k x (the
trace span + one mean gap)); without ``../shared`` the packaged 2,000-request sample is tiled
instead. Model Llama-3.1-8B on one H100-SXM (bf16), continuous batching (vLLM v0 style) and
chunked prefill (vLLM v1 style), analytic step-time model.

Each case runs in a fresh subprocess so that its peak RSS is its own: ``rss_before_mb`` is
measured after imports, trace loading and setup; ``peak_rss_mb`` is the process maximum
(``ru_maxrss``) over the run, its report and writing ``requests.csv`` (as ``simulate --out``
does); ``RSS B/req`` is (peak - the RSS after imports, before the workload) / requests.

``--rss-check N`` (default 1,000,000; by hand) runs the chunked case at N / 8, N / 4, N / 2 and
N requests, fits a line to peak RSS over requests (least squares: constant costs go to its
intercept; its worst residual is printed), projects 10 million requests and fails (exit 1)
when that passes 1 GB; with N >= 10 million the measured peak at N decides. ``--smoke``
prints it at 50,000 (CI; not enforced there: below the 32,768-row write slice the line
includes the slice's growth).

``step_time_s`` is the wall time spent inside the cost model pricing prefill / mixed steps;
``sim s`` in the table is
the rest, the simulator's own time. On a shared machine, ``--repeat N`` runs every case ``N``
times (each in a fresh process) and keeps the fastest (as ``timeit`` does).

Usage::

    python benchmarks/sim_speed.py            # 10k and 100k requests, both schedulers
    python benchmarks/sim_speed.py --smoke    # < 30 s (CI)
    python benchmarks/sim_speed.py --repeat 3 --out results.json
    python benchmarks/sim_speed.py --rss-check 1000000   # the 10M-requests-in-1-GB check
    python benchmarks/sim_speed.py --rss-check 10000000 --rss-single   # measured at 10M
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
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
    from llmsim.serving.setup import ServingSetup
    from llmsim.serving.simulator import Simulation

    cfg = load_config({
        "model": "llama-3.1-8b", "hardware": "h100-sxm",
        "scheduler": {"name": case["scheduler"]},
        "workload": {"trace": case["trace"], "num_requests": case["requests"],
                     "rate_scale": case["rate_scale"]},
    })
    rss_start = _current_rss_mb()  # imports done; the workload not built yet
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
    with tempfile.TemporaryDirectory() as tmp:  # the per-request table, as --out writes it
        report.write(Path(tmp) / "run", plots=False)
    peak = _rss_mb()
    queue.put({
        **case,
        "wall_s": sim.wall_s, "cpu_s": cpu, "setup_s": setup_s,
        "requests_per_wall_s": case["requests"] / sim.wall_s,
        "step_time_s": priced[0], "priced_steps": priced[1],
        "events": sim.loop.num_events, "engine_steps": s["num_steps"],
        "simulated_s": s["duration_s"], "completed": s["num_completed"],
        "rejected": s["num_rejected"], "output_tokens_per_s": s["output_tokens_per_s"],
        "ttft_p50_s": s["ttft_s"]["p50"], "tpot_p50_s": s["tpot_s"]["p50"],
        "rss_start_mb": rss_start, "rss_before_mb": rss_before, "peak_rss_mb": peak,
        "rss_growth_mb": peak - rss_before,
        "rss_bytes_per_request": (peak - rss_start) * 2**20 / case["requests"],
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
    ap.add_argument("--rss-check", type=int, nargs="?", const=1_000_000, metavar="N",
                    help="project 10M requests' RSS from N/8, N/4, N/2 and N (default 1M) "
                         "and fail above 1 GB (N >= 10M: measured)")
    ap.add_argument("--rss-single", action="store_true",
                    help="with --rss-check N: run N only (no line; N >= 10M is measured)")
    args = ap.parse_args(argv)
    if args.rss_check or args.smoke:
        code = rss_check(args.rss_check or 50_000, args.trace or default_trace()[0],
                         args.rate_scale, single=args.rss_single)
        if args.rss_check:
            return code  # --smoke: printed only (below the 32k-row write slice, the slope
            # still counts the slice's growth)
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
              f"{'steps':>9} {'peak RSS MB':>11} {'RSS growth MB':>13} {'RSS B/req':>9}")
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
                  f"{res['peak_rss_mb']:>11.0f} {res['rss_growth_mb']:>13.1f} "
                  f"{res['rss_bytes_per_request']:>9.0f}", flush=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(),
               "processor": platform.processor() or _cpu_model(), "cpus": os.cpu_count(),
               "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    print(f"machine: {machine['processor']}, {machine['cpus']} CPUs, Python "
          f"{machine['python']}, load average {machine['load_avg_1m']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"trace": trace_desc, "machine": machine,
                                              "results": results}, indent=2) + "\n")
    return 0


#: the memory goal: 10 million requests in under 1 GB of RSS
RSS_GOAL_REQUESTS = 10_000_000
RSS_GOAL_BYTES = 1e9


def run_once(case: dict) -> dict:
    """One case in a fresh process (spawned: its peak RSS is its own)."""
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=run_case, args=(case, q))
    proc.start()
    return _result(proc, q, case)


#: the sizes of an RSS check of N requests, as fractions of N (a line fitted through them)
RSS_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


def rss_check(n: int, trace: str, rate_scale: float, single: bool = False) -> int:
    """Peak RSS at n / 8, n / 4, n / 2 and n requests (chunked prefill, the tiled trace, each in
    a fresh process); a least-squares line through the four points (peak = a + slope x
    requests; constant costs go to ``a``) projects RSS_GOAL_REQUESTS, the largest measured
    point is shown beside it with the line's worst residual; when n is at least
    RSS_GOAL_REQUESTS the measured peak decides instead. 1 (fail) above RSS_GOAL_BYTES.
    ``single``: n only."""
    import numpy as np

    sizes = [n] if single else sorted({max(int(n * f), 1) for f in RSS_FRACTIONS})
    runs = []
    for k in sizes:  # each printed as it ends (the largest take minutes)
        r = run_once({"scheduler": "chunked", "requests": k, "trace": trace,
                      "rate_scale": rate_scale})
        runs.append(r)
        print(f"rss check: {r['requests']:>10,} requests  peak RSS {r['peak_rss_mb']:7.1f} MB "
              f"(after imports {r['rss_start_mb']:.1f} MB), {r['rss_bytes_per_request']:,.0f} "
              f"bytes/request over it, wall {r['wall_s']:.1f} s", flush=True)
    mb = 2**20
    x = np.array([r["requests"] for r in runs], dtype=float)
    y = np.array([r["peak_rss_mb"] * mb for r in runs])
    slope, intercept = np.polyfit(x, y, 1) if len(runs) > 1 else (0.0, y[0])
    worst = float(np.max(np.abs(y - (intercept + slope * x)))) if len(runs) > 1 else 0.0
    largest = runs[-1]
    if largest["requests"] >= RSS_GOAL_REQUESTS or single:  # measured, not projected
        peak = largest["peak_rss_mb"] * mb
        ok = peak <= RSS_GOAL_BYTES
        print(f"rss check: measured peak RSS at {largest['requests']:,} requests "
              f"{peak / 1e9:.3f} GB (goal < {RSS_GOAL_BYTES / 1e9:g} GB at "
              f"{RSS_GOAL_REQUESTS:,}): {'ok' if ok else 'FAIL'}", flush=True)
        return 0 if ok else 1
    projected = intercept + slope * RSS_GOAL_REQUESTS
    ok = projected <= RSS_GOAL_BYTES
    print(f"rss check: line through {len(runs)} sizes: {intercept / 1e6:,.1f} MB + "
          f"{slope:,.1f} bytes/request (worst residual {worst / 1e6:.1f} MB); projected peak "
          f"RSS at {RSS_GOAL_REQUESTS:,} requests {projected / 1e9:.3f} GB (goal < "
          f"{RSS_GOAL_BYTES / 1e9:g} GB): {'ok' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


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
