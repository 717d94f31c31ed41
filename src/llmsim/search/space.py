"""The search space: which layouts ``llmsim search`` considers.

A *plan* is what one replica runs: GPU type, ``tp x pp`` GPUs with expert parallelism ``ep``,
weight and KV formats, and the engine limits (``max_num_seqs``, the token budget per step
``max_num_batched_tokens``). A *layout* is a plan times a number of data-parallel ``replicas``
behind the router: ``tp x pp x replicas`` GPUs, at most ``max_gpus``. Every dimension is a list;
a dimension the user gives one value for is pinned. Defaults (``None``): tp the powers of two
up to a node (8), pp 1 and 2, ep 1 (and ep = tp for a MoE model), replicas 1 .. what fits in
``max_gpus``.

Extension point (disaggregation, issue 11): a layout is aggregated (``kind="aggregated"``);
prefill/decode pools with an x:y ratio would be a second :class:`Layout` kind enumerated here
and evaluated by its own task function in ``search/evaluate.py``. Not searched yet.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field, field_validator

from llmsim.catalog._base import Spec

DEFAULT_GPUS = ("h100-sxm", "h200-sxm", "mi300x")
DEFAULT_TP = (1, 2, 4, 8)
DEFAULT_PP = (1, 2)
DEFAULT_MAX_NUM_SEQS = (64, 128, 256)
DEFAULT_BATCHED_TOKENS = (2048, 8192)
DEFAULT_WEIGHT_DTYPES = ("bf16", "fp8")
DEFAULT_KV_DTYPES = ("bf16", "fp8")


class SearchSpace(Spec):
    """The lists of values to search (YAML ``space:`` section; CLI flags of the same names)."""

    gpus: tuple[str, ...] = DEFAULT_GPUS
    max_gpus: int = Field(default=64, gt=0, le=100_000)
    tp: tuple[int, ...] | None = None
    pp: tuple[int, ...] = DEFAULT_PP
    ep: tuple[int, ...] | None = None
    replicas: tuple[int, ...] | None = None
    max_num_seqs: tuple[int, ...] = DEFAULT_MAX_NUM_SEQS
    max_num_batched_tokens: tuple[int, ...] = DEFAULT_BATCHED_TOKENS
    weight_dtype: tuple[str, ...] = DEFAULT_WEIGHT_DTYPES
    kv_dtype: tuple[str, ...] = DEFAULT_KV_DTYPES

    @field_validator("gpus", "weight_dtype", "kv_dtype")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        v = tuple(dict.fromkeys(str(x).strip().lower() for x in v if str(x).strip()))
        if not v:
            raise ValueError("needs at least one value")
        return v

    @field_validator("tp", "pp", "ep", "replicas", "max_num_seqs", "max_num_batched_tokens")
    @classmethod
    def _counts(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        v = tuple(sorted(set(int(x) for x in v)))
        if not v or v[0] < 1:
            raise ValueError("needs whole numbers >= 1")
        return v


@dataclass(frozen=True, order=True)
class Plan:
    """One replica's deployment and engine limits (the unit the simulation stage evaluates)."""

    gpu: str
    tp: int
    pp: int
    ep: int
    weight_dtype: str
    kv_dtype: str
    max_num_seqs: int
    max_num_batched_tokens: int

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def step_key(self) -> tuple[str, int, int, int, str, str]:
        """What the step-time model depends on (engine limits do not change it)."""
        return (self.gpu, self.tp, self.pp, self.ep, self.weight_dtype, self.kv_dtype)

    @property
    def key(self) -> str:
        return (f"{self.gpu}/tp{self.tp}/pp{self.pp}/ep{self.ep}/w-{self.weight_dtype}/"
                f"kv-{self.kv_dtype}/seqs{self.max_num_seqs}/tok{self.max_num_batched_tokens}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True, order=True)
class Layout:
    """A plan times ``replicas`` data-parallel copies behind the router (aggregated serving)."""

    plan: Plan
    replicas: int
    kind: str = "aggregated"

    @property
    def num_gpus(self) -> int:
        return self.plan.gpus_per_replica * self.replicas

    @property
    def key(self) -> str:
        return f"{self.plan.key}/x{self.replicas}"


def _tp_values(space: SearchSpace) -> tuple[int, ...]:
    return space.tp if space.tp is not None else DEFAULT_TP


def _ep_values(space: SearchSpace, tp: int, pp: int, is_moe: bool) -> tuple[int, ...]:
    if space.ep is not None:
        return space.ep
    return tuple(sorted({1, tp})) if is_moe else (1,)


def plans(space: SearchSpace, is_moe: bool = False) -> list[Plan]:
    """Every plan of the space whose replica fits in ``max_gpus`` (a plan larger than the
    budget is not a layout at all). Token budgets below ``max_num_seqs`` are kept: the chunked
    scheduler refuses them, the analytic stage says so."""
    out = []
    for gpu, tp, pp in itertools.product(space.gpus, _tp_values(space), space.pp):
        if tp * pp > space.max_gpus:
            continue
        for ep, wd, kvd, seqs, tok in itertools.product(
                _ep_values(space, tp, pp, is_moe), space.weight_dtype, space.kv_dtype,
                space.max_num_seqs, space.max_num_batched_tokens):
            out.append(Plan(gpu, tp, pp, ep, wd, kvd, seqs, tok))
    return out


def replica_counts(space: SearchSpace, plan: Plan) -> tuple[int, ...]:
    """Replica counts of ``plan`` within ``max_gpus``."""
    most = space.max_gpus // plan.gpus_per_replica
    if space.replicas is not None:
        return tuple(r for r in space.replicas if r <= most)
    return tuple(range(1, most + 1))


def layouts(space: SearchSpace, is_moe: bool = False) -> list[Layout]:
    """Every layout of the space (plans x replica counts)."""
    return [Layout(p, r) for p in plans(space, is_moe) for r in replica_counts(space, p)]
