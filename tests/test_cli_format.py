"""The CLI's conventions (issue 13): output that fits 80 columns, help that never cuts an option
name, ``--version`` and ``-h``."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def narrow(monkeypatch):
    """An 80-column terminal (rich and click read COLUMNS)."""
    monkeypatch.setenv("COLUMNS", "80")


def _fits(text: str, width: int = 80) -> None:
    for line in text.splitlines():
        assert len(line.rstrip()) <= width, line


def test_version_and_short_help(cli):
    from llmsim import __version__

    res = cli("--version")
    assert res.code == 0 and res.out.strip() == f"llmsim {__version__}"
    for argv in (("-h",), ("estimate", "-h"), ("catalog", "list", "-h")):
        res = cli(*argv)
        assert res.code == 0 and "Usage" in res.out, argv
    assert "--install-completion" in cli("-h").out


def test_help_at_80_columns_names_every_option_in_full(cli, narrow):
    res = cli("simulate", "--help")
    assert res.code == 0
    _fits(res.out)
    assert "…" not in res.out
    for flag in ("--memory-utilization", "--max-num-batched-tokens", "--prefix-caching",
                 "--kv-capacity-tokens"):
        assert flag in res.out
    assert "<bool>" not in res.out and "<bool>" not in cli("estimate", "--help").out


def test_catalog_list_fits_80_columns(cli, narrow):
    res = cli("catalog", "list")
    assert res.code == 0
    _fits(res.out)
    # every part on one line with its memory in GiB (an 80 GB H100 is 80 GiB, not 85.9)
    line = next(line for line in res.out.splitlines() if line.startswith("h100-sxm "))
    assert re.search(r"\b80\b", line) and "85.9" not in res.out
    assert "more columns in --format csv/json" in res.out


def test_wide_sweep_folds_into_key_value_rows(cli, narrow, tmp_path):
    cases = tmp_path / "sweep.csv"
    cases.write_text("model,hardware,tp,batch,prompt,output\n"
                     "llama-3.1-8b,h100-sxm,1,16,1024,256\n"
                     "llama-3.1-70b,a100-sxm-80gb,8,32,2048,256\n")
    res = cli("estimate", "--cases", str(cases))
    assert res.code == 0, res.err
    _fits(res.out)
    # names and numbers whole, each with its column name
    assert "llama-3.1-70b" in res.out and "hardware a100-sxm-80gb" in res.out
    assert re.search(r"ttft_s \d+\.\d+", res.out)


def test_wide_terminal_keeps_the_full_table(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "200")
    cases = tmp_path / "sweep.csv"
    cases.write_text("model,hardware,tp,batch,prompt,output\nllama-3.1-8b,h100-sxm,1,16,1024,256\n")
    res = cli("estimate", "--cases", str(cases))
    header = next(line for line in res.out.splitlines() if "model" in line)
    assert "output_tokens_per_s" in header and "ttft_s" in header


# --------------------------------------------------------------------------- one convention
@pytest.mark.parametrize("suffix, check", [
    (".json", lambda p: __import__("json").loads(p.read_text())["model"] == "llama-3.1-8b"),
    (".csv", lambda p: p.read_text().startswith("model,hardware,")),
    (".parquet", lambda p: __import__("pandas").read_parquet(p)["model"][0] == "llama-3.1-8b"),
    (".txt", lambda p: "TTFT" in p.read_text() and "┌" in p.read_text()),
    (".md", lambda p: "TTFT" in p.read_text()),
])
def test_out_takes_its_format_from_the_extension(cli, tmp_path, suffix, check):
    path = tmp_path / f"r{suffix}"
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--out", str(path))
    assert res.code == 0, res.err
    assert res.out == "" and check(path)


def test_format_given_wins_over_the_extension(cli, tmp_path):
    path = tmp_path / "r.csv"
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--format", "json",
              "--out", str(path))
    assert res.code == 0 and path.read_text().lstrip().startswith("{")


def test_every_command_takes_the_format_from_out(cli, tmp_path):
    cat = tmp_path / "cat.json"
    assert cli("catalog", "list", "hardware", "-o", str(cat)).code == 0
    assert "hardware" in __import__("json").loads(cat.read_text())
    mem = tmp_path / "mem.csv"
    assert cli("memory", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--out", str(mem)).code == 0
    assert mem.read_text().count("\n") == 2  # header + one row
    op = tmp_path / "op.json"
    assert cli("op", "--hardware", "h100-sxm", "--kind", "gemm", "--m", "64", "--n", "64",
               "--k", "64", f"--out={op}").code == 0
    assert __import__("json").loads(op.read_text())["kind"] == "gemm"


def test_parquet_needs_a_file_and_html_names_who_has_it(cli):
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--format", "parquet")
    assert res.code == 2 and "--out FILE.parquet" in res.err
    res = cli("memory", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--format", "html")
    assert res.code == 2 and "no HTML report" in res.err


def test_old_length_spellings_are_hidden_aliases(cli):
    new = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--input-len", "300",
              "--output-len", "20", "--format", "json").json()
    old = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--prompt", "300",
              "--output=20", "--format", "json").json()
    assert new == old and new["prompt"] == 300 and new["output"] == 20
    help_text = cli("estimate", "--help").out
    assert "--input-len" in help_text and "--prompt " not in help_text
    assert "--prompt-dist" not in cli("simulate", "--help").out
    assert "--gen-len" not in cli("offload", "solve", "--help").out


def test_normalise_argv():
    from llmsim.cli.conventions import normalise_argv

    assert normalise_argv(["simulate", "-m", "x", "--prompt-dist", "5", "--dp", "2"]) == \
        ["simulate", "-m", "x", "--input-len", "5", "--replicas", "2"]
    assert normalise_argv(["estimate", "--out", "a.parquet"])[-2:] == ["--format", "parquet"]
    assert normalise_argv(["estimate", "-f", "csv", "--out", "a.json"]) == \
        ["estimate", "-f", "csv", "--out", "a.json"]
    assert normalise_argv(["calibrate", "--out", "p.json"]) == ["calibrate", "--out", "p.json"]
    assert normalise_argv(["--debug", "simulate", "--out", "runs/a"]) == \
        ["--debug", "simulate", "--out-dir", "runs/a"]


def test_simulate_out_file_out_dir_and_csv_summary(cli, tmp_path):
    base = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--rate", "4",
            "--num-requests", "30", "--input-len", "256", "--output-len", "16")
    summary = cli(*base, "--format", "csv")
    assert summary.code == 0, summary.err
    lines = summary.out.strip().splitlines()
    assert len(lines) == 2 and "ttft_s.p99" in lines[0]  # the summary, one row
    rows = cli(*base, "--format", "csv", "--requests")
    assert len(rows.out.strip().splitlines()) == 31  # header + one row per request
    res = cli(*base, "--out-dir", str(tmp_path / "a"), "--no-plots")
    assert res.code == 0 and (tmp_path / "a" / "summary.json").exists()
    old = cli(*base, "--out", str(tmp_path / "b"), "--no-plots")  # deprecated spelling
    assert old.code == 0 and (tmp_path / "b" / "summary.json").exists()
    assert "deprecated" in old.err and "--out-dir" in old.err
    js = tmp_path / "s.json"
    assert cli(*base, "--out", str(js)).code == 0
    assert "ttft_s" in __import__("json").loads(js.read_text())
