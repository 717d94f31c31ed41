"""Routing: which experts each token picks in each MoE layer, drawn or replayed.

A :class:`RoutingTrace` holds, for step ``s`` (0 = the prefill of ``prompt`` tokens, then one
decode step per generated token, batch 1) and MoE decoder layer ``l``, an int array
``[tokens, top_k]`` of expert ids (distinct per token).

Distributions (``--routing``), each token choosing ``top_k`` distinct experts:

- ``uniform``: every expert equally likely.
- ``zipf:S``: expert of popularity rank ``r`` (1..E) has weight ``r^-S``; each layer ranks its
  experts by its own seeded permutation (so layers have different hot experts). Skew like this is
  what MoE routers show in practice (e.g. Mixtral, DeepSeek expert-load histograms).
- modifiers, comma separated: ``corr=R`` keeps each of a token's choices from the previous MoE
  layer with probability ``R``, mapped through a fixed per-layer permutation (inter-layer
  affinity); ``sticky=R`` keeps each choice of a decode token from the previous token in the
  same layer with probability ``R`` (temporal locality). ``correlated:R`` = ``uniform,corr=R``.

Top-k without replacement in proportion to weights ``p`` uses the Gumbel-top-k trick: the ``k``
largest of ``log p_e + G_e`` with ``G_e`` i.i.d. standard Gumbel (Kool et al., ICML 2019); kept
choices get key ``+inf``.

Trace files (``--routing FILE`` or ``--routing trace:FILE``), one routed token per row,
``layer`` the decoder layer index:

- JSONL: ``{"step": 0, "layer": 0, "token": 3, "experts": [5, 17]}`` per line (an optional first
  line ``{"format": "llmsim-routing", "num_experts": 64, "top_k": 4}`` is checked when present);
- CSV: header ``step,layer,token,experts`` with experts separated by spaces or ``;``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmsim.catalog import ModelSpec
from llmsim.errors import ConfigError, DataError, SpecError
from llmsim.registry import Registry

log = logging.getLogger(__name__)

TRACE_FORMAT_TAG = "llmsim-routing"

# RNG stream ids: routing and prefetch guesses draw from independent streams of one seed.
ROUTING_STREAM = 1
PREFETCH_STREAM = 2


def moe_layer_indices(model: ModelSpec) -> list[int]:
    """Decoder-layer indices (0-based, in order) whose template has a MoE block."""
    out, i = [], 0
    for t in model.layers:
        for _ in range(t.repeat):
            if t.moe is not None:
                out.append(i)
            i += 1
    return out


@dataclass
class RoutingTrace:
    """Expert choices per step and MoE layer: ``steps[s][layer] -> int array [tokens, k]``."""

    num_experts: int
    top_k: int
    moe_layers: tuple[int, ...]
    steps: list[dict[int, np.ndarray]] = field(default_factory=list)
    #: sequences decoded together: step 0 prefills ``batch`` prompts (their tokens one after
    #: another), every later step routes one token of each
    batch: int = 1

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prefill step (all ``batch`` prompts)."""
        return int(next(iter(self.steps[0].values())).shape[0]) if self.steps else 0

    @property
    def decode_steps(self) -> int:
        return max(len(self.steps) - 1, 0)

    def experts(self, step: int, layer: int) -> np.ndarray:
        """Sorted distinct experts used by ``layer`` in ``step``."""
        return np.unique(self.steps[step][layer])

    def counts(self, step: int, layer: int) -> np.ndarray:
        """Tokens routed to each expert (length ``num_experts``)."""
        return np.bincount(self.steps[step][layer].ravel(), minlength=self.num_experts)

    def expert_counts(self) -> np.ndarray:
        """Uses per (MoE layer position, expert) over the whole trace: the static policy's
        profile."""
        out = np.zeros((len(self.moe_layers), self.num_experts), dtype=np.int64)
        for step in self.steps:
            for j, layer in enumerate(self.moe_layers):
                out[j] += np.bincount(step[layer].ravel(), minlength=self.num_experts)
        return out

    def truncated(self, decode_steps: int) -> RoutingTrace:
        """The prefill plus the first ``decode_steps`` decode steps."""
        return RoutingTrace(self.num_experts, self.top_k, self.moe_layers,
                            self.steps[:decode_steps + 1], self.batch)

    def validate(self) -> None:
        """Check shapes, ranges and distinctness; raise DataError naming the first problem."""
        if not self.steps:
            raise DataError("the routing trace is empty")
        for s, step in enumerate(self.steps):
            if set(step) != set(self.moe_layers):
                missing = sorted(set(self.moe_layers) - set(step))
                extra = sorted(set(step) - set(self.moe_layers))
                raise DataError(f"routing step {s}: MoE layers missing {missing[:5]} / "
                                f"not MoE layers {extra[:5]} (MoE layers: "
                                f"{list(self.moe_layers)[:8]}...)")
            tokens = None
            for layer, arr in step.items():
                if arr.ndim != 2 or arr.shape[1] != self.top_k:
                    raise DataError(f"routing step {s} layer {layer}: expected [tokens, "
                                    f"{self.top_k}] experts, got shape {list(arr.shape)}")
                if tokens is None:
                    tokens = arr.shape[0]
                elif arr.shape[0] != tokens:
                    raise DataError(f"routing step {s}: layers route different token counts")
                if arr.size and (arr.min() < 0 or arr.max() >= self.num_experts):
                    raise DataError(f"routing step {s} layer {layer}: expert id out of range "
                                    f"0..{self.num_experts - 1}")
                srt = np.sort(arr, axis=1)
                if (srt[:, 1:] == srt[:, :-1]).any():
                    raise DataError(f"routing step {s} layer {layer}: a token picks the same "
                                    "expert twice")
            if s > 0 and tokens != self.batch:
                what = "one token (batch 1)" if self.batch == 1 else \
                    f"{self.batch} tokens (batch {self.batch})"
                raise DataError(f"routing step {s} is a decode step and must route exactly "
                                f"{what}, not {tokens}")
            if s == 0 and tokens and tokens % self.batch:
                raise DataError(f"routing step 0 prefills {tokens} tokens, not a multiple of "
                                f"the batch {self.batch}")
            if s == 0 and not tokens:
                raise DataError("routing step 0 (the prefill) routes no token")

    # ------------------------------------------------------------------ files
    def to_rows(self) -> Iterable[dict[str, object]]:
        for s, step in enumerate(self.steps):
            for layer in self.moe_layers:
                for t, row in enumerate(step[layer]):
                    yield {"step": s, "layer": layer, "token": t,
                           "experts": [int(e) for e in row]}

    def to_jsonl(self) -> str:
        head = json.dumps({"format": TRACE_FORMAT_TAG, "num_experts": self.num_experts,
                           "top_k": self.top_k})
        return "\n".join([head, *(json.dumps(r) for r in self.to_rows())]) + "\n"

    def write(self, path: str | Path) -> None:
        """Write as JSONL (or CSV when the name ends in .csv), atomically."""
        from llmsim.io import write_text

        p = Path(path)
        if p.suffix == ".csv":
            lines = ["step,layer,token,experts"]
            lines += [f"{r['step']},{r['layer']},{r['token']},"
                      + " ".join(str(e) for e in r["experts"]) for r in self.to_rows()]
            write_text(p, "\n".join(lines) + "\n")
        else:
            write_text(p, self.to_jsonl())


