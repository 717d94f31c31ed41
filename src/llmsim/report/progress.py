"""Progress of a long run on stderr: a live bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llmsim.report.render import console

#: ``progress(done, total)``, as :func:`llmsim.serving.run.simulate` calls it
ProgressFn = Callable[[int, int], None]


@contextmanager
def progress(show: bool, what: str = "simulating", unit: str = "requests"
             ) -> Iterator[ProgressFn | None]:
    """A progress callback for the block: None when not ``show``, a rich bar (cleared at the
    end) when stderr is a terminal, else :func:`progress_lines`."""
    if not show:
        yield None
        return
    if not sys.stderr.isatty():  # a log file or a pipe: plain lines, one per 10 %
        yield progress_lines(what, unit)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(what, total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield tick


def progress_lines(what: str = "simulating", unit: str = "requests") -> ProgressFn:
    """A callback printing a plain line on stderr at every 10 %, e.g. ``simulating: 500/1,000
    requests done (50%), 2.1 s``."""
    t0 = time.perf_counter()
    shown = [-1]

    def tick(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"{what}: {done:,}/{total:,} {unit} done ({done / max(total, 1):.0%}), "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    return tick
