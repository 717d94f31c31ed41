"""Shared test helpers: paths, the ../shared data marker, CLI runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
SHARED = Path(os.environ.get("LLMSIM_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"../shared/data not found at {SHARED_DATA}: reference data "
                                   "is only beside the repo in CI and development checkouts")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run ``llmsim`` in-process: ``cli("estimate", "--model", ...)`` -> CliResult."""
    from llmsim.cli.app import main

    def run(*argv: str) -> CliResult:
        code = 0
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
