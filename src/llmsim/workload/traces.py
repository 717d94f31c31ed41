"""Request traces: CSV / JSONL files with arrival times and input/output token counts.

Formats (auto-detected from the column names, or named with ``--trace-format``):

=========  ==============================================================  ===================
format     columns                                                         source
=========  ==============================================================  ===================
azure      ``TIMESTAMP`` (datetime), ``ContextTokens``, ``GeneratedTokens``  Azure LLM inference
                                                                           trace 2023
                                                                           (Splitwise, CC-BY)
mooncake   ``timestamp`` (ms), ``input_length``, ``output_length``,          Mooncake FAST'25
           ``hash_ids`` (ids of 512-token prefix blocks)                     (Apache-2.0)
vidur      ``num_prefill_tokens``, ``num_decode_tokens`` [, ``arrived_at``   Vidur processed
           (s)]                                                             traces (MIT)
plain      ``input_tokens``, ``output_tokens`` [, ``arrival_time_s``] [,     any
           ``priority``]
=========  ==============================================================  ===================

Arrival times become seconds relative to the first request. Bad files raise
:class:`~llmsim.errors.DataError` naming the file, the line and the column.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsim.errors import DataError
from llmsim.io import path_name_problem, shown
from llmsim.registry import Registry

log = logging.getLogger(__name__)

MOONCAKE_BLOCK_TOKENS = 512
#: largest token count, priority and prefix-block id a trace cell may hold: checked on the
#: parsed value before it becomes an int64 (1e23 would wrap to a negative count)
MAX_TRACE_TOKENS = 2**31 - 1
MAX_PRIORITY = 2**31 - 1
MAX_HASH_ID = 2**40


@dataclass(frozen=True, eq=False)
class Trace:
    """A loaded trace (SI units). ``hash_*``: prefix-block ids in CSR form (Mooncake only)."""

    path: str
    format: str
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray | None = None
    priority: np.ndarray | None = None
    hash_offsets: np.ndarray | None = None
    hash_values: np.ndarray | None = None
    hash_block_tokens: int = MOONCAKE_BLOCK_TOKENS

    def __len__(self) -> int:
        return len(self.input_tokens)

    @property
    def span_s(self) -> float:
        if self.arrival_s is None or len(self.arrival_s) == 0:
            return 0.0
        return float(self.arrival_s[-1] - self.arrival_s[0])


@dataclass(frozen=True)
class TraceFormat:
    name: str
    input_col: str
    output_col: str
    time_col: str | None
    time_kind: str  # "datetime", "ms", "s"
    time_required: bool = False
    extra: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        cols = (self.input_col, self.output_col)
        return (self.time_col, *cols) if self.time_required and self.time_col else cols


TRACE_FORMATS: Registry[TraceFormat] = Registry("trace format")
for _fmt in (
    TraceFormat("azure", "ContextTokens", "GeneratedTokens", "TIMESTAMP", "datetime", True),
    TraceFormat("mooncake", "input_length", "output_length", "timestamp", "ms", True,
                ("hash_ids",)),
    TraceFormat("vidur", "num_prefill_tokens", "num_decode_tokens", "arrived_at", "s"),
    TraceFormat("plain", "input_tokens", "output_tokens", "arrival_time_s", "s",
                extra=("priority",)),
):
    TRACE_FORMATS.register(_fmt.name)(_fmt)


def _json_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
            except RecursionError:
                raise DataError(f"{path}: line {lineno}: JSON nested too deeply") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {lineno}: expected a JSON object (one request "
                                f"per line), got {type(row).__name__}")
            rows.append(row)
    return rows


def _read_frame(path: Path) -> tuple[pd.DataFrame, int]:
    """The file as a DataFrame and the line number of its first data row."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json", ".ndjson"):
            return pd.DataFrame(_json_rows(path)), 1
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep), 2
    except FileNotFoundError:
        raise DataError(f"trace file not found: {shown(path)}") from None
    except IsADirectoryError:
        raise DataError(f"trace {shown(path)} is a folder; give a trace file (CSV or JSONL)"
                        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{shown(path)}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                        f"offset {exc.start}); a trace is a CSV or JSONL file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{shown(path)}: cannot parse as a table "
                        f"({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise DataError(f"cannot read trace {shown(path)}: {exc.strerror or exc}") from None


def detect_format(columns: list[str]) -> TraceFormat | None:
    cols = set(columns)
    for name in ("azure", "mooncake", "vidur", "plain"):
        fmt = TRACE_FORMATS.get(name)
        if fmt.input_col in cols and fmt.output_col in cols:
            return fmt
    return None


def _cell(value: Any) -> str | None:
    """A cell as the user wrote it (quoted), None for a blank cell or a missing JSON key."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or (
            isinstance(value, str) and not value.strip()):
        return None
    return repr(str(value))


def _lengths(frame: pd.DataFrame, col: str, path: Path, first_line: int) -> np.ndarray:
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        cell = _cell(raw.iloc[i])
        problem = ("missing or empty; every request needs a token count" if cell is None
                   else f"{cell} is not a token count")
        raise DataError(f"{path}: line {i + first_line}, column {col!r}: {problem}")
    frac = values != np.floor(values)
    if frac.any():
        i = int(np.argmax(frac))
        raise DataError(f"{path}: line {i + first_line}, column {col!r}: {values[i]:g} is not "
                        "a whole number of tokens")
    nonpos = values < 1
    if nonpos.any():
        i = int(np.argmax(nonpos))
        what = "negative" if values[i] < 0 else "zero"
        raise DataError(f"{path}: line {i + first_line}, column {col!r}: {what} length "
                        f"{values[i]:g}; token counts must be >= 1")
    huge = values > MAX_TRACE_TOKENS
    if huge.any():
        i = int(np.argmax(huge))
        raise DataError(f"{path}: line {i + first_line}, column {col!r}: {values[i]:g} tokens "
                        f"is too many (at most {MAX_TRACE_TOKENS:,} per request)")
    return values.astype(np.int64)


def _times(frame: pd.DataFrame, fmt: TraceFormat, path: Path, first_line: int) -> np.ndarray:
    col = fmt.time_col
    assert col is not None
    raw = frame[col]
    if fmt.time_kind == "datetime":
        ts = pd.to_datetime(raw, format="ISO8601", errors="coerce")
        bad = ts.isna().to_numpy()
        values = (ts - ts.min()).dt.total_seconds().to_numpy() if not bad.all() else None
    else:
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if fmt.time_kind == "ms":
            values = values / 1e3
    if bad.any():
        i = int(np.argmax(bad))
        cell = _cell(raw.iloc[i])
        problem = ("missing or empty; every request needs a time when the column is present"
                   if cell is None else f"{cell} is not a valid time")
        raise DataError(f"{path}: line {i + first_line}, column {col!r}: {problem}")
    assert values is not None
    neg = values < 0
    if fmt.time_kind != "datetime" and neg.any():
        i = int(np.argmax(neg))
        raise DataError(f"{path}: line {i + first_line}, column {col!r}: negative time "
                        f"{values[i]:g}")
    return values


def _hash_csr(frame: pd.DataFrame, path: Path, first_line: int
              ) -> tuple[np.ndarray, np.ndarray]:
    lists = frame["hash_ids"].tolist()
    lengths = np.empty(len(lists), dtype=np.int64)
    for i, ids in enumerate(lists):
        if ids is None or (isinstance(ids, float) and math.isnan(ids)):  # no key: no blocks
            lists[i] = ids = []
        if not isinstance(ids, list):
            raise DataError(f"{path}: line {i + first_line}, column 'hash_ids': expected a list "
                            f"of block ids, got {ids!r}")
        lengths[i] = len(ids)
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = [x for ids in lists for x in ids]
    for j, x in enumerate(flat):
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < MAX_HASH_ID:
            i = int(np.searchsorted(offsets, j, side="right")) - 1
            raise DataError(f"{path}: line {i + first_line}, column 'hash_ids': {x!r} is not a "
                            f"block id (a whole number 0..{MAX_HASH_ID - 1})")
    values = np.fromiter(flat, dtype=np.int64, count=offsets[-1])
    return offsets, values


BUILTIN_TRACES = {
    "azure-conv": "azure_conv_2023_sample.csv",
    "mooncake-conv": "mooncake_conversation_sample.jsonl",
}


def resolve_trace_path(path: str | Path) -> Path:
    """A trace file path, or the packaged sample named ``azure-conv`` / ``mooncake-conv``
    (first rows of the Azure 2023 conversation and Mooncake conversation traces; see
    ``llmsim/data/traces/ATTRIBUTION.md``)."""
    if not isinstance(path, (str, Path)):
        raise DataError(f"a trace is a file path or a built-in sample name, got "
                        f"{type(path).__name__} {path!r}")
    p = Path(path)
    problem = path_name_problem(p)
    if problem:
        raise DataError(f"trace {shown(p)}: {problem}")
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as exc:
        raise DataError(f"cannot read trace {shown(p)}: {exc.strerror or exc}") from None
    if is_dir:
        raise DataError(f"trace {shown(p)} is a folder; give a trace file (CSV or JSONL)")
    if exists:
        return p
    name = str(path).strip().lower()
    if name in BUILTIN_TRACES:
        from importlib import resources

        return Path(str(resources.files("llmsim.data").joinpath("traces",
                                                                 BUILTIN_TRACES[name])))
    raise DataError(f"trace file not found: {shown(p)} (built-in samples: "
                    f"{', '.join(sorted(BUILTIN_TRACES))})")


def load_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read and validate a trace file or a built-in sample (cached by path, size and
    mtime)."""
    p = resolve_trace_path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DataError(f"trace file not found: {shown(p)}") from None
    except OSError as exc:
        raise DataError(f"cannot read trace {shown(p)}: {exc.strerror or exc}") from None
    return _load_trace_cached(str(p.resolve()), st.st_size, st.st_mtime_ns,
                              fmt.lower() if fmt and fmt != "auto" else None)


@lru_cache(maxsize=8)
def _load_trace_cached(path_str: str, _size: int, _mtime: int, fmt_name: str | None) -> Trace:
    path = Path(path_str)
    frame, first_line = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    if fmt_name:
        fmt = TRACE_FORMATS.get(fmt_name)
    else:
        found = detect_format(columns)
        if found is None:
            known = "; ".join(f"{f}: {', '.join(TRACE_FORMATS.get(f).required)}"
                              for f in TRACE_FORMATS.names())
            raise DataError(f"{path}: unrecognised trace columns {columns}; expected one of "
                            f"({known})")
        fmt = found
    missing = [c for c in fmt.required if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))} for the "
                        f"{fmt.name} trace format (found {columns})")
    if len(frame) == 0:
        raise DataError(f"{path}: the trace has no requests")
    inputs = _lengths(frame, fmt.input_col, path, first_line)
    outputs = _lengths(frame, fmt.output_col, path, first_line)
    arrival = None
    if fmt.time_col and fmt.time_col in columns:
        arrival = _times(frame, fmt, path, first_line)
    priority = None
    if "priority" in columns:  # optional per row: a blank cell or a missing key is 0
        raw = frame["priority"]
        missing = raw.isna().to_numpy() | raw.astype(str).str.strip().eq("").to_numpy()
        pr = pd.to_numeric(raw.where(~missing, 0), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(pr) | (pr != np.floor(pr))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}: line {i + first_line}, column 'priority': "
                            f"{str(raw.iloc[i])!r} is not a whole number")
        huge = np.abs(pr) > MAX_PRIORITY
        if huge.any():
            i = int(np.argmax(huge))
            raise DataError(f"{path}: line {i + first_line}, column 'priority': "
                            f"{str(raw.iloc[i])!r} is out of range (at most +-{MAX_PRIORITY:,})")
        priority = pr.astype(np.int64)
    offsets = values = None
    if "hash_ids" in columns:
        offsets, values = _hash_csr(frame, path, first_line)
    if arrival is not None:
        order = np.argsort(arrival, kind="stable")
        if (np.diff(order) != 1).any():
            log.warning("%s: rows are not in arrival order; sorting by time", path)
            inputs, outputs, arrival = inputs[order], outputs[order], arrival[order]
            if priority is not None:
                priority = priority[order]
            if offsets is not None and values is not None:
                lens = np.diff(offsets)[order]
                values = np.concatenate([values[offsets[i]:offsets[i + 1]] for i in order])
                offsets = np.concatenate([[0], np.cumsum(lens)])
        arrival = arrival - arrival[0]
    return Trace(str(path), fmt.name, inputs, outputs, arrival, priority, offsets, values)


def trace_info(trace: Trace) -> dict[str, Any]:
    return {
        "path": trace.path, "format": trace.format, "num_requests": len(trace),
        "span_s": trace.span_s, "mean_input_tokens": float(trace.input_tokens.mean()),
        "mean_output_tokens": float(trace.output_tokens.mean()),
        "has_prefix_hashes": trace.hash_offsets is not None,
    }
