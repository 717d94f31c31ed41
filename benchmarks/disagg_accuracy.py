"""Accuracy of the disaggregated (xPyD) estimate against the measured mode=disagg rows of
AIConfigurator's H100-SXM silicon corpus (``../shared/data/e2e/aiconfigurator_silicon``).

Each row is reproduced as its benchmark ran (PROVENANCE.md): a closed loop of ``c`` requests
in flight (``c`` from the row id's ``_c<N>_``; rows without one: decode_batch_size x decode
workers), fixed ISL/OSL, ``x`` prefill and ``y`` decode workers with the plan in the
``prefill_*`` / ``decode_*`` columns (tp, attention-DP as dp, moe_ep as ep; missing worker
counts are 1), FP8 (the rows' gemm/moe quant mode), KV over RDMA (NIXL), layer-wise.
DeepSeek-R1 is priced as DeepSeek-V3 (the same architecture). Rows identical in every column
but ``id`` are counted once (25 of 107). The client-side TTFT includes the HTTP frontend and
tokenisation, which the estimate does not model.

Run: ``python benchmarks/disagg_accuracy.py`` (prints every row and the median abs errors).

``--simulate``: the serving simulation (``simulate`` with ``disagg`` pools) reruns each row as
aiperf ran it (``serving/reproduce.py``'s conventions: ``20c`` measured requests after ``2c``
warm-up, the row's engine and fitted profile, fp8 weights and GEMMs, bf16 KV); engine limits:
a prefill worker ``max_num_seqs`` = the row's ``prefill_batch_size`` (blank: the engine's
default), ``max_num_batched_tokens = isl + 1500``; a decode worker ``max_num_seqs`` = its
``decode_batch_size`` per DP rank (blank: ``c``). Prints both predictions per row and the
median abs errors of each over the same rows. ``--rows N``: N rows evenly spread over the
file (a smoke run); ``--requests-per-client K`` (default 20) shortens the runs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
from pathlib import Path

import pandas as pd

from llmsim.disagg import KVLink, PoolSpec, estimate_disagg
from llmsim.errors import LLMSimError

DATA = (Path(os.environ.get("LLMSIM_SHARED_DATA")
             or Path(__file__).resolve().parents[1].parent / "shared" / "data")
        / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv")  # $LLMSIM_SHARED_DATA wins
MODELS = {"deepseek-ai/DeepSeek-R1": "deepseek-v3", "deepseek-ai/DeepSeek-V3": "deepseek-v3",
          "Qwen/Qwen3-32B": "qwen3-32b", "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b"}


def _int(value: float, default: int = 1) -> int:
    return default if value is None or (isinstance(value, float) and math.isnan(value)) \
        or value == 0 else int(value)


def pool(row: pd.Series, side: str) -> PoolSpec:
    return PoolSpec(workers=_int(row[f"{side}_num_workers"]), tp=_int(row[f"{side}_tp_size"]),
                    pp=_int(row[f"{side}_pp_size"]), dp=_int(row[f"{side}_attention_dp_size"]),
                    ep=_int(row[f"{side}_moe_ep_size"]))


def concurrency(row: pd.Series) -> int:
    m = re.search(r"_c(\d+)_", row["id"])
    if m:
        return int(m.group(1))
    return _int(row["decode_batch_size"]) * _int(row["decode_num_workers"])


def rows() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    frame = frame[frame["mode"] == "disagg"]
    return frame.drop_duplicates(subset=[c for c in frame.columns if c != "id"])


def sim_pool(row: pd.Series, side: str, c: int) -> dict:
    """A pool of the simulation config (the static pool plus the row's engine limits)."""
    spec = pool(row, side).model_dump(exclude_unset=True)
    batch = row[f"{side}_batch_size"]
    if side == "prefill":
        spec["max_num_batched_tokens"] = int(row["isl"]) + 1500
        if batch == batch and batch:  # not NaN
            spec["max_num_seqs"] = int(batch)
    else:
        spec["max_num_seqs"] = int(batch) if batch == batch and batch else max(c, 1)
        spec["max_num_batched_tokens"] = max(spec["max_num_seqs"], int(row["isl"]) + 1500)
    return spec


def sim_config(row: pd.Series, c: int, requests_per_client: int = 20) -> dict:
    """The serving-simulation config that reruns one disagg row (module docstring)."""
    version = row.get("backend_version")
    engine = str(row["backend"]) + (f"@{version}" if isinstance(version, str) else "")
    return {
        "model": {"name": MODELS[row["model_path"]], "weight_dtype": "fp8", "act_dtype": "fp8",
                  "kv_dtype": "bf16"},
        "hardware": {"name": "h100-sxm"},
        "engine": {"name": engine},
        "disagg": {"prefill_pool": sim_pool(row, "prefill", c),
                   "decode_pool": sim_pool(row, "decode", c), "kv_link": "rdma"},
        "workload": {"concurrency": c, "num_requests": (requests_per_client + 2) * c,
                     "warmup_requests": 2 * c, "prompt": f"fixed:{int(row['isl'])}",
                     "output": f"fixed:{int(row['osl'])}", "seed": 0},
    }


def simulate_row(row: pd.Series, c: int, requests_per_client: int) -> tuple[float, float]:
    """The simulation's mean TTFT and TPOT (s) of one row."""
    from llmsim.serving.run import simulate

    s = simulate(sim_config(row, c, requests_per_client)).summary()
    return float(s["ttft_s"]["mean"]), float(s["tpot_s"]["mean"])


def pick_rows(frame: pd.DataFrame, n: int | None) -> pd.DataFrame:
    """``n`` rows evenly spread over ``frame`` (all when ``n`` is None or larger)."""
    if n is None or n >= len(frame):
        return frame
    step = len(frame) / n
    return frame.iloc[[int(i * step) for i in range(n)]]


def _median_line(name: str, errs: list[float]) -> str:
    return f"median abs error of mean {name}: {statistics.median(errs):.1%}" if errs else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", action="store_true",
                    help="also rerun each row in the serving simulation")
    ap.add_argument("--rows", type=int, default=None, help="N rows evenly spread (smoke run)")
    ap.add_argument("--requests-per-client", type=int, default=20)
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: {DATA} not found (../shared/data is beside the repo in development)")
        return 0
    frame = pick_rows(rows(), args.rows)
    if args.simulate:
        return _main_simulate(frame, args.requests_per_client)
    ttft_err, tpot_err, failed = [], [], 0
    print(f"{len(frame)} distinct mode=disagg rows")
    print(f"{'id':<72} {'c':>4} {'TTFT ms pred/meas':>22} {'err':>7} "
          f"{'TPOT ms pred/meas':>18} {'err':>7}")
    for _, row in frame.iterrows():
        c = concurrency(row)
        try:
            res = static_row(row, c)
        except LLMSimError as exc:
            failed += 1
            print(f"{row['id'][:72]:<72} {c:>4} error: {exc}")
            continue
        mt, mp = row["silicon_ttft_ms"], row["silicon_tpot_ms"]
        et, ep = res.ttft_s * 1e3 / mt - 1, res.tpot_s * 1e3 / mp - 1
        ttft_err.append(abs(et))
        tpot_err.append(abs(ep))
        print(f"{row['id'][:72]:<72} {c:>4} {res.ttft_s * 1e3:>10.1f}/{mt:<11.1f} {et:>+7.0%} "
              f"{res.tpot_s * 1e3:>8.2f}/{mp:<9.2f} {ep:>+7.0%}")
    print(f"rows priced: {len(ttft_err)}, failed: {failed}")
    if ttft_err:
        print(_median_line("TTFT", ttft_err))
        print(_median_line("TPOT", tpot_err))
    return 0


