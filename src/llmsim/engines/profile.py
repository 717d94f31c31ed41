"""``EngineProfile``: what an engine costs beyond the kernels (fitted; package data).

The cost model of a run with an engine (``EngineStepModel`` and the simulator):

* every engine step (prefill, mixed or decode) takes ``kernel_time x factor + step_overhead_s``
  where ``factor = prefill_step_factor`` for a step that holds prompt tokens (prefill-only or
  mixed), times ``mixed_step_factor`` when it also holds decodes, and 1 for a decode-only step;
  ``step_overhead_s`` is the CPU side of one iteration that the GPU waits for (scheduling,
  input preparation, kernel launches not hidden by CUDA graphs);
* the host's per-sequence work (sampling, detokenisation, streaming each new token back,
  request bookkeeping) runs beside the GPU (TensorRT-LLM's overlap scheduler, vLLM's
  asynchronous output processing): a step lasts at least ``host_per_seq_s x`` its sequences,
  ``step = max(kernel_time x factor + step_overhead_s, host_per_seq_s x seqs)``. This is what
  caps a small model's throughput whatever its tensor parallelism: TensorRT-LLM Llama-3.1-8B,
  1024 / 128 tokens, serves 32-36 requests/s at ``c >= 64`` on tp 4 and on tp 8 alike, and its
  TPOT at ``c = 128`` stays near 10 ms on both, where the kernels take a few ms; an additive
  per-sequence term would instead slow every large model's decode; ``prefill_step_factor``
  prices what the kernel sums miss in a step with prompt work: such steps run eagerly (CUDA
  graphs cover decode-only batches), with variable-length attention metadata and the
  engine's own GEMM choices; on the measured H100 rows the prompt-heavy steps of TensorRT-LLM
  run well above llmsim's kernel sums (whose fp8 GEMMs follow the measured fp8 curve,
  ``gemm_fp8`` of the calibration profile), see ``scripts/fit_engine_profile.py``;
* a request reaches the engine's queue ``request_overhead_s`` after its client sent it (HTTP
  frontend, tokenisation, and the first token's way back): TTFT and E2E include it, TPOT does
  not (it spreads over the output tokens: ``(E2E - TTFT) / (n - 1)``);
* the client's send is late by a seeded ``U(0, jitter_s)`` (timing noise of real clients and
  networks);
* with closed-loop warm-up, the measured phase's first ``c`` sends are late by a seeded
  ``U(0, client_phase_spread x mean warm-up E2E)``: the clients enter the measured phase out of
  phase, not as one cohort. Why: identical requests admitted in consecutive long prefill
  steps finish in consecutive short decode steps (every running request advances one token a
  step), so a cohort that arrives together comes back compressed and re-forms every cycle;
  no timing noise of a realistic size (1-100 ms) breaks it. Some measured rows show real
  engines out of that state (``python benchmarks/cohort_phase.py``, packaged profile): rerun
  as one cohort, TensorRT-LLM Qwen3-32B tp 4, 1024 / 128 at ``c = 32`` predicts TTFT 734 ms /
  TPOT 12.4 ms against 196 / 15.9 measured (prefills bunched: long queues, little decode
  interference), started out of phase 365 / 15.0 (most of the rest the fitted request
  overhead); others prefer the cohort (SGLang's Qwen3-32B tp 4, 2048 / 256 at ``c = 64``:
  2363 ms as one, 465 ms out of phase, 2317 measured). ``scripts/fit_engine_profile.py`` fits
  the spread per engine (from two starts, 0 and 1): the packaged fit (2026-12-08) leaves
  SGLang and vLLM as one cohort (0.005, 0.0006) and TensorRT-LLM out of phase (0.87); for each
  engine the other state is a second basin of higher loss.

So a batch-1 request of prompt ``p`` and ``n`` output tokens costs
``TTFT = request_overhead_s + prefill_step_factor x prefill(p) + step_overhead_s`` and
``TPOT = max(decode_step + step_overhead_s, host_per_seq_s)``.

Values: ``data/engines/profiles.yaml``, written by ``scripts/fit_engine_profile.py`` (a
robust fit to measured serving runs; see that script). Lookup for ``NAME@VERSION``: the entry
``NAME@VERSION`` if fitted, else ``NAME``; an engine without a fitted entry falls back to the
documented rule in the file (``fallback``: each parameter's median over the engines that were
fitted), and with no file at all every parameter is 0 (the engine's scheduling only).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field

from llmsim.catalog._base import Seconds, Spec, validate_spec
from llmsim.errors import ConfigError

log = logging.getLogger(__name__)

PARAMETERS = ("request_overhead_s", "step_overhead_s", "prefill_step_factor", "mixed_step_factor",
              "jitter_s", "client_phase_spread", "host_per_seq_s")
#: the parameters a config's ``engine:`` section may override (all but the client's jitter,
#: which the workload's ``jitter_s`` sets)
OVERRIDABLE = tuple(k for k in PARAMETERS if k != "jitter_s")


class EngineProfile(Spec):
    request_overhead_s: Seconds = Field(default=0.0, ge=0)
    step_overhead_s: Seconds = Field(default=0.0, ge=0)
    prefill_step_factor: float = Field(default=1.0, ge=0.5, le=3.0)
    mixed_step_factor: float = Field(default=1.0, ge=0.5, le=3.0)
    jitter_s: Seconds = Field(default=0.0, ge=0)
    client_phase_spread: float = Field(default=0.0, ge=0, le=10)
    host_per_seq_s: Seconds = Field(default=0.0, ge=0)
    fitted_on: str = ""  # what the values were fitted on (or the fallback rule used)

    def describe(self) -> dict[str, Any]:
        return self.model_dump()


class ProfilesFile(Spec):
    source: str = ""
    fit: dict[str, Any] = Field(default_factory=dict)
    fallback: str = "median"
    engines: dict[str, EngineProfile] = Field(default_factory=dict)


def _packaged() -> Path | None:
    ref = resources.files("llmsim.data").joinpath("engines/profiles.yaml")
    return Path(str(ref)) if ref.is_file() else None


@lru_cache(maxsize=16)
def _read(path: str) -> ProfilesFile:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the engine profiles {path}: {e}") from None
    return validate_spec(ProfilesFile, data or {}, path)  # type: ignore[return-value]


def load_profiles(path: str | Path | None = None) -> ProfilesFile:
    """The engine profiles file (``path``, or the packaged one; empty if there is none)."""
    if path is None:
        path = _packaged()
        if path is None:
            return ProfilesFile()
    if not Path(path).is_file():
        raise ConfigError(f"engine profiles file not found: {path}")
    return _read(str(Path(path).resolve()))


def lookup_keys(name: str, version: str | None = None) -> list[str]:
    """The entries that may hold engine ``name`` at ``version``, most specific first:
    ``NAME@VERSION`` (when a version is given), then ``NAME``."""
    return ([f"{name}@{version}"] if version else []) + [name]


def median_parameters(profiles: list[EngineProfile],
                      keys: tuple[str, ...] = PARAMETERS) -> dict[str, float]:
    """The median of each parameter over ``profiles`` (the rule for an engine with no fit)."""
    import statistics

    return {k: statistics.median(getattr(p, k) for p in profiles) for k in keys}


def load_profile(name: str, version: str | None = None,
                 path: str | Path | None = None) -> EngineProfile:
    """The profile of engine ``name`` (at ``version`` when one was fitted for it)."""
    profiles = load_profiles(path)
    for key in lookup_keys(name, version):
        if key in profiles.engines:
            if version and key == name:
                log.info("no profile fitted for %s@%s: %s's is used", name, version, name)
            return profiles.engines[key]
    fitted = [p for k, p in profiles.engines.items() if "@" not in k]
    if not fitted:
        log.warning("no fitted profile for engine %s: its overheads are 0", name)
        return EngineProfile(fitted_on="none (no profile file)")
    return EngineProfile(**median_parameters(fitted),
                         fitted_on=f"fallback: median of {len(fitted)} fitted engines' "
                                   "parameters")
