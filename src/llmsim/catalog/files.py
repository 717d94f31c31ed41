"""Reading spec files (YAML and JSON) with one-line errors.

Every problem a user's file can have is one :class:`~llmsim.errors.SpecError` line naming the
file: a path that cannot name a file (a name over 255 bytes), a folder, unreadable bytes (not
UTF-8: a binary file), YAML syntax as ``file:line:col: message``, a key given twice in one
mapping (``model:`` twice would otherwise keep the last silently), and nesting so deep the
parser would overflow the stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from llmsim.errors import SpecError
from llmsim.io import path_name_problem, shown


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[arg-type]
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first is not None and key_node.tag != "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line "
                                f"{first.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_text(path: str | Path, origin: str | None = None, what: str = "file") -> str:
    """A text file's contents (UTF-8, a BOM allowed) or a one-line :class:`SpecError`."""
    origin = origin or shown(path)
    problem = path_name_problem(path)
    if problem:
        raise SpecError(f"cannot read {what} {origin}: {problem}")
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise SpecError(f"{origin}: is a folder; give a {what}") from None
    except OSError as exc:
        raise SpecError(f"{origin}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{origin}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                        f"{exc.start}); give a YAML or JSON text file") from None


def parse_yaml(text: str, origin: str) -> Any:
    """Parse YAML text; errors as ``origin:line:col: message`` (one line)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else origin
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message += f" ({exc.context})"
        raise SpecError(f"{where}: {' '.join(message.split())}") from None
    except yaml.YAMLError as exc:  # reader errors (control characters) carry a position
        raise SpecError(f"{origin}: invalid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise SpecError(f"{origin}: nested too deeply to read") from None


def parse_json(text: str, origin: str) -> Any:
    """Parse JSON text; errors as ``origin:line:col: message`` (one line)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{origin}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})"
                        ) from None
    except RecursionError:
        raise SpecError(f"{origin}: nested too deeply to read") from None


def read_yaml(path: str | Path, origin: str | None = None, what: str = "file") -> Any:
    """:func:`read_text` then :func:`parse_yaml`."""
    origin = origin or shown(path)
    return parse_yaml(read_text(path, origin, what), origin)


def read_json(path: str | Path, origin: str | None = None, what: str = "file") -> Any:
    """:func:`read_text` then :func:`parse_json`."""
    origin = origin or shown(path)
    return parse_json(read_text(path, origin, what), origin)


def read_mapping(path: str | Path, origin: str | None = None, what: str = "file"
                 ) -> dict[str, Any]:
    """A YAML or JSON (by suffix ``.json``) file that must hold a mapping at the top level."""
    origin = origin or shown(path)
    reader = read_json if str(path).endswith(".json") else read_yaml
    return as_mapping(reader(path, origin, what), origin)


def as_mapping(data: Any, origin: str) -> dict[str, Any]:
    """``data`` if it is a mapping, else a one-line :class:`SpecError` saying what it is."""
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise SpecError(f"{origin}: expected a mapping (key: value) at the top level, the file "
                        f"holds {kind}")
    return data


def read_yaml_file(path: Path | Any, origin: str | None = None) -> dict[str, Any]:
    """Parse one YAML file into a dict, with a one-line error on bad syntax
    (``file:line:col: message``, duplicate keys, not UTF-8)."""
    origin = origin or str(path)
    if isinstance(path, (str, Path)):
        return read_mapping(path, origin)
    # package data (an importlib.resources Traversable)
    return as_mapping(parse_yaml(path.read_text(encoding="utf-8"), origin), origin)
