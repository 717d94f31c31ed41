"""Predicted vs published FlexLLMGen throughput: OPT-6.7B / 30B / 175B on one T4 with CPU/disk
offload (prompt 512, 32 generated tokens).

Two predictions per published FlexLLMGen number (``tests/golden/flexgen_throughput.csv``, copied
from FMInference/FlexLLMGen@004ffef8, Apache-2.0; see tests/golden/FLEXGEN_ATTRIBUTION.md):

(a) ``evaluate``: llmsim's cost model at the published policy (GPU batch size, number of GPU
    batches, placement percentages, compression, CPU attention from the repo's
    ``benchmark/flexllmgen/bench_suite.py``);
(b) ``solve``: llmsim's own best policy for the same machine, model and compression flags.

Machine: ``--hardware t4 --host gcp-t4-flexgen`` (datasheet values: 65 TFLOPS fp16, 320 GB/s,
PCIe Gen3 16 GB/s per direction, 2.65 GiB/s disk read, 128 GB/s DRAM, 2 TFLOPS fp32 CPU) and
llmsim's shipped GPU calibration profile. Nothing is fitted to the published throughput.

``--sensitivity`` adds a third column, clearly NOT a validation: (a) again with the link and CPU
rates that the FlexGen authors fitted on this machine from their own runs
(``experimental/cost_model.py`` at the same commit: CPU->GPU 12.89, GPU->CPU 0.97 (cache),
disk read 0.473, disk write 0.746 GiB/s, CPU 0.0123 TFLOPS). It shows how much of the error is
the gap between datasheet rates and what FlexLLMGen's runtime achieves.

    .venv/bin/python benchmarks/offload_accuracy.py [--smoke] [--sensitivity] [--out F.json]
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import time
from pathlib import Path

from llmsim import units
from llmsim.errors import LLMSimError
from llmsim.io import write_json
from llmsim.offload import OffloadPolicy, evaluate, solve

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "flexgen_throughput.csv"
SHARED = REPO.parent / "shared" / "data" / "offload" / "flexllmgen"
MACHINE = {"hardware": "t4", "host": "gcp-t4-flexgen"}
# FlexGen authors' fitted constants for this T4 box (GiB-based, as their utils define GB).
FLEXGEN_FITTED = {
    "h2d_bytes_per_s": 12.89 * units.GiB, "d2h_bytes_per_s": 0.97 * units.GiB,
    "disk_read_bytes_per_s": 0.473 * units.GiB, "disk_write_bytes_per_s": 0.746 * units.GiB,
    "cpu_flops_per_s": 0.0123e12,
}
SMOKE_GRID = {"gpu_batch_sizes": (1, 2, 4, 8, 16, 32, 48, 64, 96, 128),
              "num_gpu_batches": (1, 2, 3, 4, 8, 16)}


def load_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def check_against_shared(rows: list[dict[str, str]]) -> str:
    """Cross-check the copied numbers with ../shared when it is there."""
    readme = SHARED / "README_performance_results.md"
    if not readme.is_file():
        return "../shared not found: using the committed copy only"
    text = readme.read_text(encoding="utf-8")
    names = {"hf-accelerate": "Hugging Face Accelerate",
             "deepspeed-zero-inference": "DeepSpeed ZeRO-Inference", "petals": "Petals",
             "flexllmgen": "FlexLLMGen", "flexllmgen-compression": "FlexLLMGen with Compression"}
    order = ("opt-6.7b", "opt-30b", "opt-175b")
    published: dict[tuple[str, str], float] = {}
    for key, label in names.items():
        match = re.search(r"^\|\s*" + re.escape(label) + r"\s*\|(.+)$", text, re.M)
        if not match:
            raise SystemExit(f"row {label!r} not found in {readme}")
        cells = [c for c in match.group(1).split("|") if c.strip()]
        for model, cell in zip(order, cells, strict=True):
            published[(key, model)] = float(re.sub(r"[*]", "", cell).split()[0])
    for r in rows:
        want = published[(r["system"], r["model"])]
        if not math.isclose(float(r["throughput_tokens_per_s"]), want):
            raise SystemExit(f"golden copy disagrees with ../shared for {r['system']} "
                             f"{r['model']}: {r['throughput_tokens_per_s']} vs {want}")
    return f"golden copy matches {readme.relative_to(REPO.parent)} ({len(rows)} numbers)"


def _policy(row: dict[str, str]) -> OffloadPolicy:
    flag = {"true": True, "false": False}
    return OffloadPolicy.from_percent(
        int(row["gpu_batch_size"]), int(row["num_gpu_batches"]),
        [float(v) for v in row["percent"].split()],
        compress_weight=flag[row["compress_weight"]], compress_cache=flag[row["compress_cache"]],
        cpu_cache_compute=flag[row["cpu_cache_compute"]])


def _err(pred: float, meas: float) -> float:
    return 100.0 * (pred - meas) / meas


def run(smoke: bool, sensitivity: bool) -> dict[str, object]:
    rows = load_rows(GOLDEN)
    cases = [r for r in rows if r["system"].startswith("flexllmgen")]
    out = []
    grid = SMOKE_GRID if smoke else {}
    for r in cases:
        meas = float(r["throughput_tokens_per_s"])
        prompt, gen = int(r["prompt_len"]), int(r["gen_len"])
        policy = _policy(r)
        ev = evaluate(r["model"], policy, prompt, gen, **MACHINE)
        rec: dict[str, object] = {
            "system": r["system"], "model": r["model"], "published_tokens_per_s": meas,
            "published_block": int(r["effective_batch_size"]), "tier": r["lowest_tier"],
            "published_policy": policy.describe(),
            "eval_tokens_per_s": ev.throughput_tokens_per_s,
            "eval_error_pct": _err(ev.throughput_tokens_per_s, meas),
            "eval_fits": ev.feasible, "eval_reason": ev.reason,
            "eval_bound": f"{ev.prefill.bound}/{ev.decode.bound}",
            "eval_prefill_s": ev.prefill_time_s, "eval_decode_step_s": ev.decode_step_time_s,
        }
        try:
            so = solve(r["model"], prompt, gen, compress_weight=policy.compress_weight,
                       compress_cache=policy.compress_cache, **grid, **MACHINE)
            rec.update(solve_tokens_per_s=so.throughput_tokens_per_s,
                       solve_error_pct=_err(so.throughput_tokens_per_s, meas),
                       solve_block=so.policy.block_size, solve_policy=so.policy.describe(),
                       solve_bound=f"{so.prefill.bound}/{so.decode.bound}")
        except LLMSimError as exc:
            rec.update(solve_tokens_per_s=None, solve_error_pct=None, solve_block=None,
                       solve_policy=f"error: {exc}", solve_bound="")
        if sensitivity:
            fit = evaluate(r["model"], policy, prompt, gen, **MACHINE, **FLEXGEN_FITTED)
            rec.update(fitted_rates_tokens_per_s=fit.throughput_tokens_per_s,
                       fitted_rates_error_pct=_err(fit.throughput_tokens_per_s, meas))
        out.append(rec)

    def mape(key: str) -> float | None:
        vals = [abs(c[key]) for c in out if c.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "what": "llmsim offload vs published FlexLLMGen throughput (OPT on one T4, s=512, n=32)",
        "machine": MACHINE, "smoke": smoke, "golden": str(GOLDEN.relative_to(REPO)),
        "cases": out,
        "mean_abs_error_pct": {"evaluate": mape("eval_error_pct"),
                               "solve": mape("solve_error_pct"),
                               **({"fitted_rates": mape("fitted_rates_error_pct")}
                                  if sensitivity else {})},
    }


def render(report: dict[str, object], sensitivity: bool) -> str:
    head = ["system", "model", "tier", "published", "(a) evaluate", "err", "fits", "bound",
            "(b) solve", "err", "block"]
    if sensitivity:
        head += ["(c) fitted rates", "err"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in report["cases"]:  # type: ignore[union-attr]
        solve_t = c["solve_tokens_per_s"]
        cells = [
            c["system"], c["model"], f"{c['published_block']} on {c['tier']}",
            f"{c['published_tokens_per_s']:.2f}", f"{c['eval_tokens_per_s']:.2f}",
            f"{c['eval_error_pct']:+.0f}%", "yes" if c["eval_fits"] else "no",
            c["eval_bound"],
            "-" if solve_t is None else f"{solve_t:.2f}",
            "-" if solve_t is None else f"{c['solve_error_pct']:+.0f}%",
            "-" if solve_t is None else str(c["solve_block"]),
        ]
        if sensitivity:
            cells += [f"{c['fitted_rates_tokens_per_s']:.2f}",
                      f"{c['fitted_rates_error_pct']:+.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    m = report["mean_abs_error_pct"]
    summary = (f"mean |error|: (a) evaluate {m['evaluate']:.0f}%, (b) solve "  # type: ignore
               f"{m['solve']:.0f}%")
    if sensitivity:
        summary += f", (c) FlexGen-fitted rates {m['fitted_rates']:.0f}% (not a validation)"
    return "\n".join(lines) + "\n\n" + summary + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="smaller solver grid (CI, < 30 s)")
    ap.add_argument("--sensitivity", action="store_true",
                    help="add (c): FlexGen's fitted link/CPU rates (not a validation)")
    ap.add_argument("--out", help="write the report as JSON")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    note = check_against_shared(load_rows(GOLDEN))
    report = run(args.smoke, args.sensitivity)
    report["elapsed_s"] = time.perf_counter() - t0
    report["shared_check"] = note
    print(render(report, args.sensitivity))
    print(f"{note}; {report['elapsed_s']:.1f} s")
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
