"""Error bars: per-family error factors drawn from validation residuals, and step models that
apply them.

A prediction's error is mostly *systematic within a step*: a transformer repeats the same few
GEMM shapes and one attention shape in every layer, so one factor per op family, shared by
every op of that family in a prediction, is drawn per Monte Carlo sample (independent per-op
factors average out and cover nothing: research r12, Q5). For family ``f``::

    factor_f = exp(b_f + e_f),   b_f ~ Normal(mu_f, sigma_f),   e_f ~ F_f

``b_f`` is the systematic error of the estimator on a part (``sigma_f``: the spread of the
per-table median residuals of held-out cases), ``e_f`` the within-table scatter (``F_f``: the
empirical distribution of centred residuals ``r - median(r)``, stored as quantiles). Residuals
are ``r = log(measured / predicted)`` from ``llmsim.calibration.validation``: for a family the
estimator has data for on this part (``own``), its in-sample scatter and the spread across
other stacks on the part; otherwise (``transfer``) the leave-one-GPU-out residuals of the other
parts. An *engine* factor ``g = exp(r_e)`` per metric (TTFT, TPOT; one measured row per draw)
is drawn from the end-to-end residuals (Splitwise) of the other parts, uncentred: it carries
the framework time no kernel table contains. A part with its own kernel pools draws from the
other parts' residuals as shipped; a part without data from their leave-one-GPU-out
residuals (research r12, Q5: kernel draws x the other part's uncentred end-to-end residual).
``residuals.json`` (``scripts/fit_residuals.py``) holds all of it. A deployment whose GEMM math
runs in fp8 draws its ``gemm`` and ``moe`` factors from the ``gemm_fp8`` / ``moe_fp8`` pools
(the profile families that price those kernels, ``costmodel.profile.kernel_family``) where
the file has them, else from the base family's. Collectives draw the ``comm_intra`` pool
(NCCL's), except an all-reduce the engines' custom kernel priced (``op_family``), which draws
``comm_custom`` (that kernel's residuals: it is fitted to other tables and errs on its own).

:class:`ScaledStepTimeModel` applies one draw to a step model (the serving simulator's K step
models: :func:`scaled_step_models`); ``estimate`` prices one prefill and one decode curve and
applies all draws at once (:func:`family_stage_times`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.ops import OpCost, OpKind
from llmsim.costmodel.profile import kernel_family
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import StepCost, StepTimeModel, StepTimeModelBase
from llmsim.dtypes import compute_dtype
from llmsim.errors import ConfigError, DataError

#: the interval families (kernel families of the profile; a collective is ``comm`` (NCCL's,
#: residuals of ``comm_intra``), an all-reduce the engines' custom kernel priced ``comm_custom``)
FAMILIES = ("gemm", "moe", "attention_prefill", "attention_decode", "elementwise", "comm",
            "comm_custom")
_INDEX = {f: i for i, f in enumerate(FAMILIES)}
_OF_KIND = {OpKind.GEMM: "gemm", OpKind.MOE: "moe", OpKind.ATTENTION_PREFILL: "attention_prefill",
            OpKind.ATTENTION_DECODE: "attention_decode", OpKind.ELEMENTWISE: "elementwise",
            OpKind.EMBEDDING: "elementwise", OpKind.SAMPLING: "elementwise"}
ENGINE_METRICS = ("ttft", "tpot")
DEFAULT_LEVEL = 0.8
DEFAULT_DRAWS = 200
RESIDUALS_FILE = "residuals.json"


def family_of(kind: OpKind) -> str:
    """The interval family of an op kind (a collective: ``comm``; :func:`op_family` tells the
    custom all-reduce apart)."""
    return _OF_KIND.get(kind, "comm")


def op_family(op: OpCost) -> str:
    """The interval family of a priced op: :func:`family_of` its kind, ``comm_custom`` for an
    all-reduce the engines' custom kernel priced (``collectives.collective``'s ``custom``)."""
    if op.kind == OpKind.ALL_REDUCE and op.shape.get("custom"):
        return "comm_custom"
    return family_of(op.kind)


def family_stage_times(step: StepCost, num_stages: int) -> tuple[np.ndarray, float]:
    """``(T [families, stages], p2p_s)``: each family's op time per pipeline stage of a priced
    step (stage sends apart), so that ``T.sum() + p2p + overhead == step.time_s``."""
    out = np.zeros((len(FAMILIES), num_stages))
    p2p = 0.0
    for layer in step.layers:
        if layer.name == "pp_send":
            p2p += layer.time_s * layer.repeat
            continue
        for o in layer.ops:
            out[_INDEX[op_family(o)], layer.stage] += o.time_s * o.count * layer.repeat
    return out, p2p


@dataclass(frozen=True)
class Pool:
    """One family's residual model: systematic ``Normal(mu, sigma)`` and centred scatter
    quantiles ``q`` (at evenly spaced probabilities 0..1)."""

    mu: float
    sigma: float
    q: np.ndarray
    basis: str

    def draw(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k`` log-factors ``b + e``."""
        e = np.interp(rng.random(k), np.linspace(0.0, 1.0, self.q.size), self.q)
        return rng.normal(self.mu, self.sigma, k) + e


