"""The HTML report (issue 13): one self-contained file per simulate / estimate run, rebuilt by
``llmsim report RUN_DIR``, opened in a real browser (headless Chromium, the Debian package
``chromium``) whose rendered DOM must hold plotly's drawn plots and whose screenshot must not
be blank. Skipped with the reason where plotly or Chromium is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

plotly = pytest.importorskip("plotly", reason="plotly (the 'report' extra) is not installed")

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
SIM = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--rate", "8", "--num-requests",
       "200", "--input-len", "512", "--output-len", "64")


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    # plotly.js inline, once; nothing fetched from the network
    assert page.count("<script type=\"text/javascript\">/**\n* plotly.js") <= 1
    assert not re.search(r"<script[^>]+src=\"https?://", page)
    assert "cdn.plot.ly" not in page.split("plotly.js v")[0]


def test_simulate_estimate_and_report_write_one_self_contained_page(cli, tmp_path):
    sim = tmp_path / "sim.html"
    res = cli(*SIM, "--save-itls", "--out-dir", str(tmp_path / "run"), "--no-plots",
              "--out", str(sim))
    assert res.code == 0, res.err
    page = sim.read_text()
    _self_contained(page)
    for title in ("latency CDFs", "over time", "per request", "SLO 2000 ms", "KV-cache usage"):
        assert title in page, title
    rebuilt = cli("report", str(tmp_path / "run"))
    assert rebuilt.code == 0, rebuilt.err
    again = (tmp_path / "run" / "report.html").read_text()
    assert "latency CDFs" in again and "ITL" in again
    est = tmp_path / "est.html"
    assert cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--batch", "16",
               "--out", str(est)).code == 0
    page = est.read_text()
    _self_contained(page)
    assert "roofline" in page and "time per op" in page and "arithmetic intensity" in page


VALIDATE = ("validate", "--from", "examples/h100_op_timings.csv")
RUNS = ("model,hardware,tp,mode,batch,concurrency,input_tokens,output_tokens,ttft_s,tpot_s\n"
        "llama-3.1-8b,h100-sxm,1,static,8,,1024,256,0.095,0.0081\n"
        "llama-3.1-8b,h100-sxm,1,static,16,,512,128,0.11,0.0085\n"
        "llama-3.1-70b,h100-sxm,4,closed_loop,,32,2048,512,0.61,0.034\n")


def test_validate_page_for_op_timings_and_runs(cli, tmp_path):
    page_file = tmp_path / "v.html"
    res = cli(*VALIDATE, "--out", str(page_file))
    assert res.code == 0, res.err
    page = page_file.read_text()
    _self_contained(page)
    for text in ("predicted vs measured", "y = x", "relative error", "error per group",
                 "h100-sxm gemm", "h100-sxm attention-decode", "median_ape_pct"):
        assert text in page, text
    assert page.count('class="plotly-graph-div"') == 2
    # the table on the page is the one --format json reports
    errors = cli(*VALIDATE, "--format", "json").json()["errors"]
    assert f"{errors[0]['median_ape_pct']:.4g}" in page
    runs = tmp_path / "runs.csv"
    runs.write_text(RUNS)
    res = cli("validate", "--from", str(runs), "--out", str(tmp_path / "r.html"))
    assert res.code == 0, res.err
    page = (tmp_path / "r.html").read_text()
    assert "2 measured runs" in page and "ttft_s" in page and "tpot_s" in page
    assert "serving-mode rows left out" in page
    res = cli(*VALIDATE, "--format", "html")
    assert res.code == 2 and "--out FILE.html" in res.err


def test_validation_html_plots_each_group_against_y_equals_x(monkeypatch):
    import pandas as pd

    from llmsim.report import html

    figures = []
    monkeypatch.setattr(html.Page, "figure", lambda self, fig, height=0: figures.append(fig))
    html.validation_html("t", {"a": ([1e-3, 3e-3, -1.0], [1e-3, 1e-3, 1.0]),
                               "b": ([2.0], [1.0])}, pd.DataFrame({"figure": ["a"]}))
    scatter, hist = figures
    by_name = {t.name: t for t in scatter.data}
    assert list(by_name["a"].x) == [1e-3, 1e-3] and list(by_name["a"].y) == [1e-3, 3e-3]
    line = by_name["y = x"]
    assert list(line.x) == list(line.y) and line.x[0] < 1e-3 and line.x[1] > 2.0
    assert scatter.layout.xaxis.type == "log" and scatter.layout.yaxis.type == "log"
    errors = {t.name: list(t.x) for t in hist.data}
    assert errors["a"] == pytest.approx([0.0, 200.0]) and errors["b"] == pytest.approx([100.0])


def test_html_needs_a_file_and_report_needs_a_bundle(cli, tmp_path):
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--format", "html")
    assert res.code == 2 and "--out FILE.html" in res.err
    res = cli("report", str(tmp_path))
    assert res.code == 2 and "summary.json" in res.err


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found (Debian package "
                                             "`chromium`; .ci/run installs it when it can)")
@pytest.mark.parametrize("what", ["simulate", "estimate", "validate"])
def test_the_page_renders_in_a_browser(cli, tmp_path, what):
    page = tmp_path / f"{what}.html"
    argv = {"simulate": SIM, "validate": VALIDATE,
            "estimate": ("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm")}[what]
    assert cli(*argv, "--out", str(page)).code == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=15000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # plotly draws each figure as <svg class="main-svg">: drawn, not just embedded
    figures = page.read_text().count('class="plotly-graph-div"')
    assert dom.stdout.count('class="main-svg"') >= figures >= 2
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, "--window-size=1200,1600", f"--screenshot={shot}",
                          page.as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.std() > 0.02  # not blank: plots, text and axes
    assert (np.abs(pixels - pixels[0, 0]).sum(axis=2) > 0.1).mean() > 0.01
