"""Comparisons in one command (issue 13): comma lists for -H / --tp / --replicas / --model on
estimate and simulate run every combination and print one table (or one HTML page)."""

from __future__ import annotations

import pytest


def test_estimate_runs_every_combination(cli):
    res = cli("estimate", "-m", "llama-3.1-70b", "-H", "a100-sxm-80gb,h100-sxm,mi300x",
              "--tp", "4,8", "--batch", "8", "--format", "json")
    assert res.code == 0, res.err
    runs = res.json()["runs"]
    assert [r["run"] for r in runs] == ["a100-sxm-80gb tp4", "a100-sxm-80gb tp8", "h100-sxm tp4",
                                        "h100-sxm tp8", "mi300x tp4", "mi300x tp8"]
    one = cli("estimate", "-m", "llama-3.1-70b", "-H", "h100-sxm", "--tp", "8", "--batch", "8",
              "--format", "json").json()
    h100_tp8 = next(r for r in runs if r["run"] == "h100-sxm tp8")
    assert h100_tp8["ttft_s"] == pytest.approx(one["ttft_s"])  # the same estimate as alone
    assert h100_tp8["batch"] == 8  # the other flags hold for every run


def test_estimate_table_fits_and_bad_values_are_one_line(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = cli("estimate", "-m", "llama-3.1-8b,qwen3-8b", "-H", "h100-sxm")
    assert res.code == 0 and "llama-3.1-8b" in res.out and "qwen3-8b" in res.out
    assert all(len(line.rstrip()) <= 80 for line in res.out.splitlines())
    bad = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--tp", "1,x")
    assert bad.code == 2 and "whole numbers" in bad.err


def test_simulate_compares_replicas_and_parts(cli, tmp_path):
    base = ("simulate", "-m", "llama-3.1-8b", "--rate", "6", "--num-requests", "80",
            "--input-len", "512", "--output-len", "32")
    res = cli(*base, "-H", "a100-sxm-80gb,h100-sxm", "--replicas", "1,2", "--format", "csv")
    assert res.code == 0, res.err
    lines = res.out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("run,")
    assert "h100-sxm replicas2" in res.out
    page = tmp_path / "cmp.html"
    html = cli(*base, "-H", "a100-sxm-80gb,h100-sxm", "--out", str(page))
    if html.code == 2 and "plotly" in html.err:
        pytest.skip("plotly (the 'report' extra) is not installed")
    text = page.read_text()  # plotly's JSON writes "/" as \u002f
    assert html.code == 0 and "output tokens\\u002fs per GPU" in text.replace("/", "\\u002f")
