"""Prefill/decode disaggregation (xPyD) in the serving simulation (``serving/disagg_sim.py``):
KV-transfer bytes and time per request against the hand formula, a one-request run against
the static per-phase bounds, monotone in the link, decode admission waiting for KV capacity,
request accounting, determinism, the YAML keys, and bad specs refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.disagg.kv_transfer import KV_LINK_EFFICIENCY
from llmsim.errors import LLMSimError
from llmsim.estimates.static_batch import estimate
from llmsim.serving.run import simulate

PROMPT, OUTPUT = 2000, 100


def _cfg(link: str = "rdma", concurrency: int = 1, n: int = 6, layerwise: bool = True,
         prefill: str = "workers=1,tp=1", decode: str = "workers=1,tp=2", **sections):
    cfg = {"model": {"name": "qwen3-32b", "dtype": "fp8"}, "hardware": "h100-sxm",
           "disagg": {"prefill_pool": prefill, "decode_pool": decode, "kv_link": link,
                      "kv_layerwise": layerwise},
           "workload": {"concurrency": concurrency, "num_requests": n,
                        "prompt": f"fixed:{PROMPT}", "output": f"fixed:{OUTPUT}", "seed": 1}}
    cfg.update(sections)
    return cfg


def test_kv_transfer_bytes_and_time_per_request_are_the_hand_formula():
    s = simulate(_cfg(layerwise=False)).summary()
    x = s["disagg"]["kv_transfer"]
    # Qwen3-32B: 64 layers x 8 KV heads x (128 + 128) x 1 byte (fp8), 8 heads over tp 2
    per_token_per_gpu = 64 * (8 / 2) * (128 + 128) * 1
    assert x["num_transfers"] == 6
    assert x["bytes_per_decode_gpu_mean"] == pytest.approx(PROMPT * per_token_per_gpu)
    assert x["bytes_total"] == pytest.approx(6 * 2 * PROMPT * per_token_per_gpu)
    # one request at a time: no wait, the whole transfer after the prefill (not layer-wise):
    # RDMA 400 Gb/s per GPU at the link efficiency, plus its latency
    want = 5e-6 + PROMPT * per_token_per_gpu / (400e9 / 8 * KV_LINK_EFFICIENCY)
    assert x["transfer_s"]["mean"] == pytest.approx(want, rel=1e-9)
    assert x["decode_kv_wait_s"]["max"] == 0.0


def test_one_request_with_a_free_link_meets_the_static_bounds():
    """1P1D, one request in flight, an (almost) infinitely fast link: TTFT is the prefill of
    one prompt on the prefill worker and TPOT one decode step of batch 1 on the decode worker,
    each as the static estimate prices it (same step model, nothing queues)."""
    s = simulate(_cfg(link="nvlink:1000000TB/s")).summary()
    pre = estimate("qwen3-32b", "h100-sxm", num_gpus=1, tp=1, batch=1, prompt=PROMPT,
                   output=1, dtype="fp8")
    dec = estimate("qwen3-32b", "h100-sxm", num_gpus=2, tp=2, batch=1, prompt=PROMPT,
                   output=OUTPUT, dtype="fp8")
    assert s["ttft_s"]["mean"] >= pre.ttft_s * (1 - 1e-6)
    assert s["ttft_s"]["mean"] == pytest.approx(pre.ttft_s, rel=0.01)
    assert s["tpot_s"]["mean"] == pytest.approx(dec.tpot_s, rel=0.01)
    assert s["e2e_s"]["mean"] == pytest.approx(pre.ttft_s + (OUTPUT - 1) * dec.tpot_s, rel=0.01)
    assert s["disagg"]["kv_transfer"]["transfer_s"]["max"] < 1e-6
    assert s["num_gpus"] == 3 and s["replicas"] == 2


def test_a_slower_link_never_lowers_ttft_or_e2e():
    """Open-loop arrivals (the same send times whatever the link): the mean TTFT and E2E grow
    with a slower link, and no request's TTFT falls by more than one decode step (a transfer
    starts between two of the decode instance's steps, whose phase the link moves). (With
    closed-loop clients a slower link can desynchronise them and lower the prefill queueing:
    not a property of the link.)"""
    wl = {"arrival": "poisson", "rate": 2.0, "num_requests": 24, "seed": 2,
          "prompt": f"fixed:{PROMPT}", "output": f"fixed:{OUTPUT}"}
    runs = [simulate(_cfg(link=link, workload=wl))
            for link in ("nvlink:1000000TB/s", "nvlink", "rdma", "rdma:100Gbps",
                         "ethernet:10Gbps", "ethernet:1Gbps")]
    ttft = [r.request_column("ttft_s") for r in runs]
    step = max(r.request_column("tpot_s").max() for r in runs)
    for fast, slow in zip(ttft, ttft[1:], strict=False):
        assert (fast <= slow + step).all()  # every request's, up to one decode step
    means = [r.summary()["ttft_s"]["mean"] for r in runs]
    assert means == sorted(means), means
    e2e = [r.summary()["e2e_s"]["mean"] for r in runs]  # one request's E2E can drop by a
    assert e2e == sorted(e2e), e2e  # step's share when it joins a smaller decode batch
    assert runs[-1].summary()["ttft_s"]["mean"] > runs[0].summary()["ttft_s"]["mean"] + 0.5


def test_decode_admission_waits_for_kv_capacity():
    """A decode instance with room for about two requests' KV: the others wait (reservation
    before the transfer), it never holds more than its capacity, and everything finishes."""
    cfg = _cfg(concurrency=8, n=32, scheduler={"kv_capacity_tokens": 2 * (PROMPT + OUTPUT)
                                               + 64})
    r = simulate(cfg)
    s = r.summary()
    d = s["disagg"]
    assert s["num_completed"] == 32
    assert d["kv_transfer"]["decode_kv_wait_s"]["mean"] > 0.05
    assert d["decode"]["kv_usage_peak_frac"] <= 1.0
    # at most two requests decode at once: no TPOT speed-up beyond batch 2's
    roomy = simulate(_cfg(concurrency=8, n=32)).summary()
    assert s["e2e_s"]["mean"] > roomy["e2e_s"]["mean"]
    # the roomy instance's waits are the link's (one transfer after another) only
    roomy_wait = roomy["disagg"]["kv_transfer"]["decode_kv_wait_s"]["mean"]
    assert d["kv_transfer"]["decode_kv_wait_s"]["mean"] > 10 * roomy_wait


def test_every_request_finishes_exactly_once_in_order_of_its_events():
    r = simulate(_cfg(concurrency=16, n=80, prefill="workers=2,tp=1",
                      decode="workers=2,tp=2",
                      workload={"concurrency": 16, "num_requests": 80, "seed": 3,
                                "prompt": "uniform:low=200,high=3000",
                                "output": "uniform:low=1,high=300"}))
    q = r.requests
    assert len(q) == 80 and q["request_id"].is_unique
    assert (q["status"] == "finished").all()
    assert (q["arrival_s"] <= q["first_scheduled_s"]).all()
    assert (q["first_scheduled_s"] <= q["first_token_s"]).all()
    assert (q["first_token_s"] <= q["finish_s"]).all()
    one = q["output_tokens"] == 1  # finished on the prefill instance (replicas 0-1)
    assert (q.loc[one, "replica"] < 2).all() and (q.loc[~one, "replica"] >= 2).all()
    s = r.summary()
    assert s["disagg"]["kv_transfer"]["num_transfers"] == int((~one).sum())
    assert s["output_tokens_per_s"] * s["duration_s"] == pytest.approx(q["output_tokens"].sum())


def test_same_seed_same_run():
    a = simulate(_cfg(concurrency=8, n=40))
    b = simulate(_cfg(concurrency=8, n=40))
    assert a.summary() == b.summary()
    assert a.requests.equals(b.requests)


def test_the_yaml_config_takes_the_same_keys(tmp_path):
    path = tmp_path / "xpyd.yaml"
    path.write_text("model: {name: qwen3-32b, dtype: fp8}\nhardware: h100-sxm\n"
                    "disagg:\n  prefill_pool: workers=1,tp=1\n"
                    "  decode_pool: {workers: 1, tp: 2, max_num_seqs: 64}\n  kv_link: rdma\n"
                    f"workload: {{concurrency: 1, num_requests: 6, prompt: 'fixed:{PROMPT}', "
                    f"output: 'fixed:{OUTPUT}', seed: 1}}\n")
    s = simulate(str(path)).summary()
    assert s["disagg"]["decode"]["max_num_seqs"] == 64
    assert s["ttft_s"] == simulate(_cfg()).summary()["ttft_s"]


@pytest.mark.parametrize("change, match", [
    ({"prefill": "workers=0,tp=1"}, "workers=0"),
    ({"decode": "workers=0"}, "workers=0"),
    ({"decode": "workers=1,tq=2"}, "tq"),
    ({"link": "pigeon"}, "kind is one of"),
    ({"parallelism": {"replicas": 2}}, "--replicas"),
])
def test_bad_specs_are_refused(change, match):
    with pytest.raises(LLMSimError, match=match):
        simulate(_cfg(**change))


@pytest.mark.parametrize("extra, match", [
    (["--prefill-pool", "workers=0,tp=1", "--decode-pool", "workers=1"], "workers=0"),
    (["--prefill-pool", "workers=1", "--decode-pool", "workers=0"], "workers=0"),
    (["--prefill-pool", "workers=1"], "--decode-pool"),
    (["--prefill-pool", "workers=1", "--decode-pool", "workers=1", "--replicas", "2"],
     "--replicas"),
    (["--prefill-pool", "workers=1", "--decode-pool", "workers=x"], "whole number"),
])
def test_cli_refuses_bad_pools_in_one_line(cli, extra, match):
    res = cli("simulate", "-m", "qwen3-32b", "-H", "h100-sxm", "--num-requests", "4", *extra)
    assert res.code == 2 and res.err.count("\n") == 1 and match in res.err, res.err


def test_cli_runs_xpyd(cli):
    res = cli("simulate", "-m", "qwen3-32b", "-H", "h100-sxm", "--dtype", "fp8",
              "--prefill-pool", "workers=2,tp=1", "--decode-pool", "workers=1,tp=2",
              "--concurrency", "8", "--num-requests", "32", "--prompt-dist", "fixed:1000",
              "--output-dist", "fixed:50", "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert d["num_completed"] == 32 and d["num_gpus"] == 4
    assert d["disagg"]["prefill"]["instances"] == 2 and d["disagg"]["decode"]["gpus"] == 2
    assert np.isfinite(d["disagg"]["kv_transfer"]["transfer_s"]["p99"])


@pytest.mark.parametrize("extra, needle", [
    (["--afd", "attention=1,ffn=2"], "--afd"),
    (["--expert-cache-experts", "4"], "expert offload"),
])
def test_pools_refuse_afd_and_expert_offload_in_one_line(cli, extra, needle):
    """Features that the disaggregated run does not model are refused, not silently dropped."""
    res = cli("simulate", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--prefill-pool",
              "workers=1,tp=1", "--decode-pool", "workers=1,tp=1", "-n", "4", "--rate", "2",
              *extra)
    assert res.code == 2 and needle in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_expert_offload_refuses_afd(cli):
    res = cli("simulate", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--afd", "attention=1,ffn=2",
              "--expert-cache-experts", "4", "-n", "4", "--rate", "2")
    assert res.code == 2 and "--afd" in res.err