def read_trace(path: str | Path, model: ModelSpec) -> RoutingTrace:
    """Read a JSONL or CSV routing trace for ``model`` (a path, or ``trace:PATH``) and validate
    it."""
    moe = model.moe
    assert moe is not None
    if isinstance(path, str):
        path = trace_path(path) or path
    p = Path(path).expanduser()
    rows: list[tuple[int, int, int, list[int]]] = []
    if not p.is_file():
        raise DataError(f"routing trace {str(path)!r} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{p}: cannot read the routing trace ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte at offset {exc.start}); a routing trace "
                        "is a JSONL or CSV file") from None
    if p.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        need = {"step", "layer", "token", "experts"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise DataError(f"{p}: a CSV routing trace needs the columns step,layer,token,experts"
                            f" (got {reader.fieldnames})")
        for n, rec in enumerate(reader, start=2):
            try:
                experts = [int(x) for x in rec["experts"].replace(";", " ").split()]
                rows.append((int(rec["step"]), int(rec["layer"]), int(rec["token"]), experts))
            except (TypeError, ValueError):
                raise DataError(f"{p}:{n}: cannot parse {rec}") from None
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{n}: invalid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{p}:{n}: expected an object per line")
            if rec.get("format") == TRACE_FORMAT_TAG:
                if rec.get("num_experts", moe.num_experts) != moe.num_experts or \
                        rec.get("top_k", moe.top_k) != moe.top_k:
                    raise DataError(f"{p}: trace recorded for {rec.get('num_experts')} experts "
                                    f"top-{rec.get('top_k')}, but {model.name} has "
                                    f"{moe.num_experts} experts top-{moe.top_k}")
                continue
            try:
                rows.append((int(rec["step"]), int(rec["layer"]), int(rec["token"]),
                             [int(e) for e in rec["experts"]]))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{p}:{n}: need step, layer, token and an experts list") \
                    from None
    if not rows:
        raise DataError(f"{p}: the routing trace has no rows")
    return _assemble(rows, model, str(p))


def _assemble(rows: list[tuple[int, int, int, list[int]]], model: ModelSpec,
              origin: str) -> RoutingTrace:
    moe = model.moe
    assert moe is not None
    layers = tuple(moe_layer_indices(model))
    num_steps = max(r[0] for r in rows) + 1
    grouped: dict[tuple[int, int], dict[int, list[int]]] = {}
    for step, layer, token, experts in rows:
        if step < 0 or token < 0:
            raise DataError(f"{origin}: negative step or token index")
        if len(experts) != moe.top_k:
            raise DataError(f"{origin}: step {step} layer {layer} token {token} lists "
                            f"{len(experts)} experts; {model.name} routes top-{moe.top_k}")
        slot = grouped.setdefault((step, layer), {})
        if token in slot:
            raise DataError(f"{origin}: step {step} layer {layer} token {token} appears twice")
        slot[token] = experts
    steps: list[dict[int, np.ndarray]] = []
    for s in range(num_steps):
        step: dict[int, np.ndarray] = {}
        for layer in sorted({lay for (st, lay) in grouped if st == s}):
            tokens = grouped[(s, layer)]
            if sorted(tokens) != list(range(len(tokens))):
                raise DataError(f"{origin}: step {s} layer {layer}: token indices must be "
                                f"0..{len(tokens) - 1} without gaps")
            step[layer] = np.array([tokens[t] for t in range(len(tokens))], dtype=np.int64)
        if not step:
            raise DataError(f"{origin}: step {s} has no rows (steps must be 0..{num_steps - 1})")
        steps.append(step)
    trace = RoutingTrace(moe.num_experts, moe.top_k, layers, steps)
    try:
        trace.validate()
    except DataError as exc:
        raise DataError(f"{origin}: {exc}") from None
    return trace


# ---------------------------------------------------------------------- distributions
@dataclass(frozen=True)
class RoutingDistribution:
    """Expert popularity weights per MoE layer plus the correlation modifiers."""

    name: str
    skew: float = 0.0  # Zipf exponent S (0 = uniform)
    corr: float = 0.0  # P(keep a choice from the previous MoE layer, permuted)
    sticky: float = 0.0  # P(keep a choice from the previous decode token)

    def describe(self) -> str:
        parts = [self.name if self.skew == 0 else f"zipf:{self.skew:g}"]
        if self.corr:
            parts.append(f"corr={self.corr:g}")
        if self.sticky:
            parts.append(f"sticky={self.sticky:g}")
        return ",".join(parts)

    def popularity(self, num_layers: int, num_experts: int, seed: int) -> np.ndarray:
        """Per-layer probabilities ``[layers, E]``: Zipf weights ``r^-S`` over a seeded
        permutation of experts per layer (uniform when ``S = 0``)."""
        rng = np.random.default_rng([seed, ROUTING_STREAM, 0])
        ranks = np.arange(1, num_experts + 1, dtype=float) ** (-self.skew)
        ranks /= ranks.sum()
        out = np.empty((num_layers, num_experts))
        for j in range(num_layers):
            perm = rng.permutation(num_experts) if self.skew else np.arange(num_experts)
            out[j, perm] = ranks
        return out

    def sample(self, model: ModelSpec, prompt_tokens: int, decode_steps: int,
               seed: int, batch: int = 1) -> RoutingTrace:
        """Draw a routing trace (deterministic in ``seed``): a prefill of ``batch`` prompts of
        ``prompt_tokens`` each, then ``decode_steps`` steps of ``batch`` tokens."""
        sampler = self.sampler(model, seed)
        steps = [sampler.step(prompt_tokens * batch if s == 0 else batch)
                 for s in range(decode_steps + 1)]
        return RoutingTrace(sampler.num_experts, sampler.top_k, sampler.moe_layers, steps,
                            batch)

    def sampler(self, model: ModelSpec, seed: int) -> RoutingSampler:
        """A step-by-step draw from this distribution (what :meth:`sample` uses)."""
        return RoutingSampler(self, model, seed)


class RoutingSampler:
    """Draws one step's routing at a time: ``step(tokens)`` -> ``{layer: [tokens, k]}``.

    The same seed and the same sequence of ``step`` calls give the same choices as
    :meth:`RoutingDistribution.sample` (which is built on it), so a serving replica whose
    steps have the token counts of one sequence's prefill and decode steps routes exactly as
    ``moe-offload simulate`` does. ``sticky=R`` keeps choices of the step's last token from
    the previous step's last token: exact for one sequence; under a batch it is a property of
    a sequence the sampler does not see, so callers with batches reject it
    (:meth:`check_batchable`)."""

    def __init__(self, dist: RoutingDistribution, model: ModelSpec, seed: int):
        moe = model.moe
        assert moe is not None
        self.dist = dist
        self.moe_layers = tuple(moe_layer_indices(model))
        self.num_experts, self.top_k = moe.num_experts, moe.top_k
        self.popularity = dist.popularity(len(self.moe_layers), self.num_experts, seed)
        self._logp = np.log(self.popularity)
        self._rng = np.random.default_rng([seed, ROUTING_STREAM, 1])
        self._affinity = [self._rng.permutation(self.num_experts) for _ in self.moe_layers]
        self._previous_token: dict[int, np.ndarray] = {}
        self.num_steps = 0

    def step(self, tokens: int) -> dict[int, np.ndarray]:
        """The expert choices of one step of ``tokens`` tokens, per MoE layer."""
        dist, rng, e, k = self.dist, self._rng, self.num_experts, self.top_k
        step: dict[int, np.ndarray] = {}
        prev_layer: np.ndarray | None = None
        for j, layer in enumerate(self.moe_layers):
            keys = self._logp[j][None, :] + rng.gumbel(size=(tokens, e))
            if dist.corr and prev_layer is not None:
                keep = rng.random((tokens, k)) < dist.corr
                rows = np.nonzero(keep)[0]
                keys[rows, self._affinity[j][prev_layer[keep]]] = np.inf
            if dist.sticky and self.num_steps >= 1:
                keep = rng.random((tokens, k)) < dist.sticky
                rows = np.nonzero(keep)[0]
                keys[rows, self._previous_token[layer][0][keep[0]]] = np.inf
            choice = np.argpartition(-keys, k - 1, axis=1)[:, :k] if k < e else \
                np.tile(np.arange(e), (tokens, 1))
            choice = np.sort(choice, axis=1)
            step[layer] = choice
            prev_layer = choice
            self._previous_token[layer] = choice[-1:]
        self.num_steps += 1
        return step

    @staticmethod
    def check_batchable(dist: RoutingDistribution) -> None:
        """``sticky=R`` follows one sequence from token to token: not defined for a batch."""
        if dist.sticky:
            raise ConfigError("routing modifier sticky=R follows one sequence from token to "
                              "token; it is not modelled for batches (drop sticky=, keep "
                              "corr=R)")


ROUTING_DISTRIBUTIONS: Registry = Registry("routing distribution")


@ROUTING_DISTRIBUTIONS.register("uniform")
def _uniform(param: str | None) -> RoutingDistribution:
    if param:
        raise SpecError(f"uniform takes no parameter (got {param!r})")
    return RoutingDistribution("uniform")


@ROUTING_DISTRIBUTIONS.register("zipf")
def _zipf(param: str | None) -> RoutingDistribution:
    skew = _number(param, "zipf exponent S (zipf:1.2)")
    if skew < 0:
        raise SpecError(f"zipf exponent must be >= 0, got {skew}")
    return RoutingDistribution("zipf", skew=skew)


@ROUTING_DISTRIBUTIONS.register("correlated", "corr")
def _correlated(param: str | None) -> RoutingDistribution:
    return RoutingDistribution("uniform", corr=_probability(param, "correlated:R"))


def _number(text: str | None, what: str) -> float:
    if text is None or text == "":
        raise SpecError(f"missing {what}")
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"cannot parse {what} from {text!r}") from None
    if not math.isfinite(value):
        raise SpecError(f"{what}: {text!r} is not a finite number")
    return value


