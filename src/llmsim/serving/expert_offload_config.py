"""The ``expert_offload`` section of a simulation config (``simulate --expert-cache-experts``).

::

    expert_offload: {cache_experts: 4, policy: lru, prefetch: 2, prefetch_accuracy: 0.8,
                     miss: fetch, routing: zipf:1.2, host: null, cpu_efficiency: 1.0}

The keys are ``moe-offload simulate``'s flags (``--cache-capacity``, ``--policy``,
``--prefetch``, ``--prefetch-accuracy``, ``--miss``, ``--routing``, ``--host``,
``--cpu-efficiency``); ``cache_gb`` gives the cache as GPU memory for all MoE layers instead
of experts per layer. The run's seed (``workload.seed``) seeds routing and prefetch guesses
unless ``seed`` is given. See docs/serving.md, "Expert offloading under load".
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from llmsim.catalog._base import Spec
from llmsim.errors import ConfigError


class ExpertOffloadSection(Spec):
    """A per-layer GPU expert cache on every replica (the rest of the experts in host memory).

    ``cache_experts``: experts cached per MoE layer (``C``); or ``cache_gb``: GPU memory for
    the cache over all MoE layers, ``C = floor(cache_gb * 1e9 / (moe_layers *
    expert_bytes))``. ``prefetch``: experts guessed per layer while the previous layer
    computes (default: the model's top-k), right with probability ``prefetch_accuracy``.
    ``miss``: ``fetch`` (copy over the host link, compute on the GPU) or ``cpu`` (compute on
    the host CPU). ``routing``: ``uniform``, ``zipf:S``, ``correlated:R`` (+ ``,corr=R``) or a
    routing trace file replayed as a stream of routed tokens."""

    cache_experts: int | None = Field(default=None, ge=0)
    cache_gb: float | None = Field(default=None, ge=0.0)
    policy: str = "lru"
    prefetch: int | None = Field(default=None, ge=0)
    prefetch_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    miss: str = "fetch"
    routing: str = "uniform"
    host: str | None = None
    cpu_efficiency: float = Field(default=1.0, gt=0.0, le=1.5)
    seed: int | None = None

    @field_validator("miss")
    @classmethod
    def _miss(cls, value: str) -> str:
        v = value.strip().lower()
        if v not in ("fetch", "cpu"):
            raise ValueError(f"--expert-miss must be fetch or cpu, not {value!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ExpertOffloadSection:
        from llmsim.expert_cache.policies import CACHE_POLICIES
        from llmsim.expert_cache.routing import check_routing
        from llmsim.seeds import check_seed

        if (self.cache_experts is None) == (self.cache_gb is None):
            raise ConfigError("expert offload: give the cache as --expert-cache-experts N "
                              "(expert_offload.cache_experts) or --expert-cache-gb G "
                              "(cache_gb), exactly one")
        CACHE_POLICIES.get(self.policy)  # UnknownNameError with a did-you-mean
        check_routing(self.routing)
        if self.seed is not None:
            check_seed(self.seed)
        return self

    def describe(self) -> dict[str, Any]:
        return self.model_dump()
