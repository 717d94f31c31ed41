"""Atomic file output: write to a temporary file in the same folder, then rename over the target.

Nothing llmsim writes is ever left half-written: a crash or Ctrl-C leaves the old file (or none).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(target: str | Path, writer: Callable[[IO[Any]], None],
                 binary: bool = False) -> None:
    """Call ``writer(file)`` on a temporary file and atomically move it onto ``target``."""
    with atomic_path(target) as tmp, open(tmp, "wb" if binary else "w",
                                          **({} if binary else {"encoding": "utf-8"})) as fh:
        writer(fh)


def write_text(target: str | Path, text: str) -> None:
    atomic_write(target, lambda fh: fh.write(text))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "value"):  # enums
        return obj.value
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default) + "\n"


def write_json(target: str | Path, data: Any) -> None:
    write_text(target, to_json(data))


def write_table(target: str | Path, frame: Any) -> None:
    """Write a pandas DataFrame as CSV or Parquet (by suffix), atomically."""
    target = Path(target)
    with atomic_path(target) as tmp:
        if target.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
