"""The two pools of a disaggregated run resolved before it starts (``DisaggSetup``): each
pool an aggregated :class:`~llmsim.serving.setup.ServingSetup` of its own config
(``pool_config``) and step model (``pool_deployment``), and the KV link
(``disagg/kv_transfer.py``). The run: ``serving/disagg_sim.py``."""

from __future__ import annotations

import numpy as np

from llmsim.catalog._base import validate_spec
from llmsim.costmodel import Deployment, StepTimeModel, build_step_model
from llmsim.disagg.kv_transfer import kv_bytes_per_gpu, kv_transfer_s
from llmsim.disagg.pools import PoolSpec
from llmsim.errors import ConfigError
from llmsim.serving.config import SimulationConfig
from llmsim.serving.request import RejectReason
from llmsim.serving.setup import ServingSetup


def pool_config(cfg: SimulationConfig, pool: PoolSpec, role: str) -> SimulationConfig:
    """The aggregated config one pool's instances run: the pool's plan (``workers x dp``
    replicas of ``tp x pp`` GPUs), its hardware and the limits it gives, over ``cfg``'s
    model, engine, scheduler and workload (a decode pool never prefix-caches)."""
    data = cfg.model_dump(exclude_unset=True)
    data.pop("disagg", None)
    data["parallelism"] = {**data.get("parallelism", {}), "tp": pool.tp, "pp": pool.pp,
                           "ep": pool.ep, "replicas": pool.workers * pool.dp}
    if pool.hardware:
        data["hardware"] = {**data.get("hardware", {}), "name": pool.hardware, "cluster": None}
    sched = dict(data.get("scheduler", {}))
    for key in ("max_num_seqs", "max_num_batched_tokens"):
        if key in pool.model_fields_set and getattr(pool, key) is not None:
            sched[key] = getattr(pool, key)
    if role == "decode":
        sched["prefix_caching"] = False
    data["scheduler"] = sched
    return validate_spec(SimulationConfig, data, f"--{role}-pool")  # type: ignore[return-value]


def pool_deployment(cfg: SimulationConfig, pool: PoolSpec) -> Deployment:
    """One replica of the pool: ``tp x pp`` GPUs of a worker's ``dp`` ranks, with the
    worker's whole ``tp x pp x dp`` plan (DP/EP communication priced per rank's batch)."""
    m, h, p = cfg.model, cfg.hardware, cfg.parallelism
    hw, cluster = (pool.hardware, None) if pool.hardware else (h.name, h.cluster)
    return Deployment.resolve(
        m.name, hw, cluster, pool.gpus_per_worker, tp=pool.tp, pp=pool.pp, ep=pool.ep,
        dp=pool.dp, micro_batches=p.micro_batches, dtype=m.dtype, weight_dtype=m.weight_dtype,
        act_dtype=m.act_dtype, kv_dtype=m.kv_dtype, profile=h.profile, efficiency=h.efficiency,
        expert_skew=p.expert_skew, redundant_experts=p.redundant_experts,
        estimator=h.estimator, estimator_model=h.estimator_model)


class DisaggSetup:
    """Both pools resolved (each a :class:`ServingSetup` of its own config and step model)
    and what the run needs of them; read by ``Simulation`` and the report as a
    ``ServingSetup`` is (``cfg`` is the disaggregated config itself)."""

    def __init__(self, cfg: SimulationConfig,
                 step_models: tuple[StepTimeModel, StepTimeModel] | None = None):
        sec = cfg.disagg
        if sec is None or sec.prefill_pool is None or sec.decode_pool is None:
            raise ConfigError("a disaggregated run needs disagg.prefill_pool and decode_pool")
        self.cfg = cfg
        self.pools = {"prefill": sec.prefill_pool, "decode": sec.decode_pool}
        self.link = sec.link()
        models = step_models or tuple(build_step_model(pool_deployment(cfg, p))
                                      for p in self.pools.values())
        self.prefill = ServingSetup(pool_config(cfg, sec.prefill_pool, "prefill"), models[0])
        self.decode = ServingSetup(pool_config(cfg, sec.decode_pool, "decode"), models[1],
                                   workload=self.prefill.workload)
        pre, dec = self.prefill, self.decode
        self.workload = pre.workload
        self.output_tokens = self.workload.output_tokens
        self.request_overhead_s = pre.request_overhead_s  # the frontend, once per request
        self.engine = dec.engine
        self.step_model = pre.step_model
        self.deployment = None  # two deployments: no single MFU / MBU
        self.router_cls = pre.router_cls
        self.max_batched = dec.max_batched
        self.num_blocks = dec.num_blocks
        self.max_model_len = min(pre.max_model_len, dec.max_model_len)
        self.beam, self.speculation = 1, None
        self.num_gpus = pre.num_gpus + dec.num_gpus
        self.info = {"memory": {"prefill": pre.info.get("memory"),
                                "decode": dec.info.get("memory")}}
        ddep = dec.deployment
        self.kv_bytes_per_token_per_gpu = kv_bytes_per_gpu(ddep, 1) if ddep else 0.0
        self.num_layers = ddep.model.num_layers if ddep else 1
        self.decode_cluster = ddep.cluster if ddep else None

    def transfer_s(self, prompt_tokens: int) -> float:
        """Seconds the KV of a ``prompt_tokens``-token prompt takes over the link
        (``disagg.kv_transfer.kv_transfer_s``)."""
        if self.decode_cluster is None:
            return 0.0
        return kv_transfer_s(prompt_tokens * self.kv_bytes_per_token_per_gpu, self.link,
                             self.decode_cluster)

    def reject_reasons(self) -> np.ndarray:
        """Per request, why it is refused at arrival (0: admissible): its prompt's KV does not
        fit a prefill instance, its whole KV a decode instance, the context, or (schedulers that
        do not chunk) the prefill instance's token budget."""
        wl, pre, dec = self.workload, self.prefill, self.decode
        p, o = wl.input_tokens.astype(np.int64), wl.output_tokens.astype(np.int64)
        reason = np.zeros(len(p), dtype=np.int8)
        if not pre.scheduler_cls.chunks_prompts:
            reason[p > pre.max_batched] = RejectReason.BATCH_TOKENS
        if not dec.scheduler_cls.chunks_prompts:  # a preempted decode recomputes there
            reason[(o > 1) & (p + o - 1 > dec.max_batched)] = RejectReason.BATCH_TOKENS
        pbs, dbs = pre.cfg.scheduler.block_size, dec.cfg.scheduler.block_size
        reason[-(-p // pbs) > pre.num_blocks - pre.watermark_blocks] = RejectReason.KV_CAPACITY
        reason[(o > 1) & (-(-(p + o - 1) // dbs) > dec.num_blocks - dec.watermark_blocks)] = \
            RejectReason.KV_CAPACITY
        reason[p + o > self.max_model_len] = RejectReason.CONTEXT_LENGTH
        return reason
