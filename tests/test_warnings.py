"""Warnings a person needs (issue 13): pathologies of a serving run and of an offload policy,
printed once after the output, repeats collapsed into one line with a count."""

from __future__ import annotations

import logging

BASE = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm")


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("WARNING")]


def test_a_healthy_run_warns_of_nothing(cli):
    res = cli(*BASE, "--rate", "2", "--num-requests", "60", "--input-len", "512",
              "--output-len", "64")
    assert res.code == 0 and _warnings(res.err) == []


def test_preemption_saturation_and_an_unsustained_rate(cli):
    res = cli(*BASE, "--rate", "60", "--num-requests", "600", "--input-len", "1024",
              "--output-len", "512", "--kv-capacity-tokens", "60000")
    assert res.code == 0, res.err
    text = "\n".join(_warnings(res.err))
    assert "heavy preemption" in text and "KV cache saturated" in text
    assert "offered rate not sustained" in text
    # after the output: stdout holds the tables, stderr the warnings
    assert "TTFT" in res.out and "WARNING" not in res.out


def test_rejected_requests_name_the_reason_and_count(cli):
    res = cli(*BASE, "--rate", "5", "--num-requests", "40", "--input-len", "2048",
              "--output-len", "512", "--max-model-len", "2400")
    assert res.code == 0
    line = next(w for w in _warnings(res.err) if "rejected" in w)
    assert "40 of 40 requests rejected: context length" in line and "--max-model-len" in line


def test_unnecessary_offload(cli):
    res = cli("offload", "evaluate", "--model", "opt-6.7b", "--gpu-batch-size", "1",
              "--num-gpu-batches", "1", "--percent", "50", "50", "100", "0", "100", "0",
              "--gpu-mem", "40", "--input-len", "64", "--output-len", "8")
    assert res.code == 0, res.err
    assert any("unnecessary offload" in w for w in _warnings(res.err))
    fits_not = cli("offload", "evaluate", "--model", "opt-30b", "--gpu-batch-size", "8",
                   "--num-gpu-batches", "4")
    assert not any("unnecessary offload" in w for w in _warnings(fits_not.err))


def test_repeated_warnings_collapse_with_a_count(capsys):
    from llmsim.report.warnings import CollapsedWarnings, collapse

    assert collapse(["a", "b", "a", "a"]) == ["a (x3)", "b"]
    handler = CollapsedWarnings()
    log = logging.getLogger("llmsim.test_collapse")
    log.addHandler(handler)
    try:
        for _ in range(9):
            log.warning("the best policy sits at the edge of the candidate grid")
        handler.flush_all()
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.count("edge of the candidate grid") == 1 and "(x9)" in err


def test_the_cli_log_collapses_repeats(cli, monkeypatch):
    from llmsim.cli import app as app_module

    real = app_module._release_logs

    def noisy(show: bool) -> None:
        for _ in range(3):
            logging.getLogger("llmsim.x").warning("same thing")
        real(show)

    monkeypatch.setattr(app_module, "_release_logs", noisy)
    res = cli("catalog", "list", "hosts")
    assert res.err.count("same thing") == 1 and "(x3)" in res.err
