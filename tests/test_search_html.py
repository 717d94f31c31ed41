"""The search page of the HTML report (``llmsim search ... --out report.html``): one
self-contained file with the Pareto frontier plot, the best layout and the runners-up with why
each lost, opened in headless Chromium (Debian package ``chromium``) whose DOM must hold
plotly's drawn plot. Skipped with the reason where plotly or Chromium is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

plotly = pytest.importorskip("plotly", reason="plotly (the 'report' extra) is not installed")

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
SEARCH = ("search", "--model", "llama-3.1-8b", "--prompt-dist", "lognormal:mean=1024,cv=1",
          "--output-dist", "lognormal:mean=192,cv=1", "--rate", "24", "--num-requests", "120",
          "--seed", "1", "--slo", "ttft_p99=400ms,tpot_p99=25ms", "--gpus", "h100-sxm",
          "--tp", "1,2", "--pp", "1", "--max-num-seqs", "128", "--max-num-batched-tokens",
          "2048", "--weight-dtype", "bf16", "--kv-dtype", "bf16", "--max-gpus", "4",
          "--disagg-workers", "1,2", "--no-intervals", "--workers", "1", "--tolerance", "0.1")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from llmsim.cli.app import main

    path = tmp_path_factory.mktemp("search") / "report.html"
    try:
        main([*SEARCH, "--out", str(path)])
    except SystemExit as exc:
        assert not exc.code
    return path


def test_search_page_is_self_contained_with_the_frontier_and_why_each_lost(page):
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<script type=\"text/javascript\">/**\n* plotly.js") <= 1
    assert not re.search(r"<script[^>]+src=\"https?://", text)
    for needle in ("Pareto frontier", "best layout and runners-up", "why it lost",
                   "why the others lost",  # xPyD rows: serving-confirmed or static
                   "h100-sxm/tp"):
        assert needle in text, needle
    assert text.count('class="plotly-graph-div"') == 1


def test_search_html_needs_a_folder_to_resume(cli, tmp_path):
    res = cli(*SEARCH, "--out", str(tmp_path / "x.html"), "--resume")
    assert res.code == 2 and "--out DIR" in res.err


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found (Debian package "
                                             "`chromium`; .ci/run installs it when it can)")
def test_search_page_renders_in_a_browser(page, tmp_path):
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=15000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 1  # plotly drew the frontier
    assert "scatterlayer" in dom.stdout and "Pareto frontier" in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, "--window-size=1200,1400", f"--screenshot={shot}",
                          page.as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.std() > 0.02
    assert (np.abs(pixels - pixels[0, 0]).sum(axis=2) > 0.1).mean() > 0.01
