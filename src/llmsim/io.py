"""Atomic file output: write to a temporary file in the same folder, then rename over the target.

Nothing llmsim writes is ever left half-written: a crash or Ctrl-C leaves the old file (or none).
A folder of outputs (a *bundle*, as ``simulate --out DIR`` writes) is written the same way:
into a temporary sibling folder, swapped in when complete (:func:`atomic_dir`).
Only regular files are replaced that way. A symlink is followed (its target is written, the link
stays); a character device or FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is written
directly, never replaced by a file; anything else that is not a regular file is refused. Every
failure is a one-line :class:`~llmsim.errors.OutputError` naming the path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from llmsim.errors import OutputError

#: longest file-name component and whole path the POSIX file systems llmsim runs on accept
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095


def shown(path: str | Path, limit: int = 160) -> str:
    """A path for a one-line message: long ones elided in the middle."""
    text = str(path)
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2 - 2]}...{text[-(limit // 2 - 1):]} ({len(text)} characters)"


def path_name_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot name a file on this system (a name over 255 bytes, a path over 4095,
    a NUL byte), or None. Checked before any ``stat`` so no ``OSError`` escapes."""
    text = os.fspath(path)
    if "\x00" in text:
        return "the path contains a NUL character"
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        return "the path cannot be encoded for this file system"
    if len(raw) > PATH_MAX_BYTES:
        return f"the path is too long ({len(raw)} bytes; at most {PATH_MAX_BYTES})"
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > NAME_MAX_BYTES:
        return (f"a file name in it is too long ({longest} bytes; at most {NAME_MAX_BYTES} per "
                "name)")
    return None


def check_path_name(path: str | Path, error: type[Exception] = OutputError,
                    what: str = "cannot write") -> None:
    """Raise ``error`` (one line) when ``path`` cannot name a file (:func:`path_name_problem`)."""
    problem = path_name_problem(path)
    if problem:
        raise error(f"{what} {shown(path)}: {problem}")


def prepare_dir(path: str | Path, flag: str = "--out",
                what: str = "this writes a folder of outputs") -> Path:
    """Create an output folder (and its parents) or raise a one-line :class:`OutputError`;
    call it before long work so a bad path fails first, not after the run."""
    out = Path(path)
    check_path_name(out, OutputError, f"cannot create the {flag} folder")
    try:
        exists, is_dir = out.exists(), out.is_dir()
    except OSError as exc:
        raise OutputError(f"cannot create the {flag} folder {shown(out)}: "
                          f"{exc.strerror or exc}") from None
    if exists and not is_dir:
        raise OutputError(f"{flag} {shown(out)} is a file; {what}: give a folder name")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the {flag} folder {shown(out)}: "
                          f"{exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into the {flag} folder {shown(out)}: permission denied")
    return out