def static_row(row: pd.Series, c: int):
    """The static estimate of one row."""
    return estimate_disagg(MODELS[row["model_path"]], "h100-sxm", pool(row, "prefill"),
                           pool(row, "decode"), prompt=int(row["isl"]),
                           output=int(row["osl"]), concurrency=c, link=KVLink("rdma"),
                           dtype="fp8")


def _main_simulate(frame: pd.DataFrame, requests_per_client: int) -> int:
    """Both predictions per row (simulation, static estimate) and their median abs errors
    over the rows both priced."""
    import time

    errs: dict[str, list[float]] = {"sim TTFT": [], "sim TPOT": [], "static TTFT": [],
                                    "static TPOT": []}
    failed = 0
    print(f"{len(frame)} distinct mode=disagg rows, simulated with {requests_per_client}c "
          "measured requests")
    print(f"{'id':<56} {'c':>4} {'TTFT ms meas':>12} {'sim':>9} {'static':>9} "
          f"{'TPOT ms meas':>12} {'sim':>7} {'static':>7} {'wall s':>6}")
    t_all = time.perf_counter()
    for _, row in frame.iterrows():
        c = concurrency(row)
        t0 = time.perf_counter()
        try:
            st = static_row(row, c)
            ttft, tpot = simulate_row(row, c, requests_per_client)
        except LLMSimError as exc:
            failed += 1
            print(f"{row['id'][:56]:<56} {c:>4} error: {exc}")
            continue
        mt, mp = row["silicon_ttft_ms"] / 1e3, row["silicon_tpot_ms"] / 1e3
        errs["sim TTFT"].append(abs(ttft / mt - 1))
        errs["sim TPOT"].append(abs(tpot / mp - 1))
        errs["static TTFT"].append(abs(st.ttft_s / mt - 1))
        errs["static TPOT"].append(abs(st.tpot_s / mp - 1))
        print(f"{row['id'][:56]:<56} {c:>4} {mt * 1e3:>12.1f} {ttft * 1e3:>9.1f} "
              f"{st.ttft_s * 1e3:>9.1f} {mp * 1e3:>12.2f} {tpot * 1e3:>7.2f} "
              f"{st.tpot_s * 1e3:>7.2f} {time.perf_counter() - t0:>6.1f}")
    print(f"rows priced: {len(errs['sim TTFT'])}, failed: {failed}, "
          f"{time.perf_counter() - t_all:.0f} s")
    for name, values in errs.items():
        if values:
            print(_median_line(name, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
