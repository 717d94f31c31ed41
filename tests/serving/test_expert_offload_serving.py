"""Expert offloading under load (issue 15, part 3): the serving simulator's per-replica expert
cache against ``moe-offload simulate``, and how hit rate and stalls move with capacity, batch
and routing skew.

"Equals" below: with one request in flight the serving run's steps are ``moe-offload
simulate``'s steps of that request (the same shapes priced by the same step model, the same
cache engine, the same routing and prefetch streams of the seed), so hit, miss and byte counts
are equal exactly; times are equal to 1e-12 relative: the serving TTFT / TPOT are differences
of event-loop times (``finish - first token``) divided by the token count, moe-offload's the
mean of its step durations, and the two round differently in the last bits.
"""

from __future__ import annotations

import pytest

from llmsim.errors import LLMSimError
from llmsim.expert_cache import OffloadConfig
from llmsim.expert_cache import simulate as moe_offload
from llmsim.serving.config import SimulationConfig, load_config
from llmsim.serving.run import simulate

REL = 1e-12
MIXTRAL = {"name": "mixtral-8x7b", "dtype": "int4"}
DSV2 = {"name": "deepseek-v2-lite", "dtype": "int4"}


def _config(model=MIXTRAL, num_requests=1, prompt=64, output=9, seed=3, arrival="batch",
            rate=None, concurrency=None, **offload):
    wl = {"arrival": arrival, "num_requests": num_requests, "prompt": prompt, "output": output,
          "seed": seed}
    if rate is not None:
        wl["rate"] = rate
    if concurrency is not None:
        wl["concurrency"] = concurrency
    eo = {"cache_experts": 2, "prefetch": 2, "prefetch_accuracy": 0.8, **offload}
    return {"model": model, "hardware": "rtx-4090", "workload": wl, "expert_offload": eo}


def _moe(model=MIXTRAL, prompt=64, output=9, seed=3, batch=1, cache_experts=2, prefetch=2,
         prefetch_accuracy=0.8, policy="lru", miss="fetch", routing="uniform"):
    config = OffloadConfig(capacity=cache_experts, prefetch=prefetch,
                           prefetch_accuracy=prefetch_accuracy, policy=policy, miss=miss,
                           seed=seed)
    return moe_offload(model["name"], "rtx-4090", config=config, routing=routing,
                       prompt_tokens=prompt, decode_steps=output - 1, dtype=model["dtype"],
                       allow_overflow=True, batch=batch)


def _offload(report) -> dict:
    return report.summary()["expert_offload"]


# ---------------------------------------------------------------------- one request == moe-offload
@pytest.mark.parametrize(("policy", "miss", "routing"), [
    ("lru", "fetch", "uniform"),
    ("lfu", "fetch", "zipf:1.2"),
    ("static", "fetch", "zipf:1.2,corr=0.5"),
    ("lru", "cpu", "correlated:0.6"),
    ("static", "cpu", "uniform"),
])
def test_one_request_equals_moe_offload(policy, miss, routing):
    rep = simulate(_config(policy=policy, miss=miss, routing=routing))
    s = rep.summary()
    eo = s["expert_offload"]
    ref = _moe(policy=policy, miss=miss, routing=routing)
    assert s["num_completed"] == 1
    assert s["ttft_s"]["mean"] == pytest.approx(ref.prefill_s, rel=REL)
    assert s["tpot_s"]["mean"] == pytest.approx(ref.decode_s_per_token, rel=REL)
    assert s["e2e_s"]["mean"] == pytest.approx(ref.e2e_s, rel=REL)
    assert eo["hit_rate"] == ref.hit_rate  # exact: the same lookups
    assert eo["prefill_hit_rate"] == ref.prefill_hit_rate
    assert eo["decode_hit_rate"] == ref.decode_hit_rate
    assert eo["token_hit_rate"] == ref.token_hit_rate
    assert eo["bytes_fetched"] == ref.pcie_bytes
    assert eo["stall_s"] == pytest.approx(ref.stall_s, rel=1e-9)
    assert eo["num_steps"] == 1 + ref.decode_steps


def test_one_request_replays_a_routing_trace_as_moe_offload(tmp_path):
    ref = _moe(routing="zipf:1.1")
    path = tmp_path / "routing.jsonl"
    from llmsim.expert_cache import load_moe_model, resolve_routing

    src = resolve_routing("zipf:1.1", load_moe_model("mixtral-8x7b"), 64, 8, 3)
    src.trace.write(path)
    rep = simulate(_config(routing=str(path)))
    eo, s = _offload(rep), rep.summary()
    traced = _moe(routing=str(path))
    assert traced.hit_rate != ref.hit_rate or traced.prefill_s > 0  # a real replay ran
    assert eo["hit_rate"] == traced.hit_rate
    assert s["tpot_s"]["mean"] == pytest.approx(traced.decode_s_per_token, rel=REL)
    assert eo["routing"].startswith("trace ")


