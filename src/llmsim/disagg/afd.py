"""The attention-FFN disaggregation playbook (``llmsim afd simulate``): one AFD unit's decode
step (and its prefill step) per layer and end to end, and the search for the A:F ratio and
micro-batch count that maximise decode tokens/s per GPU under a TPOT target.

The model is ``costmodel/afd.py`` (the micro-batch pipeline over the attention and FFN
instances' step models, from the one factory). Here:

- ``batch`` sequences per attention instance (the instances hold the KV cache, so their batch
  is what their memory bounds), each at ``seq`` keys: the unit decodes ``B = batch x
  attention`` sequences; TPOT = the AFD decode step time; decode tokens/s = ``B / TPOT``, per
  GPU over ``attention x tp + ffn`` GPUs; the prefill step prefills the same ``B`` sequences of
  ``seq`` tokens through the same pipeline;
- memory (``memory.footprint.analyze_memory`` on each side's model): an attention instance
  holds the attention weights, embedding and LM head and the KV of its ``batch x (seq + 1)``
  tokens; an FFN instance its share of the FFN / expert weights (``ep = ffn``);
- the search (:func:`search_afd`): every ``attention`` in ``1..max_attention``, every ``ffn``
  that splits the experts (``ep`` divides ``E + redundant``) up to ``max_ffn``, every ``m`` in
  ``1..max_microbatches`` (the ones given fixed), keeps the layouts that fit with TPOT <=
  target, and ranks them by decode tokens/s per GPU (ties: fewer GPUs, then lower TPOT).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from llmsim import checks
from llmsim.catalog import ModelSpec
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel import Deployment, build_step_model
from llmsim.costmodel.afd import AFDStepTimeModel
from llmsim.costmodel.afd_spec import AFDSpec
from llmsim.costmodel.shapes import BatchShape
from llmsim.errors import ConfigError
from llmsim.memory.footprint import analyze_memory

DEFAULT_MEMORY_UTILIZATION = 0.9


@dataclass(frozen=True)
class AFDResult:
    """One AFD layout evaluated: the unit, its decode / prefill steps, memory and layers."""

    model: str
    hardware: str
    attention_instances: int
    attention_tp: int
    ffn_instances: int
    microbatches: int
    link: str
    num_gpus: int
    batch_per_attention: int
    seq: int
    tpot_s: float
    prefill_s: float
    decode_tokens_per_s: float
    decode_tokens_per_s_per_gpu: float
    bottleneck_stage: str
    attention_bytes_per_gpu: float
    ffn_bytes_per_gpu: float
    usable_bytes_per_gpu: float
    fits: bool
    layers: tuple[dict, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        out = {k: v for k, v in asdict(self).items() if k != "layers"}
        out["layers"] = list(self.layers)
        return out

    def summary_row(self) -> dict[str, object]:
        return {k: v for k, v in self.as_dict().items() if k != "layers"}


@dataclass(frozen=True)
class AFDSearch:
    """The search: the target, every layout tried (best first) and the best's full record."""

    tpot_target_s: float
    candidates: tuple[AFDResult, ...]
    best: AFDResult | None

    def as_dict(self) -> dict[str, object]:
        return {"tpot_target_s": self.tpot_target_s,
                "best": self.best.as_dict() if self.best is not None else None,
                "candidates": [c.summary_row() for c in self.candidates]}


def _deployment(model, hardware, spec: AFDSpec, tp: int, dtype, profile, estimator, cluster):
    return Deployment.resolve(model, hardware, cluster, None, tp=tp, dtype=dtype,
                              profile=profile, estimator=estimator, afd=spec)


def evaluate_afd(model: str | ModelSpec, hardware: str | HardwareSpec | None = None, *,
                 batch: int = 8, seq: int = 4096, attention: int = 1, ffn: int = 1,
                 microbatches: int = 3, link: str = "rdma",
                 link_bandwidth_bytes_per_s: float | None = None, tp: int = 1,
                 expert_skew: float = 0.0, redundant_experts: int = 0,
                 dtype: str | None = None, profile: str | None = None,
                 estimator: str = "calibrated", cluster: str | None = None,
                 memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
                 layers: bool = True) -> AFDResult:
    """One AFD layout (module docstring); one-line errors for bad arguments."""
    batch, seq = checks.whole(batch, "batch"), checks.whole(seq, "seq")
    memory_utilization = checks.number(memory_utilization, "memory_utilization", 0.05, 1.0)
    spec = AFDSpec(attention, ffn, microbatches, link, link_bandwidth_bytes_per_s, expert_skew,
                   redundant_experts)
    dep = _deployment(model, hardware, spec, tp, dtype, profile, estimator, cluster)
    sm = build_step_model(dep)
    assert isinstance(sm, AFDStepTimeModel)
    return _result(sm, batch, seq, memory_utilization, layers)


