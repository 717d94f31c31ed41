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
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from pathlib import Path

import pandas as pd

from llmsim.disagg import KVLink, PoolSpec, estimate_disagg
from llmsim.errors import LLMSimError

DATA = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "e2e"
        / "aiconfigurator_silicon" / "silicon_h100_sxm.csv")
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


def main() -> int:
    if not DATA.exists():
        print(f"skipped: {DATA} not found (../shared/data is beside the repo in development)")
        return 0
    frame = rows()
    ttft_err, tpot_err, failed = [], [], 0
    print(f"{len(frame)} distinct mode=disagg rows")
    print(f"{'id':<72} {'c':>4} {'TTFT ms pred/meas':>22} {'err':>7} "
          f"{'TPOT ms pred/meas':>18} {'err':>7}")
    for _, row in frame.iterrows():
        c = concurrency(row)
        try:
            res = estimate_disagg(MODELS[row["model_path"]], "h100-sxm", pool(row, "prefill"),
                                  pool(row, "decode"), prompt=int(row["isl"]),
                                  output=int(row["osl"]), concurrency=c, link=KVLink("rdma"),
                                  dtype="fp8")
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
        print(f"median abs error of mean TTFT: {statistics.median(ttft_err):.1%}")
        print(f"median abs error of mean TPOT: {statistics.median(tpot_err):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