@pytest.mark.parametrize("batch", [2, 5])
def test_batch_arriving_together_equals_batched_moe_offload(batch):
    """B requests arriving at once: one prefill step of the B prompts, then steps of B
    tokens -- ``moe-offload simulate``'s batch (and the batched executor's check)."""
    rep = simulate(_config(num_requests=batch, routing="zipf:1.2"))
    s, eo = rep.summary(), _offload(rep)
    ref = _moe(batch=batch, routing="zipf:1.2")
    assert s["num_completed"] == batch
    assert eo["num_steps"] == 1 + ref.decode_steps
    assert eo["hit_rate"] == ref.hit_rate
    assert s["ttft_s"]["max"] == pytest.approx(ref.prefill_s, rel=REL)
    assert s["tpot_s"]["mean"] == pytest.approx(ref.decode_s_per_token, rel=REL)


# ---------------------------------------------------------------------- properties
def _load_run(cache_experts=16, routing="zipf:1.2", concurrency=4, seed=0, **kw):
    return _offload(simulate(_config(model=DSV2, num_requests=12, prompt=32, output=12,
                                     seed=seed, arrival="poisson", rate=50.0,
                                     concurrency=concurrency, cache_experts=cache_experts,
                                     routing=routing, **kw)))


@pytest.mark.parametrize("seed", [0, 1])
def test_hit_rate_rises_with_capacity(seed):
    rates = [_load_run(cache_experts=c, seed=seed)["hit_rate"] for c in (4, 16, 32, 64)]
    assert rates == sorted(rates) and len(set(rates)) == 4, rates
    assert rates[-1] == 1.0  # every expert resident: nothing to miss
    stalls = [_load_run(cache_experts=c, seed=seed)["stall_frac"] for c in (4, 32, 64)]
    assert stalls[0] > stalls[1] > stalls[2] == 0.0


@pytest.mark.parametrize("routing", ["uniform", "zipf:1.2"])
def test_batch_amortises_misses(routing):
    """More sequences per step: more of each token's experts are already on the GPU
    (resident, or copied for another token of the step): the amortised hit rate rises and the
    copies per generated token fall. The per-lookup hit rate falls toward C / E (the union
    outgrows the cache and the prefetch), as moe-offload's batch does too."""
    runs = [_load_run(concurrency=c, routing=routing) for c in (1, 4, 12)]
    amortized = [r["amortized_hit_rate"] for r in runs]
    assert amortized[0] < amortized[1] < amortized[2], amortized
    per_token = [r["misses_per_step"] / r["routings_per_step"] for r in runs]
    assert per_token[0] > per_token[1] > per_token[2], per_token
    union = [r["experts_per_step"] for r in runs]
    assert union[0] < union[1] < union[2], union
    lookup = [r["hit_rate"] for r in runs]
    assert lookup[0] > lookup[2] > 16 / 64 - 0.05, lookup


@pytest.mark.parametrize("concurrency", [1, 6])
def test_skew_raises_hit_rate(concurrency):
    rates = [_load_run(routing=r, concurrency=concurrency)["hit_rate"]
             for r in ("uniform", "zipf:0.8", "zipf:1.5")]
    assert rates[0] < rates[1] < rates[2], rates


def test_prefetch_accuracy_lowers_stall():
    stalls = [_load_run(prefetch=6, prefetch_accuracy=a, concurrency=1)["stall_s"]
              for a in (0.0, 0.5, 1.0)]
    assert stalls[0] > stalls[1] > stalls[2], stalls


def test_cpu_misses_move_no_expert_weights():
    fetch = _load_run(miss="fetch", concurrency=2, prefetch=0)
    cpu = _load_run(miss="cpu", concurrency=2, prefetch=0)
    assert cpu["d2h_bytes"] > 0 and fetch["d2h_bytes"] == 0
    assert cpu["bytes_fetched"] < fetch["bytes_fetched"] / 10  # activations, not weights


