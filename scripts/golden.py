"""Golden outputs of every documented command: record them, or check that nothing changed.

The commands are the ``llmsim ...`` lines of README.md and docs/*.md (fenced blocks and inline
code, ``\\`` continuations joined, ``$ `` prompts and trailing ``# comments`` dropped) plus one
run of every file in examples/. Each command runs twice in a scratch folder (which holds a copy
of examples/ and the quick-start case files): as written (its table output) and, where the
command has ``--format``, as ``--format json``. Wall-clock fields are dropped (``*wall*`` keys
and a search's ``timing`` block, also inside JSON-lines files;
the executor's measured runs are skipped: they time this machine). Files a command writes
(``--out``) are recorded too (JSON/CSV/YAML/text by content, images by existence).

    python scripts/golden.py record [DIR]    # write DIR (default tests/golden/cli)
    python scripts/golden.py check [DIR]     # run again, compare, print every difference

``check`` compares numbers with a relative tolerance of 1e-9 (``--exact`` for none) and exits 1
on any difference. ``make golden`` runs ``check``; after a change that is meant to move an
output, re-record with ``make golden-record`` and say why in the commit.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFAULT_DIR = ROOT / "tests" / "golden" / "cli"
SUBCOMMANDS = ("estimate", "op", "memory", "simulate", "offload", "moe-offload", "executor",
               "calibrate", "validate", "catalog", "report", "compare", "search", "train",
               "afd", "large-ep")
#: commands that time this machine: their numbers are measurements, not predictions
SKIP_PREFIXES = ("llmsim executor run", "llmsim executor check")
#: files the quick start refers to; the scratch folder gets these (examples/ ships them later)
QUICK_START_FILES = {
    "sweep.csv": "model,hardware,tp,batch,prompt,output\n"
                 "llama-3.1-8b,h100-sxm,1,16,1024,256\n"
                 "llama-3.1-70b,h100-sxm,4,32,2048,256\n"
                 "llama-3.1-70b,a100-sxm-80gb,8,32,2048,256\n",
    "requests.csv": "input_tokens,output_tokens,ttft_s,tpot_s\n"
                    "512,128,0.09,0.021\n1024,256,0.16,0.022\n2048,64,0.31,0.024\n",
}
TIMEOUT_S = 600


# ----------------------------------------------------------------------------- commands
def _code_lines(text: str) -> list[str]:
    """Lines of fenced code blocks plus inline code spans that start with ``llmsim ``."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            out.append(line)
        else:
            out += [m for m in re.findall(r"`(llmsim [^`]+)`", line)]
    return out


def _joined(lines: list[str]) -> list[str]:
    cmds, cur = [], ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if cur:
            cur += " " + line
        elif line.startswith("llmsim "):
            cur = line
        else:
            continue
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        cmds.append(cur)
        cur = ""
    return cmds


