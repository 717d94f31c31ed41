"""The one task function every backend runs (local process pool or Ray): an aggregated plan
through the serving simulation (``search/evaluate.py``) or a disaggregated layout through the
xPyD static estimate and its serving confirmation (``search/disagg.py``)."""

from __future__ import annotations

from typing import Any

from llmsim.search.disagg import evaluate_disagg_layout
from llmsim.search.evaluate import evaluate_plan


def evaluate_task(task: dict[str, Any]) -> dict[str, Any]:
    """The one task function every backend runs: an aggregated plan (:func:`evaluate_plan`,
    serving simulation) or a disaggregated layout
    (``search/disagg.py:evaluate_disagg_layout``, xPyD static estimate)."""
    if task.get("kind") == "disaggregated":
        return evaluate_disagg_layout(task)
    return evaluate_plan(task)
