"""What one offloaded run moves and computes, per layer, taken from the core cost model.

The model is cut into *units* that FlexGen schedules one after another: the input embedding,
each decoder-layer template (``repeat`` identical layers) and the LM head (FlexGen's
``InputEmbed``, ``SelfAttention + MLP`` and ``OutputEmbed`` layers; the tied OPT head is a
separate copy there, and here). Per unit this module provides, never re-deriving a formula:

- parameters: quantizable linear and 16-bit "plain" parameters from
  ``memory.footprint`` (the same split the memory analysis uses; ``Weight.num_params`` through
  ``costmodel.sharding``), routed-expert parameters from the block's weight list;
- KV elements per token: ``Layout.kv_bytes_per_token`` (the one KV formula; MLA included)
  divided by the KV format's bytes;
- GPU time of one GPU batch in prefill and in decode, split into attention and the rest: the
  unit's ``LayerRecord`` from ``AnalyticStepTimeModel.price`` on a one-GPU cluster;
- the decode-attention op (FLOPs, bytes) for pricing it on the CPU instead;
- transient activation bytes: ``memory.footprint.activation_bytes_per_device``.

Decode is priced at the mean context ``s + n/2`` (the static-batch estimate averages the exact
per-step contexts ``s+1 .. s+n-1``, whose mean is the same; attention time is affine in the
context when memory-bound, so the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from llmsim.catalog import ModelSpec, ParallelSpec, get_cluster
from llmsim.catalog.blocks import AttentionBlock, CommBlock, LayerTemplate, MoEBlock
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
from llmsim.costmodel.layers import Layout
from llmsim.costmodel.sharding import device_params
from llmsim.dtypes import DType, compute_dtype
from llmsim.errors import ConfigError
from llmsim.memory.footprint import activation_bytes_per_device, stage_weight_params
from llmsim.placement import runtime as rt
from llmsim.placement.policy import FLEXGEN_4BIT, GroupQuantization, MoEExpertTraffic
from llmsim.placement.system import OffloadSystem

_ATTN = (OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


@dataclass(frozen=True)
class Unit:
    """One schedulable layer kind: sizes of a single instance (``repeat`` instances)."""

    name: str
    kind: str  # "embedding" | "decoder" | "lm_head"
    repeat: int
    linear_params: float  # quantizable matrices (compressed by --compress-w)
    expert_params: float  # routed-expert part of linear_params
    plain_params: float  # embeddings, norms, router, biases: kept 16-bit
    block_linear_params_max: float  # largest block's matrices (FlexGen decompresses a block)
    kv_elements_per_token: float
    num_heads: float
    q_elements_per_token: float  # query entering decode attention (CPU delegation traffic)
    o_elements_per_token: float  # attention output returned to the GPU
    moe: MoEBlock | None = None
    table_params: float = 0.0  # 2-D embedding / head tables (part of plain_params)
    #: FlexGen's layers of one instance (attention, MLP, ...; the embedding), each its weight
    #: tensors in FlexLLMGen's order as (params, kind): kind "linear", "table" or "plain"
    sublayers: tuple[tuple[tuple[float, str], ...], ...] = ()


@dataclass(frozen=True)
class UnitTimes:
    """GPU (and CPU-attention) seconds of one unit for ONE GPU batch."""

    prefill_other_s: float
    prefill_attn_s: float
    decode_other_s: float
    decode_attn_s: float
    decode_attn_flops: float
    decode_attn_bytes: float


def compute_precision(model: ModelSpec, hw, compressed_weights: bool = False) -> Precision:
    """Formats the GPU computes in: the checkpoint's (``Precision.resolve``) where the GPU has
    that math, else the 16-bit float it has (fp16 first: FlexGen runs fp16). Compressed weights
    are dequantized to 16 bits before each GEMM (FlexGen), so they compute in 16 bits."""
    half = next((d for d in (DType.FP16, DType.BF16, DType.FP32) if d in hw.supported_dtypes),
                None)
    if half is None:
        raise ConfigError(f"{hw.name} has no 16/32-bit float math for offloaded inference")
    p = Precision.resolve(model.weight_dtype)
    ok = (compute_dtype(p.weight, p.activation, hw.supported_dtypes) in hw.supported_dtypes
          and p.activation in hw.supported_dtypes)
    if compressed_weights or not ok:
        return Precision(half, half, half if not ok or p.kv not in hw.supported_dtypes
                         else p.kv)
    return p


class OffloadRun:
    """Model, machine and sequence lengths of one offloaded run; per-unit sizes and GPU times.

    ``profile`` / ``efficiency`` select the calibration the core cost model uses (default: the
    shipped profile), ``estimator`` / ``estimator_model`` its step-time estimator
    (``costmodel/estimators``). GPU times are memoised per (GPU batch size, weight compression).
    """

    def __init__(self, model: ModelSpec, system: OffloadSystem, prompt_len: int, gen_len: int,
                 moe_traffic: MoEExpertTraffic = MoEExpertTraffic.ALL,
                 quantization: GroupQuantization = FLEXGEN_4BIT,
                 profile: Profile | None = None, efficiency: float | None = None,
                 runtime: str | rt.Runtime = rt.FLEXGEN, estimator: str = "calibrated",
                 estimator_model: str | None = None, max_model_len: int | None = None):
        for flag, what, value in (("--prompt-len", "prompt tokens per sequence", prompt_len),
                                  ("--gen-len", "generated tokens per sequence", gen_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be an integer >= 1 ({what}), got {value!r}")
        from llmsim import checks

        checks.context(prompt_len + gen_len, model.name, model.max_position_embeddings,
                       max_model_len, "prompt + generation", "--input-len or --output-len")
        self.model, self.system = model, system
        self.prompt_len, self.gen_len = prompt_len, gen_len
        self.moe_traffic = MoEExpertTraffic(moe_traffic)
        self.quantization = quantization
        self.runtime = rt.get_runtime(runtime)
        self._profile = profile if profile is not None else Profile.load()
        self._efficiency = efficiency
        self._estimator, self._estimator_model = estimator, estimator_model
        self._cluster = get_cluster(hardware=system.hardware, num_gpus=1)
        self._deployments: dict[bool, Deployment] = {}
        self._models: dict[bool, StepTimeModel] = {}
        self._times: dict[tuple[int, bool], tuple[UnitTimes, ...]] = {}

    # ------------------------------------------------------------------ core models
    def deployment(self, compressed_weights: bool = False) -> Deployment:
        """This model on one GPU of this machine (16-bit math when weights are compressed)."""
        dep = self._deployments.get(compressed_weights)
        if dep is None:
            prec = compute_precision(self.model, self.system.hardware, compressed_weights)
            dep = Deployment(self.model, self._cluster, ParallelSpec(), prec, self._profile,
                             self._efficiency, self._estimator, self._estimator_model)
            self._deployments[compressed_weights] = dep
        return dep

    def step_model(self, compressed_weights: bool = False) -> StepTimeModel:
        """The core step-time model of :meth:`deployment` (the one factory)."""
        sm = self._models.get(compressed_weights)
        if sm is None:
            sm = build_step_model(self.deployment(compressed_weights))
            self._models[compressed_weights] = sm
        return sm

    @cached_property
    def layout(self) -> Layout:
        dep = self.deployment(False)
        return Layout(dep.model, dep.cluster, dep.plan, dep.precision, dep.hardware_profile)

    @property
    def precision(self) -> Precision:
        return self.deployment(False).precision

    @property
    def step_overhead_s(self) -> float:
        return self.layout.prof.step_overhead_s

    # ------------------------------------------------------------------ sizes
    @cached_property
    def units(self) -> tuple[Unit, ...]:
        model, plan, layout = self.model, ParallelSpec(), self.layout
        out: list[Unit] = []
        h = model.hidden_size
        lin, plain = stage_weight_params(model, plan, [], True, False)
        # FlexLLMGen's InputEmbed: token table, position table (1-D norms after them)
        tables = ((float(model.vocab_size * h), "table"),
                  (float(model.learned_position_rows * h), "table"),
                  (float(plain - (model.vocab_size + model.learned_position_rows) * h), "plain"))
        out.append(Unit("embedding", "embedding", 1, lin, 0.0, plain, 0.0, 0.0, 0.0, 0.0, 0.0,
                        table_params=sum(p for p, k in tables if k == "table"),
                        sublayers=(tuple(t for t in tables if t[0] > 0),)))
        for idx, template in enumerate(model.layers):
            out.append(self._decoder_unit(idx, template, layout, plan))
        lin, plain = stage_weight_params(model, plan, [], False, True)
        # FlexLLMGen's OutputEmbed: final norm, then the head table (a copy when tied)
        head = float(model.vocab_size * h)
        rest = ((float(plain - head), "plain"), (head, "table"))
        out.append(Unit("lm_head", "lm_head", 1, lin, 0.0, plain, 0.0, 0.0, 0.0, 0.0, 0.0,
                        table_params=head, sublayers=(tuple(t for t in rest if t[0] > 0),)))
        return tuple(out)

    def _decoder_unit(self, idx: int, template: LayerTemplate, layout: Layout,
                      plan: ParallelSpec) -> Unit:
        lin, plain = stage_weight_params(self.model, plan, [(idx, 1)], False, False)
        expert = 0.0
        block_max = 0.0
        sublayers = []
        for block in template.blocks:
            if isinstance(block, CommBlock):
                continue
            mats = 0.0
            tensors: list[tuple[float, str]] = []
            for w in block.weights():
                p = device_params(w, plan)
                if w.name != "router":
                    mats += p
                if w.expert:
                    expert += p
                kind = "plain" if w.name == "router" else "linear"
                # FlexLLMGen keeps K and V as two tensors (llmsim fuses them); each expert's
                # matrix is a tensor of its own
                parts = 2 if w.name == "kv_proj" else max(1, w.copies if w.expert else 1)
                tensors += [(p / parts, kind)] * parts
            vectors = float(block.vector_params())
            if vectors:
                tensors.append((vectors, "plain"))
            block_max = max(block_max, mats)
            sublayers.append(tuple(tensors))
        attn: AttentionBlock | None = template.attention
        kv_el = heads = q_el = o_el = 0.0
        if attn is not None:
            kv_el = layout.kv_bytes_per_token(attn) / layout.precision.kv.bytes
            heads = layout.heads(attn)
            qk, v = layout.attention_dims(attn, decode=True)
            q_el, o_el = heads * qk, heads * v
        name = template.name if len(self.model.layers) > 1 else "decoder"
        return Unit(name, "decoder", template.repeat, lin, expert, plain, block_max, kv_el, heads,
                    q_el, o_el, template.moe, sublayers=tuple(sublayers))

    # ------------------------------------------------------------------ weight placement
    def tensor_bytes_per_element(self, kind: str, compressed: bool) -> float:
        """Stored bytes per value of one weight tensor of ``kind`` (see :class:`Unit`)."""
        if kind == "linear" or (kind == "table" and compressed
                                and self.runtime.compress_tables):
            return self.weight_bytes_per_element(compressed)
        return self.plain_bytes_per_element

    def sublayer_bytes(self, unit: Unit, compressed: bool) -> list[float]:
        """Stored bytes of each of ``unit``'s FlexGen layers (one instance)."""
        return [sum(p * self.tensor_bytes_per_element(k, compressed) for p, k in layer)
                for layer in unit.sublayers]

    def weight_midpoints(self, compressed: bool) -> tuple[tuple[float, float], ...]:
        """Every weight tensor as ``(midpoint in its layer's cumulative size in %, its bytes x
        instances)``: what FlexLLMGen's placement rule looks at (cached per compression)."""
        cache = self.__dict__.setdefault("_midpoints", {})
        if compressed not in cache:
            out = []
            for unit in self.units:
                for layer in unit.sublayers:
                    sizes = [p * self.tensor_bytes_per_element(k, compressed) for p, k in layer]
                    total, done = sum(sizes), 0.0
                    for size in sizes:
                        if size > 0:
                            out.append((100.0 * (done + size / 2.0) / total, unit.repeat * size))
                        done += size
            cache[compressed] = tuple(out)
        return cache[compressed]

    def placed_weight_fractions(self, w_gpu: float, w_cpu: float, compressed: bool
                                ) -> tuple[float, float]:
        """The shares of the weight bytes that end up on the GPU and the CPU for the policy's
        fractions ``(w_gpu, w_cpu)``.

        FlexLLMGen (``runtime.whole_tensor_placement``) puts each tensor whole on one tier:
        the tier whose percentage range (disk, then CPU, then GPU) holds the tensor's midpoint
        in its layer's cumulative size (``init_weight_list`` / ``get_choice``). ``--percent 20
        80`` on OPT leaves only each attention layer's output projection (and the 1-D weights)
        on the GPU: 1/12 of a decoder layer, not 20%. Other runtimes split every tensor: the
        fractions as given.
        """
        if not self.runtime.whole_tensor_placement:
            return w_gpu, w_cpu
        disk_cut = 100.0 * max(0.0, 1.0 - w_gpu - w_cpu)
        cpu_cut = disk_cut + 100.0 * w_cpu
        placed = {"gpu": 0.0, "cpu": 0.0, "disk": 0.0}
        for mid, size in self.weight_midpoints(compressed):
            placed["disk" if mid < disk_cut else "cpu" if mid < cpu_cut else "gpu"] += size
        whole = sum(placed.values())
        if not whole:
            return w_gpu, w_cpu
        return placed["gpu"] / whole, placed["cpu"] / whole

    @property
    def hidden_bytes_per_token(self) -> float:
        """The activation handed from one layer to the next (FlexGen's ``hidden``): h values."""
        return self.model.hidden_size * self.layout.act_bytes

    @property
    def act_bytes(self) -> float:
        return self.layout.act_bytes

    def weight_bytes_per_element(self, compressed: bool) -> float:
        """Stored bytes of a quantizable weight value: FlexGen's 4-bit groups, or the format the
        memory analysis uses (``DType.bytes_with_scales``)."""
        if compressed:
            return self.quantization.bytes_per_element
        return self.precision.weight.bytes_with_scales

    @property
    def plain_bytes_per_element(self) -> float:
        return self.precision.unquantized.bytes

    def kv_bytes_per_element(self, compressed: bool) -> float:
        if compressed:
            return self.quantization.bytes_per_element
        return self.precision.kv.bytes

    @property
    def kv16_bytes_per_element(self) -> float:
        """KV bytes per value once decompressed for the attention kernel."""
        return self.precision.kv.bytes

    def expert_touched_frac(self, unit: Unit, tokens: float) -> float:
        """Share of a unit's routed-expert weights that moves for a block of ``tokens`` tokens."""
        if unit.moe is None or self.moe_traffic == MoEExpertTraffic.ALL:
            return 1.0
        e, k = unit.moe.num_experts, unit.moe.top_k
        return float(kernels.expected_experts_touched(e, k, tokens)) / e

    def activation_working_bytes(self, tokens: float, logits: float) -> float:
        """Transient activations of one forward pass (``memory.footprint``)."""
        return activation_bytes_per_device(self.layout, int(round(tokens)), int(round(logits)))

    # ------------------------------------------------------------------ times
    def times(self, gpu_batch_size: int, compressed_weights: bool = False
              ) -> tuple[UnitTimes, ...]:
        """Per-unit GPU seconds for one GPU batch (prefill of ``s`` tokens per sequence, and a
        decode step at the mean context ``s + n/2``), from the core step model."""
        key = (gpu_batch_size, compressed_weights)
        hit = self._times.get(key)
        if hit is not None:
            return hit
        sm = self.step_model(compressed_weights)
        s, n = self.prompt_len, self.gen_len
        pre = sm.price(BatchShape.prefill(gpu_batch_size, s)).layers
        dec = sm.price(BatchShape.decode(gpu_batch_size, s + n / 2.0)).layers
        records_p = [r for r in pre if r.kind != "comm"]
        records_d = [r for r in dec if r.kind != "comm"]
        if len(records_p) != len(self.units) or len(records_d) != len(self.units):
            raise ConfigError(f"{self.model.name}: unexpected layer records from the step model")
        out = []
        for rp, rd in zip(records_p, records_d, strict=True):
            attn_p = sum(o.time_s * o.count for o in rp.ops if o.kind in _ATTN)
            attn_d_ops = [o for o in rd.ops if o.kind in _ATTN]
            attn_d = sum(o.time_s * o.count for o in attn_d_ops)
            out.append(UnitTimes(
                prefill_other_s=rp.time_s - attn_p, prefill_attn_s=attn_p,
                decode_other_s=rd.time_s - attn_d, decode_attn_s=attn_d,
                decode_attn_flops=sum(o.flops * o.count for o in attn_d_ops),
                decode_attn_bytes=sum(o.bytes * o.count for o in attn_d_ops),
            ))
        result = tuple(out)
        self._times[key] = result
        return result

    def with_system(self, system: OffloadSystem) -> OffloadRun:
        """The same model and lengths on another host side (same GPU): shares the memoised GPU
        times, so re-pricing under other host rates or efficiencies costs no step pricing."""
        if system.hardware != self.system.hardware:
            raise ConfigError("with_system keeps the GPU; build a new OffloadRun for another one")
        other = object.__new__(OffloadRun)
        other.__dict__.update(self.__dict__)
        other.system = system
        return other

    def gpu_elementwise_s(self, bytes_read: float, bytes_written: float,
                          name: str = "dequantize") -> float:
        """A memory-bound GPU pass priced by the core ``kernels.elementwise``."""
        if bytes_read + bytes_written <= 0:
            return 0.0
        return kernels.elementwise(name, bytes_read, bytes_written, self.system.hardware,
                                   self.layout.prof).time_s

    def gpu_passes_s(self, passes: tuple[rt.Pass, ...], values: float) -> float:
        """One elementwise kernel per pass over ``values`` values (``runtime.py``)."""
        if values <= 0:
            return 0.0
        return sum(self.gpu_elementwise_s(p.read_per_value * values, p.write_per_value * values,
                                          p.name) for p in passes)

    def prefill_attention_extra_s(self, unit: Unit, gbs: int) -> float:
        """An unfused runtime's prefill attention beyond the core (fused) op, one GPU batch:
        materialised ``heads x s x s`` scores (3 reads + 3 writes) and the contiguous copies of
        Q, K and V (``runtime.py``; 0 for a fused runtime)."""
        if not unit.kv_elements_per_token or not self.runtime.unfused_attention:
            return 0.0
        s, a = self.prompt_len, self.act_bytes
        scores = rt.attention_scores_passes(a)
        qkv = (unit.q_elements_per_token + unit.kv_elements_per_token) * gbs * s
        n_scores = gbs * unit.num_heads * s * s
        return (self.gpu_elementwise_s(scores.read_per_value * n_scores,
                                       scores.write_per_value * n_scores, "scores")
                + self.gpu_elementwise_s(a * qkv, a * qkv, "qkv_contiguous"))

    def decode_attention_extra_s(self, unit: Unit, gbs: int, ctx: float) -> float:
        """An unfused runtime's decode attention on the GPU beyond the core op, one GPU batch:
        the cache in use made contiguous (one read + one write of every K/V value) and
        materialised scores (0 for a fused runtime)."""
        if not unit.kv_elements_per_token or not self.runtime.unfused_attention:
            return 0.0
        kv = unit.kv_elements_per_token * gbs * ctx * self.kv16_bytes_per_element
        scores = rt.attention_scores_passes(self.act_bytes)
        n_scores = gbs * unit.num_heads * ctx
        return (self.gpu_elementwise_s(kv, kv, "kv_contiguous")
                + self.gpu_elementwise_s(scores.read_per_value * n_scores,
                                         scores.write_per_value * n_scores, "scores"))

    def cache_decompress_s(self, unit: Unit, gbs: int, ctx: float) -> float:
        """Decompress one GPU batch's compressed cache before decode attention (GPU): all
        allocated positions (FlexGen) or the context in use."""
        if not unit.kv_elements_per_token:
            return 0.0
        positions = (self.prompt_len + self.gen_len - 1 if self.runtime.whole_cache_decompress
                     else ctx)
        return self.gpu_passes_s(self.runtime.dequantize_passes(self.quantization,
                                                                self.kv16_bytes_per_element),
                                 unit.kv_elements_per_token * gbs * positions)

    def cache_quantize_s(self, unit: Unit, tokens: float) -> float:
        """Compress ``tokens`` tokens' new K/V (all sequences of one GPU batch) on the GPU."""
        if not unit.kv_elements_per_token:
            return 0.0
        return self.gpu_passes_s(self.runtime.quantize_passes(self.quantization,
                                                              self.kv16_bytes_per_element),
                                 unit.kv_elements_per_token * tokens)

    def weight_dequantize_s(self, params: float) -> float:
        """Dequantize ``params`` compressed weights to 16 bits on the GPU (one GPU batch)."""
        return self.gpu_passes_s(self.runtime.dequantize_passes(self.quantization,
                                                                self.act_bytes), params)

    def cpu_attention_s(self, unit: Unit, times: UnitTimes, gbs: int, ctx: float,
                        compressed: bool) -> float:
        """Decode attention of one GPU batch on the host CPU (``cpu_cache_compute``) on the CPU
        roofline of ``costmodel.host`` (``OffloadSystem.cpu_op_s``), with the core op's FLOPs.

        FlexGen: every cache value in use is moved into an fp32 workspace, copied contiguous and
        read by ``bmm`` (18 bytes per fp16 value; a compressed cache is decompressed whole into
        it), plus the fp32 scores. Fused: the core op's bytes (the cache read as stored; a
        compressed cache read, then written and read in 16 bits).
        """
        if not times.decode_attn_flops:
            return 0.0
        kv_values = unit.kv_elements_per_token * gbs
        if not self.runtime.fp32_cpu_attention:
            nbytes = times.decode_attn_bytes
            if compressed:
                nbytes += kv_values * ctx * (self.quantization.bytes_per_element
                                             + self.kv16_bytes_per_element)
            return self.system.cpu_op_s(times.decode_attn_flops, nbytes)
        w = rt.CPU_ATTENTION_BYTES
        if compressed:
            alloc = self.prompt_len + self.gen_len - 1
            into = rt.pass_bytes(self.runtime.dequantize_passes(self.quantization, w))
            nbytes = kv_values * (alloc * into + ctx * 3.0 * w)
        else:
            per_value = rt.cpu_attention_bytes_per_kv_value(self.kv16_bytes_per_element, None)
            nbytes = kv_values * ctx * per_value
        scores = rt.attention_scores_passes(w)
        nbytes += (scores.read_per_value + scores.write_per_value) * gbs * unit.num_heads * ctx
        nbytes += (unit.q_elements_per_token + unit.o_elements_per_token) * gbs * w
        return self.system.cpu_op_s(times.decode_attn_flops, nbytes)
