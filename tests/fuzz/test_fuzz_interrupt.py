"""Ctrl-C: an interrupt anywhere in a command prints the one line ``interrupted`` on stderr and
exits with code 130 (issue 9: it exited 0 with no message, typer's returned 130 was dropped).

The end-to-end case is a real ``llmsim simulate`` subprocess that receives SIGINT in the middle
of a long run (after its first progress line, so the signal lands in the event loop, not in the
imports)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LONG_SIMULATE = ["simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests",
                 "400000", "--rate", "50", "--progress", "--format", "json"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def interrupt_after_first_line(argv: list[str], cwd: Path, timeout_s: float = 120.0
                               ) -> tuple[int, str, list[str]]:
    """Run ``llmsim argv`` in a subprocess, SIGINT it once its first stderr line (a progress
    line) is out; returns (exit code, stdout, the stderr lines after that first one)."""
    proc = subprocess.Popen([sys.executable, "-m", "llmsim.cli.app", *argv], cwd=cwd,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith("simulating:"), first
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = [line for line in err.splitlines() if not line.startswith("simulating:")]
    return proc.returncode, out, rest


def test_sigint_during_a_long_simulate_is_one_line_and_exit_130(tmp_path):
    code, out, err_lines = interrupt_after_first_line(LONG_SIMULATE, tmp_path)
    assert code == 130
    assert err_lines == ["interrupted"]
    assert out == ""  # no partial summary on stdout


def test_keyboard_interrupt_anywhere_in_a_command_is_exit_130(monkeypatch, capsys):
    from llmsim.cli import app as app_mod

    def interrupted_command(**_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(app_mod, "app", interrupted_command)
    with pytest.raises(SystemExit) as exc:
        app_mod.main(["catalog", "list"])
    assert exc.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_typer_returned_130_is_an_interrupt_not_success(monkeypatch, capsys):
    """typer (standalone_mode=False) catches KeyboardInterrupt and *returns* 130."""
    from llmsim.cli import app as app_mod

    monkeypatch.setattr(app_mod, "app", lambda **_kwargs: 130)
    with pytest.raises(SystemExit) as exc:
        app_mod.main(["catalog", "list"])
    assert exc.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_sigint_leaves_the_old_bundle_or_nothing(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text('{"old": true}\n')
    (old / "requests.csv").write_text("request_id\n0\n")
    for out in (old, tmp_path / "new"):
        code, _, err_lines = interrupt_after_first_line(
            [*LONG_SIMULATE, "--out", str(out), "--no-plots"], tmp_path)
        assert (code, err_lines) == (130, ["interrupted"])
    assert sorted(os.listdir(tmp_path)) == ["old"]  # no new folder, no temporary sibling
    assert sorted(os.listdir(old)) == ["requests.csv", "summary.json"]
    assert (old / "summary.json").read_text() == '{"old": true}\n'


#: a child that enters ``llmsim`` as the console script does and is held inside the CLI's
#: imports (importing typer sleeps) until it is interrupted: the signal lands in an import
_HELD_IN_IMPORTS = """
import sys, time
class HoldTyper:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            sys.stderr.write("importing\\n"); sys.stderr.flush()
            time.sleep(60)
        return None
sys.meta_path.insert(0, HoldTyper())
from {module} import main
main(["catalog", "list"])
"""


def _interrupt_in_imports(module: str, tmp_path: Path) -> tuple[int, str, str]:
    # SIGINT back to its default in the child: a test run started in the background of a
    # non-interactive shell inherits it ignored, and Python then keeps ignoring it
    proc = subprocess.Popen([sys.executable, "-c", _HELD_IN_IMPORTS.format(module=module)],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stderr.readline() == "importing\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_sigint_during_the_cli_imports_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C in the first half second of ``llmsim ...`` (the imports) printed a traceback."""
    assert _interrupt_in_imports("llmsim.cli.entry", tmp_path) == (130, "", "interrupted\n")


def test_the_held_import_really_is_interrupted_there(tmp_path):
    """The check above can fail: entering through the app module itself, the same signal
    surfaces as a traceback out of the import (and Python dies of the signal: -SIGINT)."""
    code, out, err = _interrupt_in_imports("llmsim.cli.app", tmp_path)
    assert code == -signal.SIGINT and "Traceback" in err and "KeyboardInterrupt" in err


def test_the_console_script_and_python_m_use_the_guarded_entry():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["llmsim"] == "llmsim.cli.entry:main"
    done = subprocess.run([sys.executable, "-m", "llmsim", "--version"], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.startswith("llmsim ")) == (0, True)
