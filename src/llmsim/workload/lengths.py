"""Token-length distributions (prompt and output lengths), one registry, all seeded.

Each factory takes keyword parameters and returns an object with ``sample(n, rng)`` giving an
int64 array of lengths >= 1 (clipped to ``max`` when given). From the CLI a distribution is a
string ``name[:key=value,...]`` (positional values fill the parameters in order), e.g.
``fixed:512``, ``uniform:128,2048``, ``normal:mean=1024,std=256``,
``lognormal:mean=1024,cv=0.8``, ``zipf:a=1.2,high=8192``, ``empirical:path=trace.csv``, or a
bare number (fixed).

Formulas:
- lognormal by mean and coefficient of variation: ``sigma^2 = ln(1 + cv^2)``,
  ``mu = ln(mean) - sigma^2 / 2`` (so ``E[X] = mean``);
- zipf: bounded, ``P(k) ~ k^-a`` on ``[low, high]`` (inverse CDF over the finite support).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass
from typing import Any, Protocol

import numpy as np

from llmsim.errors import ConfigError
from llmsim.registry import Registry


class LengthDist(Protocol):
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def describe(self) -> str: ...


LENGTHS: Registry[Any] = Registry("length distribution")


#: the longest request a length distribution may produce (and any parameter's bound)
MAX_LENGTH = 2**31 - 1


def _finish(x: np.ndarray, cap: int | None) -> np.ndarray:
    out = np.clip(np.rint(x), 1, MAX_LENGTH).astype(np.int64)
    if cap is not None:
        np.minimum(out, cap, out=out)
    return out


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigError(f"length distribution: {name} must be > 0, got {value}")
    return float(value)


@LENGTHS.register("fixed", "constant")
@dataclass(frozen=True)
class Fixed:
    value: int

    def __post_init__(self) -> None:
        if int(self.value) < 1:
            raise ConfigError(f"fixed length must be >= 1, got {self.value}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, int(self.value), dtype=np.int64)

    def describe(self) -> str:
        return f"fixed {int(self.value)}"


@LENGTHS.register("uniform")
@dataclass(frozen=True)
class Uniform:
    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= int(self.low) <= int(self.high):
            raise ConfigError(f"uniform lengths need 1 <= low <= high, got {self.low}, "
                              f"{self.high}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(int(self.low), int(self.high) + 1, size=n, dtype=np.int64)

    def describe(self) -> str:
        return f"uniform [{int(self.low)}, {int(self.high)}]"


@LENGTHS.register("normal", "gaussian")
@dataclass(frozen=True)
class Normal:
    mean: float
    std: float
    max: int | None = None

    def __post_init__(self) -> None:
        _positive("mean", self.mean)
        if self.std < 0:
            raise ConfigError(f"normal lengths: std must be >= 0, got {self.std}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return _finish(rng.normal(self.mean, self.std, size=n), self.max)

    def describe(self) -> str:
        return f"normal mean {self.mean:g} std {self.std:g} (clipped to >= 1)"


@LENGTHS.register("lognormal")
@dataclass(frozen=True)
class LogNormal:
    mean: float
    cv: float | None = None
    sigma: float | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        _positive("mean", self.mean)
        if self.cv is not None and self.sigma is not None:
            raise ConfigError("lognormal lengths: give cv or sigma, not both")

    @property
    def _sigma(self) -> float:
        if self.sigma is not None:
            return float(self.sigma)
        cv = 1.0 if self.cv is None else float(self.cv)
        return math.sqrt(math.log1p(cv * cv))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        s = self._sigma
        mu = math.log(self.mean) - s * s / 2.0
        return _finish(rng.lognormal(mu, s, size=n), self.max)

    def describe(self) -> str:
        return f"lognormal mean {self.mean:g} sigma {self._sigma:.3g}"


@LENGTHS.register("zipf")
@dataclass(frozen=True)
class Zipf:
    a: float = 1.1
    high: int = 4096
    low: int = 1

    def __post_init__(self) -> None:
        _positive("a", self.a)
        if not 1 <= int(self.low) <= int(self.high):
            raise ConfigError(f"zipf lengths need 1 <= low <= high, got {self.low}, {self.high}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = np.arange(int(self.low), int(self.high) + 1, dtype=np.float64)
        cdf = np.cumsum(k ** -float(self.a))
        cdf /= cdf[-1]
        idx = np.searchsorted(cdf, rng.random(n), side="right")
        return (np.minimum(idx, len(k) - 1) + int(self.low)).astype(np.int64)

    def describe(self) -> str:
        return f"zipf a {self.a:g} on [{int(self.low)}, {int(self.high)}]"


@LENGTHS.register("empirical", "trace")
@dataclass(frozen=True)
class Empirical:
    """Resample (with replacement) the lengths of a trace file's input or output column."""

    path: str
    column: str = ""  # "input" or "output"; set by the caller from the role when empty
    values: tuple[int, ...] = ()

    def _values(self) -> np.ndarray:
        if self.values:
            return np.asarray(self.values, dtype=np.int64)
        from llmsim.workload.traces import load_trace

        trace = load_trace(self.path)
        col = (self.column or "input").lower()
        if col not in ("input", "output"):
            raise ConfigError(f"empirical lengths: column must be input or output, got {col!r}")
        return trace.input_tokens if col == "input" else trace.output_tokens

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        vals = self._values()
        return vals[rng.integers(0, len(vals), size=n)].astype(np.int64)

    def describe(self) -> str:
        return f"empirical ({self.column or 'input'} of {self.path})"


