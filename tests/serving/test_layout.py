"""The replica package's modules import one way (DESIGN principle 13): each imports only the
modules listed before it in ``LAYERS`` (the order of ``llmsim/serving/replica/__init__.py``)."""

from __future__ import annotations

import ast
from importlib import resources

LAYERS = ["settings", "segment", "kvblocks", "state", "decodeset", "admission", "planner", "commit",
          "engine", "itls"]
PKG = "llmsim.serving.replica"


def _imported(source: str) -> set[str]:
    """Modules of the package that ``source`` imports."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: ``from .x import y``
                out.add(node.module.split(".")[0])
            elif node.module.startswith(PKG + "."):
                out.add(node.module[len(PKG) + 1:].split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name[len(PKG) + 1:].split(".")[0] for a in node.names
                       if a.name.startswith(PKG + "."))
    return out


def test_replica_modules_import_one_way():
    files = {f.name[:-3] for f in resources.files(PKG).iterdir()
             if f.name.endswith(".py") and f.name != "__init__.py"}
    assert files == set(LAYERS), "a new module of the replica package needs a place in LAYERS"
    for i, name in enumerate(LAYERS):
        source = resources.files(PKG).joinpath(f"{name}.py").read_text()
        upward = _imported(source) - set(LAYERS[:i])
        assert not upward, f"{PKG}.{name} imports {sorted(upward)}, listed after it"