NEUTRAL = Pool(0.0, 0.0, np.zeros(2), "none")


@dataclass(frozen=True)
class FactorDraws:
    """``k`` draws: kernel factors ``[k, families]`` and engine factors ``[k, 2]`` (TTFT,
    TPOT), with what they were drawn from."""

    kernel: np.ndarray
    engine: np.ndarray
    level: float
    basis: dict[str, str] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.kernel.shape[0])

    @classmethod
    def neutral(cls, k: int = 1, level: float = DEFAULT_LEVEL) -> FactorDraws:
        """Every factor 1 (the draws reproduce the point values)."""
        return cls(np.ones((k, len(FAMILIES))), np.ones((k, len(ENGINE_METRICS))), level)

    def factors(self, i: int) -> dict[str, float]:
        return {f: float(self.kernel[i, j]) for j, f in enumerate(FAMILIES)}


class ResidualData:
    """The residual file: per estimator, ``own`` pools per (hardware, family), ``transfer``
    pools per family, and end-to-end engine residuals per hardware."""

    def __init__(self, data: Mapping[str, object], origin: str):
        if not isinstance(data, Mapping) or data.get("version") != 1:
            raise DataError(f"{origin}: not a residual file of version 1")
        self.data = data
        self.origin = origin

    @classmethod
    def load(cls, path: str | Path | None = None) -> ResidualData:
        """A residual file; None: the shipped ``data/estimators/residuals.json``."""
        if path is None:
            return _shipped()
        p = Path(path)
        try:
            return cls(json.loads(p.read_text(encoding="utf-8")), str(p))
        except OSError as exc:
            raise DataError(f"{p}: cannot read residual file ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: not JSON ({exc})") from None

    def estimators(self) -> list[str]:
        return sorted(self.data["estimators"])  # type: ignore[index]

    def _block(self, estimator: str) -> Mapping[str, object]:
        blocks = self.data["estimators"]  # type: ignore[index]
        if estimator not in blocks:  # type: ignore[operator]
            raise ConfigError(f"no validation residuals for estimator {estimator!r} in "
                              f"{self.origin}; have {sorted(blocks)}")  # type: ignore[arg-type]
        return blocks[estimator]  # type: ignore[index]

    def pool(self, estimator: str, hardware: str, family: str) -> Pool:
        """``own`` pool of the part if it has one for the family, else ``transfer``."""
        block = self._block(estimator)
        own = (block.get("own") or {}).get(hardware, {}).get(family)  # type: ignore[union-attr]
        if own is not None:
            return _pool(own, f"{estimator} own {hardware}")
        tr = (block.get("transfer") or {}).get(family)  # type: ignore[union-attr]
        if tr is not None:
            return _pool(tr, f"{estimator} transfer (leave-one-GPU-out)")
        return NEUTRAL

    def engine(self, estimator: str, hardware: str, mode: str = "own"
               ) -> tuple[np.ndarray, str]:
        """End-to-end log residuals ``[rows, (ttft, tpot)]`` of the *other* parts (all parts
        when ``hardware`` has none of its own) in ``mode`` (``own``: the estimator as shipped;
        ``transfer``: each part priced without its data; falls back to ``own``)."""
        block = (self.data.get("engine") or {}).get(estimator) or {}  # type: ignore[union-attr]
        if not block.get(mode):
            mode = "own"
        eng = block.get(mode)
        if not eng:
            return np.zeros((0, 2)), "none"
        parts = sorted([h for h in eng if h != hardware] or list(eng))
        rows = np.concatenate([np.column_stack([eng[h]["ttft"], eng[h]["tpot"]])
                               for h in parts])
        return rows, f"{estimator} {mode} end-to-end residuals of {', '.join(parts)}"

    def has_own(self, estimator: str, hardware: str) -> bool:
        """Whether the estimator has any in-sample pool for the part."""
        own = self._block(estimator).get("own") or {}  # type: ignore[union-attr]
        return bool(own.get(hardware))  # type: ignore[union-attr]

    def has_pool(self, estimator: str, hardware: str, family: str) -> bool:
        """Whether the file has an ``own`` (this part) or ``transfer`` pool for ``family``."""
        block = self._block(estimator)
        own = (block.get("own") or {}).get(hardware, {})  # type: ignore[union-attr]
        return family in own or family in (block.get("transfer") or {})  # type: ignore[operator]

    def draws(self, estimator: str, hardware: str, k: int = DEFAULT_DRAWS, seed: int = 0,
              level: float = DEFAULT_LEVEL, engine: bool = True,
              variants: Mapping[str, str] | None = None) -> FactorDraws:
        """``k`` factor draws for a deployment's estimator on ``hardware`` (seeded);
        ``variants``: the residual family to draw an interval family from instead of its own
        (``{"gemm": "gemm_fp8"}``), used where the file has a pool for it."""
        if not 0.0 < level < 1.0:
            raise ConfigError(f"interval level {level} must be in (0, 1), e.g. 0.8")
        if k < 2:
            raise ConfigError(f"interval draws {k} must be >= 2")
        rng = np.random.default_rng(seed)
        kernel = np.empty((k, len(FAMILIES)))
        basis = {}
        for j, fam in enumerate(FAMILIES):
            name = (variants or {}).get(fam, fam)
            if not self.has_pool(estimator, hardware, name):
                name = fam
            pool = self.pool(estimator, hardware, "comm_intra" if name == "comm" else name)
            kernel[:, j] = np.exp(pool.draw(rng, k))
            basis[fam] = pool.basis + (f" ({name})" if name != fam else "")
        eng = np.ones((k, len(ENGINE_METRICS)))
        if engine:
            mode = "own" if self.has_own(estimator, hardware) else "transfer"
            rows, basis["engine"] = self.engine(estimator, hardware, mode)
            if len(rows):
                eng = np.exp(rows[rng.integers(0, len(rows), k)])
        else:
            basis["engine"] = "not included"
        return FactorDraws(kernel, eng, level, basis)


