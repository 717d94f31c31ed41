"""``moe-offload simulate`` with a batch: B sequences decoded together, the union of their
experts per layer and step (the steps the serving simulator's expert offload prices)."""

from __future__ import annotations

import json

import pytest

from llmsim.errors import ConfigError
from llmsim.expert_cache import OffloadConfig, load_moe_model, resolve_routing, simulate

CFG = OffloadConfig(capacity=2, prefetch=2, prefetch_accuracy=0.8, seed=1)


def _sim(batch=1, routing="zipf:1.2", **kw):
    return simulate("mixtral-8x7b", "rtx-4090", config=CFG, routing=routing, prompt_tokens=32,
                    decode_steps=6, dtype="int4", allow_overflow=True, batch=batch, **kw)


def test_batch_one_is_the_single_sequence_run():
    a, b = _sim(), simulate("mixtral-8x7b", "rtx-4090", config=CFG, routing="zipf:1.2",
                            prompt_tokens=32, decode_steps=6, dtype="int4",
                            allow_overflow=True)
    assert a == b
    assert "batch" not in a.as_dict(timeline=False)


def test_batch_routes_all_tokens_and_looks_up_their_union():
    r = _sim(batch=4)
    assert r.batch == 4 and r.prompt_tokens == 32 and r.decode_steps == 6
    assert r.tokens_per_s == pytest.approx(4 / r.decode_s_per_token)
    decode = [e for e in r.timeline if e.step > 0 and e.moe]
    one = [e for e in _sim().timeline if e.step > 0 and e.moe]
    assert sum(e.experts for e in decode) > sum(e.experts for e in one)
    assert all(e.experts <= 8 for e in decode)  # at most the 4 x top-2 union, of 8 experts
    assert r.as_dict(timeline=False)["batch"] == 4


def test_batched_trace_draws_step_by_step():
    spec = load_moe_model("mixtral-8x7b")
    src = resolve_routing("zipf:1.2", spec, 32, 6, 1, batch=4)
    assert src.trace.batch == 4
    assert [src.trace.steps[s][0].shape[0] for s in range(7)] == [128] + [4] * 6
    one = resolve_routing("zipf:1.2", spec, 32, 6, 1)
    # the batch-1 draw is a step-by-step draw too: same seed, same first step shape, same keys
    assert one.trace.steps[0][0].shape == (32, 2)


@pytest.mark.parametrize("routing", ["zipf:1.2,sticky=0.4"])
def test_batch_rejects_per_sequence_routing(routing, tmp_path):
    with pytest.raises(ConfigError, match="sticky"):
        _sim(batch=2, routing=routing)
    trace = resolve_routing("uniform", load_moe_model("mixtral-8x7b"), 32, 6, 1).trace
    path = tmp_path / "t.jsonl"
    trace.write(path)
    with pytest.raises(ConfigError, match="records one sequence"):
        _sim(batch=2, routing=str(path))


def test_cli_batch(cli):
    res = cli("moe-offload", "simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--dtype",
              "int4", "--cache-capacity", "2", "--routing", "zipf:1.2", "--input-len", "32",
              "--output-len", "6", "--batch", "4", "--format", "json")
    assert res.code == 0, res.err
    d = json.loads(res.out)
    assert d["batch"] == 4 and d["tokens_per_s"] == pytest.approx(4 / d["decode_s_per_token"])
    table = cli("moe-offload", "simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--dtype",
                "int4", "--cache-capacity", "2", "--input-len", "32", "--output-len", "6",
                "--batch", "4")
    assert table.code == 0 and "4 x 32 tokens" in table.out
