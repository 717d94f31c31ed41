"""Every shell command of README.md and docs/*.md runs exactly as written, so the documentation
cannot rot (issue 13).

The commands are the lines of fenced ``bash`` / ``console`` / unlabelled blocks that start with
``llmsim `` or ``make `` (after a ``$ `` prompt; ``\\`` continuations joined; a trailing
``# comment`` dropped). ``llmsim`` lines run in a scratch folder holding a copy of
``examples/`` and the files the docs write out in ``csv`` blocks (``my_ops.csv``: the op-timing
example of docs/calibration.md); a command whose next line in the block is ``error: ...``
must fail with exit code 2 and exactly that line, any other must succeed. ``make`` lines must
name a target of the Makefile (running them installs a virtual environment). Synopses (``[...]``,
``M``, ``...``) are not commands. Commands that need PyTorch or ``../shared`` are skipped with
the reason.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = ("", "bash", "console", "sh", "shell")


@dataclass(frozen=True)
class DocCommand:
    source: str  # file:line
    text: str
    error: str | None  # the error line the docs show after it, if any
    # the llmsim commands before it in its block: it may read what they write (a run folder, a
    # profile), so a test runs them first where they have not run (any test order, any worker)
    before: tuple[str, ...] = ()


def _blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced block."""
    out, lang, start, lines = [], None, 0, []
    for n, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, start, lines = fence.group(1).lower(), n + 1, []
        elif fence:
            out.append((lang, start, lines))
            lang = None
        elif lang is not None:
            lines.append(line)
    return out


def _strip_comment(cmd: str) -> str:
    lexer = shlex.shlex(cmd, posix=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return shlex.join(list(lexer))


def _is_synopsis(cmd: str) -> bool:
    return bool(re.search(r"\[|\.\.\.|…|\s[A-Z][A-Z_]*(\s|$)|<[a-z]", cmd))


def doc_commands() -> list[DocCommand]:
    found: dict[str, DocCommand] = {}
    for path in DOCS:
        for lang, start, lines in _blocks(path.read_text(encoding="utf-8")):
            if lang not in SHELL_BLOCKS:
                continue
            i, block = 0, []
            while i < len(lines):
                line = lines[i].strip().removeprefix("$ ")
                at = i
                i += 1
                if not line.startswith(("llmsim ", "make ")):
                    continue
                while line.endswith("\\") and i < len(lines):
                    line = line[:-1].rstrip() + " " + lines[i].strip()
                    i += 1
                nxt = lines[i].strip() if i < len(lines) else ""
                cmd = _strip_comment(line)
                if _is_synopsis(cmd):
                    continue
                error = nxt if nxt.startswith("error:") else None
                found.setdefault(cmd, DocCommand(f"{path.name}:{start + at}", cmd, error,
                                                 tuple(block)))
                if cmd.startswith("llmsim ") and error is None:
                    block.append(cmd)
    return list(found.values())


COMMANDS = doc_commands()
LLMSIM = [c for c in COMMANDS if c.text.startswith("llmsim ")]
MAKE = [c for c in COMMANDS if c.text.startswith("make ")]


def _skip_reason(cmd: str) -> str | None:
    if cmd.startswith(("llmsim executor run", "llmsim executor check")):
        try:
            import torch  # noqa: F401
        except ImportError:
            return "needs PyTorch (make install-torch)"
        return "times this machine's PyTorch run (minutes); benchmarks/ covers it"
    if "../shared" in cmd:
        return "needs ../shared/data"
    if ".html" in cmd or cmd.startswith("llmsim report "):
        try:
            import plotly  # noqa: F401
        except ImportError:
            return "the HTML report needs plotly (the 'report' extra)"
    return None


_RAN: dict[Path, set[str]] = {}  # per scratch folder: the commands that ran in it


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder with examples/ and the csv files the docs write out."""
    d = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "examples", d / "examples")
    calibration = (REPO / "docs" / "calibration.md").read_text(encoding="utf-8")
    for lang, _, lines in _blocks(calibration):
        if lang == "csv" and lines and lines[0].startswith("kind,") \
                and "measured_time_s" in lines[0]:
            (d / "my_ops.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def test_the_docs_have_commands():
    assert len(LLMSIM) >= 20 and MAKE
    assert any("examples/sweep.csv" in c.text for c in LLMSIM)  # the quick start's files


@pytest.mark.parametrize("doc", MAKE, ids=lambda c: c.source)
def test_make_targets_exist(doc):
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    for word in shlex.split(doc.text)[1:]:
        if not word.startswith("-") and "=" not in word:
            assert word in targets, f"{doc.source}: make {word}: no such target"


@pytest.mark.parametrize("doc", LLMSIM, ids=lambda c: f"{c.source} {c.text[:60]}")
def test_llmsim_command_runs_as_written(doc, cli, scratch, monkeypatch):
    reason = _skip_reason(doc.text)
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(scratch)
    ran = _RAN.setdefault(scratch, set())
    for cmd in doc.before:
        if cmd not in ran and not _skip_reason(cmd):
            assert cli(*shlex.split(cmd)[1:]).code == 0, f"{doc.source}: needs {cmd}"
            ran.add(cmd)
    res = cli(*shlex.split(doc.text)[1:])
    ran.add(doc.text)
    if doc.error:
        assert res.code == 2, f"{doc.source}: documented to fail: {doc.text}"
        assert res.err.strip() == doc.error, f"{doc.source}: the docs quote another error"
    else:
        assert res.code == 0, f"{doc.source}: {doc.text}\n{res.err}"


def test_calibration_examples_parse(scratch):
    """The measurement-file examples of docs/calibration.md read as they are written."""
    from llmsim.calibration.user import read_measurements

    table = read_measurements(str(scratch / "my_ops.csv"), "h100-sxm")
    assert len(table) == 4 and (table["measured_time_s"] > 0).all()
