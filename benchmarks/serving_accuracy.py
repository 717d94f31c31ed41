"""Serving accuracy of the engine models against measured runs (issue 10).

    python benchmarks/serving_accuracy.py [--rows N] [--held-out] [--smoke] [--per-row]

Each aggregated row of ``../shared/data/e2e/aiconfigurator_silicon/silicon_h100_sxm.csv``
(aiperf closed loops on H100-SXM, PROVENANCE.md of that folder) is rerun as its benchmark ran
it (:mod:`llmsim.serving.reproduce`: closed loop of ``c`` clients, ``20c`` measured requests
after ``2c`` warm-up requests, fixed ISL / OSL, the generator's engine limits) with ``--engine
<backend>`` and the packaged engine profile. Printed: per engine, model, concurrency bucket and
overall, the median absolute relative error (``|pred / meas - 1|``) and the bias (median of
``pred / meas - 1``) of the mean TTFT and the mean TPOT (and of one request's mean latency
``E2E = TTFT + (osl - 1) TPOT``: off with them, the engine's throughput is; right while they
are off, only the split of a request's time between waiting and decoding), and the rows with
the worst errors. ``--held-out`` predicts every row again with the leave-one-model-out
parameters of ``scripts/fit_engine_profile.py`` (that engine's profile fitted without the row's
model); a model the engine's packaged fit never saw (its ``fitted_on`` does not name it: the
model joined the catalog after the fit) is already out of sample with the packaged parameters,
which it keeps; an engine fitted on that model alone uses the fallback rule: the median of the
other engines' parameters. A last table gives the rows of models no packaged fit saw, on their
own. Rows that contradict their own deployment (the stated rule of
:func:`llmsim.serving.reproduce.inconsistent_rows`; the fit skips them) are rerun too but left
out of the tables and listed apart with their errors. Rows llmsim cannot reproduce are counted
and named.
``--rows N``: a fixed-seed subsample of N rows; ``--smoke``: 4 rows (CI); ``--json FILE``:
every row's record; ``--engines`` / ``--models``:
only those engines' / models' rows (catalog names); ``--slots-delta N``: a diagnostic rerun with
``max_num_seqs = c + N`` (the deployment given N batch slots more than its clients, fewer when
negative; docs/serving.md, "Serving accuracy", says what it shows); ``--sglang-mixed``:
SGLang rows with mixed chunks (see :mod:`llmsim.serving.reproduce` for why the default is
without).
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from llmsim.engines.profile import (
    PARAMETERS,
    EngineProfile,
    load_profiles,
    lookup_keys,
    median_parameters,
)
from llmsim.serving.reproduce import (
    MODELS,
    Unsupported,
    base_step_model,
    concurrency_bucket,
    inconsistent_rows,
    load_rows,
    measured,
    row_config,
    row_version,
    run_row,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv"
FITTED = ("request_overhead_s", "step_overhead_s", "prefill_step_factor",
          "client_phase_spread", "host_per_seq_s")


def held_out_params(engine: str, model: str, version: str | None = None
                    ) -> dict[str, float]:
    """The parameters fitted without ``model``: those of the entry ``engine@version`` where
    the fit has one for that release, else the engine's (or the fallback rule)."""
    prof = load_profiles()
    held = prof.fit.get("held_out", {})
    for key in lookup_keys(engine, version):
        if f"{key}|{model}" in held:
            return dict(held[f"{key}|{model}"])
    if not seen_by_fit(engine, model) and engine in prof.engines:
        return {k: getattr(prof.engines[engine], k) for k in FITTED}
    others = [p for k, p in prof.engines.items() if k != engine and "@" not in k]
    if not others:
        return {k: getattr(EngineProfile(), k) for k in FITTED}  # kernels only
    return median_parameters(others, FITTED)


def seen_by_fit(engine: str, model: str) -> bool:
    """Whether the packaged profile of ``engine`` was fitted on rows of ``model`` (the fit
    script names its models in ``fitted_on``)."""
    prof = load_profiles().engines.get(engine)
    return prof is not None and model in prof.fitted_on


def with_slots(cfg: dict[str, Any], row: dict[str, Any], slots_delta: int) -> dict[str, Any]:
    """``cfg`` with ``max_num_seqs = c + slots_delta`` (at least 1) where the delta is set."""
    if slots_delta:
        cfg["scheduler"]["max_num_seqs"] = max(1, int(row["batch_size"]) + slots_delta)
    return cfg


