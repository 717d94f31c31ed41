"""Conventions every command follows, applied to the command line before it is parsed.

- **Old spellings** (:data:`ALIASES`): the flags renamed so that one thing has one name on every
  command (``--input-len`` / ``--output-len`` for lengths, ``--replicas`` for serving replicas,
  ``--dtype`` / ``--weight-dtype`` / ``--act-dtype`` / ``--kv-dtype`` for number formats)
  still work; they are hidden from ``--help`` because they are rewritten here, before click
  sees them. The ``"*"`` entry applies to every command (a command's own entry wins).
- **The format from the file name**: ``--out FILE`` without ``--format`` takes its format from
  the extension (:data:`FORMAT_OF_SUFFIX`: ``.json``, ``.csv``, ``.parquet``, ``.txt`` / ``.md``
  for the table, ``.html`` for the report); ``--format`` given wins.
- ``simulate --out DIR`` (a folder: no known extension) is ``--out-dir DIR`` with a deprecation
  note (the bundle of summary, requests, time series and plots).
- **Comparisons**: a comma list for one of :data:`LIST_FLAGS` of ``estimate`` / ``simulate``
  (``-H a100-sxm-80gb,h100-sxm --tp 4,8``) is parsed as its first value (so click checks its
  type) and the lists are kept for the command (:func:`take_lists`), which runs every
  combination and prints one comparison table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import PurePath

log = logging.getLogger("llmsim.cli")
_NOTES: list[str] = []

#: sub-command -> old flag -> the flag it is now (every command: key "*": the number-format
#: spellings of other tools, vLLM / TensorRT-LLM ``--kv-cache-dtype``, and the spelled-out
#: ``--activation-dtype`` / ``--weights-dtype``)
ALIASES: Mapping[str, Mapping[str, str]] = {
    "*": {"--kv-cache-dtype": "--kv-dtype", "--cache-dtype": "--kv-dtype",
          "--activation-dtype": "--act-dtype", "--activations-dtype": "--act-dtype",
          "--weights-dtype": "--weight-dtype"},
    "estimate": {"--prompt": "--input-len", "--output": "--output-len"},
    "simulate": {"--prompt-dist": "--input-len", "--output-dist": "--output-len",
                 "--dp": "--replicas"},
    "search": {"--prompt-dist": "--input-len", "--output-dist": "--output-len"},
    "offload": {"--prompt-len": "--input-len", "--gen-len": "--output-len"},
    "moe-offload": {"--prompt": "--input-len", "--decode-steps": "--output-len"},
    "executor": {"--prompt": "--input-len", "--decode-steps": "--output-len"},
}

#: file extension -> output format (``--out FILE`` without ``--format``)
FORMAT_OF_SUFFIX: Mapping[str, str] = {
    ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "table", ".md": "table",
    ".html": "html",
}

#: commands whose ``--out`` is not a rendered output (calibrate writes a profile YAML)
_OUT_IS_NOT_OUTPUT = ("calibrate", "train")
_FORMAT_FLAGS = ("--format", "-f")
_OUT_FLAGS = ("--out", "-o")


#: flags that take a comma list on these commands (flag names -> parameter name)
LIST_FLAGS: Mapping[str, Mapping[str, str]] = {
    "estimate": {"-m": "model", "--model": "model", "-H": "hardware", "--hardware": "hardware",
                 "--tp": "tp", "--pp": "pp", "--ep": "ep", "--dp": "dp"},
    "simulate": {"-m": "model", "--model": "model", "-H": "hardware", "--hardware": "hardware",
                 "--tp": "tp", "--pp": "pp", "--ep": "ep", "--replicas": "replicas",
                 "--engine": "engine"},
}
_LISTS: dict[str, list[str]] = {}


def take_lists() -> dict[str, list[str]]:
    """The comma lists of the command line just parsed (parameter -> values), then forgotten."""
    lists = dict(_LISTS)
    _LISTS.clear()
    return lists


def _list_values(flag: str, value: str) -> list[str]:
    """The values of a comma list; an empty one (``1,,2``, ``h100-sxm,``) is an error."""
    values = [v.strip() for v in value.split(",")]
    if not all(values):
        from llmsim.errors import ConfigError

        raise ConfigError(f"{flag} {value!r}: a comma list with an empty value; give the "
                          "values separated by single commas, e.g. a100-sxm-80gb,h100-sxm")
    return values


def _split_lists(command: str, args: list[str], start: int) -> list[str]:
    """``args`` with each comma list of :data:`LIST_FLAGS` replaced by its first value (the
    lists kept for :func:`take_lists`)."""
    flags = LIST_FLAGS.get(command, {})
    _LISTS.clear()
    out = list(args)
    for i in range(start, len(out)):
        word = out[i]
        name, eq, value = word.partition("=")
        if eq and name in flags and "," in value:
            values = _list_values(name, value)
            _LISTS[flags[name]] = values
            out[i] = f"{name}={values[0]}"
        elif word in flags and i + 1 < len(out) and "," in out[i + 1]:
            values = _list_values(word, out[i + 1])
            _LISTS[flags[word]] = values
            out[i + 1] = values[0]
    return out


def log_notes() -> None:
    """Log (as warnings, once) what :func:`normalise_argv` noticed, e.g. a deprecated spelling;
    called once the command's log is set up."""
    while _NOTES:
        log.warning(_NOTES.pop(0))


def format_of(path: str) -> str | None:
    """The output format a file name asks for (None: not one of :data:`FORMAT_OF_SUFFIX`)."""
    return FORMAT_OF_SUFFIX.get(PurePath(path).suffix.lower())


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with old spellings replaced, ``--format`` added from ``--out``'s extension
    where not given, and ``simulate --out DIR`` turned into ``--out-dir DIR``."""
    args = list(argv)
    command = _command_of(args)
    if command is None:
        return args
    start = args.index(command) + 1
    aliases = {**ALIASES["*"], **ALIASES.get(command, {})}
    out: list[str] = args[:start]
    for word in args[start:]:
        name, eq, value = word.partition("=")
        if name in aliases and word.startswith("--"):
            word = aliases[name] + eq + value
        out.append(word)
    out = _split_lists(command, out, start)
    if command in _OUT_IS_NOT_OUTPUT:
        return out
    path, where = _flag_value(out, _OUT_FLAGS, start)
    if path is None:
        return out
    fmt = format_of(path)
    if command == "simulate" and fmt is None:
        _NOTES.append(f"simulate --out DIR is deprecated: use --out-dir {path} for the bundle "
                      "(summary, requests, time series, plots); --out FILE takes its format "
                      "from the extension")
        out[where] = "--out-dir" if out[where] in _OUT_FLAGS else f"--out-dir={path}"
        return out
    if fmt is not None and _flag_value(out, _FORMAT_FLAGS, start)[0] is None:
        out += ["--format", fmt]
    return out


def _command_of(args: Sequence[str]) -> str | None:
    """The first word that is not a root option (``--debug``, ``-v``), or None."""
    for word in args:
        if not word.startswith("-"):
            return word
    return None


def _flag_value(args: Sequence[str], names: Sequence[str], start: int) -> tuple[str | None, int]:
    """The value of the last of ``names`` in ``args[start:]`` and the index of the flag."""
    found: tuple[str | None, int] = (None, -1)
    for i in range(start, len(args)):
        word = args[i]
        if word == "--":
            break
        if word in names and i + 1 < len(args):
            found = (args[i + 1], i)
        else:
            for n in names:
                if n.startswith("--") and word.startswith(n + "="):
                    found = (word[len(n) + 1:], i)
    return found