def _pool(d: Mapping[str, object], basis: str) -> Pool:
    return Pool(float(d.get("mu", 0.0)), float(d["sigma"]), np.asarray(d["q"], dtype=float),
                basis)


@lru_cache(maxsize=1)
def _shipped() -> ResidualData:
    ref = resources.files("llmsim.data").joinpath("estimators", RESIDUALS_FILE)
    try:
        text = ref.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise DataError("the shipped residual file is missing (scripts/fit_residuals.py writes "
                        f"src/llmsim/data/estimators/{RESIDUALS_FILE})") from None
    return ResidualData(json.loads(text), f"llmsim/data/estimators/{RESIDUALS_FILE}")


def deployment_draws(deployment: Deployment, k: int = DEFAULT_DRAWS, seed: int = 0,
                     level: float = DEFAULT_LEVEL, engine: bool = True,
                     residuals: ResidualData | None = None) -> FactorDraws:
    """The factor draws of a deployment's estimator on its part (shipped residuals)."""
    data = residuals or ResidualData.load()
    hw, prec = deployment.hardware, deployment.precision
    compute = compute_dtype(prec.weight, prec.activation, hw.supported_dtypes)
    variants = {f: kernel_family(f, compute) for f in ("gemm", "moe")}
    return data.draws(deployment.estimator, hw.name, k, seed, level, engine, variants)


