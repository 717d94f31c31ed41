"""Human units, in one place.

Everything inside llmsim is SI: seconds, bytes, FLOP, FLOP/s, bytes/s. Human units (GB vs GiB,
TFLOPS, ms, Gbit/s) exist only here: when parsing spec files and CLI flags, and when rendering.

Conventions (as vendors use them):
- ``GB``, ``TB`` are decimal (1e9, 1e12); ``GiB``, ``TiB`` are binary (2**30, 2**40).
- Bandwidths ``GB/s`` / ``TB/s`` are decimal bytes per second; ``Gbps`` / ``Gbit/s`` are bits.
- ``TFLOPS`` is 1e12 FLOP/s (never 2**40: a 10% error some tools make).
"""

from __future__ import annotations

import math
import re

from llmsim.errors import SpecError

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
KiB = 2.0**10
MiB = 2.0**20
GiB = 2.0**30
TiB = 2.0**40

_BYTES = {
    "b": 1.0, "byte": 1.0, "bytes": 1.0,
    "kb": KB, "mb": MB, "gb": GB, "tb": TB,
    "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
}
_BANDWIDTH = {
    "b/s": 1.0, "kb/s": KB, "mb/s": MB, "gb/s": GB, "tb/s": TB,
    "kib/s": KiB, "mib/s": MiB, "gib/s": GiB, "tib/s": TiB,
    "gbps": GB / 8, "gbit/s": GB / 8, "tbps": TB / 8, "tbit/s": TB / 8, "mbps": MB / 8,
    "mbit/s": MB / 8,
}
_FLOPS = {
    "flops": 1.0, "flop/s": 1.0, "gflops": 1e9, "tflops": 1e12, "pflops": 1e15,
    "tops": 1e12, "pops": 1e15, "gops": 1e9,
}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}

_NUM_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$")


def _parse(value: object, table: dict[str, float], what: str) -> float:
    """Parse ``value`` (a number in SI, or a string ``"<number> <unit>"``) into SI."""
    if isinstance(value, bool):
        raise SpecError(f"{what}: expected a number with a unit, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise SpecError(f"{what}: expected a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise SpecError(f"{what}: expected a number with a unit, got {value!r}")
    match = _NUM_UNIT.match(value)
    if not match:
        raise SpecError(f"{what}: cannot parse {value!r}; write e.g. '80 GiB' or '3.35 TB/s'")
    number, unit = float(match.group(1)), match.group(2).lower()
    if not math.isfinite(number):  # 1e999 overflows to inf
        raise SpecError(f"{what}: {value!r} is not a finite number")
    if unit == "":
        return number
    if unit not in table:
        known = ", ".join(sorted({k for k in table if k}))
        raise SpecError(f"{what}: unknown unit {match.group(2)!r} in {value!r}; known: {known}")
    return number * table[unit]


def parse_bytes(value: object, what: str = "size") -> float:
    """``"80 GiB"`` -> 85899345920.0; a bare number is bytes."""
    return _parse(value, _BYTES, what)


def parse_bandwidth(value: object, what: str = "bandwidth") -> float:
    """``"3.35 TB/s"`` -> 3.35e12 bytes/s; ``"400 Gbps"`` -> 5e10 bytes/s; bare number is B/s."""
    return _parse(value, _BANDWIDTH, what)


def parse_flops(value: object, what: str = "throughput") -> float:
    """``"989 TFLOPS"`` -> 9.89e14 FLOP/s (TOPS for integer ops counts the same)."""
    return _parse(value, _FLOPS, what)


def parse_time(value: object, what: str = "time") -> float:
    """``"5 us"`` -> 5e-6 s; a bare number is seconds."""
    return _parse(value, _TIME, what)


def gib_to_bytes(gib: float) -> float:
    """Memory sizes given on the command line (``--gpu-mem 16``) are GiB, as GPU and DRAM
    capacities are (FlexGen's ``--gpu-mem`` too)."""
    return gib * GiB


def fmt_bytes(num_bytes: float) -> str:
    """Render a memory size in binary units, as GPU memory is sized (an "80 GB" A100 holds
    80 GiB), e.g. ``"128.5 GiB"``."""
    size = abs(num_bytes)
    if size >= TiB:
        return f"{num_bytes / TiB:.2f} TiB"
    if size >= GiB:
        return f"{num_bytes / GiB:.1f} GiB"
    if size >= MiB:
        return f"{num_bytes / MiB:.1f} MiB"
    if size >= KiB:
        return f"{num_bytes / KiB:.1f} KiB"
    return f"{num_bytes:.0f} B"


def fmt_time(seconds: float) -> str:
    """Render seconds with a readable unit, e.g. ``"12.3 ms"`` (``"n/a"`` for NaN)."""
    if seconds != seconds:
        return "n/a"
    size = abs(seconds)
    if size >= 1.0:
        return f"{seconds:.3f} s"
    if size >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    if size >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.1f} ns"


def fmt_pct(fraction: float | None, digits: int = 1, signed: bool = False) -> str:
    """Render a fraction as a percentage, e.g. ``"59.9%"`` (``"+0.4%"`` signed; ``"n/a"`` for
    NaN: a rate of an empty phase; ``"-"`` for None: not measured, as a JSON summary's null)."""
    if fraction is None:
        return "-"
    if fraction != fraction:
        return "n/a"
    return f"{fraction:{'+' if signed else ''}.{digits}%}"


def fmt_time_short(seconds: float) -> str:
    """Render seconds in at most about six characters, for narrow tables: ``"1,234 s"`` from
    100 s, ``"12.3 s"`` / ``"1.23 ms"`` (three significant digits) from 1 ms, ``"45 us"`` below,
    ``"0"`` for zero or less (``"n/a"`` for NaN)."""
    if seconds != seconds:
        return "n/a"
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return "0" if seconds <= 0 else f"{seconds * 1e6:.0f} us"


def fmt_ms(seconds: float, digits: int = 3) -> str:
    """Render seconds as a bare number of milliseconds with ``digits`` decimals, for a column
    whose header says ms, e.g. ``fmt_ms(0.0123)`` -> ``"12.300"``."""
    return f"{seconds * 1e3:.{digits}f}"


def fmt_latency_ms(seconds: float | None) -> str:
    """Render a latency as a bare number of milliseconds for a column headed ms: two decimals
    below one second (``"12.34"``), whole milliseconds with thousands separators from one
    second (``"1,235"``); ``"-"`` for None (no request measured it)."""
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 1000 else f"{ms:,.2f}"


def fmt_mb(num_bytes: float, digits: int = 1, grouped: bool = False) -> str:
    """Render bytes as a bare number of decimal megabytes (1e6 B) for a column headed MB, e.g.
    ``"352.3"`` (``grouped``: with thousands separators, ``"2,818.6"``)."""
    return f"{num_bytes / MB:{',' if grouped else ''}.{digits}f}"


def fmt_rate(per_s: float, unit: str = "tokens/s", digits: int = 2) -> str:
    """Render a rate with thousands separators and its unit, e.g. ``"1,234.57 tokens/s"``
    (``"n/a"`` for NaN: a rate of an empty phase)."""
    if per_s != per_s:
        return "n/a"
    return f"{per_s:,.{digits}f} {unit}"


def fmt_flops(flops_per_s: float) -> str:
    """Render FLOP/s as TFLOPS."""
    return f"{flops_per_s / 1e12:.1f} TFLOPS"


def fmt_bandwidth(bytes_per_s: float) -> str:
    """Render bytes/s as GB/s."""
    return f"{bytes_per_s / GB:.1f} GB/s"
