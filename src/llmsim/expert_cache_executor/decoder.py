"""A Llama-like MoE decoder with an offloaded expert cache, in PyTorch: one sequence, or
``batch`` sequences decoded together.

A step runs ``[B, T]`` tokens: ``T`` new tokens of each of the ``B`` sequences (the prefill of
``B`` prompts, then one token each per decode step). Attention runs per sequence over its own
KV cache; the MoE block runs over all ``B x T`` rows at once, so each MoE layer looks up the
union of the experts the batch's tokens pick -- what the serving simulator's expert cache
prices per engine step. Rows are sequence-major (sequence 0's tokens, then sequence 1's...),
as a batched routing trace lists them.

Per layer: ``x += attention(rms_norm(x))``; ``x += moe(rms_norm(x))`` (two residual adds), then
a final RMSNorm and the LM head on the last position. Random weights from a seed (uniform with
the variance of ``N(0, 1/fan_in)``; the embedding ``N(0, 1)``-like); nothing is downloaded.

Routing: ``router`` (the model's own top-k) or a forced :class:`RoutingTrace` (drawn from a
distribution or read from a file), in which case the router still runs and supplies the combine
weights. Expert placement follows :class:`~llmsim.expert_cache.ExpertCacheEngine` exactly as the
simulation does: the same calls in the same order (prefetch when the previous layer starts,
access after the router), so hits, misses and prefetch guesses are the simulation's.

The prefetcher needs to know the experts a layer will use (it is an oracle degraded to accuracy
``a``). With forced routing that is the trace; with the model's router it is the routing
recorded by an untimed reference pass over the same tokens (the warm-up).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsim.errors import ConfigError
from llmsim.expert_cache.cache import ExpertCacheEngine
from llmsim.expert_cache.config import MissMode, MoEModelConfig, OffloadConfig
from llmsim.expert_cache.routing import RoutingTrace
from llmsim.expert_cache_executor import functional as L
from llmsim.expert_cache_executor._torch import require_torch
from llmsim.expert_cache_executor.store import ExpertStore

torch = require_torch()
log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    """Timing and placement of one executed step (prefill or one decode token)."""

    step: int
    tokens: int
    time_s: float
    layer_s: list[float]
    hits: int
    misses: int
    h2d_bytes: float
    d2h_bytes: float


@dataclass
class _Weights:
    embed: Any
    final_norm: Any
    lm_head: Any
    attn_norm: list[Any] = field(default_factory=list)
    wq: list[Any] = field(default_factory=list)
    wkv: list[Any] = field(default_factory=list)
    wo: list[Any] = field(default_factory=list)
    moe_norm: list[Any] = field(default_factory=list)
    router: list[Any] = field(default_factory=list)


def _uniform(shape: tuple[int, ...], fan_in: int, gen: Any, device: str, dtype: Any) -> Any:
    bound = math.sqrt(3.0 / fan_in)
    t = torch.empty(shape, device=device, dtype=torch.float32)
    t.uniform_(-bound, bound, generator=gen)
    return t.to(dtype)


class MoEExecutor:
    """Build the model and run prefill / decode steps with hybrid expert placement.

    ``device``: ``cpu`` or ``cuda``; ``dtype``: a torch dtype. ``max_tokens``: KV-cache length.
    """

    def __init__(self, config: MoEModelConfig, offload: OffloadConfig, device: str,
                 dtype: Any, seed: int = 0, max_tokens: int = 2048, nvtx: bool = False,
                 batch: int = 1):
        offload.for_model(config.num_experts)
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, got {batch}")
        self.batch = batch
        self.config, self.offload = config, offload
        self.device, self.dtype = device, dtype
        self.cuda = device.startswith("cuda")
        self.nvtx = nvtx and self.cuda
        self.max_tokens = max_tokens
        if max_tokens > config.max_position_embeddings:
            raise ConfigError(f"{max_tokens} tokens exceed max_position_embeddings "
                              f"{config.max_position_embeddings}")
        c = config
        self.moe_layers = list(range(c.num_layers))
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        h, kv = c.hidden_size, c.num_kv_heads * c.head_dim
        w = _Weights(
            embed=_uniform((c.vocab_size, h), 3, gen, device, dtype),  # ~N(0,1) per element
            final_norm=torch.ones(h, device=device, dtype=dtype),
            lm_head=_uniform((c.vocab_size, h), h, gen, device, dtype),
        )
        host_w13, host_w2 = [], []
        pin = self.cuda
        for _ in range(c.num_layers):
            w.attn_norm.append(torch.ones(h, device=device, dtype=dtype))
            w.moe_norm.append(torch.ones(h, device=device, dtype=dtype))
            w.wq.append(_uniform((c.num_heads * c.head_dim, h), h, gen, device, dtype))
            w.wkv.append(_uniform((2 * kv, h), h, gen, device, dtype))
            w.wo.append(_uniform((h, c.num_heads * c.head_dim), c.num_heads * c.head_dim, gen,
                                 device, dtype))
            w.router.append(_uniform((c.num_experts, h), h, gen, device, dtype))
            w13 = _uniform((c.num_experts, 2 * c.expert_intermediate_size, h), h, gen, device,
                           dtype)
            w2 = _uniform((c.num_experts, h, c.expert_intermediate_size),
                          c.expert_intermediate_size, gen, device, dtype)
            if self.cuda:
                w13 = w13.to("cpu").pin_memory() if pin else w13.to("cpu")
                w2 = w2.to("cpu").pin_memory() if pin else w2.to("cpu")
            host_w13.append(w13)
            host_w2.append(w2)
        self.w = w
        self.store = ExpertStore(host_w13, host_w2, self.moe_layers, offload.capacity,
                                 offload.prefetch, device)
        self.cos, self.sin = L.rope_tables(c.head_dim, max_tokens, c.rope_theta, device,
                                           dtype)
        # per sequence, per layer: [max_tokens, Hkv, D]; k_cache / v_cache: sequence 0's
        self.k_caches = [[torch.zeros((max_tokens, c.num_kv_heads, c.head_dim), device=device,
                                      dtype=dtype) for _ in range(c.num_layers)]
                         for _ in range(batch)]
        self.v_caches = [[torch.zeros_like(k) for k in ks] for ks in self.k_caches]
        self.k_cache, self.v_cache = self.k_caches[0], self.v_caches[0]
        self.kv_len = 0
        self.step = 0
        self.engine: ExpertCacheEngine | None = None
        self.forced: RoutingTrace | None = None
        self.oracle: RoutingTrace | None = None
        self.records: list[StepRecord] = []
        self.recorded = RoutingTrace(c.num_experts, c.top_k, tuple(self.moe_layers),
                                     batch=batch)
        self.d2h_bytes = 0.0
        self.host_device = "cpu"

    # ------------------------------------------------------------------ state
    def reset(self, prior_counts: np.ndarray | None = None, forced: RoutingTrace | None = None,
              oracle: RoutingTrace | None = None) -> None:
        """Empty the KV cache, restore the initial expert cache (hottest by ``prior_counts``,
        default uniform) and reset counters. ``forced``: replay this routing; ``oracle``: the
        routing the prefetcher predicts from (default: ``forced``)."""
        c = self.config
        prior = prior_counts if prior_counts is not None else \
            np.ones((c.num_layers, c.num_experts))
        self.engine = ExpertCacheEngine(self.offload, c.num_experts, self.moe_layers,
                                        c.num_layers, prior)
        for layer in self.moe_layers:
            self.store.fill(layer, self.engine.slots(layer))
        self.store.reset_counters()
        self.forced = forced
        self.oracle = oracle if oracle is not None else forced
        if self.offload.prefetch and self.oracle is None:
            log.warning("no routing oracle: prefetch is off for this run (record one with a "
                        "reference pass, see run_benchmark)")
        self.kv_len = 0
        self.step = 0
        self.records = []
        self.recorded = RoutingTrace(c.num_experts, c.top_k, tuple(self.moe_layers),
                                     batch=self.batch)
        self.d2h_bytes = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def _range(self, name: str):
        if self.nvtx:
            torch.cuda.nvtx.range_push(name)
        try:
            yield
        finally:
            if self.nvtx:
                torch.cuda.nvtx.range_pop()

    # ------------------------------------------------------------------ forward
    @torch.inference_mode()
    def forward(self, tokens: Any, all_logits: bool = False) -> Any:
        """Run one step over ``tokens`` after the cached ones: 1-D ids (one sequence; returns
        the logits of the last position ``[vocab]``, ``[T, vocab]`` with ``all_logits``) or,
        with ``batch > 1``, ``[B, T]`` ids (returns ``[B, vocab]``: each sequence's last
        position)."""
        if self.engine is None:
            self.reset()
        engine = self.engine
        assert engine is not None
        c = self.config
        b = self.batch
        tokens = torch.as_tensor(tokens, device=self.device)
        if b > 1 and (tokens.ndim != 2 or tokens.shape[0] != b):
            raise ConfigError(f"a batch-{b} executor steps [{b}, T] tokens, got shape "
                              f"{list(tokens.shape)}")
        t = int(tokens.shape[-1]) if b > 1 else int(tokens.numel())
        tokens = tokens.reshape(-1)
        if self.kv_len + t > self.max_tokens:
            raise ConfigError(f"KV cache full: {self.kv_len} + {t} > {self.max_tokens} tokens")
        step = self.step
        if self.forced is not None and step >= len(self.forced.steps):
            raise ConfigError(f"the forced routing has {len(self.forced.steps)} steps; step "
                              f"{step} asked")
        engine.begin_step(step)
        self.recorded.steps.append({})
        h2d0, d2h0 = self.store.h2d_bytes, self.d2h_bytes
        hits0, miss0 = engine.total.hits, engine.total.misses
        self._sync()
        t0 = time.perf_counter()
        events = []
        with self._range(f"step {step}"):
            x = self.w.embed[tokens]
            marks = [time.perf_counter()]
            if self.cuda:
                events.append(torch.cuda.Event(enable_timing=True))
                events[-1].record()
            pos0 = self.kv_len
            for i in range(c.num_layers):
                with self._range(f"layer {i}"):
                    x = self._layer(i, x, pos0, step, t)
                if self.cuda:
                    events.append(torch.cuda.Event(enable_timing=True))
                    events[-1].record()
                else:
                    marks.append(time.perf_counter())
            rows = x[t - 1::t] if b > 1 else (x if all_logits else x[-1:])
            logits = torch.nn.functional.linear(L.rms_norm(rows, self.w.final_norm,
                                                           c.rms_norm_eps), self.w.lm_head)
            logits = logits.float()
        self._sync()
        elapsed = time.perf_counter() - t0
        if self.cuda:
            layer_s = [events[k].elapsed_time(events[k + 1]) / 1e3
                       for k in range(len(events) - 1)]
        else:
            layer_s = [marks[k + 1] - marks[k] for k in range(len(marks) - 1)]
        self.kv_len += t
        self.step += 1
        self.records.append(StepRecord(step, t * b, elapsed, layer_s,
                                       engine.total.hits - hits0, engine.total.misses - miss0,
                                       self.store.h2d_bytes - h2d0, self.d2h_bytes - d2h0))
        if b > 1:
            return logits
        return logits if all_logits else logits[0]

    def _attention(self, i: int, hn: Any, pos0: int, t: int) -> Any:
        """Layer ``i``'s attention: one sequence, or the batch's projections at once and each
        sequence's attention over its own KV cache (``t`` rows each)."""
        c, w = self.config, self.w
        if self.batch == 1:
            return L.attention(hn, w.wq[i], w.wkv[i], w.wo[i], self.k_cache[i],
                               self.v_cache[i], pos0, self.cos, self.sin, c.num_heads,
                               c.num_kv_heads, c.head_dim)
        return L.attention_batched(hn, w.wq[i], w.wkv[i], w.wo[i],
                                   [k[i] for k in self.k_caches], [v[i] for v in self.v_caches],
                                   pos0, self.cos, self.sin, c.num_heads, c.num_kv_heads,
                                   c.head_dim, t)

    def _layer(self, i: int, x: Any, pos0: int, step: int, t: int) -> Any:
        c, w, engine = self.config, self.w, self.engine
        assert engine is not None
        target = engine.prefetch_target(i)
        if target is not None and self.oracle is not None:
            plan = engine.prefetch(target, self.oracle.experts(step, target))
            for load in plan.loads:
                self.store.load(target, load)
        hn = L.rms_norm(x, w.attn_norm[i], c.rms_norm_eps)
        x = x + self._attention(i, hn, pos0, t)
        hn = L.rms_norm(x, w.moe_norm[i], c.rms_norm_eps)
        return self.moe(i, hn, x, step)

    def moe(self, i: int, hn: Any, residual: Any, step: int) -> Any:
        """Route, place and compute the experts of MoE layer ``i``; returns ``residual + out``.
        (Public so that ``measure.py`` can time its fixed cost.)"""
        c, engine, store = self.config, self.engine, self.store
        assert engine is not None
        forced = None
        if self.forced is not None:
            forced = torch.as_tensor(self.forced.steps[step][i], device=self.device)
        ids, weights = L.route(hn, self.w.router[i], c.top_k, forced)
        ids_np = ids.cpu().numpy() if forced is None else self.forced.steps[step][i]
        self.recorded.steps[-1][i] = np.sort(ids_np, axis=1) if forced is None else ids_np
        t = hn.shape[0]
        flat = ids_np.ravel()
        counts = np.bincount(flat, minlength=c.num_experts)
        experts = np.nonzero(counts)[0]
        plan = engine.access(i, experts, counts[experts])
        order_np = np.argsort(flat, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(counts)])
        order = torch.as_tensor(order_np, device=self.device)
        ybuf = torch.empty((t * c.top_k, c.hidden_size), device=self.device, dtype=self.dtype)

        def rows(e: int) -> Any:
            return order[offsets[e]:offsets[e + 1]]

        cpu_misses = plan.misses if self.offload.miss == MissMode.CPU else ()
        if cpu_misses:
            x_host, cpu_rows = self._to_host(hn, order_np, offsets, cpu_misses, c.top_k)
        resident = [(e, s) for e, s in zip(plan.hits, plan.hit_slots, strict=True)
                    if e not in plan.prefetched]
        resident += [(e, s) for e, s in zip(plan.hits, plan.hit_slots, strict=True)
                     if e in plan.prefetched]
        for e, slot in resident:
            self._gpu_expert(i, e, slot, hn, ybuf, rows(e), c.top_k)
        for load in plan.loads:
            store.load(i, load)
            self._gpu_expert(i, load.expert, load.slot, hn, ybuf, rows(load.expert), c.top_k)
        if cpu_misses:
            self._cpu_experts(i, cpu_misses, x_host, cpu_rows, ybuf, order, offsets)
        store.drop_staged(i)
        return L.combine(ybuf, weights, residual)

    def _gpu_expert(self, i: int, e: int, slot: int, hn: Any, ybuf: Any, r: Any,
                    k: int) -> None:
        w13, w2, token = self.store.weights(i, e, slot)
        L.expert_into(hn, ybuf, r, k, w13, w2)
        self.store.release(token)

    def _to_host(self, hn: Any, order_np: np.ndarray, offsets: np.ndarray,
                 misses: tuple[int, ...], k: int) -> tuple[Any, dict[int, Any]]:
        """Move the hidden states of the tokens routed to CPU experts down (one copy)."""
        toks = np.unique(np.concatenate([order_np[offsets[e]:offsets[e + 1]] // k
                                         for e in misses]))
        sel = hn.index_select(0, torch.as_tensor(toks, device=self.device))
        x_host = sel.to("cpu") if self.cuda else sel.clone()
        self.d2h_bytes += x_host.numel() * x_host.element_size()
        pos = {int(tok): n for n, tok in enumerate(toks)}
        rows = {e: torch.as_tensor([pos[int(a) // k] for a in
                                    order_np[offsets[e]:offsets[e + 1]]]) for e in misses}
        return x_host, rows

    def _cpu_experts(self, i: int, misses: tuple[int, ...], x_host: Any,
                     cpu_rows: dict[int, Any], ybuf: Any, order: Any,
                     offsets: np.ndarray) -> None:
        """Compute the missed experts on the host; send their outputs back (one copy)."""
        outs = []
        for e in misses:
            w13, w2 = self.store.host_weights(i, e)
            outs.append(L.expert_ffn(x_host.index_select(0, cpu_rows[e]), w13, w2))
        y = torch.cat(outs)
        y_dev = y.to(self.device) if self.cuda else y.clone()
        self.store.h2d_bytes += y.numel() * y.element_size()
        idx = torch.cat([order[offsets[e]:offsets[e + 1]] for e in misses])
        ybuf.index_copy_(0, idx, y_dev)