def quantile_interval(values: np.ndarray, level: float) -> list[float]:
    """``[lo, hi]``: the central ``level`` interval of draws (NaN-aware), as order statistics
    (``nearest``), so that the interval of ``1 / x`` is ``1 /`` the interval of ``x``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [math.nan, math.nan]
    lo, hi = np.quantile(v, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], method="nearest")
    return [float(lo), float(hi)]


class ScaledStepTimeModel(StepTimeModelBase):
    """A step model with every op time multiplied by its family's factor (one draw).

    ``step_time(s) = sum_f factor_f x t_f(s) + factor_comm x p2p(s) + overhead``, with ``t_f``
    from ``base.price(s)`` (memoised per shape); the decode curves scale the base model's exact
    curves: only attention depends on the context, so per stage
    ``stage(c) = sum_{f != attn} factor_f C_f + factor_attn (base_stage(c) - sum_f C_f)`` with
    ``C`` the families' times at one context. The engine factors are not applied here (they
    scale end-to-end metrics, not steps).
    """

    def __init__(self, base: StepTimeModel, factors: Mapping[str, float]):
        unknown = set(factors) - set(FAMILIES)
        if unknown:
            raise ConfigError(f"unknown interval families {sorted(unknown)}; known: "
                              f"{list(FAMILIES)}")
        self.base = base
        self.deployment = base.deployment
        self.phi = np.array([float(factors.get(f, 1.0)) for f in FAMILIES])
        self._memo: dict[BatchShape, tuple[float, float]] = {}

    @property
    def num_stages(self) -> int:
        return self.base.num_stages

    def _times(self, shape: BatchShape) -> tuple[float, float]:
        hit = self._memo.get(shape)
        if hit is None:
            step = self.base.price(shape)
            t, p2p = family_stage_times(step, self.num_stages)
            stages = self.phi @ t
            hit = (float(stages.sum() + self.phi[_INDEX["comm"]] * p2p + step.overhead_s),
                   float(stages.max()))
            if len(self._memo) < 100_000:
                self._memo[shape] = hit
        return hit

    def step_time(self, shape: BatchShape) -> float:
        return 0.0 if shape.num_tokens == 0 else self._times(shape)[0]

    def stage_time(self, shape: BatchShape) -> float:
        return 0.0 if shape.num_tokens == 0 else self._times(shape)[1]

    def price(self, shape: BatchShape) -> StepCost:
        step = self.base.price(shape)
        layers = tuple(
            type(layer)(layer.name, layer.kind, layer.stage, layer.repeat, tuple(
                o.repriced(o.time_s * f, o.compute_s * f, o.memory_s * f, o.overhead_s * f,
                           o.source) if not o.kind.is_comm else _scaled_comm(o, f)
                for o in layer.ops for f in (self.phi[_INDEX[op_family(o)]],)))
            for layer in step.layers)
        t, stage = self._times(shape)
        return StepCost(t, stage, layers, step.overhead_s)

    def _constant(self, num_seqs: int) -> tuple[np.ndarray, float, float]:
        step = self.base.price(BatchShape.decode(num_seqs, 1.0))
        t, p2p = family_stage_times(step, self.num_stages)
        return t, p2p, step.overhead_s

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        base = np.atleast_2d(self.base.decode_stage_times(num_seqs, context_per_seq))
        t, _, _ = self._constant(num_seqs)
        a = _INDEX["attention_decode"]
        rest = np.delete(np.arange(len(FAMILIES)), a)
        const = t[rest].sum(axis=0)[:, None]
        attn = base - const
        return (self.phi[rest] @ t[rest])[:, None] + self.phi[a] * attn

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        stages = self.decode_stage_times(num_seqs, context_per_seq)
        _, p2p, overhead = self._constant(num_seqs)
        return stages.sum(axis=0) + self.phi[_INDEX["comm"]] * p2p + overhead

    def describe(self) -> dict[str, object]:
        return {**self.base.describe(), "factors": dict(zip(FAMILIES, self.phi.tolist(),
                                                            strict=True))}


def _scaled_comm(o: OpCost, f: float) -> OpCost:
    return OpCost(o.name, o.kind, o.flops, o.bytes_read, o.bytes_written, o.compute_s,
                  o.memory_s, o.comm_s * f, o.overhead_s * f, o.time_s * f, o.bound,
                  o.comm_bytes, o.count, o.shape, o.source, o.case)


def scaled_step_models(base: StepTimeModel, draws: FactorDraws | Sequence[Mapping[str, float]]
                       ) -> list[ScaledStepTimeModel]:
    """One :class:`ScaledStepTimeModel` per draw (the serving simulator's K step models)."""
    rows = ([draws.factors(i) for i in range(draws.k)] if isinstance(draws, FactorDraws)
            else list(draws))
    return [ScaledStepTimeModel(base, f) for f in rows]
