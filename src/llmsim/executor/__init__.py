"""A real PyTorch MoE decoder with an offloaded expert cache, and the closed loop that checks
the simulation against it (``pip install 'llmsim[executor]'``).

Importing this package does not import torch; the names below load it on first use::

    from llmsim.executor import run_benchmark
    from llmsim.moe_offload import OffloadConfig
    r = run_benchmark("cpu-small", OffloadConfig(capacity=4, prefetch=2), device="cpu")
    r.prefill_s, r.decode_s_per_token, r.hit_rate
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "MoEExecutor": ("llmsim.executor.model", "MoEExecutor"),
    "run_prefill": ("llmsim.executor.runner", "run_prefill"),
    "run_decode": ("llmsim.executor.runner", "run_decode"),
    "run_benchmark": ("llmsim.executor.runner", "run_benchmark"),
    "build_executor": ("llmsim.executor.runner", "build_executor"),
    "ExecutorResult": ("llmsim.executor.runner", "ExecutorResult"),
    "PhaseReport": ("llmsim.executor.runner", "PhaseReport"),
    "measure_machine": ("llmsim.executor.measure", "measure_machine"),
    "MachineMeasurement": ("llmsim.executor.measure", "MachineMeasurement"),
    "run_check": ("llmsim.executor.check", "run_check"),
    "CheckResult": ("llmsim.executor.check", "CheckResult"),
    "require_torch": ("llmsim.executor._torch", "require_torch"),
    "torch_available": ("llmsim.executor._torch", "torch_available"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'llmsim.executor' has no attribute {name!r}")
    value = getattr(import_module(target[0]), target[1])
    globals()[name] = value
    return value
