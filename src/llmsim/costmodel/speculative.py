"""Speculative decoding and multi-token prediction (MTP): the acceptance model, the draft and
the verification step, priced through the one seam.

A *proposer* drafts ``k`` tokens per sequence; the target model then *verifies* them in one
step. That step carries ``k + 1`` query tokens per sequence (the last accepted token and the
``k`` drafts) with causal attention over the cached context: the step model prices it as a
chunk of ``q = k + 1`` tokens after ``p = c - 1`` cached ones (``BatchShape.chunk_pairs``), and
samples ``q`` rows per sequence. Proposers (``SpecMethod``):

- ``draft``: a separate (small) model runs ``k`` decode steps of the same sequences;
- ``mtp``: the target's own multi-token-prediction layers (DeepSeek-V3's
  ``num_nextn_predict_layers``: one extra decoder layer after a projection of
  ``[embedding; hidden]``, sharing the target's embedding and LM head) run ``k`` times, as
  SGLang / vLLM chain them EAGLE-style when ``k`` exceeds the number of MTP layers;
- ``ngram``: prompt-lookup drafts cost nothing on the GPU.

Acceptance (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
Decoding", ICML, section 3): draft token ``i`` is accepted with probability ``a_i`` given the
ones before it were (``a_i = a`` for the i.i.d. rate); the step emits the accepted prefix plus
one token from the target (a correction or the bonus token), so it emits between 1 and
``k + 1`` tokens, and

    E[tokens per step] = 1 + sum_{i=1..k} prod_{j<=i} a_j  =  (1 - a^(k+1)) / (1 - a)  (i.i.d.)

(Leviathan et al., equation 1). ``expected_tokens_per_step`` is the one place this lives.

KV: the verification step writes ``k + 1`` KV slots per sequence and rolls back the rejected
ones, so a sequence needs ``k`` slots beyond its context while it verifies; a draft model keeps
its own KV cache of the same tokens (MTP: the MTP layers' KV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from llmsim.catalog.blocks import FFNBlock, LayerTemplate
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.parallel import ParallelSpec
from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import LayerRecord, StepCost, StepTimeModel
from llmsim.errors import ConfigError

#: the most draft tokens per step accepted (engines use 1..8; more is a typo)
MAX_SPEC_TOKENS = 64


class SpecMethod(str, Enum):
    MTP = "mtp"
    DRAFT = "draft"
    NGRAM = "ngram"


def expected_tokens_per_step(acceptance: Sequence[float]) -> float:
    """Expected tokens one verification step emits per sequence when draft token ``i`` is
    accepted with conditional probability ``acceptance[i-1]`` (see the module docstring):
    ``1 + sum_i prod_{j<=i} a_j``; for an i.i.d. rate ``a`` over ``k`` drafts this is
    ``(1 - a^(k+1)) / (1 - a)`` (``k + 1`` at ``a = 1``)."""
    total, run = 1.0, 1.0
    for a in acceptance:
        run *= float(a)
        total += run
    return total


def parse_acceptance(value: str | float | Sequence[float], num_tokens: int) -> tuple[float, ...]:
    """Per-position conditional acceptance rates for ``num_tokens`` drafts from one rate
    (``0.7``) or a comma list of ``num_tokens`` rates (``"0.9,0.8,0.6"``), each in [0, 1]."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            rates = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"--spec-acceptance must be a rate in [0, 1] or a comma list of "
                              f"them, got {value!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        rates = [float(value)]
    else:
        rates = [float(v) for v in value]
    if not rates:
        raise ConfigError("--spec-acceptance is empty; give a rate in [0, 1]")
    bad = [r for r in rates if not (0.0 <= r <= 1.0) or math.isnan(r)]
    if bad:
        raise ConfigError(f"--spec-acceptance rates must lie in [0, 1], got {bad[0]!r}")
    if len(rates) == 1:
        return tuple(rates) * num_tokens
    if len(rates) != num_tokens:
        raise ConfigError(f"--spec-acceptance lists {len(rates)} rates but --spec-tokens is "
                          f"{num_tokens}: give one rate, or one per draft position")
    return tuple(rates)


