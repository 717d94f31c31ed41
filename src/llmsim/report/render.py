"""The building blocks of every output: consoles, key/value and frame tables (rich), JSON and
CSV text, and writing it to stdout or a file. Only this layer and the CLI print; the tables of
each front end live beside this module (``estimate``, ``memory``, ``serving``, ``placement``,
``expert_cache``, ``executor``, ``calibration``, ``catalog``)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console, ConsoleOptions
from rich.table import Table
from rich.text import Text

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


#: the formats written from a frame (``--format csv | parquet``; parquet needs ``--out FILE``)
TABULAR = ("csv", "parquet")


def emit_records(result: Any, layers: pd.DataFrame, fmt: str, out: str | None) -> bool:
    """A playbook's machine formats: ``json`` is ``result.as_dict()``; ``csv`` / ``parquet``
    are the per-layer ``layers`` rows with ``result.summary_row()`` repeated as columns (those
    the rows lack). False for any other format (the caller prints its tables)."""
    if fmt == "json":
        emit(as_json(result.as_dict()), out)
        return True
    if fmt in ("csv", "parquet"):
        frame = layers.copy()
        for key, value in result.summary_row().items():
            if key not in frame.columns:
                frame[key] = value
        emit_frame(frame, fmt, out)
        return True
    return False


def emit_frame(frame: pd.DataFrame, fmt: str, out: str | None = None) -> None:
    """``frame`` as CSV (printed, or written to ``out``) or Parquet (written to ``out``),
    atomically; an ``html`` request for an output that has no report is a one-line error."""
    from llmsim.errors import ConfigError

    if fmt == "parquet":
        if not out:
            raise ConfigError("--format parquet is binary: give --out FILE.parquet")
        from llmsim.io import atomic_path

        with atomic_path(out) as tmp:
            frame.to_parquet(tmp, index=False)
        return
    emit(frame_to_csv(frame), out)


def emit_html(page: str, out: str | None) -> None:
    """An HTML report written atomically to ``out`` (a page is not for the terminal)."""
    if not out:
        from llmsim.errors import ConfigError

        raise ConfigError("the HTML report is a file: give --out FILE.html")
    emit(page, out)


def check_no_report(fmt: str, what: str) -> None:
    """An HTML report asked of an output that has none: a one-line error naming those that do."""
    if fmt == "html":
        from llmsim.errors import ConfigError

        raise ConfigError(f"{what} has no HTML report (simulate, estimate and validate do); use "
                          "--format table, json, csv or parquet")


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
                max_rows: int = 200, essential: Sequence[str] | None = None) -> FittedFrame:
    """The first ``max_rows`` rows of ``frame`` (its ``columns``, default all) as a table that
    fits the console: floats with four decimals (or four significant digits when large or
    small), NaN empty. Too wide for the console, it keeps the ``essential`` columns (naming
    the others under it), else folds into one key/value block per row (:class:`FittedFrame`);
    ``--format csv/json`` always carry every column."""
    cols = list(columns) if columns else list(frame.columns)
    keep = [c for c in (essential or ()) if c in cols]
    return FittedFrame(frame.head(max_rows), title, cols, keep)


class FittedFrame:
    """A frame rendered at the width it is given (rich's render protocol): the full table when
    it fits; else a compact table (headers wrapped at their words, four significant digits),
    of every column or of the essential ones (the others named under it); else one key/value
    block per row. No number is ever split across lines."""

    def __init__(self, frame: pd.DataFrame, title: str, columns: list[str],
                 essential: list[str]) -> None:
        self.frame, self.title, self.columns, self.essential = frame, title, columns, essential
        self.cells = [[_cell(row[c]) for c in columns] for _, row in frame.iterrows()]
        self.short = [[_cell(row[c], compact=True) for c in columns]
                      for _, row in frame.iterrows()]

    def table(self, columns: Sequence[str], compact: bool = False) -> Table:
        """The rows of ``columns`` as one table; numbers never wrap (``compact``: each column
        as wide as its widest cell or header word, the header wrapped at its words, numbers in
        four significant digits, no vertical rules)."""
        idx = [self.columns.index(c) for c in columns]
        cells = self.short if compact else self.cells
        if not compact:
            t = Table(title=self.title or None, title_justify="left")
            for i in idx:
                numeric = all(_is_number(r[i]) for r in cells)
                t.add_column(str(self.columns[i]), justify="right" if numeric else "left",
                             no_wrap=numeric, overflow="fold")
        else:
            t = Table(title=self.title or None, title_justify="left", box=box.SIMPLE_HEAD,
                      show_edge=False, padding=(0, 1, 0, 0))
            for i in idx:
                numeric = all(_is_number(r[i]) for r in cells)
                width = self._compact_width(i)
                t.add_column(_wrap_words(str(self.columns[i]).split("_"), width),
                             justify="right" if numeric else "left", width=width,
                             overflow="fold")
        for r in cells:
            t.add_row(*(r[i] for i in idx))
        return t

    def _compact_width(self, i: int) -> int:
        words = str(self.columns[i]).split("_")
        return max([*(len(w) for w in words), *(len(r[i]) for r in self.short)])

    def width(self, columns: Sequence[str], compact: bool) -> int:
        """Columns needed to show ``columns`` without splitting a cell (compact: nor a word of
        a header)."""
        idx = [self.columns.index(c) for c in columns]
        if compact:
            return sum(self._compact_width(i) for i in idx) + 2 * len(idx) - 1
        return sum(max([len(str(self.columns[i])), *(len(r[i]) for r in self.cells)])
                   for i in idx) + 3 * len(idx) + 1

    def folded(self, width: int) -> Text:
        """One block per row: its first cell in bold, then ``column value`` pairs flowing over
        lines of ``width`` (a pair is never split; empty cells left out)."""
        text = Text()
        if self.title:
            text.append(self.title + "\n")
        for n, r in enumerate(self.cells):
            if n:
                text.append("\n")
            text.append(r[0], style="bold")
            used = len(r[0])
            for c, v in zip(self.columns[1:], r[1:], strict=True):
                if v == "":
                    continue
                pair = f"{c} {v}"
                if used + 2 + len(pair) > width and used > 2:
                    text.append("\n  ")
                    used = 2
                else:
                    text.append("  ")
                    used += 2
                text.append(pair)
                used += len(pair)
        return text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        room = options.max_width
        if self.width(self.columns, compact=False) <= room:
            yield self.table(self.columns)
            return
        if self.width(self.columns, compact=True) <= room:
            yield self.table(self.columns, compact=True)
            return
        if self.essential and self.essential != self.columns \
                and self.width(self.essential, compact=True) <= room:
            short = self.table(self.essential, compact=True)
            rest = [str(c) for c in self.columns if c not in self.essential]
            named = ", ".join(rest if len(rest) <= 8 else [*rest[:6], "..."])
            short.caption = (f"{len(rest)} more columns in --format csv/json or a wider "
                             f"terminal: {named}")
            short.caption_justify = "left"
            yield short
            return
        yield self.folded(room)


def _wrap_words(words: Sequence[str], width: int) -> str:
    """``words`` joined by spaces into lines of at most ``width`` characters."""
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + 1 + len(w) <= width:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    return text == "" or re.fullmatch(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?", text) is not None


def _cell(v: Any, compact: bool = False) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        if v == 0:
            return "0"
        if compact:
            return f"{v:.4g}"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def print_tables(tables: Iterable[Any], out: str | None = None) -> None:
    """Print ``tables`` (rich renderables) on the terminal, or as plain text into ``out``."""
    with output_console(out) as con:
        for t in tables:
            con.print(t)
