"""End-to-end behaviour of the simulator on fixed step-time models (fast, deterministic)."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel, NoVectorStepModel

from llmsim.serving import simulate
from llmsim.serving.schedulers import SCHEDULERS

SCHEDULER_NAMES = ("static", "dynamic", "continuous", "chunked", "inflight", "prefill-first")


def test_same_seed_identical_per_request_results(fixed_model):
    cfg = base_config(workload={"prompt": "lognormal:mean=300,cv=1",
                                "output": "uniform:1,60", "seed": 7})
    a = simulate(cfg, step_model=fixed_model).requests
    b = simulate(cfg, step_model=fixed_model).requests
    assert a.equals(b)
    c = simulate(base_config(workload={"prompt": "lognormal:mean=300,cv=1",
                                       "output": "uniform:1,60", "seed": 8}),
                 step_model=fixed_model).requests
    assert not a.equals(c)


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_conservation_every_request_finishes_or_is_rejected(fixed_model, scheduler):
    cfg = base_config(scheduler={"name": scheduler, "kv_capacity_tokens": 4000},
                      workload={"rate": 20.0, "num_requests": 300,
                                "prompt": "uniform:10,400", "output": "uniform:1,80"})
    cfg["model"] = {"name": "fixed", "max_model_len": 450}
    r = simulate(cfg, step_model=fixed_model)
    s = r.summary()
    req = r.requests
    assert s["num_completed"] + s["num_rejected"] == s["num_requests"] == 300
    assert (req["status"] != "unfinished").all()
    rejected = req[req.status == "rejected"]
    assert (rejected.input_tokens + rejected.output_tokens > 450).all()
    assert s["rejected_by_reason"]["context_length"] == len(rejected)
    done = req[req.status == "finished"]
    # causality: arrival <= first scheduled < first token <= finish
    assert (done.first_scheduled_s >= done.arrival_s).all()
    assert (done.first_token_s > done.first_scheduled_s).all()
    assert (done.finish_s >= done.first_token_s).all()
    assert s["output_tokens_per_s"] * s["duration_s"] == pytest.approx(
        done.output_tokens.sum())


def test_littles_law(fixed_model):
    """L = lambda W: the time-average number in the system (sampled) equals the arrival rate
    times the mean time in system (per request)."""
    cfg = base_config(workload={"rate": 4.0, "num_requests": 3000, "prompt": "uniform:50,500",
                                "output": "uniform:5,60", "seed": 3},
                      metrics={"sample_interval_s": 0.05})
    r = simulate(cfg, step_model=FixedStepModel(0.03, 0.012, 2e-5, 1e-7))
    req, ts = r.requests, r.timeseries
    horizon = req.finish_s.max()
    lam = len(req) / horizon
    w = req.e2e_s.mean()
    sampled = ts[ts.time_s <= horizon].in_system.mean()
    assert sampled == pytest.approx(lam * w, rel=0.03)


def test_md1_queue_matches_closed_form():
    """Poisson arrivals, one server, deterministic service D (one 1-token request per step):
    mean wait Wq = rho D / (2 (1 - rho)) (Pollaczek-Khinchine for M/D/1)."""
    d, rho = 0.1, 0.7
    cfg = base_config(scheduler={"name": "continuous", "max_num_seqs": 1},
                      workload={"rate": rho / d, "num_requests": 40_000, "prompt": "fixed:64",
                                "output": "fixed:1", "seed": 11})
    r = simulate(cfg, step_model=FixedStepModel(prefill_s=d, decode_s=d))
    req = r.requests
    wq = req.queueing_delay_s.mean()
    expected = rho * d / (2 * (1 - rho))
    assert wq == pytest.approx(expected, rel=0.05)
    assert req.ttft_s.mean() == pytest.approx(expected + d, rel=0.03)
    assert r.summary()["busy_frac"] == pytest.approx(rho, rel=0.02)


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_kv_usage_never_exceeds_capacity_and_preemption_happens(preemption):
    cfg = base_config(scheduler={"name": "chunked", "kv_capacity_tokens": 2048,
                                 "block_size": 16, "max_num_batched_tokens": 512,
                                 "preemption": preemption,
                                 "swap_space_bytes": 10**9 if preemption == "swap" else None},
                      workload={"rate": 50.0, "num_requests": 200, "prompt": "uniform:100,600",
                                "output": "uniform:50,300", "seed": 5},
                      metrics={"sample_interval_s": 0.01})
    sm = FixedStepModel(0.02, 0.01)
    from llmsim.serving.config import load_config
    from llmsim.serving.setup import ServingSetup
    from llmsim.serving.simulator import Simulation

    setup = ServingSetup(load_config(cfg), sm)
    setup.kv_bytes_per_token = 1000.0  # let swap have host blocks with the stub model
    setup.host_blocks = 10_000 if preemption == "swap" else 0
    sim = Simulation(setup)
    sim.run()
    for rep in sim.replicas:
        rep.check()
        assert rep.kv.used == 0 and rep.kv.host_used == 0
    stats = sim.replica_stats()
    assert all(s.kv_peak_used_blocks <= s.kv_total_blocks for s in stats)
    assert sim.max_kv_used_frac <= 1.0
    assert sum(s.preemptions for s in stats) > 0
    assert sim.completed == 200
    if preemption == "swap":
        assert sum(s.swapped_out_tokens for s in stats) > 0


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_each_scheduler_single_request_timing(scheduler):
    """One request, prompt 100, output 5: TTFT = queue + prefill; E2E = TTFT + 4 decodes."""
    window = 0.2
    cfg = base_config(scheduler={"name": scheduler,
                                 "batch_window_s": window if scheduler == "dynamic" else None},
                      workload={"arrival": "batch", "num_requests": 1, "prompt": "fixed:100",
                                "output": "fixed:5"})
    r = simulate(cfg, step_model=FixedStepModel(0.05, 0.01))
    row = r.requests.iloc[0]
    wait = window if scheduler == "dynamic" else 0.0
    assert row.queueing_delay_s == pytest.approx(wait)
    assert row.ttft_s == pytest.approx(wait + 0.05)
    assert row.e2e_s == pytest.approx(wait + 0.05 + 4 * 0.01)
    assert row.tpot_s == pytest.approx(0.01)
    assert row.itl_max_s == pytest.approx(0.01)


def test_static_batch_holds_slots_until_the_longest_finishes():
    cfg = base_config(scheduler={"name": "static", "max_num_seqs": 2},
                      workload={"arrival": "batch", "num_requests": 3, "prompt": "fixed:10",
                                "output": "fixed:1"})
    cfg["workload"]["output"] = {"dist": "fixed", "value": 1}
    from llmsim.serving.config import load_config
    from llmsim.serving.setup import ServingSetup
    from llmsim.serving.simulator import Simulation

    setup = ServingSetup(load_config(cfg), FixedStepModel(0.05, 0.01))
    setup.workload.output_tokens[:] = [3, 11, 2]
    sim = Simulation(setup)
    sim.run()
    t = sim.table
    # batch 1 = requests 0, 1: prefill 0.05, then decodes; request 0 ends after 2 decodes,
    # request 1 after 10; request 2 starts only when the whole batch is done (0.15 s)
    assert t.finish_s[0] == pytest.approx(0.05 + 2 * 0.01)
    assert t.finish_s[1] == pytest.approx(0.05 + 10 * 0.01)
    assert t.first_scheduled_s[2] == pytest.approx(0.15)
    assert t.finish_s[2] == pytest.approx(0.15 + 0.05 + 0.01)


def test_continuous_prefill_priority_stalls_decodes():
    """vLLM v0 style: a new prompt's prefill step delays the running decodes (ITL gap =
    decode + prefill); chunked prefill mixes it into the decode step instead."""
    common = {"arrival": "deterministic", "rate": 1 / 0.105, "num_requests": 2,
              "prompt": "fixed:50", "output": "fixed:40"}
    sm = FixedStepModel(0.05, 0.01)
    v0 = simulate(base_config(scheduler={"name": "continuous"}, workload=common),
                  step_model=sm).requests
    assert v0.itl_max_s[0] == pytest.approx(0.01 + 0.05)
    v1 = simulate(base_config(scheduler={"name": "chunked"}, workload=common),
                  step_model=sm).requests
    assert v1.itl_max_s[0] == pytest.approx(0.05)  # the mixed step is priced as a prefill


def test_chunked_prefill_splits_long_prompts():
    cfg = base_config(scheduler={"name": "chunked", "max_num_batched_tokens": 256},
                      workload={"arrival": "batch", "num_requests": 1, "prompt": "fixed:1000",
                                "output": "fixed:2"})
    r = simulate(cfg, step_model=FixedStepModel(0.05, 0.01))
    assert r.requests.ttft_s[0] == pytest.approx(4 * 0.05)  # ceil(1000 / 256) chunks
    assert r.summary()["num_steps"] == 5


def test_priority_order_serves_high_priority_first():
    cfg = base_config(scheduler={"name": "continuous", "order": "priority", "max_num_seqs": 1},
                      workload={"rate": 30.0, "num_requests": 400, "prompt": "fixed:10",
                                "output": "fixed:3", "priority_levels": 2, "seed": 1})
    req = simulate(cfg, step_model=FixedStepModel(0.02, 0.01)).requests
    by = req.groupby("priority").queueing_delay_s.mean()
    assert by[0] < by[1] / 3


@pytest.mark.parametrize("router", ["round-robin", "least-outstanding", "least-kv", "random"])
def test_routers_spread_load(router, fixed_model):
    cfg = base_config(parallelism={"replicas": 4, "router": router},
                      workload={"rate": 40.0, "num_requests": 400, "prompt": "uniform:10,200",
                                "output": "uniform:2,40"})
    r = simulate(cfg, step_model=fixed_model)
    counts = r.requests.replica.value_counts()
    assert len(counts) == 4 and counts.min() > 50
    assert r.summary()["num_gpus"] == 4


def test_closed_loop_concurrency_bounds_requests_in_flight(fixed_model):
    cfg = base_config(workload={"concurrency": 3, "rate": None, "num_requests": 60,
                                "prompt": "fixed:100",
                                "output": "uniform:2,30"})
    req = simulate(cfg, step_model=fixed_model).requests
    events = sorted([(a, 1) for a in req.arrival_s] + [(f, -1) for f in req.finish_s],
                    key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak == 3
    # closed loop: each new request is sent exactly when one finishes
    sends = np.sort(req.arrival_s.to_numpy())[3:]
    finishes = np.sort(req.finish_s.to_numpy())[:len(sends)]
    np.testing.assert_allclose(sends, finishes)


def test_scalar_fallback_model_matches_vectorised():
    cfg = base_config(workload={"prompt": "uniform:10,300", "output": "uniform:2,50"})
    a = simulate(cfg, step_model=FixedStepModel(0.02, 0.01, 1e-5, 1e-7)).requests
    b = simulate(cfg, step_model=NoVectorStepModel(0.02, 0.01, 1e-5, 1e-7)).requests
    np.testing.assert_allclose(a.e2e_s, b.e2e_s, rtol=1e-9)


@pytest.mark.parametrize("scheduler", ["chunked", "continuous", "static", "inflight",
                                       "prefill-first"])
def test_closed_form_runs_match_step_by_step(scheduler):
    """The closed-form decode runs reproduce a step-by-step simulation."""
    cfg = base_config(scheduler={"name": scheduler, "kv_capacity_tokens": 6000},
                      workload={"rate": 12.0, "num_requests": 250, "prompt": "uniform:20,600",
                                "output": "uniform:1,120", "seed": 4})
    sm = FixedStepModel(0.03, 0.008, 3e-6, 2e-7)
    a = simulate(cfg, step_model=sm).requests
    b = simulate(cfg, step_model=sm, closed_form=False).requests
    for key in ("ttft_s", "e2e_s", "itl_max_s", "queueing_delay_s"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert (a.preemptions == b.preemptions).all()


def test_registry_has_all_schedulers():
    assert set(SCHEDULER_NAMES) <= set(SCHEDULERS.names())


def test_goodput_counts_requests_meeting_both_slos(fixed_model):
    cfg = base_config(slo={"ttft_s": 0.06, "tpot_s": 0.02},
                      workload={"rate": 2.0, "num_requests": 100})
    r = simulate(cfg, step_model=fixed_model)
    s, req = r.summary(), r.requests
    ok = (req.ttft_s <= 0.06) & (req.tpot_s <= 0.02)
    assert s["goodput_requests_per_s"] == pytest.approx(ok.sum() / s["duration_s"])
    assert 0 < s["slo_attainment_frac"] <= 1


def test_tpot_excludes_single_token_outputs(fixed_model):
    cfg = base_config(workload={"output": "fixed:1", "num_requests": 20})
    r = simulate(cfg, step_model=fixed_model)
    assert r.requests.tpot_s.isna().all()
    assert r.summary()["tpot_s"]["mean"] is None  # NaN becomes null in the JSON summary


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_kv_accounting_consistent_after_every_step(monkeypatch, scheduler, preemption):
    """After every committed step the KV blocks in use equal the blocks the running requests
    hold, and never exceed the capacity (tight KV forces preemptions)."""
    from llmsim.serving.config import load_config
    from llmsim.serving.replica import Replica
    from llmsim.serving.setup import ServingSetup
    from llmsim.serving.simulator import Simulation

    orig = Replica._commit
    peak = {"used": 0, "checks": 0}

    def checked(self, seg, now):
        orig(self, seg, now)
        self.check()
        peak["used"] = max(peak["used"], self.kv.used)
        peak["checks"] += 1

    monkeypatch.setattr(Replica, "_commit", checked)
    cfg = base_config(scheduler={"name": scheduler, "kv_capacity_tokens": 3000,
                                 "max_num_batched_tokens": 700, "preemption": preemption},
                      workload={"rate": 30.0, "num_requests": 150, "prompt": "uniform:50,600",
                                "output": "uniform:1,200", "seed": 9})
    setup = ServingSetup(load_config(cfg), FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
    setup.kv_bytes_per_token = 1000.0
    setup.host_blocks = 50 if preemption == "swap" else 0
    sim = Simulation(setup)
    sim.run()
    assert peak["checks"] > 100
    assert peak["used"] <= setup.num_blocks
    assert sim.completed + sim.rejected == 150
    assert sim.replicas[0].kv.used == 0


def _random_config(seed: int) -> dict:
    import random

    rnd = random.Random(seed)
    sched = rnd.choice(SCHEDULER_NAMES)
    budget = rnd.choice([300, 1024, 8192])
    cfg = base_config(
        parallelism={"replicas": rnd.choice([1, 2]),
                     "router": rnd.choice(["round-robin", "least-outstanding", "random"])},
        scheduler={"name": sched, "kv_capacity_tokens": rnd.choice([1500, 4000, 20000]),
                   "block_size": rnd.choice([1, 8, 16, 32]),
                   "max_num_seqs": 4 if budget < 32 else rnd.choice([4, 32, 256]),
                   "max_num_batched_tokens": budget, "order": rnd.choice(["fcfs", "priority"]),
                   "preemption": rnd.choice(["recompute", "swap"]),
                   "prefix_caching": rnd.choice([True, False])},
        workload={"rate": rnd.choice([1.0, 10.0, 50.0]), "num_requests": 120,
                  "prompt": rnd.choice(["uniform:1,900", "lognormal:mean=300,cv=1.5"]),
                  "output": rnd.choice(["uniform:1,300", "fixed:1", "lognormal:mean=50,cv=2"]),
                  "priority_levels": rnd.choice([1, 3]),
                  "shared_prefix_tokens": rnd.choice([0, 256]), "prefix_groups": 3,
                  "concurrency": rnd.choice([None, 5]), "seed": seed})
    if not cfg["workload"]["shared_prefix_tokens"]:
        cfg["workload"]["prefix_groups"] = 1  # groups without a shared prefix: an error
    if sched == "chunked" and budget < cfg["scheduler"]["max_num_seqs"]:
        cfg["scheduler"]["max_num_seqs"] = 4
    return cfg


@pytest.mark.parametrize("seed", range(12))
def test_random_configs_closed_form_equals_step_by_step(monkeypatch, seed):
    """Random scheduler / KV / preemption / prefix-cache / router / workload combinations:
    per-step consistency checks hold and the closed-form runs reproduce a step-by-step
    simulation exactly."""
    from llmsim.serving.config import load_config
    from llmsim.serving.replica import Replica
    from llmsim.serving.setup import ServingSetup
    from llmsim.serving.simulator import Simulation

    orig = Replica._commit

    def checked(self, seg, now):
        orig(self, seg, now)
        self.check()

    monkeypatch.setattr(Replica, "_commit", checked)
    cfg = load_config(_random_config(seed))
    sims = []
    for closed in (True, False):
        setup = ServingSetup(cfg, FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
        setup.kv_bytes_per_token = 1000.0
        setup.host_blocks = 40 if cfg.scheduler.preemption.value == "swap" else 0
        sim = Simulation(setup, closed_form=closed)
        sim.run()
        assert sim.completed + sim.rejected == 120
        sims.append(sim)
    for col in ("finish_s", "first_token_s", "first_scheduled_s", "itl_max_s"):
        np.testing.assert_allclose(sims[0].table.column(col), sims[1].table.column(col),
                                   rtol=1e-9, atol=1e-9, err_msg=col)
    np.testing.assert_array_equal(sims[0].table.column("preemptions"),
                                  sims[1].table.column("preemptions"))


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_preemption_none_reserves_whole_kv_and_never_preempts(monkeypatch, scheduler):
    """``preemption: none`` (TensorRT-LLM's GUARANTEED_NO_EVICT): with a KV cache so tight
    that recompute preempts, admission waits until the running requests' whole KV (prompt +
    output) plus the new one's fits, so nothing is ever preempted and every request ends."""
    from llmsim.serving.config import load_config
    from llmsim.serving.replica import Replica
    from llmsim.serving.setup import ServingSetup
    from llmsim.serving.simulator import Simulation

    orig = Replica._commit
    seen = {"checks": 0, "peak_reserved": 0}

    def checked(self, seg, now):
        orig(self, seg, now)
        self.check()  # asserts reserved <= the cache's blocks (engine.py)
        seen["checks"] += 1
        seen["peak_reserved"] = max(seen["peak_reserved"], self.reserved_blocks)

    def run(preemption):
        cfg = base_config(scheduler={"name": scheduler, "kv_capacity_tokens": 3000,
                                     "max_num_batched_tokens": 700, "preemption": preemption},
                          workload={"rate": 30.0, "num_requests": 150,
                                    "prompt": "uniform:50,600", "output": "uniform:1,200",
                                    "seed": 9})
        setup = ServingSetup(load_config(cfg), FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
        sim = Simulation(setup)
        sim.run()
        return setup, sim

    _, loose = run("recompute")
    monkeypatch.setattr(Replica, "_commit", checked)
    setup, sim = run("none")
    stats = sim.replica_stats()
    if SCHEDULERS.get(scheduler).admits_mid_batch:  # batch-level ones reserve already
        assert sum(s.preemptions for s in loose.replica_stats()) > 0  # the case is tight
    assert sum(s.preemptions for s in stats) == 0
    assert seen["checks"] > 100 and 0 < seen["peak_reserved"] <= setup.num_blocks
    assert sim.completed + sim.rejected == 150
    rep = sim.replicas[0]
    assert rep.kv.used == 0 and rep.reserved_blocks == 0 and not rep.reserved


def test_a_run_that_can_go_no_further_raises_a_config_error():
    """Whole-prompt scheduling with recompute: a preempted request whose prompt plus
    generated tokens outgrow the token budget can never run again; the run stops with a
    ConfigError naming the limit (it used to loop on its sampling events for ever)."""
    from llmsim.errors import ConfigError

    cfg = base_config(scheduler={"name": "inflight", "kv_capacity_tokens": 2000,
                                 "max_num_batched_tokens": 650, "preemption": "recompute"},
                      workload={"concurrency": 8, "num_requests": 40, "prompt": "fixed:600",
                                "output": "fixed:400", "seed": 1})
    with pytest.raises(ConfigError, match="stalled.*max_num_batched_tokens = 650"):
        simulate(cfg, step_model=FixedStepModel(0.02, 0.01))
    cfg["scheduler"]["preemption"] = "none"
    assert simulate(cfg, step_model=FixedStepModel(0.02, 0.01)).summary()["num_requests"] == 40
