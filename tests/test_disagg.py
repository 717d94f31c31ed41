"""Prefill/decode disaggregation: KV-transfer bytes per request against the hand-derived
formula, layer-wise overlap, monotone behaviour (a faster link is never slower), pools with
no workers refused with one line, and the CLI."""

from __future__ import annotations

import pytest

from llmsim.disagg import KVLink, PoolSpec, estimate_disagg, parse_kv_link, parse_pool
from llmsim.disagg.kv_transfer import KV_LINK_EFFICIENCY, exposed_transfer_s
from llmsim.errors import ConfigError

P, D = parse_pool("workers=2,tp=1", "prefill"), parse_pool("workers=1,tp=4", "decode")


def _run(**kw):
    args = dict(prompt=4000, output=200, concurrency=32, dtype="fp8")
    args.update(kw)
    return estimate_disagg("qwen3-32b", "h100-sxm", args.pop("prefill", P),
                           args.pop("decode", D), **args)


def test_kv_bytes_per_request_is_the_hand_formula():
    r = _run()
    # Qwen3-32B: 64 layers x 8 KV heads x (128 + 128) x 1 byte (fp8), 8 heads over tp 4
    per_token_per_gpu = 64 * (8 / 4) * (128 + 128) * 1
    assert r.kv_bytes_per_decode_gpu == pytest.approx(4000 * per_token_per_gpu)
    # over RDMA: 400 Gb/s per GPU at the link efficiency, plus the link latency
    bw = 400e9 / 8 * KV_LINK_EFFICIENCY
    assert r.kv_transfer_s == pytest.approx(5e-6 + r.kv_bytes_per_decode_gpu / bw, rel=1e-6)


def test_layerwise_overlap_hides_all_but_the_last_layer():
    assert exposed_transfer_s(1.0, 10.0, 10, True) == pytest.approx(0.1)
    assert exposed_transfer_s(1.0, 0.5, 10, True) == pytest.approx(1.0 - 0.45)
    assert exposed_transfer_s(1.0, 10.0, 10, False) == 1.0
    r_lw, r_after = _run(), _run(link=KVLink("rdma", layerwise=False))
    assert r_lw.kv_exposed_s < r_after.kv_exposed_s == pytest.approx(r_after.kv_transfer_s)
    assert r_lw.ttft_s < r_after.ttft_s


def test_a_faster_link_is_never_slower():
    times = [_run(link=parse_kv_link(t, layerwise=False)).ttft_s
             for t in ("ethernet:10Gbps", "ethernet", "rdma", "rdma:800Gbps", "nvlink")]
    assert all(b <= a for a, b in zip(times, times[1:], strict=False))


def test_more_workers_are_never_slower_and_ratio_balances():
    few = _run(prefill=parse_pool("workers=1,tp=1", "prefill"), concurrency=64)
    more = _run(prefill=parse_pool("workers=4,tp=1", "prefill"), concurrency=64)
    assert more.ttft_s <= few.ttft_s and more.requests_per_s >= few.requests_per_s
    assert few.balanced_prefill_per_decode == pytest.approx(more.balanced_prefill_per_decode,
                                                            rel=0.5)
    assert few.suggested_xpyd.endswith("D") and "P" in few.suggested_xpyd


def test_no_workers_is_refused():
    with pytest.raises(ConfigError, match="workers=0"):
        parse_pool("workers=0,tp=4", "prefill")
    with pytest.raises(ConfigError, match="workers=0"):
        _run(decode=PoolSpec(workers=0, tp=4))
    with pytest.raises(ConfigError, match="key=value"):
        parse_pool("workers=1,tp", "decode")
    with pytest.raises(ConfigError, match="workers=N"):
        parse_pool("tp=4", "decode")
    with pytest.raises(ConfigError, match="kind is one of"):
        parse_kv_link("pigeon")


@pytest.mark.parametrize("pools", [("workers=0,tp=1", "workers=1,tp=4"),
                                   ("workers=1,tp=1", "workers=0,tp=4")])
def test_cli_refuses_an_empty_pool_in_one_line(cli, pools):
    res = cli("estimate", "-m", "qwen3-32b", "-H", "h100-sxm", "--prefill-pool", pools[0],
              "--decode-pool", pools[1])
    assert res.code == 2 and res.err.count("\n") == 1 and "workers=0" in res.err


def test_cli_disagg_json(cli):
    res = cli("estimate", "-m", "qwen3-32b", "-H", "h100-sxm", "--dtype", "fp8",
              "--prefill-pool", "workers=2,tp=1", "--decode-pool", "workers=1,tp=4",
              "--prompt", "4000", "--output", "200", "--batch", "32", "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert d["prefill_gpus"] == 2 and d["decode_gpus"] == 4 and d["ttft_s"] > d["prefill_s"]
    only = cli("estimate", "-m", "qwen3-32b", "-H", "h100-sxm", "--prefill-pool", "workers=1")
    assert only.code == 2 and "--decode-pool" in only.err