# ---------------------------------------------------------------------- accounting, determinism
def test_request_accounting_and_step_counters():
    rep = simulate(_config(model=DSV2, num_requests=10, prompt=32, output=8, arrival="poisson",
                           rate=20.0, cache_experts=8))
    s, eo = rep.summary(), _offload(rep)
    assert s["num_completed"] == 10 and s["num_rejected"] == 0
    assert (rep.requests["output_tokens"] == 8).all()
    assert eo["num_steps"] == s["num_steps"]
    # every token routed once per step it is in: prefill tokens + one per decode token
    tokens = 10 * 32 + 10 * (8 - 1)
    assert eo["routings_per_step"] * eo["num_steps"] == pytest.approx(tokens * 6 * 26)
    assert 0 < eo["stall_frac"] < 1
    assert s["expert_offload"]["cache_bytes"] == 8 * 26 * eo["expert_bytes"]


def test_deterministic_and_seeded():
    a = simulate(_config(model=DSV2, num_requests=6, arrival="poisson", rate=20.0,
                         cache_experts=8, seed=5)).summary()
    b = simulate(_config(model=DSV2, num_requests=6, arrival="poisson", rate=20.0,
                         cache_experts=8, seed=5)).summary()
    c = simulate(_config(model=DSV2, num_requests=6, arrival="poisson", rate=20.0,
                         cache_experts=8, seed=6)).summary()
    assert a == b
    assert a["expert_offload"]["hit_rate"] != c["expert_offload"]["hit_rate"]


def test_replicas_have_their_own_caches():
    one = _offload(simulate(_config(model=DSV2, num_requests=8, arrival="poisson", rate=20.0,
                                    cache_experts=8)))
    cfg = _config(model=DSV2, num_requests=8, arrival="poisson", rate=20.0, cache_experts=8)
    cfg["parallelism"] = {"replicas": 2}
    two = _offload(simulate(cfg))
    assert two["num_steps"] > one["num_steps"]  # two engines step, each with fewer requests


def test_cache_leaves_less_kv_and_gb_capacity():
    small = simulate(_config(cache_experts=1)).summary()
    big = simulate(_config(cache_experts=3)).summary()
    assert small["kv_capacity_tokens_per_replica"] > big["kv_capacity_tokens_per_replica"]
    eb = small["expert_offload"]["expert_bytes"]
    by_gb = simulate(_config(cache_experts=None, cache_gb=3 * 32 * eb / 1e9 + 0.01)).summary()
    assert by_gb["expert_offload"]["capacity_experts"] == 3
    assert by_gb["kv_capacity_tokens_per_replica"] == big["kv_capacity_tokens_per_replica"]


# ---------------------------------------------------------------------- config and errors
def test_yaml_section_round_trips(tmp_path):
    cfg = load_config(_config(policy="lfu", routing="zipf:1.1"))
    assert cfg.expert_offload is not None and cfg.expert_offload.policy == "lfu"
    assert "expert_offload" not in load_config({"model": "llama-3.1-8b",
                                                "hardware": "h100-sxm"}).model_dump()
    again = SimulationConfig.model_validate(cfg.model_dump())
    assert again == cfg


@pytest.mark.parametrize(("change", "message"), [
    ({"model": {"name": "llama-3.1-8b"}}, "dense model"),
    ({"parallelism": {"tp": 2}, "hardware": {"name": "rtx-4090", "num_gpus": 2}}, "one GPU"),
    ({"expert_offload": {"cache_experts": 2, "cache_gb": 1.0}}, "exactly one"),
    ({"expert_offload": {"prefetch": 2}}, "exactly one"),
    ({"expert_offload": {"cache_experts": 2, "routing": "zipf:1.2,sticky=0.5"}}, "sticky"),
    ({"expert_offload": {"cache_experts": 9}}, "exceeds the 8 experts"),
    ({"expert_offload": {"cache_experts": 2, "policy": "lruu"}}, "lru"),
    ({"expert_offload": {"cache_experts": 2, "miss": "disk"}}, "fetch or cpu"),
    ({"decoding": {"beam": 2}}, "beam"),
])
def test_bad_settings_are_one_line_errors(change, message):
    cfg = _config()
    cfg.update(change)
    with pytest.raises(LLMSimError, match=message):
        simulate(cfg)


def test_cli_flags(cli):
    out = cli("simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--dtype", "int4",
              "--expert-cache-experts", "2", "--expert-routing", "zipf:1.2",
              "--expert-policy", "lfu", "--num-requests", "3", "--arrival", "batch",
              "--input-len", "32", "--output-len", "4", "--format", "json")
    assert out.code == 0, out.err
    eo = out.json()["expert_offload"]
    assert eo["policy"] == "lfu" and eo["capacity_experts"] == 2
    bad = cli("simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--dtype", "int4",
              "--expert-cache-experts", "2", "--expert-miss", "disk", "--num-requests", "1")
    assert bad.code == 2
    assert bad.err.strip().count("\n") == 0 and "fetch or cpu" in bad.err, bad.err