_POSITIONAL = {
    "fixed": ("value",), "constant": ("value",), "uniform": ("low", "high"),
    "normal": ("mean", "std"), "gaussian": ("mean", "std"), "lognormal": ("mean", "cv"),
    "zipf": ("a", "high", "low"), "empirical": ("path", "column"), "trace": ("path", "column"),
}


def parse_length_spec(text: str | int | dict[str, Any]) -> dict[str, Any]:
    """``"lognormal:mean=1024,cv=0.5"`` / ``"uniform:1,100"`` / ``512`` -> ``{"dist": ...}``."""
    if isinstance(text, dict):
        return dict(text)
    if isinstance(text, (int, float)) or str(text).strip().isdigit():
        return {"dist": "fixed", "value": int(text)}
    name, _, rest = str(text).strip().partition(":")
    spec: dict[str, Any] = {"dist": name.strip().lower()}
    order = _POSITIONAL.get(spec["dist"], ())
    for i, part in enumerate(p for p in rest.split(",") if p.strip()) if rest else []:
        key, eq, value = part.partition("=")
        if not eq:
            if i >= len(order):
                raise ConfigError(f"length distribution {text!r}: too many values; write "
                                  "key=value pairs")
            key, value = order[i], part
        spec[key.strip()] = _number(value.strip())
    return spec


def _number(v: str) -> Any:
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def make_length_dist(spec: str | int | dict[str, Any], role: str = "input") -> LengthDist:
    """Build a distribution from a spec dict or string (see module docstring)."""
    params = parse_length_spec(spec)
    name = str(params.pop("dist", params.pop("name", "")) or "")
    if not name:
        raise ConfigError(f"length distribution {spec!r}: missing 'dist' (e.g. fixed, "
                          "lognormal)")
    factory = LENGTHS.get(name)
    if factory is Empirical and not params.get("column"):
        params["column"] = role
    fields = getattr(factory, "__dataclass_fields__", {})
    unknown = [k for k in params if k not in fields]
    missing = [k for k, f in fields.items() if k not in params
               and f.default is MISSING and f.default_factory is MISSING]
    if unknown or missing:
        order = _POSITIONAL.get(name, tuple(fields))
        example = f"{name}:" + ",".join(f"{k}=..." for k in order if k in fields)
        problem = (f"unknown parameter(s) {', '.join(unknown)}" if unknown
                   else f"missing {', '.join(missing)}")
        raise ConfigError(f"length distribution {spec!r}: {problem}; write e.g. {example} "
                          f"(parameters: {', '.join(fields)})")
    for key, value in params.items():
        if isinstance(value, bool) or (isinstance(value, (int, float)) and (
                not math.isfinite(value) or abs(value) > MAX_LENGTH)):
            raise ConfigError(f"length distribution {spec!r}: {key}={value!r} must be a "
                              f"finite number within {MAX_LENGTH:,}")
    try:
        return factory(**params)
    except TypeError as exc:
        raise ConfigError(f"length distribution {spec!r}: {exc}") from None