def _probability(text: str | None, what: str) -> float:
    value = _number(text, what)
    if not 0.0 <= value <= 1.0:
        raise SpecError(f"{what}: {value} is not a probability in [0, 1]")
    return value


def parse_distribution(spec: str) -> RoutingDistribution:
    """``uniform``, ``zipf:1.2``, ``correlated:0.5`` plus ``,corr=R`` / ``,sticky=R``."""
    head, *mods = [part.strip() for part in spec.split(",")]
    name, _, param = head.partition(":")
    dist = ROUTING_DISTRIBUTIONS.get(name.strip())(param.strip() or None)
    updates: dict[str, float] = {}
    for mod in mods:
        key, _, value = mod.partition("=")
        key = key.strip().lower()
        if key not in ("corr", "sticky"):
            raise SpecError(f"unknown routing modifier {key!r} in {spec!r}; use corr=R or "
                            "sticky=R")
        updates[key] = _probability(value.strip(), f"{key}=R")
    if updates:
        from dataclasses import replace

        dist = replace(dist, **updates)
    return dist


TRACE_PREFIX = "trace:"


def trace_path(spec: str) -> str | None:
    """The file a routing spec names, else None: ``trace:PATH`` always names one; a bare spec
    does when it exists or ends in .jsonl / .csv / .json."""
    text = spec.strip()
    if text.lower().startswith(TRACE_PREFIX):
        return text[len(TRACE_PREFIX):].strip()
    if Path(text).expanduser().is_file() or text.lower().endswith((".jsonl", ".csv", ".json")):
        return text
    return None


