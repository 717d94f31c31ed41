"""Helpers shared by the serving tests (configs for the fixed step model, sample traces)."""

from __future__ import annotations

from importlib import resources


def sample_trace(name: str) -> str:
    return str(resources.files("llmsim.data").joinpath("traces", name))


def base_config(**sections) -> dict:
    """A config for a fixed step model (KV capacity given explicitly)."""
    cfg = {"model": "fixed", "hardware": "h100-sxm",
           "scheduler": {"kv_capacity_tokens": 100_000},
           "workload": {"rate": 5.0, "num_requests": 200, "prompt": "fixed:100",
                        "output": "fixed:10"}}
    for key, value in sections.items():
        cfg.setdefault(key, {})
        if isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
            if key == "workload" and value.get("arrival") == "batch" and "rate" not in value:
                del cfg[key]["rate"]  # all at once: a rate would be an (ignored) error
        else:
            cfg[key] = value
    return cfg
