"""Warnings a person reads once: repeats of one message collapse into one line with a count.

:func:`collapse` is what the CLI's log does with the warnings it holds until the output is
printed; :class:`CollapsedWarnings` is the same for a script (the benchmarks): a logging
handler that holds warnings and prints each distinct one once, with its count, at exit.
"""

from __future__ import annotations

import atexit
import logging
import sys
from collections.abc import Iterable


def collapse(messages: Iterable[str]) -> list[str]:
    """Each distinct message once, in first-seen order, ``" (xN)"`` appended when repeated."""
    counts: dict[str, int] = {}
    for m in messages:
        counts[m] = counts.get(m, 0) + 1
    return [m if c == 1 else f"{m} (x{c})" for m, c in counts.items()]


class CollapsedWarnings(logging.Handler):
    """Hold warning records; print each distinct formatted message once (with its count) on
    stderr at :meth:`flush_all` (registered with ``atexit`` by :meth:`install`)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.held: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.held.append(self.format(record))

    def flush_all(self) -> None:
        held, self.held = self.held, []
        for line in collapse(held):
            sys.stderr.write(line + "\n")

    @classmethod
    def install(cls) -> CollapsedWarnings:
        """Attach one to the root logger (warnings of every library module) for this process."""
        handler = cls()
        logging.getLogger().addHandler(handler)
        atexit.register(handler.flush_all)
        return handler
