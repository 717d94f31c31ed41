"""``simulate --out DIR`` writes a complete bundle or nothing: the files go into a temporary
sibling folder that is swapped in whole (issue 9: re-using an ``--out`` folder left the
previous run's requests file beside the new summary; Ctrl-C mid-write left a partial folder).
A folder holding files that are not part of a bundle is refused before the run."""

from __future__ import annotations

import json
import os

import pytest

from llmsim.errors import OutputError

SIM = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "20", "--rate",
       "2", "--no-plots")


def _siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


def _one_line_error(res, needle):
    assert res.code == 2, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.err


def test_reusing_out_replaces_the_whole_bundle(cli, tmp_path):
    out = tmp_path / "run"
    first = cli(*SIM, "--out", str(out), "--requests-format", "parquet", "--chrome-trace")
    assert first.code == 0, first.err
    assert {"requests.parquet", "trace.json", "summary.json"} <= set(os.listdir(out))
    second = cli(*SIM, "--out", str(out), "--seed", "3")
    assert second.code == 0, second.err
    names = set(os.listdir(out))
    assert "requests.parquet" not in names and "trace.json" not in names  # nothing stale
    assert {"summary.json", "requests.csv", "timeseries.csv", "config.yaml"} <= names
    assert json.loads((out / "summary.json").read_text())["num_requests"] == 20
    assert _siblings(out) == []  # no temporary folder left beside it


def test_an_empty_folder_is_accepted(cli, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert cli(*SIM, "--out", str(out)).code == 0
    assert "summary.json" in os.listdir(out)


@pytest.mark.parametrize("foreign", [["notes.txt"], ["summary.json", "notes.txt"],
                                     ["config.yaml"], ["sub/"]])
def test_a_folder_with_foreign_files_is_refused_before_the_run(cli, tmp_path, monkeypatch,
                                                               foreign):
    import llmsim.serving.run as run_mod

    monkeypatch.setattr(run_mod, "simulate", lambda *a, **k: pytest.fail("the run started"))
    out = tmp_path / "mine"
    out.mkdir()
    for name in foreign:
        if name.endswith("/"):
            (out / name).mkdir()
        else:
            (out / name).write_text("keep me")
    before = sorted(os.listdir(out))
    res = cli(*SIM, "--out", str(out))
    _one_line_error(res, "not an llmsim output folder")
    assert "give a new or empty folder" in res.err
    assert sorted(os.listdir(out)) == before


def _report():
    from llmsim.serving.run import simulate

    return simulate({"model": "llama-3.1-8b", "hardware": "h100-sxm",
                     "workload": {"num_requests": 10, "rate": 2}})


def test_an_interrupt_while_writing_keeps_the_old_bundle(tmp_path, monkeypatch):
    import llmsim.serving.results as results

    out = tmp_path / "run"
    report = _report()
    report.write(out, plots=False)
    old = {name: (out / name).read_bytes() for name in os.listdir(out)}

    def interrupted(path, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write(out, "parquet", plots=False)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == old
    assert _siblings(out) == []


def test_an_interrupted_first_write_leaves_nothing(tmp_path, monkeypatch):
    import llmsim.serving.results as results

    out = tmp_path / "new" / "run"
    report = _report()
    monkeypatch.setattr(results, "write_table",
                        lambda *_a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        report.write(out, plots=False)
    assert not out.exists()
    assert _siblings(out) == []


def test_foreign_files_added_during_the_run_stop_the_swap(tmp_path, monkeypatch):
    import llmsim.serving.results as results

    out = tmp_path / "run"
    report = _report()
    report.write(out, plots=False)
    real = results.write_table

    def user_adds_a_file(path, frame):
        (out / "notes.txt").write_text("mine")
        real(path, frame)

    monkeypatch.setattr(results, "write_table", user_adds_a_file)
    with pytest.raises(OutputError, match="not an llmsim output folder"):
        report.write(out, plots=False)
    assert (out / "notes.txt").read_text() == "mine"
    assert _siblings(out) == []


def test_a_symlinked_out_folder_keeps_its_link(tmp_path):
    real = tmp_path / "real"
    link = tmp_path / "link"
    report = _report()
    report.write(real, plots=False)
    link.symlink_to(real, target_is_directory=True)
    report.write(link, "parquet", plots=False)
    assert link.is_symlink() and os.path.realpath(link) == str(real)
    assert "requests.parquet" in os.listdir(real) and "requests.csv" not in os.listdir(real)


def test_same_seed_gives_the_same_bytes_in_every_file_but_run_info(cli, tmp_path):
    """Two runs of one config and seed: every bundle file is byte-identical, plots included;
    the wall-clock facts live only in run_info.json (issue 9: summary.json differed)."""
    argv = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "60",
            "--rate", "4", "--prompt-dist", "uniform:50,400", "--output-dist", "uniform:5,60",
            "--seed", "7", "--chrome-trace", "--save-itls")
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        res = cli(*argv, "--out", str(out))
        assert res.code == 0, res.err
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert {"summary.json", "run_info.json", "latency_cdf.png", "trace.json",
            "itls.csv"} <= set(names)
    differ = [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]
    assert differ in ([], ["run_info.json"])
    summary = json.loads((a / "summary.json").read_text())
    assert not [k for k in summary if "wall" in k]
    info = json.loads((a / "run_info.json").read_text())
    assert info["sim_wall_s"] > 0 and info["sim_requests_per_wall_s"] > 0
    js = [cli(*argv, "--format", "json").out for _ in range(2)]  # stdout JSON too
    assert js[0] == js[1]
