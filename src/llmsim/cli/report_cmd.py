"""``llmsim report RUN_DIR``: the HTML report of a saved simulation, rebuilt from its
``--out-dir`` bundle (no simulation is run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmsim.cli.options import OutOpt


def report_cmd(
    run_dir: Annotated[str, typer.Argument(help="A folder written by simulate --out-dir.")],
    out: OutOpt = None,
) -> None:
    """Rebuild the HTML report of a saved simulate bundle (default: RUN_DIR/report.html)."""
    from llmsim.report.render import emit_html
    from llmsim.report.serving import bundle_html

    emit_html(bundle_html(run_dir), out or str(Path(run_dir) / "report.html"))


def register(app: typer.Typer) -> None:
    """Attach ``llmsim report`` to the root app (called by ``llmsim.cli.app``)."""
    app.command("report")(report_cmd)
