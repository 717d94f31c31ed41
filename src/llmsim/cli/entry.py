"""The ``llmsim`` console entry point: the command's heavy imports under interrupt handling.

Importing the CLI (typer, pydantic, numpy, pandas and every command module) takes about half a
second; a Ctrl-C (SIGINT) in that time raised ``KeyboardInterrupt`` inside an import, outside
:func:`llmsim.cli.app.main`'s handling, and Python printed a traceback (issue 9). This module
imports nothing heavy itself: :func:`main` imports the app inside a ``try`` so that an
interrupt at any point -- during the imports or in the instant before the app's own handling
starts -- ends as every other interrupt does, with the one line ``interrupted`` on stderr and
exit code 130 (128 + SIGINT).
"""

from __future__ import annotations

import sys

#: exit code of an interrupted command (128 + SIGINT, as shells report it)
INTERRUPTED_EXIT_CODE = 130


def main(argv: list[str] | None = None) -> None:
    """Run ``llmsim`` (``argv``: the arguments, default ``sys.argv[1:]``)."""
    try:
        from llmsim.cli.app import main as run_app
    except KeyboardInterrupt:
        interrupted()
    try:
        run_app(argv)
    except KeyboardInterrupt:  # before the app's own handling took over
        interrupted()


def interrupted() -> None:
    """One line on stderr, exit 130; a second Ctrl-C while it exits is ignored."""
    import contextlib
    import signal

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    raise SystemExit(INTERRUPTED_EXIT_CODE)


if __name__ == "__main__":
    main()