def e2e_error(ttft: float, tpot: float, meas_ttft: float, meas_tpot: float, osl: int) -> float:
    """The error of one request's mean latency, ``E2E = TTFT + (osl - 1) x TPOT``: whether
    a TTFT / TPOT error is the engine's throughput (E2E off too) or only how it splits a
    request's time between waiting and decoding (E2E right)."""
    return (ttft + (osl - 1) * tpot) / (meas_ttft + (osl - 1) * meas_tpot) - 1


def evaluate_row(task: tuple[dict[str, Any], bool, bool, int]) -> dict[str, Any]:
    """One row rerun with the packaged profile (and, with ``held_out``, the held-out one)."""
    row, held_out, sglang_mixed, slots_delta = task
    logging.disable(logging.WARNING)
    cfg = with_slots(row_config(row, sglang_mixed=sglang_mixed), row, slots_delta)
    sm = base_step_model(cfg)
    ttft, tpot = run_row(cfg, sm)
    m_ttft, m_tpot = measured(row)
    rec = {"id": row["id"], "engine": row["backend"],
           "model": MODELS[row["model_path"]], "c": int(row["batch_size"]),
           "seen": seen_by_fit(row["backend"], row["model_path"]),
           "set_aside": row.get("set_aside"),
           "isl": int(row["isl"]), "osl": int(row["osl"]), "tp": int(row["tp_size"]),
           "meas_ttft": m_ttft, "meas_tpot": m_tpot,
           "ttft_err": ttft / m_ttft - 1, "tpot_err": tpot / m_tpot - 1,
           "e2e_err": e2e_error(ttft, tpot, m_ttft, m_tpot, int(row["osl"]))}
    if held_out:
        cfg = with_slots(row_config(row, held_out_params(row["backend"], row["model_path"],
                                                         row_version(row)),
                                    with_version=False, sglang_mixed=sglang_mixed),
                         row, slots_delta)
        h_ttft, h_tpot = run_row(cfg, sm)
        rec.update(ho_ttft_err=h_ttft / m_ttft - 1, ho_tpot_err=h_tpot / m_tpot - 1,
                   ho_e2e_err=e2e_error(h_ttft, h_tpot, m_ttft, m_tpot, int(row["osl"])))
    return rec


