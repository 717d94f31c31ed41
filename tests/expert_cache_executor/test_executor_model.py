"""The PyTorch executor on CPU with tiny configs: shapes, KV cache, numerics, placement."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from llmsim.expert_cache import (  # noqa: E402
    MissMode,
    OffloadConfig,
    load_moe_config,
    resolve_routing,
    simulate,
)
from llmsim.expert_cache.routing import RoutingSource  # noqa: E402
from llmsim.expert_cache_executor import MoEExecutor, run_benchmark, run_decode, run_prefill  # noqa: E402
from llmsim.expert_cache_executor.runner import build_executor, prompt_ids  # noqa: E402


def make(tiny, **offload):
    cfg = tiny.offload.replace(**offload) if offload else tiny.offload
    return MoEExecutor(tiny.model, cfg, "cpu", torch.float32, seed=0, max_tokens=64)


def test_shapes_and_kv_growth(tiny):
    ex = make(tiny)
    ex.reset()
    logits = ex.forward(list(range(10)), all_logits=True)
    assert logits.shape == (10, tiny.model.vocab_size) and torch.isfinite(logits).all()
    assert ex.kv_len == 10
    one = ex.forward([3])
    assert one.shape == (tiny.model.vocab_size,)
    assert ex.kv_len == 11
    assert ex.k_cache[0][:11].abs().sum() > 0 and ex.k_cache[0][11:].abs().sum() == 0
    assert len(ex.records) == 2 and ex.records[0].tokens == 10
    assert len(ex.records[1].layer_s) == tiny.model.num_layers


@pytest.mark.parametrize("miss", [MissMode.FETCH, MissMode.CPU])
@pytest.mark.parametrize("policy", ["lru", "static"])
def test_decode_logits_equal_prefill_logits(tiny, miss, policy):
    """Prefill of n tokens vs prefill of n-3 then 3 decode steps: same logits (KV path)."""
    tokens = prompt_ids(tiny.model.vocab_size, 12, seed=1)
    ex = make(tiny, miss=miss, policy=policy, capacity=2)
    ex.reset()
    full = ex.forward(tokens, all_logits=True)
    ex.reset()
    ex.forward(tokens[:9])
    steps = [ex.forward([t]) for t in tokens[9:]]
    for i, logits in enumerate(steps):
        torch.testing.assert_close(logits, full[9 + i], rtol=1e-4, atol=1e-4)
    # and placement does not change numerics: everything cached gives the same logits
    all_in = make(tiny, capacity=tiny.model.num_experts, prefetch=0)
    all_in.reset()
    torch.testing.assert_close(all_in.forward(tokens, all_logits=True), full, rtol=1e-5,
                               atol=1e-5)


def test_run_prefill_and_decode_reports(tiny):
    ex = make(tiny)
    pre = run_prefill(ex, prompt_ids(tiny.model.vocab_size, 16, 0), warmup=1)
    assert pre.tokens == 16 and pre.kv_len == 16 and pre.time_s > 0
    assert pre.hits + pre.misses > 0 and len(pre.layer_s) == tiny.model.num_layers
    dec = run_decode(ex, 5, pre.next_token)
    assert dec.tokens == 5 and dec.kv_len == 21 and len(dec.step_s) == 5
    assert len(dec.generated) == 5 and dec.tokens_per_s > 0


@pytest.mark.parametrize("policy, miss, routing", [
    ("lru", MissMode.FETCH, "zipf:1.2"),
    ("lfu", MissMode.CPU, "uniform,sticky=0.5"),
    ("static", MissMode.FETCH, "correlated:0.7"),
    ("lru", MissMode.CPU, "router"),
])
def test_hit_accounting_matches_the_simulation(tiny, policy, miss, routing):
    """Same routing, same engine: the executor's counters are the simulation's, exactly."""
    off = tiny.offload.replace(policy=policy, miss=miss, capacity=3, prefetch=2)
    res = run_benchmark(tiny.model, off, device="cpu", routing=routing, prompt_tokens=16,
                        decode_steps=12, warmup=0, repeats=1)
    trace = res.routing_trace
    source = RoutingSource("replay", trace, trace.expert_counts())
    if routing != "router":  # the simulation draws the same routing itself
        source = resolve_routing(routing, load_moe_config(tiny.model).to_model_spec(), 16, 12,
                                 off.seed)
        for a, b in zip(source.trace.steps, trace.steps, strict=True):
            for layer in a:
                np.testing.assert_array_equal(a[layer], b[layer])
    sim = simulate(tiny.model.to_model_spec(), "h100-sxm", "generic-pcie5-ddr5", off, source)
    assert sim.stats == res.stats
    assert sim.hit_rate == res.hit_rate
    # the bytes moved agree too: whole experts (fetch, prefetch) and CPU experts' activations
    assert res.h2d_bytes == pytest.approx(sim.h2d_bytes)
    assert res.d2h_bytes == pytest.approx(sim.d2h_bytes)


def test_prefetch_accuracy_is_honoured_by_the_executor(tiny):
    off = tiny.offload.replace(capacity=2, prefetch=2, prefetch_accuracy=0.5)
    res = run_benchmark(tiny.model, off, device="cpu", routing="uniform", prompt_tokens=4,
                        decode_steps=150, warmup=0, repeats=1)
    dec = res.stats["decode"]
    assert dec["prefetch_guesses"] == 150 * 2  # one prefetched layer (the second) per step
    assert dec["prefetch_accuracy"] == pytest.approx(0.5, abs=0.1)


def test_forced_routing_from_a_trace_file(tiny, tmp_path):
    spec = tiny.model.to_model_spec()
    trace = resolve_routing("zipf:1.0", spec, 8, 3, seed=2).trace
    path = tmp_path / "r.jsonl"
    trace.write(path)
    res = run_benchmark(tiny.model, tiny.offload, device="cpu", routing=str(path),
                        warmup=0, repeats=1, trace_out=str(tmp_path / "out.csv"))
    assert res.prompt_tokens == 8 and res.decode_steps == 3 and res.kv_len == 11
    assert (tmp_path / "out.csv").read_text().startswith("step,layer,token,experts")
    for a, b in zip(trace.steps, res.routing_trace.steps, strict=True):
        for layer in a:
            np.testing.assert_array_equal(a[layer], b[layer])


def test_build_from_config_file_and_dtype(tmp_path, tiny):
    p = tmp_path / "m.json"
    p.write_text(tiny.model.model_dump_json())
    ex = build_executor(str(p), OffloadConfig(capacity=2, prefetch=1), "cpu", "bf16", 0, 32)
    assert ex.dtype == torch.bfloat16
    ex.reset()
    assert ex.forward([1, 2, 3]).shape == (tiny.model.vocab_size,)
    from llmsim.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16"):
        build_executor(str(p), OffloadConfig(capacity=2), "cpu", "fp16", 0, 32)
    with pytest.raises(ConfigError, match="cannot build"):
        build_executor("deepseek-v2-lite", OffloadConfig(capacity=2), "cpu", None, 0, 32)


@pytest.mark.gpu
def test_cuda_matches_the_simulation_and_the_kv_path(tiny):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    off = tiny.offload.replace(capacity=3, prefetch=2)
    res = run_benchmark(tiny.model, off, device="cuda", dtype="fp32", routing="zipf:1.2",
                        prompt_tokens=16, decode_steps=8, warmup=1, repeats=1)
    source = resolve_routing("zipf:1.2", tiny.model.to_model_spec(), 16, 8, off.seed)
    sim = simulate(tiny.model.to_model_spec(), "h100-sxm", "generic-pcie5-ddr5", off, source)
    assert sim.stats == res.stats
    ex = MoEExecutor(tiny.model, off, "cuda", torch.float32, seed=0, max_tokens=64)
    tokens = list(range(12))
    ex.reset()
    full = ex.forward(tokens, all_logits=True)
    ex.reset()
    ex.forward(tokens[:11])
    torch.testing.assert_close(ex.forward(tokens[11:]), full[11], rtol=1e-3, atol=1e-3)
