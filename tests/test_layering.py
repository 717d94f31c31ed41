"""The one-way layering of DESIGN.md, enforced with import-linter (contracts in pyproject)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("import-linter is a dev dependency; install with pip install -e '.[dev]'")
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_llmsim_does_not_import_torch_or_the_cli():
    code = ("import sys, llmsim; llmsim.estimate; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'llmsim.cli' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_subpackages_resolve_from_the_top_level():
    code = ("import llmsim; assert callable(llmsim.placement.solve); "
            "assert callable(llmsim.simulate); assert callable(llmsim.expert_cache.simulate)")
    subprocess.run([sys.executable, "-c", code], check=True)
