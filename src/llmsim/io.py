"""Atomic file output: write to a temporary file in the same folder, then rename over the target.

Nothing llmsim writes is ever left half-written: a crash or Ctrl-C leaves the old file (or none).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from llmsim.errors import OutputError


def prepare_dir(path: str | Path, flag: str = "--out",
                what: str = "this writes a folder of outputs") -> Path:
    """Create an output folder (and its parents) or raise a one-line :class:`OutputError`;
    call it before long work so a bad path fails first, not after the run."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{flag} {out} is a file; {what}: give a folder name")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the {flag} folder {out}: "
                          f"{exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into the {flag} folder {out}: permission denied")
    return out


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``."""
    target = Path(target)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def _finite(obj: Any) -> Any:
    """NaN and infinities become ``null`` (JSON has no NaN; strict parsers reject it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if type(obj).__name__ == "NAType":  # pandas' missing value in nullable columns
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not hasattr(obj, "__len__"):  # numpy scalars
        return _finite(obj.item())
    return obj


def to_json(data: Any) -> str:
    """Strict JSON (NaN / inf as null), numpy and enums converted."""
    return json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False) + "\n"


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
