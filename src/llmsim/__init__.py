"""llmsim: predict how large language models perform when served.

Python API (the CLI is a thin layer over it)::

    import llmsim
    r = llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=16, prompt=1024, output=256)
    r.ttft_s, r.tpot_s, r.output_tokens_per_s
    llmsim.price_op("gemm", "h100-sxm", m=4096, n=4096, k=4096).time_s
    report = llmsim.simulate("examples/simulate.yaml")   # or a SimulationConfig / dict
    report.summary()["ttft_s"]["p99"], report.requests   # a pandas DataFrame
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # typing is not imported at run time: the CLI's first milliseconds
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "estimate": ("llmsim.estimates.static_batch", "estimate"),
    "EstimateResult": ("llmsim.estimates.static_batch", "EstimateResult"),
    "build_step_model": ("llmsim.costmodel", "build_step_model"),
    "Deployment": ("llmsim.costmodel", "Deployment"),
    "price_op": ("llmsim.estimates.op", "price_op"),
    "simulate": ("llmsim.serving.run", "simulate"),
    "SimulationConfig": ("llmsim.serving.config", "SimulationConfig"),
    "SimulationReport": ("llmsim.serving.results", "SimulationReport"),
    "analyze_memory": ("llmsim.memory", "analyze_memory"),
    "get_model": ("llmsim.catalog", "get_model"),
    "get_hardware": ("llmsim.catalog", "get_hardware"),
    "get_cluster": ("llmsim.catalog", "get_cluster"),
    "BatchShape": ("llmsim.costmodel", "BatchShape"),
    "AnalyticStepTimeModel": ("llmsim.costmodel", "AnalyticStepTimeModel"),
    "StepTimeModel": ("llmsim.costmodel", "StepTimeModel"),
    "Profile": ("llmsim.costmodel", "Profile"),
    "LLMSimError": ("llmsim.errors", "LLMSimError"),
}

_SUBPACKAGES = ("catalog", "costmodel", "memory", "serving", "placement", "expert_cache",
                "expert_cache_executor", "calibration", "estimates", "workload", "units",
                "errors", "dtypes")

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    """Import API objects (and subpackages, e.g. ``llmsim.placement.solve``) on first use; keeps
    ``import llmsim`` and the CLI start fast."""
    if name in _SUBPACKAGES:
        return import_module(f"llmsim.{name}")
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'llmsim' has no attribute {name!r}")
    value = getattr(import_module(target[0]), target[1])
    globals()[name] = value
    return value
