"""The building blocks of every output: consoles, key/value and frame tables (rich), JSON and
CSV text, and writing it to stdout or a file. Only this layer and the CLI print; the tables of
each front end live beside this module (``estimate``, ``memory``, ``serving``, ``placement``,
``expert_cache``, ``executor``, ``calibration``, ``catalog``)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from llmsim.io import to_json


def console(stderr: bool = False) -> Console:
    """The terminal (stdout, or stderr for progress), no syntax highlighting or soft wrap."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@contextmanager
def output_console(out: str | None = None) -> Iterator[Console]:
    """A console for a command's tables: the terminal, or (``--out FILE``) a recording console
    whose plain text is written atomically to ``FILE`` when the block ends."""
    if not out:
        yield console()
        return
    con = Console(record=True, file=io.StringIO(), width=120, highlight=False,
                  soft_wrap=False, color_system=None)
    yield con
    from llmsim.io import write_text

    write_text(out, con.export_text())


def emit(text: str, out: str | None = None) -> None:
    """Print ``text`` or write it atomically to ``out``."""
    if out:
        from llmsim.io import write_text

        write_text(out, text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def as_json(data: Any) -> str:
    """Strict JSON text (NaN as null; see :func:`llmsim.io.to_json`)."""
    return to_json(data)


def frame_to_csv(frame: pd.DataFrame) -> str:
    """CSV text of ``frame``, without its index."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def kv_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """A two-column table without header: bold keys, values that wrap."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("", overflow="fold")  # long values (source URLs) wrap, never cut
    for k, v in rows:
        t.add_row(k, v)
    return t


def frame_table(frame: pd.DataFrame, title: str = "", columns: Sequence[str] | None = None,
                max_rows: int = 200) -> Table:
    """The first ``max_rows`` rows of ``frame`` (its ``columns``, default all) as a table;
    floats with four decimals (or four significant digits when large or small), NaN empty."""
    cols = list(columns) if columns else list(frame.columns)
    t = Table(title=title or None, title_justify="left")
    for c in cols:
        t.add_column(str(c), overflow="fold")
    for _, row in frame.head(max_rows).iterrows():
        t.add_row(*(_cell(row[c]) for c in cols))
    return t


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def print_tables(tables: Iterable[Any], out: str | None = None) -> None:
    """Print ``tables`` (rich renderables) on the terminal, or as plain text into ``out``."""
    with output_console(out) as con:
        for t in tables:
            con.print(t)
