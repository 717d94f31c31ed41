"""The search space: which layouts ``llmsim search`` considers.

A *plan* is what one replica runs: GPU type, ``tp x pp`` GPUs with expert parallelism ``ep``,
weight and KV formats, and the engine limits (``max_num_seqs``, the token budget per step
``max_num_batched_tokens``). A *layout* is a plan times a number of data-parallel ``replicas``
behind the router: ``tp x pp x replicas`` GPUs, at most ``max_gpus``. Every dimension is a list;
a dimension the user gives one value for is pinned. Defaults (``None``): tp the powers of two
up to a node (8), pp 1 and 2, ep 1 (and ep = tp for a MoE model), replicas 1 .. what fits in
``max_gpus``.

``engine`` (``--engine vllm,sglang``): the serving engines to search over (its scheduler, default
limits and fitted fixed costs, ``llmsim.engines``); None: llmsim's engine-neutral behaviour.

A second layout kind, :class:`DisaggLayout` (``kind="disaggregated"``, ``space.disagg``):
``x`` prefill workers and ``y`` decode workers (xPyD), each pool a tp-only plan (pp 1) on its
own GPU type (heterogeneous when the two differ), sharing the weight and KV formats. The
prefill pool searches the token budgets (``n_p = budget // prompt`` prompts per step); the
decode pool takes the space's largest ``max_num_seqs`` (under the xPyD static estimate a larger
cap only matters once the decode pool saturates, where it serves more). ``x`` and ``y`` come
from ``disagg_workers`` (default 1, 2, 4, 8) within ``max_gpus``.
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
DEFAULT_DISAGG_WORKERS = (1, 2, 4, 8)
DISAGG_MODES = ("auto", "off", "only")


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
    engine: tuple[str, ...] | None = None
    disagg: str = Field(default="auto", description="auto | off | only (disaggregated "
                                                    "prefill/decode layouts)")
    disagg_workers: tuple[int, ...] = DEFAULT_DISAGG_WORKERS

    @field_validator("disagg")
    @classmethod
    def _disagg_mode(cls, v: str) -> str:
        v = str(v).strip().lower()
        if v not in DISAGG_MODES:
            raise ValueError(f"is one of {', '.join(DISAGG_MODES)}, got {v!r}")
        return v

    @field_validator("engine")
    @classmethod
    def _engines(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        from llmsim.engines import ENGINES
        from llmsim.engines.spec import parse_engine

        out = []
        for text in v:
            name, version = parse_engine(str(text).strip())
            canon = ENGINES.get(name).name
            out.append(f"{canon}@{version}" if version else canon)
        v = tuple(dict.fromkeys(out))
        if not v:
            raise ValueError("needs at least one value")
        return v

    @field_validator("gpus", "weight_dtype", "kv_dtype")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        v = tuple(dict.fromkeys(str(x).strip().lower() for x in v if str(x).strip()))
        if not v:
            raise ValueError("needs at least one value")
        return v

    @field_validator("tp", "pp", "ep", "replicas", "max_num_seqs", "max_num_batched_tokens",
                     "disagg_workers")
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
    engine: str = ""  # "" : engine-neutral

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def step_key(self) -> tuple[str, int, int, int, str, str]:
        """What the kernel step-time model depends on (engine limits do not change it; an
        engine's fixed costs are laid over it, ``engines.EngineStepModel``)."""
        return (self.gpu, self.tp, self.pp, self.ep, self.weight_dtype, self.kv_dtype)

    @property
    def key(self) -> str:
        return (f"{self.gpu}/tp{self.tp}/pp{self.pp}/ep{self.ep}/w-{self.weight_dtype}/"
                f"kv-{self.kv_dtype}/seqs{self.max_num_seqs}/tok{self.max_num_batched_tokens}"
                + (f"/{self.engine}" if self.engine else ""))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


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

    @property
    def plan_key(self) -> str:
        return self.plan.key


@dataclass(frozen=True, order=True)
class DisaggLayout:
    """``prefill_workers`` x the ``prefill`` plan and ``decode_workers`` x the ``decode`` plan
    (xPyD), the KV cache moved between them (``disagg.kv_transfer``: RDMA, layer-wise).
    Heterogeneous when the two pools' GPU types differ."""

    prefill: Plan
    decode: Plan
    prefill_workers: int
    decode_workers: int
    kind: str = "disaggregated"

    @property
    def num_gpus(self) -> int:
        return (self.prefill_workers * self.prefill.gpus_per_replica
                + self.decode_workers * self.decode.gpus_per_replica)

    @property
    def heterogeneous(self) -> bool:
        return self.prefill.gpu != self.decode.gpu

    @property
    def ratio(self) -> str:
        return f"{self.prefill_workers}P{self.decode_workers}D"

    @property
    def key(self) -> str:
        p, d = self.prefill, self.decode
        return (f"{self.ratio}/P-{p.gpu}-tp{p.tp}-ep{p.ep}-tok{p.max_num_batched_tokens}/"
                f"D-{d.gpu}-tp{d.tp}-ep{d.ep}-seqs{d.max_num_seqs}/"
                f"w-{p.weight_dtype}/kv-{p.kv_dtype}")

    @property
    def plan_key(self) -> str:
        """Each disaggregated layout is its own task (its goodput depends on the ratio)."""
        return self.key

    def as_dict(self) -> dict[str, Any]:
        return {"prefill": self.prefill.as_dict(), "decode": self.decode.as_dict(),
                "prefill_workers": self.prefill_workers,
                "decode_workers": self.decode_workers}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DisaggLayout:
        return cls(Plan.from_dict(d["prefill"]), Plan.from_dict(d["decode"]),
                   int(d["prefill_workers"]), int(d["decode_workers"]))


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
    engines = space.engine or ("",)
    for gpu, tp, pp in itertools.product(space.gpus, _tp_values(space), space.pp):
        if tp * pp > space.max_gpus:
            continue
        for ep, wd, kvd, seqs, tok, eng in itertools.product(
                _ep_values(space, tp, pp, is_moe), space.weight_dtype, space.kv_dtype,
                space.max_num_seqs, space.max_num_batched_tokens, engines):
            out.append(Plan(gpu, tp, pp, ep, wd, kvd, seqs, tok, eng))
    return out


def replica_counts(space: SearchSpace, plan: Plan) -> tuple[int, ...]:
    """Replica counts of ``plan`` within ``max_gpus``."""
    most = space.max_gpus // plan.gpus_per_replica
    if space.replicas is not None:
        return tuple(r for r in space.replicas if r <= most)
    return tuple(range(1, most + 1))


def layouts(space: SearchSpace, is_moe: bool = False) -> list[Layout]:
    """Every aggregated layout of the space (plans x replica counts); none with
    ``disagg="only"``."""
    if space.disagg == "only":
        return []
    return [Layout(p, r) for p in plans(space, is_moe) for r in replica_counts(space, p)]


def pool_plans(space: SearchSpace, is_moe: bool, role: str) -> list[Plan]:
    """The plans one pool of a disaggregated layout may run (module docstring): tp-only
    (pp 1), the prefill pool over the token budgets at the largest ``max_num_seqs``, the
    decode pool at the largest ``max_num_seqs`` and the smallest token budget (a decode
    worker runs no prefill: the budget only sizes its activations)."""
    seqs = max(space.max_num_seqs)
    toks = space.max_num_batched_tokens if role == "prefill" \
        else (min(space.max_num_batched_tokens),)
    out = []
    for gpu, tp in itertools.product(space.gpus, _tp_values(space)):
        if tp > space.max_gpus:
            continue
        for ep, tok in itertools.product(_ep_values(space, tp, 1, is_moe), toks):
            out.append((gpu, tp, ep, tok))
    return [Plan(g, tp, 1, ep, wd, kvd, seqs, tok)
            for (g, tp, ep, tok) in out
            for wd, kvd in itertools.product(space.weight_dtype, space.kv_dtype)]


def disagg_layouts(space: SearchSpace, is_moe: bool = False) -> list[DisaggLayout]:
    """Every disaggregated layout of the space (none with ``disagg="off"``): prefill plan x
    decode plan (same formats) x worker counts within ``max_gpus``."""
    if space.disagg == "off":
        return []
    pre, dec = pool_plans(space, is_moe, "prefill"), pool_plans(space, is_moe, "decode")
    out = []
    for p, d in itertools.product(pre, dec):
        if (p.weight_dtype, p.kv_dtype) != (d.weight_dtype, d.kv_dtype):
            continue
        for x, y in itertools.product(space.disagg_workers, space.disagg_workers):
            if x * p.gpus_per_replica + y * d.gpus_per_replica <= space.max_gpus:
                out.append(DisaggLayout(p, d, x, y))
    return out
