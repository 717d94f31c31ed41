"""Every time the offload simulation uses, from the core cost model (GPU and host).

- GPU work that is not a routed expert (embedding, attention, norms, router, shared experts,
  LM head, sampling, the per-step fixed cost) is priced by the core step model
  (:func:`~llmsim.costmodel.build_step_model`) for the step's batch shape, layer by layer,
  leaving out its balanced-routing ``experts`` op.
- A routed expert computing ``n`` tokens on the GPU is
  ``kernels.moe_experts(n, h, I, num_experts=1, top_k=1)``: FLOPs ``2 n h I x 3`` (gated), its
  ``3 h I`` weights read once, through the calibrated roofline.
- The same op's FLOPs and bytes on the CPU go through :func:`cpu_op_time`, i.e. the one CPU
  roofline of ``costmodel.host`` (``cpu_op_time_s``).
- Per MoE layer two more elementwise ops (``kernels.elementwise``): the router's top-k and
  token dispatch (fp32 logits read, ids and weights written) and the weighted combine of the
  ``k`` expert outputs per token with the residual add (``T k h`` read, ``T h`` written).
- Host<->device copies: :func:`link_time` over the host's H2D / D2H bandwidth plus the
  accelerator's host-link latency (``costmodel.host.transfer_time_s``).

Host rates are the platform's as given (catalog datasheet values, or the executor's measured
peaks) with the platform's flat ``cpu_efficiency``; the host section of a calibration profile is
not read here (its only fitted entry describes FlexLLMGen's runtime, not an expert cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmsim.catalog import HardwareSpec, HostSpec, ModelSpec, ParallelSpec, get_cluster
from llmsim.catalog.blocks import MoEBlock
from llmsim.costmodel import (
    BatchShape,
    Deployment,
    OpKind,
    Precision,
    Profile,
    StepTimeModel,
    build_step_model,
    kernels,
)
from llmsim.costmodel import host as host_cost
from llmsim.dtypes import DType
from llmsim.errors import ConfigError


def cpu_op_time(flops: float, nbytes: float, host: HostSpec, dtype: DType,
                efficiency: float = 1.0, overhead_s: float = 0.0, m: float = 0.0,
                m_half: float = 0.0) -> float:
    """One op on ``host``'s CPU: ``costmodel.host.cpu_op_time_s`` at the host's peak for
    ``dtype`` (fp32 when it lists none for it) and DRAM bandwidth, with one flat ``efficiency``
    for both (1.0 = datasheet or measured peak), ``overhead_s`` per call and the small-GEMM
    saturation ``m / (m + m_half)`` over ``m`` rows (``m_half = 0``: a pure roofline)."""
    return host_cost.cpu_op_time_s(flops, nbytes, host.cpu_peak_flops(dtype),
                                   host.cpu_memory_bandwidth_bytes_per_s,
                                   compute_eff=efficiency, memory_eff=efficiency,
                                   launch_s=overhead_s, m=m, m_half=m_half)


def link_time(nbytes: float, bandwidth_bytes_per_s: float, latency_s: float) -> float:
    """One host<->device copy: ``latency + bytes / bandwidth`` (0 for an empty copy);
    ``costmodel.host.transfer_time_s``."""
    return host_cost.transfer_time_s(nbytes, bandwidth_bytes_per_s, 1.0, latency_s)


def expert_weight_bytes(moe: MoEBlock, precision: Precision) -> float:
    """Bytes of one routed expert's weights (gate/up and down, with group scales)."""
    params = sum(w.in_features * w.out_features for w in moe.weights() if w.expert)
    return params * precision.weight.bytes_with_scales


@dataclass(frozen=True)
class Platform:
    """The machine an offload run executes on.

    ``async_copy``: host<->device copies run on a copy engine, concurrently with compute (a GPU
    with DMA engines); False when the same cores do the copies (the CPU-only executor, where the
    "device" pool is another region of host memory): copies then sit on the critical path.
    ``concurrent_host``: CPU experts run while the device computes its own (False when host and
    device are the same cores). ``cpu_efficiency``/``cpu_overhead_s``/``cpu_m_half``: the CPU
    roofline's flat efficiency, the fixed cost of one CPU expert call and its small-GEMM
    saturation constant (see :func:`cpu_op_time`).
    """

    hardware: HardwareSpec
    host: HostSpec
    async_copy: bool = True
    concurrent_host: bool = True
    cpu_efficiency: float = 1.0
    cpu_overhead_s: float = 0.0
    cpu_m_half: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.cpu_efficiency <= 1.5:
            raise ConfigError(f"cpu efficiency {self.cpu_efficiency} must be in (0, 1.5]")

    @property
    def link_latency_s(self) -> float:
        return self.hardware.host_link.latency_s


@dataclass(frozen=True)
class StepBase:
    """Non-expert GPU time of one step: per decoder layer, plus the ends of the step."""

    embedding_s: float
    layer_s: tuple[float, ...]
    lm_head_s: float
    overhead_s: float