@dataclass(frozen=True)
class Speculation:
    """What is speculated: the proposer, ``num_tokens`` drafts per step, the per-position
    conditional acceptance rates and (``draft``) the draft model's name or path."""

    method: SpecMethod
    num_tokens: int
    acceptance: tuple[float, ...]
    draft_model: str | None = None

    @classmethod
    def build(cls, method: str | SpecMethod, num_tokens: int | None = None,
              acceptance: str | float | Sequence[float] | None = None,
              draft_model: str | None = None) -> Speculation:
        """Checked parameters (the CLI's flags): ``num_tokens`` defaults to 1 for ``mtp``
        (DeepSeek-V3's one MTP module) and 3 otherwise; ``acceptance`` is required."""
        try:
            m = SpecMethod(str(method.value if isinstance(method, SpecMethod) else method)
                           .strip().lower())
        except ValueError:
            raise ConfigError(f"unknown --spec-method {method!r}; use mtp, draft or "
                              "ngram") from None
        k = num_tokens if num_tokens is not None else (1 if m == SpecMethod.MTP else 3)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SPEC_TOKENS:
            raise ConfigError(f"--spec-tokens must be a whole number in 1..{MAX_SPEC_TOKENS}, "
                              f"got {k!r}")
        if acceptance is None:
            raise ConfigError("speculative decoding needs --spec-acceptance (the per-token "
                              "acceptance rate, e.g. 0.8, or one per position: 0.9,0.8,0.7)")
        if m == SpecMethod.DRAFT and not draft_model:
            raise ConfigError("--spec-method draft needs --draft-model (a catalog name, HF id "
                              "or config.json)")
        if m != SpecMethod.DRAFT and draft_model:
            raise ConfigError(f"--draft-model is used by --spec-method draft only, not "
                              f"{m.value}; drop it or use --spec-method draft")
        return cls(m, k, parse_acceptance(acceptance, k), draft_model)

    @property
    def expected_tokens_per_step(self) -> float:
        return expected_tokens_per_step(self.acceptance)

    def describe(self) -> dict[str, object]:
        return {"method": self.method.value, "num_tokens": self.num_tokens,
                "acceptance": list(self.acceptance), "draft_model": self.draft_model,
                "expected_tokens_per_step": self.expected_tokens_per_step}

    def sample_tokens(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Tokens emitted by ``size`` verification steps (1..k+1 each): the accepted prefix of
        ``k`` Bernoulli draws with the per-position rates, plus one."""
        ok = rng.random((size, self.num_tokens)) < np.asarray(self.acceptance)
        return 1 + np.cumprod(ok, axis=1).sum(axis=1)

    def sample_steps(self, decode_tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per request, the verification steps that produce its ``decode_tokens`` tokens (the
        tokens after the first, which the prefill emits); the last step's extra tokens are
        dropped, as engines stop at the length limit."""
        need = np.asarray(decode_tokens, dtype=np.int64).copy()
        steps = np.zeros(len(need), dtype=np.int64)
        active = np.flatnonzero(need > 0)
        while active.size:
            need[active] -= self.sample_tokens(rng, active.size)
            steps[active] += 1
            active = active[need[active] > 0]
        return steps


# ---------------------------------------------------------------------------- the draft
def mtp_draft_spec(model: ModelSpec) -> ModelSpec:
    """The MTP module of ``model`` as a model of its own: ``mtp_layers`` decoder layers shaped
    as the target's last layer, each after the ``[embedding; hidden] -> hidden`` projection
    (``eh_proj``, ``2h x h``; priced as a non-gated FFN of width ``h``, which has the same
    ``2 h^2`` weights and FLOPs per token), with the target's embedding and LM head
    (DeepSeek-V3 technical report, section 2.2, figure 3)."""
    if model.mtp_layers < 1:
        raise ConfigError(f"{model.name} has no MTP layers (its config.json has no "
                          "num_nextn_predict_layers); use --spec-method draft or ngram")
    last = model.layers[-1]
    h = model.hidden_size
    proj = FFNBlock(hidden_size=h, intermediate_size=h, gated=False)
    layer = LayerTemplate(name="mtp", repeat=model.mtp_layers, blocks=(proj, *last.blocks),
                          parallel_residual=last.parallel_residual)
    fields = {name: getattr(model, name) for name in type(model).model_fields}
    return type(model)(**{**fields, "name": f"{model.name}-mtp", "layers": (layer,),
                          "mtp_layers": 0})


def draft_deployment(target: Deployment, spec: Speculation) -> Deployment | None:
    """The deployment the proposer runs on: the target's GPUs, tensor (and expert) parallel
    as the target, one pipeline stage; ``None`` for n-gram drafts (no GPU work)."""
    if spec.method == SpecMethod.NGRAM:
        return None
    from llmsim.catalog import get_model

    model = (mtp_draft_spec(target.model) if spec.method == SpecMethod.MTP
             else get_model(spec.draft_model))
    if spec.method == SpecMethod.DRAFT and model.vocab_size != target.model.vocab_size:
        raise ConfigError(f"draft model {model.name} has a vocabulary of {model.vocab_size} "
                          f"tokens but {target.model.name} has {target.model.vocab_size}; "
                          "a draft model must share the target's tokenizer")
    p = target.plan
    plan = ParallelSpec(tp=p.tp, pp=1, ep=p.ep if model.is_moe else 1, dp=1)
    try:
        plan.validate_for(model)
    except ConfigError as exc:
        raise ConfigError(f"the draft model runs with the target's --tp {p.tp}: {exc}") from None
    estimator = target.estimator if target.estimator in ("analytic", "calibrated") \
        else "calibrated"
    return Deployment(model, target.cluster, plan, target.precision, target.profile,
                      target.efficiency, estimator)


class SpeculativeStepModel:
    """A ``StepTimeModel`` whose decode sequences speculate: each decode sequence of a shape
    becomes a draft pass plus a verification of ``k + 1`` tokens by the target.

    ``step_time(shape) = target.step_time(verify(shape)) + draft_s(shape)`` where
    ``verify`` turns the ``B`` decode sequences at ``c`` keys each into ``B`` chunks of
    ``k + 1`` tokens after ``c - 1`` cached ones sampling ``k + 1`` rows each (prefill chunks
    of the shape unchanged), and ``draft_s`` is ``k`` draft decode steps of the ``B``
    sequences at contexts ``c .. c + k - 1`` (the first also carrying the shape's prefill
    chunks: the proposer builds its own KV / MTP state of the prompt), zero for n-gram.
    One pipeline stage only (speculation with PP is not modelled).
    """

    def __init__(self, target: StepTimeModel, draft: StepTimeModel | None, spec: Speculation):
        if target.num_stages != 1:
            raise ConfigError("speculative decoding is modelled with one pipeline stage; "
                              "use --pp 1 (with --tp) or drop --spec-method")
        self.target, self.draft, self.spec = target, draft, spec
        self.q = spec.num_tokens + 1

    @property
    def deployment(self) -> Deployment | None:
        return self.target.deployment

    @property
    def num_stages(self) -> int:
        return 1

    def verify_shape(self, shape: BatchShape) -> BatchShape:
        """The target's step: decode sequences as ``k + 1``-token chunks over their context."""
        b = shape.decode_seqs
        if not b:
            return shape
        q = self.q
        past = max(shape.decode_ctx_tokens / b - 1.0, 0.0)
        return BatchShape(
            prefill_seqs=shape.prefill_seqs + b,
            prefill_tokens=shape.prefill_tokens + b * q,
            prefill_attn_pairs=shape.prefill_attn_pairs + b * BatchShape.chunk_pairs(q, past),
            prefill_ctx_tokens=shape.prefill_ctx_tokens + b * (past + q),
            logits_seqs=shape.num_logits + b * (q - 1),
        )

    def draft_shapes(self, shape: BatchShape) -> list[BatchShape]:
        """The proposer's steps for ``shape`` (none for n-gram)."""
        if self.draft is None:
            return []
        b = shape.decode_seqs
        prefill = BatchShape(shape.prefill_seqs, shape.prefill_tokens, shape.prefill_attn_pairs,
                             shape.prefill_ctx_tokens)
        if not b:
            return [prefill] if shape.prefill_tokens else []
        c = shape.decode_ctx_tokens / b
        out = [BatchShape.decode(b, c + j) for j in range(self.spec.num_tokens)]
        if shape.prefill_tokens:
            out[0] = out[0] + prefill
        return out

    def draft_s(self, shape: BatchShape) -> float:
        draft = self.draft
        return sum(draft.step_time(s) for s in self.draft_shapes(shape)) if draft else 0.0

    def step_time(self, shape: BatchShape) -> float:
        if shape.num_tokens == 0:
            return 0.0
        return self.target.step_time(self.verify_shape(shape)) + self.draft_s(shape)

    def stage_time(self, shape: BatchShape) -> float:
        return self.step_time(shape)

    def price(self, shape: BatchShape) -> StepCost:
        """The target's verification step's records, then each draft step's (named
        ``draft<j>/<layer>``); ``time_s`` equals ``step_time``."""
        cost = self.target.price(self.verify_shape(shape))
        layers = list(cost.layers)
        time_s, overhead = cost.time_s, cost.overhead_s
        if self.draft is not None:
            for j, s in enumerate(self.draft_shapes(shape)):
                d = self.draft.price(s)
                time_s += d.time_s
                overhead += d.overhead_s
                layers += [LayerRecord(f"draft{j}/{r.name}", r.kind, r.stage, r.repeat, r.ops)
                           for r in d.layers]
        if shape.num_tokens == 0:
            time_s = 0.0
        return StepCost(time_s, time_s, tuple(layers), overhead)

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        ctx = np.asarray(context_per_seq, dtype=float)
        out = np.array([self.target.step_time(self.verify_shape(BatchShape.decode(num_seqs, c)))
                        for c in ctx.tolist()])
        if self.draft is not None:
            for j in range(self.spec.num_tokens):
                out = out + np.asarray(self.draft.decode_step_times(num_seqs, ctx + j))
        return out

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return self.decode_step_times(num_seqs, context_per_seq)[None, :]

    def describe(self) -> dict[str, object]:
        out = dict(self.target.describe())
        out["speculative"] = self.spec.describe()
        return out


def speculative_step_model(target: StepTimeModel, spec: Speculation) -> SpeculativeStepModel:
    """Wrap ``target`` (a step model of a deployment) with ``spec``'s proposer, whose step
    model is built by the one factory."""
    from llmsim.costmodel.factory import build_step_model

    dep = target.deployment
    if dep is None and spec.method != SpecMethod.NGRAM:
        raise ConfigError("an mtp or draft proposer needs a step model of a deployment")
    draft_dep = draft_deployment(dep, spec) if dep is not None else None
    draft = build_step_model(draft_dep) if draft_dep is not None else None
    return SpeculativeStepModel(target, draft, spec)
