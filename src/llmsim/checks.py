"""Argument checks at the edge of the Python API: one-line :class:`ConfigError` naming the value.

The CLI's flags are typed by typer; a Python caller can pass anything. Every public entry point
checks what it is given with these before any arithmetic, so ``estimate(batch=2.5)``,
``batch=True`` or ``batch="8"`` fail with the project's own error instead of running as 2, 1 or
raising ``TypeError`` deep inside (issue 9).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from llmsim.errors import ConfigError


def _what(name: str, value: Any) -> str:
    kind = type(value).__name__
    return f"{name} {value!r}" if isinstance(value, (int, float, str)) else f"{name} ({kind})"


#: the largest whole number the cost model's float arithmetic holds exactly
MAX_WHOLE = 2**53


def whole(value: Any, name: str, low: int = 1, high: int | None = MAX_WHOLE) -> int:
    """``value`` as an int: a whole number (an integral float such as ``2.0`` too, not a bool or
    a string) in ``[low, high]`` (default high: 2**53)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{_what(name, value)} must be a whole number >= {low}")
    if isinstance(value, numbers.Integral) or math.isfinite(value) and float(value).is_integer():
        out = int(value)
    else:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    if out < low or (high is not None and out > high):
        span = f">= {low}" if high is None else f"in {low}..{high:,}"
        raise ConfigError(f"{name} must be {span}, got {out}")
    return out


def optional_whole(value: Any, name: str, low: int = 1, high: int | None = MAX_WHOLE
                   ) -> int | None:
    return None if value is None else whole(value, name, low, high)


def number(value: Any, name: str, low: float | None = None, high: float | None = None,
           low_open: bool = False, unit: str = "") -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{_what(name, value)} must be a number{unit}")
    out = float(value)
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be a finite number{unit}, got {value!r}")
    below = low is not None and (out <= low if low_open else out < low)
    if below or (high is not None and out > high):
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        raise ConfigError(f"{name} must be {' and '.join(p for p in (lo, hi) if p)}{unit}, "
                          f"got {value!r}")
    return out


def efficiency(value: Any, name: str = "--efficiency") -> float | None:
    """A flat efficiency: None, or a fraction of the datasheet peaks in (0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0.0 < float(value) <= 1.0):
        raise ConfigError(f"{name} {value!r} must be in (0, 1]: a fraction of the datasheet "
                          "peaks")
    return float(value)


def text(value: Any, name: str, allow_none: bool = False) -> str | None:
    """A non-empty string (a name or a path)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_what(name, value)} must be a non-empty name or path")
    return value


def flag(value: Any, name: str) -> bool:
    """A bool (not a string: ``"false"`` is true in Python)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{_what(name, value)} must be True or False")
    return value


def one_of_types(value: Any, name: str, types: tuple[type, ...], what: str) -> Any:
    if not isinstance(value, types):
        raise ConfigError(f"{name} must be {what}, got {type(value).__name__} {value!r}"[:300])
    return value


def context(total_tokens: int, model_name: str, trained_tokens: int, max_model_len: int | None,
            what: str, shorten: str, flag: bool = True) -> None:
    """``total_tokens`` (a request's input + output) within the context served: the model's
    trained context, or ``max_model_len`` when given (engines serve beyond the trained context
    when told: vLLM ``--max-model-len`` with rope scaling). Else a one-line
    :class:`ConfigError` naming the ways out (``shorten``: the length flags; ``flag``: the
    command takes ``--max-model-len``)."""
    limit = trained_tokens if max_model_len is None else max_model_len
    if max_model_len is not None:
        whole(max_model_len, "--max-model-len", low=2)
    if total_tokens > limit:
        served = (f"--max-model-len {limit}" if max_model_len is not None
                  else f"{model_name}'s context of {limit} tokens")
        more = ", or raise --max-model-len if the engine serves it (rope scaling)" if flag else ""
        raise ConfigError(f"{what} = {total_tokens} tokens exceeds {served}; shorten "
                          f"{shorten}{more}")


def unused_gpus(num_gpus: int | None, tp: int, pp: int, dp: int) -> str | None:
    """What to say when ``num_gpus`` sizes a cluster larger than the plan's ``tp x pp x dp``
    (the per-GPU figures count only the plan's GPUs), or None when it uses them all."""
    used = tp * pp * dp
    if num_gpus is None or num_gpus <= used:
        return None
    hint = (f"add --dp {num_gpus // (tp * pp)}" if num_gpus % (tp * pp) == 0
            else "match tp x pp x dp to it")
    return (f"--num-gpus {num_gpus} sizes the cluster but the plan uses tp {tp} x pp {pp} x "
            f"dp {dp} = {used} GPUs (per-GPU figures count those); {hint} to use them all")
