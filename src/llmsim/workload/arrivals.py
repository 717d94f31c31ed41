"""Open-loop arrival processes (one registry, seeded). Closed-loop clients are the workload's
``concurrency`` knob (see ``workload.py``).

Each factory returns an object with ``times(n, rng)``: ``n`` non-decreasing arrival times in
seconds starting near 0.

- ``poisson``: exponential inter-arrival gaps with mean ``1 / rate``;
- ``gamma``: gamma gaps with mean ``1 / rate`` and coefficient of variation ``cv``
  (shape ``k = 1 / cv^2``, scale ``cv^2 / rate``; cv > 1 is burstier than Poisson, cv = 1 is
  Poisson, cv < 1 smoother);
- ``deterministic``: exactly ``1 / rate`` apart (the first at 0);
- ``batch`` (all-at-once, offline): every request at t = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from llmsim.errors import ConfigError
from llmsim.registry import Registry


class ArrivalProcess(Protocol):
    def times(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def describe(self) -> str: ...


ARRIVALS: Registry[Any] = Registry("arrival process")


def _rate(rate: float | None, name: str) -> float:
    if rate is None:
        raise ConfigError(f"arrival process {name!r} needs --rate (requests/s)")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0 \
            or not math.isfinite(rate):
        raise ConfigError(f"--rate must be a finite number > 0 requests/s, got {rate!r}"
                          + ("; for every request at once use --arrival batch"
                             if rate == math.inf else ""))
    return float(rate)


def _cv(cv: float) -> float:
    if isinstance(cv, bool) or not isinstance(cv, (int, float)) or not cv > 0 \
            or not math.isfinite(cv):
        raise ConfigError(f"gamma arrivals: --cv must be a finite number > 0, got {cv!r}")
    return float(cv)


@ARRIVALS.register("poisson", "exponential")
@dataclass(frozen=True)
class Poisson:
    rate: float

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r = _rate(self.rate, "poisson")
        return np.cumsum(rng.exponential(1.0 / r, size=n))

    def describe(self) -> str:
        return f"poisson {self.rate:g} req/s"


@ARRIVALS.register("gamma", "bursty")
@dataclass(frozen=True)
class Gamma:
    rate: float
    cv: float = 1.0

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r = _rate(self.rate, "gamma")
        shape = 1.0 / (_cv(self.cv) ** 2)
        return np.cumsum(rng.gamma(shape, 1.0 / (shape * r), size=n))

    def describe(self) -> str:
        return f"gamma {self.rate:g} req/s, cv {self.cv:g}"


@ARRIVALS.register("deterministic", "constant", "fixed")
@dataclass(frozen=True)
class Deterministic:
    rate: float

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.arange(n, dtype=np.float64) / _rate(self.rate, "deterministic")

    def describe(self) -> str:
        return f"deterministic {self.rate:g} req/s"


@ARRIVALS.register("batch", "all-at-once", "offline")
@dataclass(frozen=True)
class AllAtOnce:
    rate: float | None = None  # ignored

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(n)

    def describe(self) -> str:
        return "all at once (offline batch)"


def make_arrivals(name: str, rate: float | None = None, cv: float | None = None) -> Any:
    """An arrival process by name; ``"gamma:cv=3"`` / ``"poisson:rate=8"`` set parameters inline
    (the same ``name:key=value,...`` syntax as length distributions; flags given too win)."""
    name, _, rest = name.partition(":")
    for part in (p for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in ("rate", "cv"):
            raise ConfigError(f"arrival process {name!r}: cannot read {part!r}; write e.g. "
                              "gamma:cv=3 or poisson:rate=8")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"arrival process {name!r}: {key}={value!r} is not a number") \
                from None
        number = _rate(number, name) if key == "rate" else _cv(number)
        if key == "rate" and rate is None:
            rate = number
        elif key == "cv" and cv is None:
            cv = number
    factory = ARRIVALS.get(name)
    if rate is not None and factory is not AllAtOnce:
        rate = _rate(rate, name)
    if cv is not None:
        cv = _cv(cv)
    kwargs: dict[str, Any] = {"rate": rate}
    if factory is Gamma and cv is not None:
        kwargs["cv"] = cv
    elif cv is not None and cv != 1.0 and factory is not Gamma:
        raise ConfigError(f"--cv applies to gamma arrivals only, not {name!r}")
    return factory(**kwargs)
