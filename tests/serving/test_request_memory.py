"""Long runs stay compact (issue 9: memory grew ~380 bytes per request): the request table is
98 bytes per request while the engine runs and 66 after (a run's own table, narrowed to its
bounds: 80 and 54 for requests under 15,000 tokens), the output rows are derived from it on
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


def _trace_setup(tmp_path, n=400, **workload):
    from llmsim.serving.config import load_config
    from llmsim.serving.setup import ServingSetup

    cfg = {"model": "llama-3.1-8b", "hardware": "h100-sxm",
           "scheduler": {"kv_capacity_tokens": 4096},
           "workload": {"num_requests": n, "rate": 40, "prompt": "uniform:16,900",
                        "output": "uniform:1,80", "seed": 3, **workload}}
    return ServingSetup(load_config(cfg))


def test_a_run_table_is_narrow_and_the_workload_moves_into_it(tmp_path):
    """The simulator's table (``from_setup``): 2-byte token counts for requests this short,
    1-byte priorities and replica ids -- 80 bytes per request, 54 after the run -- and the
    workload's arrays become views of its columns (no second copy)."""
    from llmsim.serving.simulator import Simulation

    setup = _trace_setup(tmp_path)
    wl = setup.workload
    sim = Simulation(setup)
    t = sim.table
    assert t.nbytes() == 80 * t.n
    assert {t.codes[c] for c in RequestTable.TOKEN_COLUMNS} == {"h"}
    assert (t.codes["priority"], t.codes["replica"]) == ("b", "b")
    for name in ("input_tokens", "output_tokens", "arrival_s"):
        assert np.shares_memory(getattr(wl, name), t.column(name)), name
    assert np.shares_memory(setup.output_tokens, t.column("output_tokens"))
    with pytest.raises(OverflowError):  # a narrow column refuses, never wraps
        t.computed[0] = 2**15
    with pytest.raises(RuntimeError, match="has run"):
        Simulation(setup)
    sim.run()
    assert t.nbytes() == 54 * t.n


def test_the_narrow_table_gives_the_same_bytes_as_the_wide_one(tmp_path, monkeypatch):
    from llmsim.serving.run import simulate

    cfg = {"model": "llama-3.1-8b", "hardware": "h100-sxm",
           "scheduler": {"kv_capacity_tokens": 4096}, "slo": {"ttft_s": 0.5, "tpot_s": 0.02},
           "parallelism": {"replicas": 2, "tp": 1},
           "workload": {"num_requests": 500, "rate": 60, "prompt": "uniform:16,900",
                        "output": "uniform:1,80", "seed": 5, "priority_levels": 3,
                        "warmup_requests": 20}}
    narrow = simulate(cfg)
    narrow.write(tmp_path / "narrow", plots=False)

    def wide(cls, setup, replicas=1):  # the table as built before: 98 bytes per request
        wl = setup.workload
        return cls(wl.input_tokens, wl.output_tokens, wl.arrival_s, wl.priority,
                   reject_reason=setup.reject_reasons())

    monkeypatch.setattr(RequestTable, "from_setup", classmethod(wide))
    simulate(cfg).write(tmp_path / "wide", plots=False)
    for name in ("summary.json", "requests.csv", "timeseries.csv"):
        assert (tmp_path / "narrow" / name).read_bytes() == (tmp_path / "wide" / name
                                                             ).read_bytes(), name
    assert narrow.summary()["goodput_requests_per_s"] > 0


def test_summary_statistics_from_slices_equal_the_whole_column(monkeypatch):
    from llmsim.serving import results
    from llmsim.serving.metrics import dist_stats
    from llmsim.serving.request import RequestStatus
    from llmsim.serving.results import done_values

    monkeypatch.setattr(results, "CHUNK_ROWS", 64)  # many slices
    report = _report(2000)
    rows = report._requests
    done = rows.table.column("status") == RequestStatus.FINISHED
    for name in ("ttft_s", "tpot_s", "e2e_s", "queueing_delay_s"):
        whole = rows.column(name)[done]
        assert np.array_equal(done_values(rows, name, done, int(done.sum())), whole,
                              equal_nan=True), name
        kept = whole.copy()
        assert dist_stats(kept, overwrite=True) == dist_stats(whole), name
