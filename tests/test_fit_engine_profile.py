"""The engine-profile fit's own rules (scripts/fit_engine_profile.py), without the simulator:
which releases get a ``NAME@VERSION`` entry, and the trust region after a rejected step."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_engine_profile.py"


@pytest.fixture(scope="module")
def fit():
    spec = importlib.util.spec_from_file_location("fit_engine_profile", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(version, model, n):
    return [{"backend_version": version, "model_path": model, "id": f"{version}-{model}-{i}"}
            for i in range(n)]


def test_a_release_needs_two_models_and_enough_rows(fit):
    rows = (_rows("0.18.0", "a", 8) + _rows("0.18.0", "b", 8)      # 2 models, 16 rows: entry
            + _rows("0.12.0", "c", 30)                               # one model: none
            + _rows("1.2.0", "a", 3) + _rows("1.2.0", "c", 3)        # 6 rows: none
            + _rows(float("nan"), "a", 20) + _rows(float("nan"), "b", 20))  # blank: none
    groups = fit.version_groups(rows)
    assert list(groups) == ["0.18.0"]
    assert len(groups["0.18.0"]) == 16


def test_a_rejected_step_is_never_evaluated_again(fit, monkeypatch):
    """Every step raises the loss and the linearised step (0.01) is shorter than the trust
    radius (0.1): halving the radius alone would evaluate the same point again and again."""
    seen = []

    def fake_rows(rows, theta, jobs, log):
        seen.append(theta.copy())
        meas = np.ones((1, 2))
        preds = meas * np.exp(theta[0])  # loss grows with theta[0] from 0
        return preds, np.zeros((1, 2, len(theta))), meas

    def fake_solve(theta, preds, jacs, meas, trust=fit.TRUST):
        step = np.zeros(len(theta))
        step[0] = min(0.01, trust[0])
        return theta + step

    monkeypatch.setattr(fit, "jacobian_rows", fake_rows)
    monkeypatch.setattr(fit, "solve", fake_solve)
    best = fit.gauss_newton([{}], 5, 1, logging.getLogger("test"), np.zeros(5))
    assert best[1][0] == 0.0  # the start stays the best point
    firsts = [t[0] for t in seen]
    assert len(set(firsts)) == len(firsts) == 5
    assert firsts[1:] == pytest.approx([0.01, 0.005, 0.0025, 0.00125])


@pytest.mark.parametrize("flag", ["--iterations", "--version-iterations", "--rows-per-group",
                                  "--jobs"])
@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_counts_below_one_are_refused(flag, value):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, str(SCRIPT), flag, value], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "at least 1" in res.stderr


def test_a_known_first_point_is_not_simulated_again(fit, monkeypatch):
    """A release refined from its engine's fit starts where that fit's rows were already
    evaluated: the first iteration uses them, later ones simulate."""
    seen = []

    def fake_rows(rows, theta, jobs, log):
        seen.append(theta.copy())
        meas = np.ones((1, 2))
        return meas * np.exp(theta[0]), np.zeros((1, 2, len(theta))), meas

    monkeypatch.setattr(fit, "jacobian_rows", fake_rows)
    monkeypatch.setattr(fit, "solve", lambda theta, *a, **k: theta + 0.01)
    meas = np.ones((1, 2))
    known = (meas * 1.5, np.zeros((1, 2, 5)), meas)
    best = fit.gauss_newton([{}], 3, 1, logging.getLogger("test"), np.zeros(5), known)
    assert [t[0] for t in seen] == pytest.approx([0.01, 0.02])  # theta0 never simulated
    assert best[1][0] == pytest.approx(0.01)  # known start (ratio 1.5) beaten by 0.01