def _strip_comment(cmd: str) -> str:
    try:
        lexer = shlex.shlex(cmd, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return shlex.join(list(lexer))
    except ValueError:
        return cmd


def _runnable(cmd: str) -> bool:
    words = cmd.split()
    if len(words) < 2 or words[1] not in SUBCOMMANDS:
        return False
    if " / " in cmd or not (any(w.startswith("-") for w in words[2:]) or len(words) == 3):
        return False  # prose ("llmsim offload solve / evaluate", a bare "llmsim estimate")
    # placeholders of a synopsis: [optional] groups, capitalised words, ellipses
    return not re.search(r"\[|\.\.\.|…|\s[A-Z][A-Z_]*(\s|$)|<[a-z]", cmd)


def doc_commands() -> list[str]:
    seen: dict[str, None] = {}
    for path in DOCS:
        for cmd in _joined(_code_lines(path.read_text(encoding="utf-8"))):
            cmd = _strip_comment(cmd)
            if _runnable(cmd):
                seen.setdefault(cmd, None)
    return list(seen)


def example_commands() -> list[str]:
    ex = ROOT / "examples"
    cmds = [f"llmsim simulate --config examples/{p.name}"
            for p in sorted(ex.glob("simulate*.yaml"))]
    cmds += [f"llmsim estimate --scenario examples/{p.name}"
             for p in sorted(ex.glob("scenario*.yaml"))]
    for p in sorted(ex.glob("moe-*.json")):
        cmds.append(f"llmsim moe-offload simulate -m examples/{p.name} -H rtx-4090 "
                    "--cache-capacity 4 --decode-steps 8")
        cmds.append(f"llmsim offload solve --model examples/{p.name}")
    return cmds


#: beyond the docs: one command per path the refactors of the cost model and the CLI touch
#: (int4 / fp4 KV caches, pipelines, every scheduler, swap, the calibration fit)
EXTRA_COMMANDS = [
    "llmsim estimate -m llama-3.1-8b -H h100-sxm --kv-dtype int4 --batch 8",
    "llmsim estimate -m llama-3.1-8b -H h100-sxm --kv-dtype fp4 --batch 8",
    "llmsim estimate -m llama-3.1-70b -H a100-sxm-80gb --tp 4 --pp 2 --batch 16",
    "llmsim estimate -m qwen3-30b-a3b -H h100-sxm --tp 2 --ep 2 --batch 32 --dtype fp8",
    "llmsim estimate -m llama-3.1-8b -H h100-sxm --batch 4 --beam 4 --efficiency 0.5",
    "llmsim op --hardware h100-sxm --kind attention-decode --batch 32 --context-len 4096 "
    "--num-heads 32 --num-kv-heads 8 --head-dim 128 --kv-dtype int4",
    "llmsim op --hardware h100-sxm --kind attention-prefill --batch 2 --seq-len 2048 "
    "--num-heads 32 --num-kv-heads 8 --head-dim 128",
    "llmsim op --hardware h100-sxm --kind moe --num-tokens 256 --hidden-size 4096 "
    "--intermediate-size 14336 --num-experts 8 --top-k 2",
    "llmsim op --hardware h100-sxm --kind p2p --message-bytes 1e6 --inter-node",
    "llmsim memory -m llama-3.1-8b -H h100-sxm --kv-dtype int4 --batch 16 --seq-len 4096",
    "llmsim simulate -m llama-3.1-8b -H h100-sxm --kv-dtype int4 --rate 4 --num-requests 200",
    "llmsim simulate -m llama-3.1-70b -H h100-sxm --tp 2 --pp 2 --rate 2 --num-requests 200",
    "llmsim simulate -m llama-3.1-8b -H h100-sxm --scheduler static --rate 4 "
    "--num-requests 200",
    "llmsim simulate -m llama-3.1-8b -H h100-sxm --scheduler dynamic --rate 4 "
    "--num-requests 200",
    "llmsim simulate -m llama-3.1-8b -H h100-sxm --scheduler continuous --rate 30 "
    "--num-requests 400 --preemption swap --swap-space 1 --kv-capacity-tokens 20000",
    "llmsim simulate -m llama-3.1-8b -H h100-sxm --concurrency 16 --num-requests 200 "
    "--prompt-dist 2048 --output-dist 128",
    "llmsim catalog list",
    "llmsim catalog show h100-sxm",
    "llmsim catalog show llama-3.1-8b",
    "llmsim offload evaluate --model opt-30b --gpu-batch-size 8 --num-gpu-batches 4",
    "llmsim calibrate --measurements golden_kernels.csv --hardware h100-sxm --out prof.yaml",
    "llmsim validate --measurements golden_kernels.csv",
    "llmsim op --cases golden_ops.csv --format csv",
]


def all_commands() -> list[str]:
    out: dict[str, None] = {}
    for c in doc_commands() + example_commands() + EXTRA_COMMANDS:
        out.setdefault(c, None)
    return list(out)


# ----------------------------------------------------------------------------- running
def _llmsim() -> list[str]:
    exe = Path(sys.executable).with_name("llmsim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "llmsim.cli.app"]


def _scratch() -> Path:
    d = Path(tempfile.mkdtemp(prefix="llmsim-golden-"))
    shutil.copytree(ROOT / "examples", d / "examples")
    for name, text in QUICK_START_FILES.items():
        (d / name).write_text(text, encoding="utf-8")
    _golden_kernels(d / "golden_kernels.csv")
    return d


def _golden_kernels(path: Path) -> None:
    """The H100 rows of the kernel golden set, as a measurement file (calibrate / validate)."""
    import pandas as pd

    from llmsim.costmodel.opcases import CASE_COLUMNS, OP_KINDS

    frame = pd.read_csv(ROOT / "tests" / "golden" / "calib_kernels.csv")
    frame = frame[(frame["hardware"] == "h100-sxm") & frame["kind"].isin(OP_KINDS)]
    keep = [c for c in frame.columns if c not in ("set", "family", "role", "source", "op",
                                                   "bytes_read", "bytes_written", "stride")]
    frame = frame[keep].iloc[::4].dropna(axis=1, how="all")
    frame.to_csv(path, index=False)
    # the op-case file: the case columns only (a measurement's stack and routing are metadata)
    frame[[c for c in frame.columns if c in CASE_COLUMNS]].to_csv(
        path.with_name("golden_ops.csv"), index=False)


def _has_format(words: list[str]) -> bool:
    return any(w in ("--format", "-f") or w.startswith("--format=") for w in words)


def _normalise(obj: Any) -> Any:
    """Drop wall-clock fields (``*wall*`` keys, a search's ``timing``: seconds its tasks
    took); paths inside this checkout as ``<repo>/...`` (a check from another clone compares
    equal); keep everything else."""
    if isinstance(obj, dict):
        return {k: _normalise(v) for k, v in obj.items()
                if "wall" not in str(k) and k != "timing"}
    if isinstance(obj, list):
        return [_normalise(v) for v in obj]
    if isinstance(obj, str):
        return _repo_relative(obj)
    return obj


def _repo_relative(text: str) -> str:
    return text.replace(str(ROOT), "<repo>")


def _read_output(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix in (".png", ".svg", ".pdf", ".parquet", ".html") or path.name == "run_info.json":
        return {"exists": True}  # run_info.json: the run's wall time, versions and date
    text = _repo_relative(path.read_text(encoding="utf-8", errors="replace"))
    if suffix == ".json":
        try:
            return _normalise(json.loads(text))
        except json.JSONDecodeError:
            return text
    if suffix == ".jsonl":
        try:
            return [_normalise(json.loads(line)) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            return text
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if rows and any("wall" in h for h in rows[0]):
            keep = [i for i, h in enumerate(rows[0]) if "wall" not in h]
            rows = [[r[i] for i in keep if i < len(r)] for r in rows]
        if len(text) > 200_000:  # long per-request tables: a digest and the shape
            return {"rows": len(rows), "sha256": hashlib.sha256(
                "\n".join(",".join(r) for r in rows).encode()).hexdigest()}
        return rows
    return text


def _files(workdir: Path, before: set[Path]) -> dict[str, Any]:
    out = {}
    for p in sorted(workdir.rglob("*")):
        if p.is_file() and p not in before and "examples" not in p.relative_to(workdir).parts[:1]:
            out[str(p.relative_to(workdir))] = _read_output(p)
    return out


def _run_one(words: list[str], workdir: Path) -> dict[str, Any]:
    before = {p for p in workdir.rglob("*") if p.is_file()}
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb",
           "LLMSIM_GOLDEN": "1"}
    res = subprocess.run(_llmsim() + words[1:], cwd=workdir, capture_output=True, text=True,
                         env=env, timeout=TIMEOUT_S)
    out: dict[str, Any] = {"exit_code": res.returncode}
    try:
        out["stdout"] = _compact(_normalise(json.loads(res.stdout)))
    except json.JSONDecodeError:
        out["stdout"] = _compact_text(_repo_relative(_strip_wall_lines(res.stdout)))
    out["stderr"] = _repo_relative(_strip_wall_lines(res.stderr))
    files = _files(workdir, before)
    if files:
        out["files"] = files
    for p in workdir.iterdir():  # a clean folder for the next command
        if p.name not in ("examples", "golden_kernels.csv", "golden_ops.csv",
                          *QUICK_START_FILES):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return out


#: a JSON list longer than this, or a text output longer than TEXT_LIMIT, is recorded as its
#: length and digest (a search's 12,960 candidates would be megabytes of golden file)
LIST_LIMIT = 500
TEXT_LIMIT = 200_000


def _compact(obj: Any) -> Any:
    """``obj`` with every list longer than :data:`LIST_LIMIT` replaced by its length and digest."""
    if isinstance(obj, dict):
        return {k: _compact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if len(obj) > LIST_LIMIT:
            return {"items": len(obj), "sha256": hashlib.sha256(
                json.dumps(obj, sort_keys=True).encode()).hexdigest()}
        return [_compact(v) for v in obj]
    return obj


def _compact_text(text: str) -> Any:
    """A long text output as its first lines, line count and digest."""
    if len(text) <= TEXT_LIMIT:
        return text
    lines = text.splitlines()
    return {"head": "\n".join(lines[:60]), "lines": len(lines),
            "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _strip_wall_lines(text: str) -> str:
    """Table lines that report the simulator's own wall time change run to run."""
    return "\n".join(line for line in text.splitlines()
                     if not re.search(r"\bwall\b|requests/s, [\d,]+ engine steps", line))


def record_all(commands: list[str]) -> dict[str, Any]:
    workdir = _scratch()
    results: dict[str, Any] = {}
    try:
        for cmd in commands:
            if cmd.startswith(SKIP_PREFIXES):
                results[cmd] = {"skipped": "measures this machine's wall-clock time"}
                continue
            words = shlex.split(cmd)
            entry = {"as_written": _run_one(words, workdir)}
            if not _has_format(words) and entry["as_written"]["exit_code"] == 0 \
                    and _supports_json(words):
                entry["json"] = _run_one(words + ["--format", "json"], workdir)
            results[cmd] = entry
            print(f"  {entry['as_written']['exit_code']}  {cmd}", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


_JSON_CACHE: dict[str, bool] = {}


def _supports_json(words: list[str]) -> bool:
    sub = [w for w in words[1:3] if not w.startswith("-")]
    key = " ".join(sub)
    if key not in _JSON_CACHE:
        res = subprocess.run(_llmsim() + sub + ["--help"], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "200"})
        _JSON_CACHE[key] = "--format" in res.stdout and "json" in res.stdout
    return _JSON_CACHE[key]


# ----------------------------------------------------------------------------- storage
def _slug(cmd: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", cmd.lower().removeprefix("llmsim ")).strip("-")
    return f"{words[:70]}-{hashlib.sha1(cmd.encode()).hexdigest()[:8]}.json"


def write_dir(results: dict[str, Any], out_dir: Path) -> None:
    if out_dir.exists():
        for p in out_dir.glob("*.json"):
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for cmd, entry in results.items():
        name = _slug(cmd)
        index[name] = cmd
        (out_dir / name).write_text(json.dumps({"command": cmd, **entry}, indent=1,
                                               sort_keys=True) + "\n", encoding="utf-8")
    (out_dir / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n",
                                        encoding="utf-8")


def read_dir(out_dir: Path) -> dict[str, Any]:
    index = json.loads((out_dir / "index.json").read_text(encoding="utf-8"))
    out = {}
    for name, cmd in index.items():
        data = json.loads((out_dir / name).read_text(encoding="utf-8"))
        data.pop("command", None)
        out[cmd] = data
    return out


# ----------------------------------------------------------------------------- comparing
def diff(old: Any, new: Any, path: str, rel: float, out: list[str], limit: int = 40) -> None:
    if len(out) >= limit:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            if k not in new:
                out.append(f"{path}.{k}: removed")
            elif k not in old:
                out.append(f"{path}.{k}: added ({_short(new[k])})")
            else:
                diff(old[k], new[k], f"{path}.{k}", rel, out, limit)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append(f"{path}: length {len(old)} -> {len(new)}")
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            diff(a, b, f"{path}[{i}]", rel, out, limit)
        return
    if isinstance(old, str) and isinstance(new, str) and old != new:
        a, b = old.splitlines(), new.splitlines()
        for i in range(max(len(a), len(b))):
            la = a[i] if i < len(a) else "<none>"
            lb = b[i] if i < len(b) else "<none>"
            if la != lb:
                out.append(f"{path} line {i + 1}: {la.strip()[:90]!r} -> {lb.strip()[:90]!r}")
                if len(out) >= limit:
                    return
        return
    if _numbers_close(old, new, rel):
        return
    out.append(f"{path}: {_short(old)} -> {_short(new)}")


def _numbers_close(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) \
            or not isinstance(b, (int, float)):
        return a == b
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) < 100 else s[:97] + "..."


def check(out_dir: Path, rel: float) -> int:
    old = read_dir(out_dir)
    cmds = list(dict.fromkeys(list(old) + all_commands()))
    new = record_all(cmds)
    changed = 0
    for cmd in cmds:
        if cmd not in old:
            print(f"NEW      {cmd}")
            changed += 1
            continue
        if cmd not in new:
            print(f"GONE     {cmd}")
            changed += 1
            continue
        lines: list[str] = []
        diff(old[cmd], new[cmd], "", rel, lines)
        if lines:
            changed += 1
            print(f"CHANGED  {cmd}")
            for line in lines:
                print(f"    {line}")
    print(f"{len(cmds)} commands, {changed} changed")
    return 1 if changed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("record", "check", "list"))
    ap.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    ap.add_argument("--exact", action="store_true", help="no tolerance on numbers")
    args = ap.parse_args(argv)
    if args.action == "list":
        for c in all_commands():
            print(c)
        return 0
    if args.action == "record":
        write_dir(record_all(all_commands()), Path(args.dir))
        return 0
    return check(Path(args.dir), 0.0 if args.exact else 1e-9)


if __name__ == "__main__":
    sys.exit(main())