def _result(sm: AFDStepTimeModel, batch: int, seq: int, memory_utilization: float,
            layers: bool) -> AFDResult:
    dep, spec = sm.deployment, sm.spec
    seqs = batch * spec.attention
    decode = sm.breakdown(BatchShape.decode(seqs, float(seq)))
    prefill = sm.step_time(BatchShape.prefill(seqs, seq))
    a, f = sm.attention_deployment, sm.ffn_deployment
    per_mb = -(-batch // decode.microbatches)
    a_mem = analyze_memory(a.model, a.cluster, a.plan, a.precision, kv_tokens=batch * (seq + 1),
                           max_tokens=per_mb, max_logits=per_mb,
                           memory_utilization=memory_utilization)
    f_tokens = -(-seqs // (decode.microbatches * spec.ffn))
    f_mem = analyze_memory(f.model, f.cluster, f.plan, f.precision, max_tokens=f_tokens,
                           memory_utilization=memory_utilization)
    gpus = spec.num_gpus(dep.plan.tp)
    rate = seqs / decode.time_s
    link = spec.link + (f":{spec.link_bandwidth_bytes_per_s * 8 / 1e9:g}Gbps"
                        if spec.link_bandwidth_bytes_per_s else "")
    return AFDResult(
        model=dep.model.name, hardware=dep.hardware.name, attention_instances=spec.attention,
        attention_tp=dep.plan.tp, ffn_instances=spec.ffn, microbatches=decode.microbatches,
        link=link, num_gpus=gpus, batch_per_attention=batch, seq=seq, tpot_s=decode.time_s,
        prefill_s=prefill, decode_tokens_per_s=rate, decode_tokens_per_s_per_gpu=rate / gpus,
        bottleneck_stage=decode.bottleneck, attention_bytes_per_gpu=a_mem.peak_bytes,
        ffn_bytes_per_gpu=f_mem.peak_bytes, usable_bytes_per_gpu=a_mem.usable_bytes,
        fits=a_mem.fits and f_mem.fits,
        layers=tuple(layer.as_dict(decode.microbatches) for layer in decode.layers)
        if layers else ())


def ffn_counts(model: ModelSpec, redundant_experts: int, most: int) -> list[int]:
    """FFN instance counts that split the model: those dividing ``E + redundant`` (MoE), any
    for a dense model; at most ``most``."""
    moe = model.moe
    if moe is None:
        return list(range(1, most + 1))
    instances = moe.num_experts + redundant_experts
    return [n for n in range(1, most + 1) if instances % n == 0]


def search_afd(model: str | ModelSpec, hardware: str | HardwareSpec | None = None, *,
               batch: int = 8, seq: int = 4096, tpot_target_s: float = 0.05,
               attention: int | None = None, ffn: int | None = None,
               microbatches: int | None = None, max_attention: int = 16, max_ffn: int = 64,
               max_microbatches: int = 4, link: str = "rdma",
               link_bandwidth_bytes_per_s: float | None = None, tp: int = 1,
               expert_skew: float = 0.0, redundant_experts: int = 0,
               dtype: str | None = None, profile: str | None = None,
               estimator: str = "calibrated", cluster: str | None = None,
               memory_utilization: float = DEFAULT_MEMORY_UTILIZATION) -> AFDSearch:
    """The A:F ratio and micro-batch count with the most decode tokens/s per GPU that fit and
    meet ``tpot_target_s`` (module docstring); ``attention`` / ``ffn`` / ``microbatches``
    given are held fixed."""
    target = checks.number(tpot_target_s, "tpot_target_s", 1e-6)
    for name, value in (("max_attention", max_attention), ("max_ffn", max_ffn),
                        ("max_microbatches", max_microbatches)):
        checks.whole(value, name, high=4096)
    base = _deployment(model, hardware, AFDSpec(1, 1, 1, link, link_bandwidth_bytes_per_s),
                       tp, dtype, profile, estimator, cluster)
    spec_model = base.model
    a_values = [attention] if attention else list(range(1, max_attention + 1))
    f_values = [ffn] if ffn else ffn_counts(spec_model, redundant_experts, max_ffn)
    m_values = [microbatches] if microbatches else list(range(1, max_microbatches + 1))
    found: list[AFDResult] = []
    for f in f_values:
        for m in m_values:
            for a in a_values:
                spec = AFDSpec(a, f, m, link, link_bandwidth_bytes_per_s, expert_skew,
                               redundant_experts)
                dep = replace(base, afd=spec, cluster=_grown(base, spec.num_gpus(tp)))
                res = _result(build_step_model(dep), batch, seq,  # type: ignore[arg-type]
                              memory_utilization, layers=False)
                found.append(res)
    found.sort(key=lambda r: (not (r.fits and r.tpot_s <= target),
                              -r.decode_tokens_per_s_per_gpu, r.num_gpus, r.tpot_s))
    best = found[0] if found and found[0].fits and found[0].tpot_s <= target else None
    if best is not None:
        best = evaluate_afd(spec_model, base.hardware, batch=batch, seq=seq,
                            attention=best.attention_instances, ffn=best.ffn_instances,
                            microbatches=best.microbatches, link=link,
                            link_bandwidth_bytes_per_s=link_bandwidth_bytes_per_s, tp=tp,
                            expert_skew=expert_skew, redundant_experts=redundant_experts,
                            dtype=dtype, profile=profile, estimator=estimator,
                            memory_utilization=memory_utilization)
    return AFDSearch(target, tuple(found), best)


def _grown(dep: Deployment, num_gpus: int):
    from llmsim.costmodel.afd import sized_cluster

    return sized_cluster(dep.cluster, num_gpus)


def default_ffn_instances(model: str | ModelSpec, hardware: str | HardwareSpec | None, *,
                          tp: int = 1, redundant_experts: int = 0, dtype: str | None = None,
                          cluster: str | None = None,
                          memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
                          most: int = 256) -> int:
    """The fewest FFN instances whose share of the FFN / expert weights fits one GPU."""
    from llmsim.costmodel.afd import side_deployments

    base = Deployment.resolve(model, hardware, cluster, None, tp=tp, dtype=dtype,
                              afd=AFDSpec(1, 1, 1), estimator="analytic")
    for n in ffn_counts(base.model, redundant_experts, most):
        dep = replace(base, afd=AFDSpec(1, n, 1, redundant_experts=redundant_experts),
                      cluster=_grown(base, n + tp))
        f = side_deployments(dep)[1]
        mem = analyze_memory(f.model, f.cluster, f.plan, f.precision, max_tokens=1,
                             memory_utilization=memory_utilization)
        if mem.fits:
            return n
    raise ConfigError(f"{base.model.name}'s FFN weights do not fit {most} FFN instances of "
                      f"{base.hardware.name}; use --dtype fp8 or a larger part")


def afd_playbook(model: str | ModelSpec, hardware: str | HardwareSpec | None, *, batch: int,
                 seq: int, attention: int | None = None, ffn: int | None = None,
                 microbatches: int | None = None, link: str = "rdma",
                 tpot_target: str | float | None = None, tp: int = 1,
                 cluster: str | None = None, expert_skew: float = 0.0,
                 redundant_experts: int = 0, dtype: str | None = None,
                 profile: str | None = None,
                 search_range: tuple[int, int, int] = (16, 64, 4)) -> AFDResult | AFDSearch:
    """What ``afd simulate`` prints: one layout (the defaults where not given: 1 attention
    instance, the fewest FFN instances that fit, 3 micro-batches), or with ``tpot_target``
    (seconds, or text such as ``"50ms"``) the search with the given ones held fixed, over
    ``search_range`` = (most attention instances, most FFN instances, most micro-batches).
    ``link``: ``nvlink | rdma | ethernet[:BANDWIDTH]``."""
    from llmsim import units

    kind, _, bw = str(link).partition(":")
    bandwidth = units.parse_bandwidth(bw.strip(), "--link bandwidth") if bw.strip() else None
    common = {"link": kind.strip().lower(), "link_bandwidth_bytes_per_s": bandwidth, "tp": tp,
              "expert_skew": expert_skew, "redundant_experts": redundant_experts,
              "dtype": dtype, "profile": profile, "cluster": cluster}
    if tpot_target is not None:
        target = (units.parse_time(tpot_target, "--tpot-target")
                  if isinstance(tpot_target, str) else tpot_target)
        return search_afd(model, hardware, batch=batch, seq=seq, tpot_target_s=target,
                          attention=attention, ffn=ffn, microbatches=microbatches,
                          max_attention=search_range[0], max_ffn=search_range[1],
                          max_microbatches=search_range[2], **common)
    if ffn is None:
        ffn = default_ffn_instances(model, hardware, tp=tp, redundant_experts=redundant_experts,
                                    dtype=dtype, cluster=cluster)
    return evaluate_afd(model, hardware, batch=batch, seq=seq, attention=attention or 1,
                        ffn=ffn, microbatches=microbatches or 3, **common)
