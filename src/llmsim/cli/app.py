"""The ``llmsim`` command: a typer app that parses, calls the API and renders.

Errors a user can cause (:class:`LLMSimError`) print as one line on stderr and exit with code 2;
``--debug`` shows the traceback instead. An interrupt (Ctrl-C, SIGINT) anywhere in a command
prints the one line ``interrupted`` on stderr and exits with code 130 (128 + SIGINT).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import Any

import typer
from pydantic import ValidationError
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from llmsim.errors import LLMSimError


class _Root(TyperGroup):
    """The root group: the command line goes through :func:`normalise_argv` (old spellings,
    the format from ``--out``'s extension) before it is parsed, from any entry point."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from llmsim.cli.conventions import normalise_argv

        return super().parse_args(ctx, normalise_argv(args))


app = typer.Typer(
    name="llmsim",
    cls=_Root,
    help="Predict LLM serving performance: latency, throughput, memory and cost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion
    rich_markup_mode=None,  # click's help: wraps at the terminal, never cuts an option's name
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from llmsim import __version__

        typer.echo(f"llmsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    if debug:
        os.environ["LLMSIM_DEBUG"] = "1"
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _CommandLog)]:
        root.removeHandler(h)
    handler = _CommandLog(defer=not (debug or verbose))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    from llmsim.cli.conventions import log_notes

    log_notes()


class _CommandLog(logging.Handler):
    """stderr log of one command. At the default level warnings are held until the command ends:
    printed after its output when it succeeds, dropped when it fails, so a user error is the one
    ``error:`` line (a dtype fallback logged before a does-not-fit error would read as a second
    problem). ``--verbose`` / ``--debug`` log as they happen."""

    def __init__(self, defer: bool) -> None:
        super().__init__()
        self.defer = defer
        self.held: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.defer:
            self.held.append(record)
        else:
            self._write(record)

    def _write(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")  # the stderr of the moment
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    def end_command(self, show: bool) -> None:
        """Print the held records (each distinct message once, repeats counted), or drop them."""
        held, self.held = self.held, []
        if show:
            from llmsim.report.warnings import collapse

            for line in collapse(self.format(record) for record in held):
                with contextlib.suppress(Exception):  # logging must never raise
                    sys.stderr.write(line + "\n")


def _release_logs(show: bool) -> None:
    for h in logging.getLogger().handlers:
        if isinstance(h, _CommandLog):
            h.end_command(show)


def _register() -> None:
    from llmsim.cli import catalog_cmd, estimate_cmd, memory_cmd, op_cmd

    app.add_typer(catalog_cmd.app, name="catalog")
    app.command("estimate")(estimate_cmd.estimate_cmd)
    app.command("op")(op_cmd.op_cmd)
    app.command("memory")(memory_cmd.memory_cmd)
    for module in ("simulate_cmd", "offload_cmd", "moe_offload_cmd", "executor_cmd",
                   "calibrate_cmd", "search_cmd", "train_cmd", "compare_cmd",
                   "report_cmd", "large_ep_cmd", "afd_cmd"):
        try:
            mod = __import__(f"llmsim.cli.{module}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"llmsim.cli.{module}":
                raise
            continue
        mod.register(app)


_register()


#: exit code of an interrupted command (128 + SIGINT, as shells report it)
INTERRUPTED_EXIT_CODE = 130


class _Interrupts:
    """SIGINT raises KeyboardInterrupt as Python's default handler does, and is remembered:
    typer turns a KeyboardInterrupt into a *returned* exit code 130 under
    ``standalone_mode=False``, so the flag (not the code) says that the user interrupted."""

    def __init__(self) -> None:
        self.seen = False

    def __enter__(self) -> _Interrupts:
        try:
            self._old = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: leave the handler as it is
            self._old = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.seen = True
        raise KeyboardInterrupt


def _interrupted(debug: bool) -> None:
    """The end of an interrupted command: one line, exit 130; a second Ctrl-C while it prints
    is ignored, held warnings are dropped (``--debug``: the traceback first)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _release_logs(show=False)
    if debug:
        import traceback

        traceback.print_exc()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    sys.exit(INTERRUPTED_EXIT_CODE)


def one_line(message: str) -> str:
    """A message on one line: the lines of a multi-line one (a parser's error quoted in it)
    joined with spaces."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app; errors a user can cause (LLMSimError, bad flags) print
    one line on stderr and exit with code 2 (``--debug``: the traceback instead); an interrupt
    prints ``interrupted`` and exits with code 130."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    with _Interrupts() as interrupts:
        try:
            _run(args, debug)
        except KeyboardInterrupt:
            _interrupted(debug)
        if interrupts.seen:  # typer caught it and returned 130
            _interrupted(debug)


def _run(argv: list[str] | None, debug: bool) -> None:
    """Run the app once; every exit but an interrupt (which :func:`main` handles) ends here."""
    try:
        code = app(args=argv, standalone_mode=False, prog_name="llmsim")
        if isinstance(code, int) and code == INTERRUPTED_EXIT_CODE:
            raise KeyboardInterrupt  # typer's conversion of an interrupt it caught
        _release_logs(show=True)
        if isinstance(code, int) and code:
            sys.exit(code)
    except KeyboardInterrupt:
        raise
    except LLMSimError as exc:
        _release_logs(show=debug)
        if debug:
            raise
        typer.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        _release_logs(show=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        _release_logs(show=True)
        typer.echo("aborted", err=True)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except ValidationError as exc:  # a spec built from flags that pydantic rejects
        _release_logs(show=debug)
        if debug:
            raise
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "")).replace("Value error, ", "")
        typer.echo(f"error: {where + ': ' if where else ''}{message}", err=True)
        sys.exit(2)
    except NoArgsIsHelpError as exc:  # a command or group called bare: its help, exit 0
        _release_logs(show=True)
        typer.echo(exc.format_message())
        sys.exit(0)
    except TyperException as exc:  # click usage errors (typer vendors its own click)
        _release_logs(show=debug)
        if debug:
            raise
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        message = " ".join(message.replace("Value error, ", "").split())
        if not message:  # a group called without a command: its help was printed
            sys.exit(0)
        typer.echo(f"error: {message} (see --help)", err=True)
        code = getattr(exc, "exit_code", 2)
        sys.exit(code if isinstance(code, int) and code else 2)
    except SystemExit:
        raise
    except BaseException:  # a bug: what was logged before it is context
        _release_logs(show=True)
        raise


if __name__ == "__main__":
    main()
