"""FlexGen's cost model as affine functions of the six placement fractions.

For one candidate (GPU batch size ``gbs``, ``k = num_gpu_batches`` GPU batches, block
``b = gbs x k`` sequences, prompt ``s``, ``n`` generated tokens) and fixed flags (compression,
CPU attention, overlap), every quantity below is affine in ``f = (wg, wc, cg, cc, hg, hc)``
(``wn = 1 - wg - wc`` etc. on disk); each is stored as a vector ``[const, d/dwg, ..., d/dhc]``.

Zig-zag block schedule (FlexGen section 4.1): for each layer, the layer's weights are loaded once
and the ``k`` GPU batches are computed one after another, while the next layer's weights, the
next batch's cache and activations load and the previous batch's store. With overlap each
layer takes the slowest of five concurrent streams (FlexGen appendix A cost model), after the
host work the runtime does serially on its main thread before it starts them (``staging``:
pinning pageable host buffers that are about to be copied to the GPU; 0 when all are pinned)::

    T_layer = staging + max(ctog, gtoc, dtoc, ctod, comp)      (sum of all without overlap)

Per layer of one unit, ``W`` its weight bytes as stored (``Wm`` the part that moves: all of it,
or for MoE with ``--moe-experts expected`` the expected touched experts), ``K`` KV bytes per
token, ``A`` activation bytes per token (hidden size x 2). Every copy is priced by the one host
formula (``costmodel.host.transfer_time_s`` through ``OffloadSystem.h2d_s`` etc.): bytes over
the datasheet rate times its calibrated efficiency (``B_h2d``, ``B_d2h``, ``B_disk_*`` below
stand for those achieved rates). A pageable host source -- FlexGen keeps the CPU cache
pageable, and the CPU weights too with ``pin_weight`` off -- is first staged into pinned memory
on the main thread: ``staging = P / (B_h2d_datasheet x pageable_eff)`` with ``P`` its bytes
(``runtime.py``); disk data and activations use pinned buffers:

prefill (``b x s`` tokens)::

    ctog = [(1-wg) Wm + (1-hg) A b s] / B_h2d        gtoc = [(1-cg) K b s + (1-hg) A b s] / B_d2h
    dtoc = [wn Wm + hn A b s] / B_disk_read          ctod = [cn K b s + hn A b s] / B_disk_write
    comp = k x (t_gpu(gbs, s) + t_scores + t_dequant + t_quant_cache)
    P    = (1 - pin_weight) wc Wm

decode step at mean context ``c = s + n/2`` (``x`` = cpu_cache_compute)::

    ctog = [(1-wg) Wm + (1-hg) A b + (1-x)(1-cg) K b c + x (1-cg) O b] / B_h2d
    gtoc = [(1-hg) A b + (1-cg) K b + x (1-cg) Q b] / B_d2h
    P    = (1 - pin_weight) wc Wm + (1-x) cc K b c + x (1-cg) O b
    dtoc = [wn Wm + cn K b c + hn A b] / B_disk_read
    ctod = [cn K b + hn A b] / B_disk_write
    comp = k x (t_other + t_dequant + (x cg + 1 - x) t_attn_gpu + x (1-cg) t_attn_cpu)

where ``t_gpu``, ``t_other``, ``t_attn_gpu`` are the core cost model's per-layer times for one GPU
batch (``run.OffloadRun.times``) plus FlexGen's unfused extras (``runtime.py``: materialised
prefill scores, the contiguous copy of the cache in decode, 4-bit (de)quantisation as its
six/twelve memory passes per GPU batch, the whole allocated cache decompressed per step);
``t_attn_cpu`` the same attention's FLOPs and FlexGen's fp32 bytes on the CPU roofline
(``OffloadSystem.cpu_op_s`` -> ``costmodel.host.cpu_op_time_s``); ``Q``/``O`` the query/output
bytes that cross PCIe when attention is delegated. Disk data reaches the GPU through the CPU,
so it appears in both ``dtoc`` and ``ctog``. GPU compute and CPU attention of a GPU batch run
one after the other (their sum is one stream), as in FlexGen's runtime.

    T_prefill = sum_u repeat_u T_u^p + k t_step;  T_decode = sum_u repeat_u T_u^g + k t_step
    T = T_prefill + (n - 1) T_decode;   throughput = b n / T    (FlexGen's generation throughput)

Peak memory per tier and stage = resident ("home") + working buffers of one layer (bytes)::

    home_gpu = wg sum W + cg sum K b (s+n-1) + hg A b t      (t = s in prefill, 1 in decode)
    home_cpu = wc sum W + cc sum K b (s+n-1) + hc A b t
    disk     = wn sum W + cn sum K b (s+n-1) + hn A b t
    work_gpu = (1-wg) W_pair + (1-hg) A gbs t [+ W16_block if compressed weights]
               + max(act(gbs t), gbs t (2A + (q + kv + o) a) + c gbs heads t L a)
               + 2 (1-cg) K_max gbs L [+ K16_max gbs L if compressed cache]
    work_cpu = wn W_pair + 2 hn A gbs t + 2 cn K_max gbs L [+ CPU attention buffers]

``W_pair`` is the largest pair of consecutive FlexGen layers (the one computing and the
prefetched next; FlexLLMGen's attention and MLP are separate layers, so for a uniform decoder it
is one decoder layer, not two), ``t = s`` tokens per sequence in prefill and 1 in decode, ``L``
the keys per sequence (``s`` in prefill, ``s + n - 1`` in decode; with CPU attention only the
new token's K/V stays on the GPU), ``act`` the core transient-activation estimate
(``memory.footprint``), the second term FlexGen's attention with materialised scores (it has
no fused kernel; ``a`` = activation bytes; ``c`` score copies alive at once in prefill: 2 for
FlexLLMGen, whose ``torch.where`` and ``softmax`` each allocate a new one). The KV cache is
allocated for ``s + n - 1`` tokens up front, as FlexLLMGen does (the last token's K/V is never
stored).

Weight fractions are the policy's for the LP. A given policy is priced at the fractions the
runtime realises (``OffloadRun.placed_weight_fractions``): FlexLLMGen puts each tensor whole on
the tier that holds its midpoint in its layer, so ``--percent 20 80`` on OPT keeps 1/12 of the
weights on the GPU, not 1/5; with ``--compress-weight`` it also compresses the embedding and
head tables (every 2-D weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsim.placement.policy import OffloadPolicy
from llmsim.placement.run import OffloadRun, Unit, UnitTimes
from llmsim.placement.system import OffloadSystem

STREAMS = ("ctog", "gtoc", "dtoc", "ctod", "compute")  # concurrent within a layer
STAGING = "staging"  # serial host work before a layer's streams start
TIME_PARTS = STREAMS + (STAGING,)
STAGES = ("prefill", "decode")
TIERS = ("gpu", "cpu", "disk")
NUM_VARS = 6
VAR_NAMES = ("w_gpu_frac", "w_cpu_frac", "cache_gpu_frac", "cache_cpu_frac", "act_gpu_frac",
             "act_cpu_frac")


def _basis(i: int) -> np.ndarray:
    v = np.zeros(NUM_VARS + 1)
    v[i] = 1.0
    return v


ONE = _basis(0)
WG, WC, CG, CC, HG, HC = (_basis(i) for i in range(1, 7))
WN, CN, HN = ONE - WG - WC, ONE - CG - CC, ONE - HG - HC


def value(expr: np.ndarray, fractions: tuple[float, ...] | np.ndarray) -> float:
    """Evaluate an affine expression at ``(wg, wc, cg, cc, hg, hc)`` (cancellation below
    1e-12 of the terms' magnitude, e.g. ``1 - wg`` at ``wg = 1``, is exactly 0)."""
    f = np.asarray(fractions, dtype=float)
    raw = float(expr[0] + np.dot(expr[1:], f))
    scale = abs(float(expr[0])) + float(np.dot(np.abs(expr[1:]), np.abs(f)))
    return 0.0 if abs(raw) <= 1e-12 * scale else raw


@dataclass(frozen=True)
class UnitStreams:
    """Per-layer stream times (affine, seconds) of one unit in one stage."""

    name: str
    repeat: int
    streams: dict[str, np.ndarray]


@dataclass(frozen=True)
class CandidateModel:
    """All affine pieces of one (gbs, num_gpu_batches, flags) candidate."""

    policy: OffloadPolicy  # batching and flags; its fractions are not used
    prompt_len: int
    gen_len: int
    units: dict[str, tuple[UnitStreams, ...]]  # stage -> units
    step_overhead_s: dict[str, float]  # stage -> per step, outside the per-layer max
    memory: dict[str, dict[str, np.ndarray]]  # stage -> tier -> bytes
    weight_bytes: float
    kv_bytes: float
    weight_moved_bytes: dict[str, float]  # stage -> bytes that cross PCIe per step at wg = 0

    @property
    def block_size(self) -> int:
        return self.policy.block_size

    @property
    def decode_steps(self) -> int:
        return self.gen_len - 1

    def stage_weight(self, stage: str) -> int:
        """How many times a stage runs: one prefill, ``n - 1`` decode steps."""
        return 1 if stage == "prefill" else self.decode_steps


@dataclass(frozen=True)
class _Footprint:
    """What the memory peaks need from the units: the model's stored weight and KV bytes, and
    the widest block's 16-bit weights, KV bytes per token (stored / 16-bit) and heads."""

    weight_bytes: float
    kv_bytes: float
    w16_block_max: float
    kv_max: float
    kv16_max: float
    heads_max: float


def build_candidate(wl: OffloadRun, policy: OffloadPolicy) -> CandidateModel:
    """Affine streams and peak memories for ``policy``'s batching and flags (see module doc)."""
    stage_units, moved, fp = _unit_streams(wl, policy)
    overhead = policy.num_gpu_batches * wl.step_overhead_s
    return CandidateModel(
        policy=policy, prompt_len=wl.prompt_len, gen_len=wl.gen_len,
        units={st: tuple(v) for st, v in stage_units.items()},
        step_overhead_s={"prefill": overhead, "decode": overhead},
        memory={stage: _stage_memory(wl, policy, fp, stage) for stage in STAGES},
        weight_bytes=fp.weight_bytes, kv_bytes=fp.kv_bytes, weight_moved_bytes=moved,
    )


def _unit_streams(wl: OffloadRun, policy: OffloadPolicy
                  ) -> tuple[dict[str, list[UnitStreams]], dict[str, float], _Footprint]:
    """Each unit's streams per stage (module doc), the weight bytes each stage moves, and the
    footprint the memory peaks are built from."""
    b, s = policy.block_size, wl.prompt_len
    # the cache holds s + n - 1 tokens: the last generated token's K/V is never stored
    c_mid, c_max = s + wl.gen_len / 2.0, float(s + wl.gen_len - 1)
    cw = policy.compress_weight
    w_el, p_el = wl.weight_bytes_per_element(cw), wl.plain_bytes_per_element
    k_el = wl.kv_bytes_per_element(policy.compress_cache)
    k16_el = wl.kv16_bytes_per_element
    a = wl.hidden_bytes_per_token
    stage_units: dict[str, list[UnitStreams]] = {"prefill": [], "decode": []}
    w_total = kv_total = 0.0
    w16_block_max = kv_max = kv16_max = heads_max = 0.0
    moved = {"prefill": 0.0, "decode": 0.0}
    tables = cw and wl.runtime.compress_tables  # the embedding tables are compressed too
    for u, t in zip(wl.units, wl.times(policy.gpu_batch_size, cw), strict=True):
        w = (u.linear_params * w_el + u.table_params * (w_el if tables else p_el)
             + (u.plain_params - u.table_params) * p_el)
        kt = u.kv_elements_per_token * k_el
        w_total += u.repeat * w
        kv_total += u.repeat * kt * b * c_max
        w16_block_max = max(w16_block_max, (u.block_linear_params_max
                                            + (u.table_params if tables else 0.0))
                            * wl.act_bytes)
        kv_max = max(kv_max, kt)
        kv16_max = max(kv16_max, u.kv_elements_per_token * k16_el)
        heads_max = max(heads_max, u.num_heads)
        hid = a if u.kind == "decoder" else 0.0
        for stage in STAGES:
            frac = wl.expert_touched_frac(u, b * s if stage == "prefill" else b)
            wm = w - u.expert_params * w_el * (1.0 - frac)
            moved[stage] += u.repeat * wm
            if stage == "prefill":
                streams = _prefill_streams(wl, u, t, wm, kt, hid, policy, frac)
            else:
                streams = _decode_streams(wl, u, t, wm, kt, hid, policy, frac, c_mid)
            stage_units[stage].append(UnitStreams(u.name, u.repeat, streams))
    return stage_units, moved, _Footprint(w_total, kv_total, w16_block_max, kv_max, kv16_max,
                                          heads_max)


def _stage_memory(wl: OffloadRun, policy: OffloadPolicy, fp: _Footprint, stage: str
                  ) -> dict[str, np.ndarray]:
    """Peak GPU, CPU and disk bytes of one stage, affine in the fractions: the homes of weights,
    cache and activations plus the working sets of the layer in flight."""
    gbs, b, s = policy.gpu_batch_size, policy.block_size, wl.prompt_len
    x, cw, cq = policy.cpu_cache_compute, policy.compress_weight, policy.compress_cache
    a = wl.hidden_bytes_per_token
    w_pair, _ = in_flight_weight_bytes(wl, cw)
    t_tok = float(s) if stage == "prefill" else 1.0
    keys = float(s) if stage == "prefill" else float(s + wl.gen_len - 1)
    hid_home = a * b * t_tok
    w_total, kv_total, kv_max, kv16_max = fp.weight_bytes, fp.kv_bytes, fp.kv_max, fp.kv16_max
    gpu = WG * w_total + CG * kv_total + HG * hid_home
    cpu = WC * w_total + CC * kv_total + HC * hid_home
    disk = WN * w_total + CN * kv_total + HN * hid_home
    # GPU working set of the layer in flight: its weights and the prefetched next layer's
    # (FlexGen's layers: attention and MLP apart, so one decoder layer's worth), the
    # decompressed matrices of one block, the next GPU batch's prefetched input, and the
    # larger of the core transient-activation peak (widest block) and FlexGen's attention
    # with materialised scores (residual + q/k/v/out + the score copies alive at once,
    # gbs x heads x t x keys each).
    gpu = gpu + (ONE - WG) * w_pair + (ONE - HG) * a * gbs * t_tok
    if cw:
        gpu = gpu + ONE * fp.w16_block_max
    tokens = gbs * t_tok
    copies = wl.runtime.prefill_score_copies if stage == "prefill" else 1
    attn_peak = max((2.0 * a + (u.q_elements_per_token + u.kv_elements_per_token
                                + u.o_elements_per_token) * wl.act_bytes) * tokens
                    + copies * gbs * u.num_heads * t_tok * keys * wl.act_bytes
                    for u in wl.units)
    gpu = gpu + ONE * max(wl.activation_working_bytes(tokens, gbs), attn_peak)
    # CPU staging of disk-resident data on its way to the GPU (the layer in flight and
    # the next; activations double-buffered)
    cpu = cpu + WN * w_pair + 2.0 * HN * a * gbs * t_tok
    if stage == "prefill" or not x:
        # new cache (prefill) / the cache a GPU batch reads (decode), current + next batch
        gpu = gpu + 2.0 * (ONE - CG) * kv_max * gbs * keys
        if cq:
            gpu = gpu + ONE * kv16_max * gbs * keys
    else:
        # attention on the CPU for the CPU/disk share: only the new token's K/V on the GPU
        gpu = gpu + 2.0 * (ONE - CG) * kv_max * gbs
        if cq:
            gpu = gpu + CG * kv16_max * gbs * keys
        cpu_attn = gbs * fp.heads_max * keys * 4.0  # fp32 scores of one GPU batch
        if cq:
            cpu_attn += kv16_max * gbs * keys
        cpu = cpu + (ONE - CG) * cpu_attn
    cpu = cpu + 2.0 * CN * kv_max * gbs * keys
    return {"gpu": gpu, "cpu": cpu, "disk": disk}


def in_flight_weight_bytes(wl: OffloadRun, compressed: bool) -> tuple[float, float]:
    """``(pair, largest)``: the largest weight bytes of two consecutive FlexGen layers (the one
    computing and the prefetched next: FlexLLMGen loads layer ``j + 1`` while ``j`` runs, with
    attention and MLP as separate layers) and of one layer, over the whole model."""
    sizes: list[float] = []
    for u in wl.units:
        one = wl.sublayer_bytes(u, compressed)
        sizes += one * min(u.repeat, 2)  # two instances show every adjacent pair
    if len(sizes) < 2:
        return (sizes[0] if sizes else 0.0), (sizes[0] if sizes else 0.0)
    return max(a + b for a, b in zip(sizes, sizes[1:], strict=False)), max(sizes)


def _prefill_streams(wl: OffloadRun, u: Unit, t: UnitTimes, wm: float, kt: float, hid: float,
                     policy: OffloadPolicy, frac: float) -> dict[str, np.ndarray]:
    machine: OffloadSystem = wl.system
    b, gbs, k, s = policy.block_size, policy.gpu_batch_size, policy.num_gpu_batches, \
        wl.prompt_len
    kv_new, h = kt * b * s, hid * b * s
    comp = t.prefill_other_s + t.prefill_attn_s + wl.prefill_attention_extra_s(u, gbs)
    comp += _dequant_weights_s(wl, u, policy, frac)
    if policy.compress_cache:
        comp += wl.cache_quantize_s(u, gbs * s)  # the new cache of one GPU batch
    pageable = (0.0 if policy.pin_weight else 1.0) * WC * wm
    return {
        "ctog": machine.h2d_s((ONE - WG) * wm + (ONE - HG) * h),
        "gtoc": machine.d2h_s((ONE - CG) * kv_new + (ONE - HG) * h),
        "dtoc": machine.disk_read_s(WN * wm + HN * h),
        "ctod": machine.disk_write_s(CN * kv_new + HN * h),
        "compute": ONE * (k * comp),
        STAGING: machine.pageable_staging_s(pageable),
    }


def _decode_streams(wl: OffloadRun, u: Unit, t: UnitTimes, wm: float, kt: float, hid: float,
                    policy: OffloadPolicy, frac: float, ctx: float) -> dict[str, np.ndarray]:
    machine: OffloadSystem = wl.system
    b, gbs, k = policy.block_size, policy.gpu_batch_size, policy.num_gpu_batches
    x = policy.cpu_cache_compute
    kv_ctx, kv_new, h = kt * b * ctx, kt * b, hid * b
    q_bytes = u.q_elements_per_token * wl.act_bytes * b
    o_bytes = u.o_elements_per_token * wl.act_bytes * b
    dq_w = _dequant_weights_s(wl, u, policy, frac)
    attn_gpu = t.decode_attn_s + wl.decode_attention_extra_s(u, gbs, ctx)
    quant_new = 0.0
    if policy.compress_cache:
        # decompress one GPU batch's cache before attention, compress the new token's K/V after
        attn_gpu += wl.cache_decompress_s(u, gbs, ctx)
        quant_new = wl.cache_quantize_s(u, gbs)
    pageable = (0.0 if policy.pin_weight else 1.0) * WC * wm
    if x:
        attn_cpu = wl.cpu_attention_s(u, t, gbs, ctx, policy.compress_cache)
        ctog = (ONE - WG) * wm + (ONE - HG) * h + (ONE - CG) * o_bytes
        gtoc = (ONE - HG) * h + (ONE - CG) * (kv_new + q_bytes)
        if wl.runtime.pageable_cache:
            pageable = pageable + (ONE - CG) * o_bytes
        comp = (ONE * (t.decode_other_s + dq_w + quant_new) + CG * attn_gpu
                + (ONE - CG) * attn_cpu)
    else:
        ctog = (ONE - WG) * wm + (ONE - HG) * h + (ONE - CG) * kv_ctx
        gtoc = (ONE - HG) * h + (ONE - CG) * kv_new
        if wl.runtime.pageable_cache:
            pageable = pageable + CC * kv_ctx
        comp = ONE * (t.decode_other_s + dq_w + quant_new + attn_gpu)
    return {
        "ctog": machine.h2d_s(ctog),
        "gtoc": machine.d2h_s(gtoc),
        "dtoc": machine.disk_read_s(WN * wm + CN * kv_ctx + HN * h),
        "ctod": machine.disk_write_s(CN * kv_new + HN * h),
        "compute": k * comp,
        STAGING: machine.pageable_staging_s(pageable),
    }


def _dequant_weights_s(wl: OffloadRun, u: Unit, policy: OffloadPolicy, frac: float) -> float:
    """GPU time to dequantize a layer's compressed matrices for one GPU batch (FlexGen
    decompresses them inside every GPU batch's compute; ``runtime.py``)."""
    tables = u.table_params if wl.runtime.compress_tables else 0.0
    if not policy.compress_weight or not (u.linear_params or tables):
        return 0.0
    params = u.linear_params + tables - u.expert_params * (1.0 - frac)
    return wl.weight_dequantize_s(params)


# ---------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class StageCost:
    """One stage at given fractions: per-step time, per-stream totals, per-unit detail."""

    time_s: float  # one step (prefill: the whole prefill)
    streams_s: dict[str, float]  # sum over layers of each stream
    bound_s: dict[str, float]  # layer time attributed to the stream that bounds each layer
    overhead_s: float
    layers: tuple[dict[str, object], ...]

    @property
    def bound(self) -> str:
        return max(self.bound_s, key=self.bound_s.get) if self.bound_s else "compute"


def layer_time(vals: dict[str, float], overlap: bool) -> float:
    """One layer: serial staging, then the slowest concurrent stream (their sum without
    overlap)."""
    concurrent = [v for name, v in vals.items() if name != STAGING]
    return vals.get(STAGING, 0.0) + (max(concurrent) if overlap else sum(concurrent))


def stage_cost(cm: CandidateModel, stage: str, fractions: tuple[float, ...]) -> StageCost:
    """Time of one step of ``stage`` at ``fractions`` (per layer: staging + the max of the
    streams, or the sum of all without overlap), with what bounds it."""
    overlap = cm.policy.overlap
    totals = dict.fromkeys(TIME_PARTS, 0.0)
    bound = dict.fromkeys(TIME_PARTS, 0.0)
    layers = []
    time = 0.0
    for us in cm.units[stage]:
        vals = {name: max(0.0, value(expr, fractions)) for name, expr in us.streams.items()}
        layer_t = layer_time(vals, overlap)
        top = max(vals, key=vals.get)
        for name, v in vals.items():
            totals[name] += us.repeat * v
        bound[top] += us.repeat * layer_t
        time += us.repeat * layer_t
        layers.append({"name": us.name, "repeat": us.repeat, "time_s": layer_t, "bound": top,
                       "streams_s": vals})
    ov = cm.step_overhead_s[stage]
    return StageCost(time + ov, totals, {k: v for k, v in bound.items() if v > 0}, ov,
                     tuple(layers))


def peaks(cm: CandidateModel, fractions: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """Peak bytes per stage and tier at ``fractions``."""
    return {stage: {tier: max(0.0, value(expr, fractions)) for tier, expr in tiers.items()}
            for stage, tiers in cm.memory.items()}