#: the tag in the name of a bundle folder being written (left only by a killed process)
INCOMPLETE_TAG = "llmsim-incomplete"


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (stat errors other than missing raise)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def check_bundle_dir(path: str | Path, names: Collection[str], marker: str,
                     flag: str = "--out", what: str = "this writes a folder of outputs") -> Path:
    """Check, before a long run and without creating anything, that ``path`` can become a
    bundle folder: it is new (its nearest existing parent is a writable folder), empty, or a
    bundle already (it holds ``marker`` and only ``names``), which :func:`atomic_dir` will
    replace whole. Returns the folder where the bundle goes (a symlink followed); anything
    else is a one-line :class:`OutputError` naming the fix."""
    out = Path(path)
    check_path_name(out, OutputError, f"cannot create the {flag} folder")
    real = Path(os.path.realpath(out))
    try:
        if real.exists():
            if not real.is_dir():
                raise OutputError(f"{flag} {shown(out)} is a file; {what}: give a folder name")
            entries = sorted(os.listdir(real))
            foreign = [e for e in entries if e not in names]
            if foreign or (entries and marker not in entries):
                listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                why = (f"files that are not part of one ({listed})" if foreign
                       else f"no {marker}")
                raise OutputError(f"{flag} {shown(out)} is a folder but not an llmsim output "
                                  f"folder ({why}); it would be replaced whole: give a new "
                                  "or empty folder, or move those files out")
            parent = real.parent
        else:
            parent = _nearest_existing(real.parent)
            if not parent.is_dir():
                raise OutputError(f"cannot create the {flag} folder {shown(out)}: "
                                  "Not a directory")
    except OSError as exc:
        raise OutputError(f"cannot create the {flag} folder {shown(out)}: "
                          f"{exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create the {flag} folder {shown(out)}: permission denied "
                          f"in {shown(parent)}")
    return real


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a SIGINT (Ctrl-C) that arrives in the block until its end (for a few renames that
    must happen together); outside the main thread the block just runs."""
    pending: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if pending:
            if callable(old):
                old(signal.SIGINT, None)
            elif old == signal.SIG_DFL:
                raise KeyboardInterrupt


@contextmanager
def atomic_dir(target: str | Path, names: Collection[str], marker: str,
               flag: str = "--out") -> Iterator[Path]:
    """Yield a new, empty temporary folder beside ``target`` to write a bundle into; when the
    block ends normally, swap it in for ``target`` (an old bundle there is removed whole, so
    none of its files outlive it). An error or Ctrl-C in the block removes the temporary
    folder and leaves ``target`` as it was; a killed process leaves a hidden sibling named
    ``.NAME.*.llmsim-incomplete``. ``target`` must pass :func:`check_bundle_dir` (checked
    again at the end: files added meanwhile stop the swap)."""
    real = check_bundle_dir(target, names, marker, flag)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{real.name[:100]}.",
                                      suffix=f".{INCOMPLETE_TAG}", dir=real.parent))
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual folder mode
    except OSError as exc:
        raise OutputError(f"cannot create the {flag} folder {shown(target)}: "
                          f"{exc.strerror or exc}") from None
    try:
        yield stage
        check_bundle_dir(target, names, marker, flag)
        with interrupts_deferred():
            _swap_in(stage, real)
    except OSError as exc:
        raise OutputError(f"cannot write the {flag} folder {shown(target)}: "
                          f"{exc.strerror or exc}") from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, real: Path) -> None:
    """Rename ``stage`` to ``real``; an existing ``real`` is first renamed aside (restored if
    the second rename fails) and then removed."""
    if not real.exists():
        os.rename(stage, real)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{real.name[:100]}.", suffix=".llmsim-old",
                                dir=real.parent))
    os.rename(real, old)  # onto an empty folder: allowed by POSIX rename
    try:
        os.rename(stage, real)
    except OSError:
        os.rename(old, real)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _destination(target: Path) -> tuple[Path, os.stat_result | None]:
    """Where writing ``target`` lands (a symlink's target) and what is there now (None: no
    file yet)."""
    check_path_name(target)
    try:
        real = Path(os.path.realpath(target)) if target.is_symlink() else target
        info = os.stat(real)
    except FileNotFoundError:
        return real, None
    except OSError as exc:
        raise OutputError(f"cannot write {shown(target)}: {exc.strerror or exc}") from None
    return real, info


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``.

    A symlink is followed (the file it points to is replaced, the link kept); a character
    device or FIFO is yielded itself, to be written in place; a folder, socket or block device
    is refused with an :class:`OutputError`.
    """
    target = Path(target)
    real, info = _destination(target)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {shown(target)}: it is a folder; give a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        if not (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            raise OutputError(f"cannot write {shown(target)}: it is not a regular file (a "
                              "socket or block device); give a file name")
        try:
            yield real  # /dev/null, /dev/stdout, a named pipe: written in place, never replaced
        except OSError as exc:
            raise OutputError(f"cannot write {shown(target)}: {exc.strerror or exc}") from None
        return
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        # the temporary name stays within NAME_MAX however long the target's name is
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name[:200]}.", suffix=".tmp",
                                   dir=real.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    except OSError as exc:
        raise OutputError(f"cannot write {shown(target)}: {exc.strerror or exc}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, real)
    except OSError as exc:
        raise OutputError(f"cannot write {shown(target)}: {exc.strerror or exc}") from None
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


def write_table_chunks(target: str | Path, frames: Iterable[Any]) -> None:
    """Write consecutive pandas DataFrames (same columns) as one CSV or Parquet file (by
    suffix), atomically, holding one frame at a time: the CSV header once, then the rows; one
    Parquet row group per frame. The CSV is the bytes ``to_csv`` of the whole table gives."""
    target = Path(target)
    with atomic_path(target) as tmp:
        if target.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for frame in frames:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            return
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for i, frame in enumerate(frames):
                frame.to_csv(fh, index=False, header=i == 0)
