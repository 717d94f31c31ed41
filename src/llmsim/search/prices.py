"""GPU prices per GPU-hour: the shipped table (``data/search/prices.yaml``, with its source and
date) or a user's file of the same shape (``--prices FILE``: ``{prices_per_gpu_hour: {gpu:
usd}}``, or a flat ``{gpu: usd}`` mapping). Names are matched through the hardware catalog's
aliases."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from llmsim.errors import ConfigError


def _read(path: str | Path | None) -> dict[str, Any]:
    from llmsim.catalog.files import read_yaml_file

    if path is None:
        text = resources.files("llmsim.data").joinpath("search", "prices.yaml")
        import yaml

        return yaml.safe_load(text.read_text())
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--prices file not found: {path}")
    data = read_yaml_file(p, str(p))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a price file is a mapping gpu -> USD per GPU-hour")
    return data


def load_prices(path: str | Path | None = None) -> dict[str, Any]:
    """``{"prices": {canonical gpu name: usd per GPU-hour}, "source": ..., "date": ...}``."""
    from llmsim.catalog import get_hardware

    data = _read(path)
    table = data.get("prices_per_gpu_hour", data if path is not None else {})
    prices: dict[str, float] = {}
    for name, usd in table.items():
        if name in ("source", "date", "notes"):
            continue
        try:
            value = float(usd)
        except (TypeError, ValueError):
            raise ConfigError(f"price of {name} must be a number of USD per GPU-hour, got "
                              f"{usd!r}") from None
        if not value > 0:
            raise ConfigError(f"price of {name} must be > 0 USD per GPU-hour, got {usd!r}")
        prices[get_hardware(str(name)).name] = value
    return {"prices": prices, "source": data.get("source", str(path)),
            "date": str(data.get("date", ""))}
