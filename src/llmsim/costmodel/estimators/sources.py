"""Where measured-kernel rows come from: the shipped table, a file, or a registered importer.

A *source spec* names them (the syntax of ``--estimator-model`` for ``table`` and of
``calibrate --from``)::

    FILE                      an op-timing file (CSV, Parquet or JSONL; docs/calibration.md)
    KIND:PATH                 a registered importer: aiconfigurator, vidur, llmcompass, file
    ...?framework=F&version=V options (the stack to take where a table holds several)

``builtin`` (or no spec) is the table shipped in ``llmsim/data/estimators``. The importers of
the third-party layouts live in :mod:`llmsim.calibration.importers`, which registers them in
:data:`SOURCES` on import (the CLI imports it), so this layer reads them without importing
the calibration layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import numpy as np

from llmsim.errors import ConfigError, DataError
from llmsim.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

MEASURED = "measured_time_s"
BUILTIN = "builtin"
BUILTIN_TABLE = "kernel_table.parquet"
#: options a source spec may carry after ``?``
OPTIONS = ("framework", "version", "hardware")

#: importer name -> ``reader(path, options) -> measurement rows`` (op-timing schema)
SOURCES: Registry[Callable[[Path, Mapping[str, str]], pd.DataFrame]] = Registry(
    "measurement source")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec: importer ``kind``, ``path`` and ``options``."""

    kind: str
    path: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        opts = "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        base = self.path if self.kind in ("file", BUILTIN) else f"{self.kind}:{self.path}"
        return base + (f"?{opts}" if opts else "")


def parse_source(text: str | None) -> SourceSpec:
    """``[KIND:]PATH[?framework=F&version=V]`` (see module docstring); a one-letter ``KIND``
    is a Windows drive, not an importer."""
    text = (text or BUILTIN).strip()
    base, _, query = text.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=False)) if query else {}
    bad = sorted(set(options) - set(OPTIONS))
    if bad:
        raise ConfigError(f"source {text!r}: unknown option(s) {bad}; known: {list(OPTIONS)}")
    m = re.match(r"^([A-Za-z][A-Za-z0-9_-]+):(.*)$", base)
    if base == BUILTIN:
        return SourceSpec(BUILTIN, BUILTIN, options)
    if m is None:
        return SourceSpec("file", base, options)
    kind, path = m.group(1).lower(), m.group(2)
    if not path:
        raise ConfigError(f"source {text!r}: {kind}: needs a path ({kind}:DIR)")
    return SourceSpec(kind, path, options)


def read_table_file(path: str | Path) -> pd.DataFrame:
    """A CSV, Parquet or JSON(-lines) table, by suffix, with a one-line error."""
    import pandas as pd

    p = str(path)
    try:
        if p.endswith((".parquet", ".pq")):
            return pd.read_parquet(p)
        if p.endswith((".jsonl", ".ndjson", ".json")):
            return pd.read_json(p, lines=not p.endswith(".json"))
        return pd.read_csv(p, skipinitialspace=True)
    except FileNotFoundError:
        raise DataError(f"{p}: no such file") from None
    except Exception as exc:  # parser errors of every flavour
        raise DataError(f"{p}: cannot read ({type(exc).__name__}: {exc})") from None


@SOURCES.register("file")
def _read_file(path: Path, options: Mapping[str, str]) -> pd.DataFrame:
    return read_table_file(path)


def _builtin_path():
    return resources.files("llmsim.data").joinpath("estimators", BUILTIN_TABLE)


@lru_cache(maxsize=8)
def _builtin(hardware: str | None) -> dict[str, np.ndarray]:
    """The shipped table's columns as numpy arrays (strings as objects), read with pyarrow
    (only ``hardware``'s row groups when given)."""
    import pyarrow.parquet as pq

    with resources.as_file(_builtin_path()) as p:
        filters = [("hardware", "==", hardware)] if hardware else None
        table = pq.read_table(p, filters=filters)
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if hasattr(col, "dictionary"):
            cats = np.array(col.dictionary.to_pylist() + [None], dtype=object)
            idx = col.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            out[name] = cats[idx]
        elif col.type == "string" or str(col.type).startswith("large_string"):
            out[name] = np.array(col.to_pylist(), dtype=object)
        else:
            out[name] = col.to_numpy(zero_copy_only=False).astype(float)
    return out


def columns_of(rows: pd.DataFrame | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A table as a mapping of numpy columns: numbers as float, anything else as objects."""
    import pandas as pd

    if not isinstance(rows, pd.DataFrame):
        return {k: np.asarray(v) for k, v in rows.items()}
    out = {}
    for c in rows.columns:
        s = rows[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            out[c] = s.to_numpy(dtype=float, na_value=np.nan)
        else:
            out[c] = s.to_numpy(dtype=object, na_value=None)
    return out


def read_columns(spec: SourceSpec | str | None,
                 hardware: str | None = None) -> dict[str, np.ndarray]:
    """:func:`read_rows` as numpy columns (the shipped table never passes through pandas)."""
    s = spec if isinstance(spec, SourceSpec) else parse_source(spec)
    if s.kind == BUILTIN:
        return dict(_builtin(hardware))
    return columns_of(read_rows(s, hardware))


def read_rows(spec: SourceSpec | str | None, hardware: str | None = None) -> pd.DataFrame:
    """Measurement rows of a source (a copy the caller may change); ``hardware`` (a catalog
    name) lets the shipped table read only that part's row groups (other sources are read
    whole: their names may be aliases)."""
    import pandas as pd

    s = spec if isinstance(spec, SourceSpec) else parse_source(spec)
    if s.kind == BUILTIN:
        return pd.DataFrame(_builtin(hardware))
    if s.kind not in SOURCES:
        known = [k for k in SOURCES.names() if k != "file"]
        hint = ("; import llmsim.calibration.importers first (the CLI does)"
                if s.kind in ("aiconfigurator", "vidur", "llmcompass") else "")
        raise ConfigError(f"unknown measurement source {s.kind!r} in {str(s)!r} (registered: "
                          f"{', '.join(['file', *known])}){hint}")
    return SOURCES.get(s.kind)(Path(s.path), s.options)


_PRE = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "rc": 3, "": 4, "post": 5}


def version_key(text: object) -> tuple:
    """Sort key of a version string as versions order (``0.5.10`` after ``0.5.9``,
    ``1.3.0rc20`` before ``1.3.0``); unparsable strings sort first, by text."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)(?:[.-]?(dev|alpha|beta|a|b|rc|post)\.?(\d*))?",
                 str(text).strip().lower())
    if m is None:
        return (0, (), 0, 0, str(text))
    nums = tuple(int(x) for x in m.group(1).split("."))
    while len(nums) > 1 and nums[-1] == 0:
        nums = nums[:-1]
    return (1, nums, _PRE[m.group(2) or ""], int(m.group(3) or 0), str(text))
