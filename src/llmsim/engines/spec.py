"""``EngineSpec``: one engine's scheduling policy and documented defaults; the registry.

An engine file registers an ``EngineSpec`` with ``@engine(...)``-style ``ENGINES.register``:
the serving scheduler (``serving/schedulers/``) that reproduces the engine's batching, and the
limits the engine uses when the user gives none (``defaults``: scheduler config keys, e.g.
``max_num_seqs``, ``max_num_batched_tokens``, ``block_size``, ``chunk_size_tokens``,
``mix_decodes``), with ``sources`` naming the documentation page and version of each.
A user's explicit value (flag or YAML key) always wins over the engine's default.

``resolve_engine("trtllm@1.0.0rc3")`` parses ``NAME[@VERSION]`` and returns the spec and the
profile fitted for that engine (and version where one was fitted; else the engine's, else the
documented fallback rule of :func:`llmsim.engines.profile.load_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmsim.engines.profile import EngineProfile, load_profile
from llmsim.errors import ConfigError
from llmsim.registry import Registry


@dataclass(frozen=True)
class EngineSpec:
    """An engine: ``name``, the ``scheduler`` that reproduces its batching, its default
    limits (scheduler config keys) and the sources of those defaults."""

    name: str
    scheduler: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


ENGINES: Registry[EngineSpec] = Registry("engine")


@dataclass(frozen=True)
class ResolvedEngine:
    """An engine as a run uses it: its spec, the version asked for (or None) and its
    profile."""

    spec: EngineSpec
    version: str | None
    profile: EngineProfile

    @property
    def label(self) -> str:
        return self.spec.name + (f"@{self.version}" if self.version else "")

    def describe(self) -> dict[str, Any]:
        return {"name": self.spec.name, "version": self.version,
                "scheduler": self.spec.scheduler, "profile": self.profile.describe()}


def parse_engine(text: str) -> tuple[str, str | None]:
    """``"trtllm@1.0"`` -> ``("trtllm", "1.0")``; ``"vllm"`` -> ``("vllm", None)``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--engine must be NAME or NAME@VERSION "
                          f"({', '.join(ENGINES.names())}), got {text!r}")
    name, at, version = text.strip().partition("@")
    if at and not version.strip():
        raise ConfigError(f"--engine {text}: give a version after '@' (e.g. vllm@0.12.0) or "
                          "drop the '@'")
    return ENGINES.canonical(name.strip()), (version.strip() or None)


def resolve_engine(text: str, profile_path: str | None = None) -> ResolvedEngine:
    """The engine named ``NAME[@VERSION]`` with its profile (``profile_path``: a profiles
    YAML to read instead of the packaged one)."""
    name, version = parse_engine(text)
    spec = ENGINES.get(name)
    return ResolvedEngine(spec, version, load_profile(name, version, profile_path))
