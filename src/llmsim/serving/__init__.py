"""Event-driven serving simulation: workloads, schedulers, paged KV cache, replicas, metrics.

``llmsim.serving.simulate(config) -> SimulationReport`` (see ``run.py``); the CLI is
``llmsim simulate`` and the model is documented in ``docs/serving.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimulationConfig", "SimulationReport", "load_config", "simulate"]


def __getattr__(name: str) -> Any:
    if name == "simulate":
        from llmsim.serving.run import simulate

        return simulate
    if name in ("SimulationConfig", "load_config"):
        from llmsim.serving import config

        return getattr(config, name)
    if name == "SimulationReport":
        from llmsim.serving.results import SimulationReport

        return SimulationReport
    raise AttributeError(f"module 'llmsim.serving' has no attribute {name!r}")