def evaluate(rows: list[dict[str, Any]], held_out: bool, sglang_mixed: bool = False,
             jobs: int = 1, slots_delta: int = 0) -> list[dict[str, Any]]:
    tasks = [(r, held_out, sglang_mixed, slots_delta) for r in rows]
    if jobs <= 1:
        return [evaluate_row(t) for t in tasks]
    from multiprocessing import get_context

    out = []
    t0 = time.perf_counter()
    with get_context("spawn").Pool(jobs) as pool:
        for rec in pool.imap(evaluate_row, tasks, chunksize=2):
            out.append(rec)
            if len(out) % 20 == 0:
                print(f"  {len(out)}/{len(tasks)} rows, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
    return out


def _stats(recs: list[dict[str, Any]], prefix: str = "") -> str:
    def col(key: str) -> tuple[float, float]:
        v = [r[prefix + key] for r in recs]
        return statistics.median(abs(x) for x in v), statistics.median(v)

    (ta, tb), (pa, pb), (ea, eb) = col("ttft_err"), col("tpot_err"), col("e2e_err")
    return f"{len(recs):5d} {ta:9.1%} {tb:+9.1%} {pa:9.1%} {pb:+9.1%} {ea:9.1%} {eb:+9.1%}"


def _group(r: dict[str, Any], key: str) -> str:
    if key == "engine":
        return r["engine"]
    if key == "tp":
        return f"{r['engine']} / {r['model']} tp{r['tp']}"
    return f"{r['engine']} / {concurrency_bucket(r['c']) if key == 'bucket' else r[key]}"


def report(recs: list[dict[str, Any]], prefix: str, title: str, by_tp: bool = False) -> None:
    print(f"\n{title}")
    print(f"{'group':34s} {'rows':>5s} {'TTFT MdAE':>9s} {'bias':>9s} {'TPOT MdAE':>9s} "
          f"{'bias':>9s} {'E2E MdAE':>9s} {'bias':>9s}")
    for key in ("engine", "model", "bucket", *(("tp",) if by_tp else ())):
        groups: dict[str, list] = defaultdict(list)
        for r in recs:
            groups[_group(r, key)].append(r)
        for g in sorted(groups):
            print(f"{g:34s} {_stats(groups[g], prefix)}")
    print(f"{'overall':34s} {_stats(recs, prefix)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--rows", type=int, default=None, help="a fixed-seed subsample")
    ap.add_argument("--held-out", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="4 rows: that it runs (CI)")
    ap.add_argument("--per-row", action="store_true")
    ap.add_argument("--worst", type=int, default=10)
    ap.add_argument("--engines", nargs="+", help="only these engines' rows")
    ap.add_argument("--models", nargs="+", help="only these models' rows (catalog names)")
    ap.add_argument("--slots-delta", type=int, default=0,
                    help="diagnostic: rerun with max_num_seqs = c + N")
    ap.add_argument("--by-tp", action="store_true",
                    help="also group by engine, model and tensor-parallel size")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--json", help="also write every row's record (errors included) here")
    ap.add_argument("--sglang-mixed", action="store_true",
                    help="rerun SGLang rows with mixed chunks (PROVENANCE's reading)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if not Path(args.data).is_file():
        print(f"error: measured data not found: {args.data}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.models or ()) - set(MODELS.values()))
    if unknown:
        import difflib

        hint = difflib.get_close_matches(unknown[0], sorted(set(MODELS.values())), n=1)
        print(f"error: no measured rows of model {unknown[0]!r}"
              + (f"; did you mean {hint[0]!r}?" if hint else "")
              + f" (models: {', '.join(sorted(set(MODELS.values())))})", file=sys.stderr)
        return 2
    rows, skipped = [], defaultdict(int)
    every = load_rows(args.data)
    contradicted = inconsistent_rows(every)
    for r in every:
        if args.engines and r["backend"] not in args.engines:
            continue
        if args.models and MODELS.get(str(r["model_path"])) not in args.models:
            continue
        try:
            row_config(r)
            rows.append({**r, "set_aside": contradicted.get(str(r["id"]))})
        except Unsupported as e:
            skipped[str(e)] += 1
    n = 4 if args.smoke else args.rows
    if n is not None and n < len(rows):
        rows = sorted(random.Random(0).sample(rows, n), key=lambda r: r["id"])
    t0 = time.perf_counter()
    every_rec = evaluate(rows, args.held_out, args.sglang_mixed, args.jobs, args.slots_delta)
    recs = [r for r in every_rec if not r["set_aside"]]
    aside = [r for r in every_rec if r["set_aside"]]
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(every_rec, indent=1))
    print(f"serving accuracy: {len(every_rec)} measured aggregated H100-SXM rows rerun "
          f"(aiperf closed loop, 20c measured after 2c warm-up) in "
          f"{time.perf_counter() - t0:.0f} s; errors = predicted / measured - 1 of the "
          "mean TTFT and mean TPOT (and of E2E = TTFT + (osl - 1) TPOT); MdAE = median "
          "|error|, bias = median error"
          + (f"; diagnostic: max_num_seqs = c {args.slots_delta:+d}" if args.slots_delta
             else ""))
    print("rows not reproduced: " + ("; ".join(f"{k} ({v})" for k, v in sorted(
        skipped.items())) or "none"))
    print(f"rows set aside by the consistency rule (reproduce.inconsistent_rows), rerun but "
          f"not in the tables: {len(aside)}")
    print("profiles: " + ", ".join(
        f"{k}: " + " ".join(f"{p}={getattr(v, p):.4g}" for p in PARAMETERS)
        for k, v in load_profiles().engines.items()))
    report(recs, "", "packaged profile (fitted on a subsample of these rows)", args.by_tp)
    if args.held_out:
        report(recs, "ho_", "held out: leave-one-model-out within each engine", args.by_tp)
    unseen = [r for r in recs if not r["seen"]]
    if unseen:
        report(unseen, "", "models the packaged fit never saw (out of sample as shipped)")
    if aside:
        print("\nrows set aside (each contradicts its own deployment):")
        for r in aside:
            print(f"  {_line(r, args.held_out)}\n      {r['set_aside']}")
    key = "ho_ttft_err" if args.held_out else "ttft_err"
    worst = sorted(recs, key=lambda r: -abs(r[key]))[: args.worst]
    print(f"\nworst rows by |{key}|:")
    for r in (recs if args.per_row else worst):
        print(f"  {_line(r, args.held_out)}")
    return 0


def _line(r: dict[str, Any], held_out: bool) -> str:
    """One row's measurements and errors."""
    extra = (f" held-out ttft {r['ho_ttft_err']:+.0%} tpot {r['ho_tpot_err']:+.0%}"
             if held_out else "")
    return (f"{r['engine']:6s} {r['model']:16s} tp{r['tp']} c{r['c']:<4d} "
            f"{r['isl']}/{r['osl']}: ttft {r['meas_ttft'] * 1e3:8.1f} ms "
            f"{r['ttft_err']:+.0%}, tpot {r['meas_tpot'] * 1e3:6.2f} ms "
            f"{r['tpot_err']:+.0%}{extra}")


if __name__ == "__main__":
    sys.exit(main())
