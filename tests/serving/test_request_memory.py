"""Long runs stay compact (issue 9: memory grew ~380 bytes per request): the request table is
98 bytes per request while the engine runs and 66 after, the output rows are derived from it on
demand and written in slices, with the same values and bytes as one whole table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsim.io import write_table_chunks
from llmsim.serving.request import RequestTable
from llmsim.serving.request_rows import COLUMNS


def _report(n=300):
    from llmsim.serving.run import simulate

    return simulate({"model": "llama-3.1-8b", "hardware": "h100-sxm",
                     "scheduler": {"kv_capacity_tokens": 4096},
                     "workload": {"num_requests": n, "rate": 40, "prompt": "uniform:16,900",
                                  "output": "uniform:1,80", "seed": 3}})


def test_the_table_is_98_bytes_per_request_and_narrow_columns_never_wrap():
    t = RequestTable(np.array([5, 7]), np.array([1, 2]), np.array([0.0, 1.0]))
    assert t.nbytes() == 98 * 2
    t.release_engine_state()
    assert t.nbytes() == 66 * 2
    with pytest.raises(OverflowError):
        RequestTable(np.array([2**31]), np.array([1]), np.array([0.0]))
    with pytest.raises(OverflowError):
        t.input_tokens[0] = 2**31


def test_rows_in_slices_equal_the_whole_table(tmp_path):
    report = _report()
    rows = report._requests
    whole = report.requests
    assert tuple(whole.columns) == COLUMNS and len(whole) == 300
    assert (whole["status"] == "finished").any() and whole["preemptions"].sum() > 0
    for name in ("request_id", "input_tokens", "output_tokens", "replica", "priority"):
        assert whole[name].dtype == np.int64, name
    sliced = pd.concat(list(rows.chunks(rows=64)), ignore_index=True)
    pd.testing.assert_frame_equal(sliced, whole)
    csv = tmp_path / "r.csv"
    write_table_chunks(csv, rows.chunks(rows=64))
    assert csv.read_text() == whole.to_csv(index=False)
    pq = tmp_path / "r.parquet"
    write_table_chunks(pq, rows.chunks(rows=64))
    pd.testing.assert_frame_equal(pd.read_parquet(pq), whole)
    assert np.array_equal(report.request_column("ttft_s"), whole["ttft_s"].to_numpy(),
                          equal_nan=True)


def test_an_empty_run_still_writes_a_header(tmp_path):
    from llmsim.serving.request_rows import RequestRows

    rows = RequestRows(RequestTable(np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                                    np.array([])))
    write_table_chunks(tmp_path / "r.csv", rows.chunks())
    assert (tmp_path / "r.csv").read_text().strip() == ",".join(COLUMNS)
