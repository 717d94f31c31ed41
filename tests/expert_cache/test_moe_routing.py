"""Routing distributions and trace files."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.errors import DataError, SpecError, UnknownNameError
from llmsim.expert_cache import load_moe_model, parse_distribution, read_trace, resolve_routing
from llmsim.expert_cache.routing import RoutingTrace


@pytest.fixture(scope="module")
def model():
    return load_moe_model("gpu-default")


def test_uniform_draws_distinct_topk_deterministically(model):
    a = resolve_routing("uniform", model, 64, 5, seed=3).trace
    b = resolve_routing("uniform", model, 64, 5, seed=3).trace
    c = resolve_routing("uniform", model, 64, 5, seed=4).trace
    assert a.prompt_tokens == 64 and a.decode_steps == 5
    for s in range(6):
        for layer in a.moe_layers:
            arr = a.steps[s][layer]
            assert arr.shape == (64 if s == 0 else 1, 4)
            assert all(len(set(row)) == 4 for row in arr)
            np.testing.assert_array_equal(arr, b.steps[s][layer])
    assert any(not np.array_equal(a.steps[0][i], c.steps[0][i]) for i in a.moe_layers)


def test_zipf_concentrates_on_hot_experts(model):
    uni = resolve_routing("uniform", model, 2000, 0, seed=0)
    zipf = resolve_routing("zipf:1.5", model, 2000, 0, seed=0)
    share = []
    for src in (uni, zipf):
        counts = src.trace.counts(0, 0)
        share.append(np.sort(counts)[-8:].sum() / counts.sum())
    assert share[0] < 0.2 < 0.5 < share[1]
    # the prior ranks the experts the draw favours
    hot = np.argsort(-zipf.prior_counts[0])[:4]
    assert set(hot) <= set(np.argsort(-zipf.trace.counts(0, 0))[:8])


def test_correlation_and_stickiness(model):
    def agreement(trace, same_layer: bool):
        hits = n = 0
        for s in range(1, trace.decode_steps + 1):
            for j, layer in enumerate(trace.moe_layers[1:], start=1):
                prev = trace.steps[s - 1][layer] if same_layer else \
                    trace.steps[s][trace.moe_layers[j - 1]]
                hits += len(set(trace.steps[s][layer][0]) & set(prev[-1]))
                n += 4
        return hits / n

    base = resolve_routing("uniform", model, 4, 200, seed=1).trace
    sticky = resolve_routing("uniform,sticky=0.9", model, 4, 200, seed=1).trace
    assert agreement(base, True) < 0.15 < 0.7 < agreement(sticky, True)
    corr = parse_distribution("correlated:0.9")
    assert corr.corr == 0.9 and corr.describe() == "uniform,corr=0.9"


def test_bad_specs():
    with pytest.raises(UnknownNameError):
        parse_distribution("zipff:1")
    with pytest.raises(SpecError):
        parse_distribution("zipf:-1")
    with pytest.raises(SpecError):
        parse_distribution("uniform,corr=2")
    with pytest.raises(SpecError):
        parse_distribution("uniform,warp=0.1")


def test_trace_round_trip_jsonl_and_csv(tmp_path, model):
    trace = resolve_routing("zipf:1.1", model, 8, 3, seed=0).trace
    for name in ("t.jsonl", "t.csv"):
        trace.write(tmp_path / name)
        back = read_trace(tmp_path / name, model)
        assert back.prompt_tokens == 8 and back.decode_steps == 3
        for s in range(4):
            for layer in trace.moe_layers:
                np.testing.assert_array_equal(back.steps[s][layer], trace.steps[s][layer])


def test_trace_resolution_rules(tiny_model_file, write_trace):
    spec = load_moe_model(tiny_model_file)
    path = write_trace([{0: [[0], [1]]}, {0: [[2]]}, {0: [[3]]}])
    src = resolve_routing(str(path), spec, None, None, seed=0)
    assert src.trace.prompt_tokens == 2 and src.trace.decode_steps == 2
    assert resolve_routing(str(path), spec, 2, 1, 0).trace.decode_steps == 1
    with pytest.raises(DataError, match="--prompt"):
        resolve_routing(str(path), spec, 3, None, 0)
    with pytest.raises(DataError, match="decode steps"):
        resolve_routing(str(path), spec, None, 5, 0)


@pytest.mark.parametrize("rows, message", [
    ([{0: [[0]]}, {0: [[1], [2]]}], "exactly one token"),
    ([{0: [[7]]}], "out of range"),
    ([{1: [[0]]}], "MoE layers"),
])
def test_bad_traces(tiny_model_file, write_trace, rows, message):
    spec = load_moe_model(tiny_model_file)
    path = write_trace(rows, "bad.jsonl")
    with pytest.raises(DataError, match=message):
        read_trace(path, spec)


def test_bad_trace_lines(tmp_path, tiny_model_file):
    spec = load_moe_model(tiny_model_file)
    p = tmp_path / "x.jsonl"
    p.write_text('{"step": 0, "layer": 0, "token": 0, "experts": [0, 1]}\n')
    with pytest.raises(DataError, match="top-1"):
        read_trace(p, spec)
    p.write_text("not json\n")
    with pytest.raises(DataError, match="invalid JSON"):
        read_trace(p, spec)
    c = tmp_path / "x.csv"
    c.write_text("step,layer,experts\n0,0,1\n")
    with pytest.raises(DataError, match="columns"):
        read_trace(c, spec)
    with pytest.raises(DataError, match="not found"):
        resolve_routing(str(tmp_path / "missing.jsonl"), spec, None, None, 0)


def test_duplicate_expert_rejected():
    trace = RoutingTrace(4, 2, (0,), [{0: np.array([[1, 1]])}])
    with pytest.raises(DataError, match="twice"):
        trace.validate()
