"""Typed errors under one base class.

Every error a user can cause is an :class:`LLMSimError`. Messages are one line that names the
value and, where there is one, the fix. The CLI prints the message and exits with code 2
(tracebacks only with ``--debug``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LLMSimError(Exception):
    """Base class of every error llmsim raises for bad input or impossible configurations."""


class SpecError(LLMSimError, ValueError):
    """A spec file or value is malformed (bad unit, missing field, unknown key)."""


class UnknownNameError(LLMSimError, KeyError):
    """A name (model, hardware, scheduler, ...) is not in its catalog or registry."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        known = sorted(set(known))
        name = str(name)
        close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
        by_lower = {k.lower(): k for k in known}
        hint = ""
        if close:
            hint = " Did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?"
        elif known:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            hint = f" Known: {shown}."
        shown = name if len(name) <= 80 else f"{name[:38]}...{name[-38:]}"
        self.message = f"unknown {kind} {shown!r}.{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class ConfigError(LLMSimError, ValueError):
    """A configuration is impossible (tp does not divide heads, unsupported dtype, ...)."""


class DoesNotFitError(LLMSimError):
    """The model (or its KV cache) does not fit the memory available."""

    def __init__(self, message: str, need_bytes: float = 0.0, have_bytes: float = 0.0):
        self.need_bytes, self.have_bytes = need_bytes, have_bytes
        super().__init__(message)


class InfeasibleError(LLMSimError):
    """An optimisation problem (offload LP, search) has no feasible solution."""


class OutputError(LLMSimError, OSError):
    """An output file or folder cannot be written (permissions, a folder in the way, ...)."""


class DataError(LLMSimError, ValueError):
    """An input data file (trace, case file, measurements) is malformed."""