def is_trace_path(spec: str) -> bool:
    """Whether a routing spec names a trace file (see :func:`trace_path`)."""
    return trace_path(spec) is not None


def check_routing(spec: str) -> None:
    """Validate a routing spec without reading a model: a trace file must exist, a
    distribution must parse. For checking flags before slow work."""
    path = trace_path(spec)
    if path is not None:
        if not path:
            raise DataError("--routing trace: needs a file name (trace:PATH)")
        if not Path(path).expanduser().is_file():
            raise DataError(f"routing trace {path!r} not found")
        return
    parse_distribution(spec)


@dataclass(frozen=True)
class RoutingSource:
    """A resolved ``--routing`` value: the trace to run plus the static policy's prior."""

    description: str
    trace: RoutingTrace
    prior_counts: np.ndarray  # [moe layers, E] expected or counted uses (static hottest)


def resolve_routing(spec: str, model: ModelSpec, prompt_tokens: int | None,
                    decode_steps: int | None, seed: int, batch: int = 1) -> RoutingSource:
    """Draw from a distribution spec or read a trace file.

    Trace files fix the prompt length; ``prompt_tokens`` must match it when given, and
    ``decode_steps`` may not exceed the trace's (fewer truncates it). ``batch`` sequences
    decoded together (``prompt_tokens`` each) need a distribution without ``sticky=``.
    """
    if model.moe is None:
        raise ConfigError(f"{model.name} has no MoE layer")
    from llmsim.expert_cache.config import check_seed

    check_seed(seed)
    path = trace_path(spec)
    if path is not None and batch > 1:
        raise ConfigError(f"a routing trace file ({path}) records one sequence; a batch of "
                          f"{batch} needs a distribution (uniform, zipf:S, correlated:R)")
    if path is not None:
        check_routing(spec)
        trace = read_trace(path, model)
        spec = path
        if prompt_tokens is not None and prompt_tokens != trace.prompt_tokens:
            raise DataError(f"{spec}: the trace prefills {trace.prompt_tokens} tokens but "
                            f"--prompt is {prompt_tokens}; drop --prompt or match it")
        if decode_steps is not None:
            if decode_steps > trace.decode_steps:
                raise DataError(f"{spec}: the trace has {trace.decode_steps} decode steps, "
                                f"fewer than --decode-steps {decode_steps}")
            trace = trace.truncated(decode_steps)
        return RoutingSource(f"trace {Path(spec).name}", trace, trace.expert_counts())
    dist = parse_distribution(spec)
    prompt = 256 if prompt_tokens is None else prompt_tokens
    steps = 10 if decode_steps is None else decode_steps
    if prompt < 1:
        raise ConfigError("the prompt needs at least one token")
    if batch > 1:
        RoutingSampler.check_batchable(dist)
    trace = dist.sample(model, prompt, steps, seed, batch)
    moe = model.moe
    prior = dist.popularity(len(trace.moe_layers), moe.num_experts, seed)
    return RoutingSource(dist.describe(), trace, prior)
