"""The batched executor (issue 15, part 3): B sequences decoded together, attention per
sequence, the MoE over the union of the batch's experts -- against a lone sequence and the
batched simulation (the serving simulator's expert-offload steps)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llmsim.expert_cache import resolve_routing, simulate  # noqa: E402
from llmsim.expert_cache_executor import MoEExecutor, run_benchmark, run_decode, run_prefill  # noqa: E402
from llmsim.expert_cache_executor.runner import prompt_ids  # noqa: E402


def make(tiny, batch, **offload):
    cfg = tiny.offload.replace(**offload) if offload else tiny.offload
    return MoEExecutor(tiny.model, cfg, "cpu", torch.float32, seed=0, max_tokens=64,
                       batch=batch)


def test_each_sequence_of_a_batch_decodes_as_it_would_alone(tiny):
    """Attention per sequence over its own KV cache, experts per row: sequence ``b`` of a
    batch gives the logits it gives alone (to fp32 rounding of the batched GEMMs)."""
    prompts = [prompt_ids(tiny.model.vocab_size, 12, seed) for seed in (1, 2, 3)]
    batched = make(tiny, 3)
    batched.reset()
    logits = batched.forward(prompts)
    assert logits.shape == (3, tiny.model.vocab_size)
    step = batched.forward([[5], [6], [7]])
    assert batched.kv_len == 13 and batched.records[-1].tokens == 3
    for b, prompt in enumerate(prompts):
        alone = make(tiny, 1)
        alone.reset()
        torch.testing.assert_close(alone.forward(prompt), logits[b], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(alone.forward([5 + b]), step[b], rtol=1e-4, atol=1e-4)
    # sequence 1's KV cache holds its own keys, not sequence 0's
    assert not torch.equal(batched.k_caches[0][0][:13], batched.k_caches[1][0][:13])


def test_batch_looks_up_the_union_of_its_experts(tiny):
    ex = make(tiny, 4, prefetch=0)
    ex.reset()
    pre = run_prefill(ex, [prompt_ids(tiny.model.vocab_size, 8, s) for s in range(4)], warmup=0)
    dec = run_decode(ex, 3, pre.next_token)
    assert isinstance(pre.next_token, tuple) and len(pre.next_token) == 4
    assert len(dec.generated) == 3 and all(len(t) == 4 for t in dec.generated)
    trace = ex.recorded
    assert trace.batch == 4 and trace.prompt_tokens == 32
    for s in range(1, 4):
        for layer in trace.moe_layers:
            assert trace.steps[s][layer].shape == (4, tiny.model.top_k)
    # per step and layer: one lookup per distinct expert of the batch's 4 tokens
    lookups = sum(len(trace.experts(s, layer)) for s in range(4) for layer in trace.moe_layers)
    assert ex.engine.total.hits + ex.engine.total.misses == lookups


@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("miss", ["fetch", "cpu"])
def test_forced_routing_matches_the_batched_simulation(tiny, batch, miss):
    """Forced routing: the executor's hits, misses and copies are the simulation's for the
    same batch, exactly (the shared cache engine makes the same decisions)."""
    off = tiny.offload.replace(miss=miss)
    res = run_benchmark(tiny.model, off, device="cpu", routing="zipf:1.1", prompt_tokens=8,
                        decode_steps=4, warmup=0, repeats=1, batch=batch)
    sim = simulate(tiny.model.to_model_spec(), config=off, routing="zipf:1.1",
                   prompt_tokens=8, decode_steps=4, allow_overflow=True, batch=batch)
    assert res.batch == batch and sim.batch == batch
    assert res.hits + res.misses == sim.stats["total"]["hits"] + sim.stats["total"]["misses"]
    assert res.hit_rate == sim.hit_rate
    assert res.decode_hit_rate == sim.decode_hit_rate
    assert res.h2d_bytes == pytest.approx(sim.h2d_bytes)
    assert res.tokens_per_s == pytest.approx(batch / res.decode_s_per_token)


def test_batch_routing_is_the_serving_streams(tiny):
    """The batched trace is drawn step by step as the serving simulator draws its steps."""
    spec = tiny.model.to_model_spec()
    src = resolve_routing("zipf:1.1", spec, 8, 3, 0, batch=3)
    assert src.trace.batch == 3 and src.trace.prompt_tokens == 24
    assert [src.trace.steps[s][0].shape[0] for s in range(4)] == [24, 3, 3, 3]


def test_check_batch_cli(cli):
    res = cli("executor", "check", "--config", "tiny", "--device", "cpu", "--quick",
              "--repeats", "1", "--warmup", "0", "--threads", "1", "--routing", "zipf:1.2",
              "--batch", "3", "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert d["batch"] == 3
    assert d["predicted"]["hit_rate"] == d["measured"]["hit_rate"]  # forced routing
    assert d["bytes_copied"]["predicted"] == pytest.approx(d["bytes_copied"]["measured"])
    assert len(d["measured_step_s"]) == len(d["predicted_step_s"]) == d["decode_steps"]
    assert d["step_error_frac"][0] == pytest.approx(
        (d["predicted_step_s"][0] - d["measured_step_s"][0]) / d["measured_step_s"][0])
    bad = cli("executor", "check", "--config", "tiny", "--device", "cpu", "--batch", "2",
              "--routing", "zipf:1.2,sticky=0.5")
    assert bad.code == 2 and "sticky" in bad.err