@dataclass
class OffloadCosts:
    """Prices for one model on one platform and precision (memoised by token count).

    ``base_model``: the step model that prices the non-expert work (default: built here for
    one GPU of the platform; the serving simulator passes its replica's, so an engine
    profile's overheads apply too)."""

    model: ModelSpec
    platform: Platform
    precision: Precision
    profile: Profile | None = None
    efficiency: float | None = None
    estimator: str = "calibrated"
    estimator_model: str | None = None
    base_model: StepTimeModel | None = None
    _gpu: dict[int, float] = field(default_factory=dict, repr=False)
    _cpu: dict[int, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        moe = self.model.moe
        if moe is None:
            raise ConfigError(f"{self.model.name} has no MoE layer")
        self.moe: MoEBlock = moe
        hw = self.platform.hardware
        self.cluster = get_cluster(hardware=hw, num_gpus=1, host=self.platform.host)
        deployment = Deployment(self.model, self.cluster, ParallelSpec(), self.precision,
                                self.profile, self.efficiency, self.estimator,
                                self.estimator_model)
        self.step_model = (self.base_model if self.base_model is not None
                           else build_step_model(deployment))
        self.prof = deployment.hardware_profile
        self.expert_bytes = expert_weight_bytes(moe, self.precision)
        self.act_bytes = max(self.precision.activation.bytes, 2.0)
        self._templates = [t for t in self.model.layers for _ in range(t.repeat)]

    # ------------------------------------------------------------------ GPU, non-expert
    def step_base(self, shape: BatchShape) -> StepBase:
        """Price everything but the routed experts, per decoder layer (core cost model)."""
        cost = self.step_model.price(shape)
        per_template: list[float] = []
        embedding = lm_head = 0.0
        for rec in cost.layers:
            t = sum(o.time_s * o.count for o in rec.ops if o.kind != OpKind.MOE)
            if rec.kind == "embedding":
                embedding += t
            elif rec.kind == "lm_head":
                lm_head += t
            elif rec.kind == "decoder":
                per_template.append(t)
        layer_s: list[float] = []
        for template, t in zip(self.model.layers, per_template, strict=True):
            extra = (self.routing_s(shape.num_tokens) + self.combine_s(shape.num_tokens)
                     if template.moe is not None else 0.0)
            layer_s += [t + extra] * template.repeat
        return StepBase(embedding, tuple(layer_s), lm_head, cost.overhead_s)

    def routing_s(self, num_tokens: int) -> float:
        """Top-k selection and token dispatch of one MoE layer (one elementwise op)."""
        e, k = self.moe.num_experts, self.moe.top_k
        return kernels.elementwise("routing", num_tokens * e * 4.0, num_tokens * k * 8.0,
                                   self.platform.hardware, self.prof,
                                   flops=5.0 * num_tokens * e).time_s

    # ------------------------------------------------------------------ experts
    def _expert_op(self, tokens: int):
        m = self.moe
        return kernels.moe_experts(tokens, m.hidden_size, m.expert_intermediate_size, 1, 1,
                                   self.platform.hardware, self.prof, weight=self.precision.weight,
                                   activation=self.precision.activation, gated=m.gated,
                                   name="expert")

    def gpu_expert_s(self, tokens: int) -> float:
        """One routed expert computing ``tokens`` tokens on the GPU."""
        t = self._gpu.get(tokens)
        if t is None:
            t = self._gpu[tokens] = float(self._expert_op(tokens).time_s)
        return t

    def cpu_expert_s(self, tokens: int) -> float:
        """The same expert on the CPU (same FLOPs and bytes, CPU roofline)."""
        t = self._cpu.get(tokens)
        if t is None:
            op = self._expert_op(tokens)
            p = self.platform
            t = self._cpu[tokens] = cpu_op_time(op.flops, op.bytes, p.host,
                                                self.precision.activation, p.cpu_efficiency,
                                                p.cpu_overhead_s, tokens, p.cpu_m_half)
        return t

    def combine_s(self, tokens: int) -> float:
        """``out = residual + sum_k w[t, k] y[t, k]`` over ``tokens`` tokens (one op)."""
        h, k = self.model.hidden_size, self.moe.top_k
        read = tokens * (k + 1) * h * self.act_bytes + tokens * k * self.act_bytes
        return kernels.elementwise("combine", read, tokens * h * self.act_bytes,
                                   self.platform.hardware, self.prof,
                                   flops=2.0 * tokens * k * h).time_s

    # ------------------------------------------------------------------ transfers
    def h2d_s(self, nbytes: float) -> float:
        p = self.platform
        return link_time(nbytes, p.host.h2d_bandwidth_bytes_per_s, p.link_latency_s)

    def d2h_s(self, nbytes: float) -> float:
        p = self.platform
        return link_time(nbytes, p.host.d2h_bandwidth_bytes_per_s, p.link_latency_s)

    def activation_bytes(self, tokens: int) -> float:
        """Hidden states of ``tokens`` tokens (what CPU experts read and write back)."""
        return tokens * self.model.hidden_size * self.act_bytes

    def layer_kinds(self) -> list[bool]:
        """Per decoder layer: whether it has a MoE block."""
        return [t.moe is not None for t in self._templates]
