"""A real PyTorch MoE decoder with an offloaded expert cache, and the closed loop that checks
the simulation against it (``pip install 'llmsim[executor]'``).

Importing this package does not import torch; the names below load it on first use::

    from llmsim.expert_cache_executor import run_benchmark
    from llmsim.expert_cache import OffloadConfig
    r = run_benchmark("cpu-small", OffloadConfig(capacity=4, prefetch=2), device="cpu")
    r.prefill_s, r.decode_s_per_token, r.hit_rate
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "MoEExecutor": ("llmsim.expert_cache_executor.decoder", "MoEExecutor"),
    "run_prefill": ("llmsim.expert_cache_executor.runner", "run_prefill"),
    "run_decode": ("llmsim.expert_cache_executor.runner", "run_decode"),
    "run_benchmark": ("llmsim.expert_cache_executor.runner", "run_benchmark"),
    "build_executor": ("llmsim.expert_cache_executor.runner", "build_executor"),
    "ExecutorResult": ("llmsim.expert_cache_executor.runner", "ExecutorResult"),
    "PhaseReport": ("llmsim.expert_cache_executor.runner", "PhaseReport"),
    "measure_machine": ("llmsim.expert_cache_executor.measure", "measure_machine"),
    "MachineMeasurement": ("llmsim.expert_cache_executor.measure", "MachineMeasurement"),
    "run_check": ("llmsim.expert_cache_executor.closed_loop", "run_check"),
    "CheckResult": ("llmsim.expert_cache_executor.closed_loop", "CheckResult"),
    "require_torch": ("llmsim.expert_cache_executor._torch", "require_torch"),
    "torch_available": ("llmsim.expert_cache_executor._torch", "torch_available"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'llmsim.expert_cache_executor' has no attribute {name!r}")
    value = getattr(import_module(target[0]), target[1])
    globals()[name] = value
    return value
