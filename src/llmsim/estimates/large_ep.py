"""The large expert-parallelism playbook (``llmsim large-ep evaluate``): one prefill step and one
decode step of a deployment with EP over many GPUs and attention data-parallel, per layer.

Every time comes from the one seam (``costmodel.build_step_model``): the large-EP model is in
``costmodel/expert_routing.py`` (the imbalance of a Zipf routing skew, EPLB's redundant
experts), ``costmodel/ep_comm.py`` (DeepEP's dispatch / combine volumes and rates) and
``costmodel/layers.py`` (the MoE ops, two-batch overlap). This module reads the records:

- shapes, per attention-DP rank: prefill = ``batch`` sequences of ``seq`` new tokens; decode =
  ``batch`` sequences each adding one token at ``seq`` keys (so ``estimate --batch
  batch x dp --dp dp --input-len seq`` prices the same prefill step);
- per layer template: its time, what bounds it (the resource most of its op time is bound by),
  the MoE dispatch / combine bytes one rank sends (intra- and inter-node where DeepEP's kernels
  price them) and their time, the expert GEMM time and the imbalance factor;
- end to end: the step times, tokens/s per GPU (prefill ``batch x seq / (prefill_s x tp)``,
  decode ``batch / (decode_s x tp)``) and the weights per GPU against its memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llmsim.catalog import ModelSpec
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel import Deployment, build_step_model
from llmsim.costmodel.expert_routing import load_imbalance
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import LayerRecord, StepCost
from llmsim.memory.footprint import weight_bytes_per_device

_DISPATCH, _COMBINE = "moe_dispatch", "moe_combine"


@dataclass(frozen=True)
class LayerEP:
    """One layer template of one step (times per layer, bytes per layer per rank)."""

    phase: str
    layer: str
    repeat: int
    time_s: float
    bound: str
    dispatch_bytes: float
    dispatch_intra_bytes: float
    dispatch_inter_bytes: float
    dispatch_s: float
    combine_bytes: float
    combine_s: float
    experts_s: float
    imbalance: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LargeEPResult:
    """The evaluation: the deployment, the two steps end to end and per layer."""

    model: str
    hardware: str
    num_gpus: int
    tp: int
    ep: int
    dp: int
    batch: int
    seq: int
    expert_skew: float
    redundant_experts: int
    ep_kernel: str | None
    two_batch_overlap: bool
    imbalance: float
    prefill_s: float
    decode_s: float
    prefill_tokens_per_s_per_gpu: float
    decode_tokens_per_s_per_gpu: float
    prefill_bottleneck: str
    decode_bottleneck: str
    weight_bytes_per_gpu: float
    memory_bytes_per_gpu: float
    layers: tuple[LayerEP, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        out = {k: v for k, v in asdict(self).items() if k != "layers"}
        out["layers"] = [layer.as_dict() for layer in self.layers]
        return out

    def summary_row(self) -> dict[str, object]:
        return {k: v for k, v in self.as_dict().items() if k != "layers"}


def _op_sum(record: LayerRecord, name: str, attr: str) -> float:
    return sum((o.shape or {}).get(attr, 0.0) * o.count if attr != "time_s" else
               o.time_s * o.count for o in record.ops if o.name == name)


def _layers(phase: str, step: StepCost, imbalance: float) -> list[LayerEP]:
    out = []
    for r in step.layers:
        if r.kind != "decoder":
            continue
        has_moe = any(o.name == "experts" for o in r.ops)
        out.append(LayerEP(
            phase=phase, layer=r.name, repeat=r.repeat, time_s=r.time_s, bound=r.bound.value,
            dispatch_bytes=_op_sum(r, _DISPATCH, "message_bytes"),
            dispatch_intra_bytes=_op_sum(r, _DISPATCH, "intra_bytes"),
            dispatch_inter_bytes=_op_sum(r, _DISPATCH, "inter_bytes"),
            dispatch_s=_op_sum(r, _DISPATCH, "time_s"),
            combine_bytes=_op_sum(r, _COMBINE, "message_bytes"),
            combine_s=_op_sum(r, _COMBINE, "time_s"),
            experts_s=_op_sum(r, "experts", "time_s"),
            imbalance=imbalance if has_moe else 1.0))
    return out


def evaluate_large_ep(model: str | ModelSpec, hardware: str | HardwareSpec | None = None, *,
                      batch: int = 4, seq: int = 8192, ep: int = 8, dp: int | None = None,
                      tp: int = 1, cluster: str | None = None, expert_skew: float = 0.0,
                      redundant_experts: int = 0, ep_kernel: str | None = None,
                      two_batch_overlap: bool = False, dtype: str | None = None,
                      profile: str | None = None, estimator: str = "calibrated"
                      ) -> LargeEPResult:
    """Price one prefill and one decode step of ``batch`` sequences per attention-DP rank at
    ``seq`` tokens (module docstring); ``dp`` defaults to ``ep`` (attention data-parallel
    over the EP group)."""
    from llmsim import checks

    batch = checks.whole(batch, "batch")
    seq = checks.whole(seq, "seq")
    dp = ep if dp is None else dp
    dep = Deployment.resolve(model, hardware, cluster, None, tp=tp, ep=ep, dp=dp, dtype=dtype,
                             profile=profile, estimator=estimator, expert_skew=expert_skew,
                             redundant_experts=redundant_experts, ep_kernel=ep_kernel,
                             two_batch_overlap=two_batch_overlap)
    sm = build_step_model(dep)
    prefill = sm.price(BatchShape.prefill(batch, seq))
    decode = sm.price(BatchShape.decode(batch, float(seq)))
    spec, plan = dep.model, dep.plan
    moe = spec.moe
    imbalance = (load_imbalance(moe.num_experts, plan.ep, plan.expert_skew,
                                plan.redundant_experts) if moe is not None and plan.ep > 1
                 else 1.0)
    layers = _layers("prefill", prefill, imbalance) + _layers("decode", decode, imbalance)
    return LargeEPResult(
        model=spec.name, hardware=dep.hardware.name, num_gpus=plan.num_gpus, tp=plan.tp,
        ep=plan.ep, dp=plan.dp, batch=batch, seq=seq, expert_skew=plan.expert_skew,
        redundant_experts=plan.redundant_experts,
        ep_kernel=plan.ep_kernel.value if plan.ep_kernel else None,
        two_batch_overlap=plan.two_batch_overlap, imbalance=imbalance,
        prefill_s=prefill.time_s, decode_s=decode.time_s,
        prefill_tokens_per_s_per_gpu=batch * seq / (prefill.time_s * plan.tp),
        decode_tokens_per_s_per_gpu=batch / (decode.time_s * plan.tp),
        prefill_bottleneck=prefill.bottleneck.name, decode_bottleneck=decode.bottleneck.name,
        weight_bytes_per_gpu=weight_bytes_per_device(spec, plan, dep.precision),
        memory_bytes_per_gpu=dep.hardware.memory_bytes, layers=tuple(layers))
