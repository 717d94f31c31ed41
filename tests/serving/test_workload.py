"""Workloads: length distributions, arrival processes, trace parsing (all formats), scaling,
tiling and bad traces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmsim.errors import ConfigError, DataError, UnknownNameError
from llmsim.workload.arrivals import make_arrivals
from llmsim.workload.lengths import make_length_dist, parse_length_spec
from llmsim.workload.spec import WorkloadSection
from llmsim.workload.stream import build_workload
from llmsim.workload.traces import load_trace


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("spec,mean,tol", [
    ("fixed:512", 512, 0), ("512", 512, 0), ("uniform:100,300", 200, 0.02),
    ("normal:mean=1000,std=100", 1000, 0.02), ("lognormal:mean=800,cv=0.5", 800, 0.03),
])
def test_length_distributions_mean(spec, mean, tol):
    x = make_length_dist(spec).sample(20_000, rng())
    assert x.dtype == np.int64 and x.min() >= 1
    assert x.mean() == pytest.approx(mean, rel=tol, abs=0.5)


def test_zipf_is_bounded_and_heavy_headed():
    x = make_length_dist("zipf:a=1.2,high=4096").sample(20_000, rng())
    assert x.min() >= 1 and x.max() <= 4096
    assert np.median(x) < x.mean()


def test_empirical_resamples_a_trace(azure_sample):
    x = make_length_dist(f"empirical:path={azure_sample}", role="output").sample(5000, rng())
    t = load_trace(azure_sample)
    assert set(np.unique(x)) <= set(np.unique(t.output_tokens))


def test_length_spec_parsing_and_errors():
    assert parse_length_spec("uniform:1,10") == {"dist": "uniform", "low": 1, "high": 10}
    with pytest.raises(UnknownNameError, match="Did you mean 'lognormal'"):
        make_length_dist("lognormall:mean=3")
    with pytest.raises(ConfigError):
        make_length_dist("uniform:10,1")


@pytest.mark.parametrize("name,cv", [("poisson", 1.0), ("gamma", 2.0), ("gamma", 0.5),
                                     ("deterministic", 0.0)])
def test_arrival_processes_rate_and_burstiness(name, cv):
    proc = make_arrivals(name, 10.0, cv if name == "gamma" else None)
    t = proc.times(50_000, rng(1))
    gaps = np.diff(t)
    assert 1 / gaps.mean() == pytest.approx(10.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, abs=0.05)


def test_batch_arrivals_and_unknown_names():
    assert (make_arrivals("all-at-once").times(5, rng()) == 0).all()
    with pytest.raises(UnknownNameError, match="poisson"):
        make_arrivals("poison", 1.0)
    with pytest.raises(ConfigError, match="--rate"):
        make_arrivals("poisson", None).times(3, rng())


def test_azure_trace(azure_sample):
    t = load_trace(azure_sample)
    assert t.format == "azure" and len(t) == 2000
    assert t.arrival_s[0] == 0 and (np.diff(t.arrival_s) >= 0).all()
    assert t.input_tokens[:3].tolist() == [374, 396, 879]
    assert t.arrival_s[1] == pytest.approx(4.314579)


def test_mooncake_trace(mooncake_sample):
    t = load_trace(mooncake_sample)
    assert t.format == "mooncake" and len(t) == 500
    assert t.hash_offsets is not None and t.hash_values is not None
    lens = np.diff(t.hash_offsets)
    assert (lens == -(-t.input_tokens // 512)).all()
    assert t.arrival_s.max() == pytest.approx(165.0)


def test_plain_and_vidur_traces(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("input_tokens,output_tokens,arrival_time_s,priority\n10,5,0.5,1\n"
                     "20,6,0.0,0\n")
    t = load_trace(plain)
    assert t.format == "plain"
    assert t.input_tokens.tolist() == [20, 10]  # sorted by arrival
    assert t.priority.tolist() == [0, 1]
    vidur = tmp_path / "vidur.csv"
    vidur.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,100,10\n1.5,50,3\n")
    v = load_trace(vidur)
    assert v.format == "vidur" and v.arrival_s.tolist() == [0.0, 1.5]
    jl = tmp_path / "plain.jsonl"
    jl.write_text("\n".join(json.dumps({"input_tokens": i + 1, "output_tokens": 2})
                            for i in range(4)))
    assert load_trace(jl).arrival_s is None


@pytest.mark.parametrize("content,match", [
    ("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n", "unrecognised trace columns"),
    ("input_tokens,output_tokens\n10,5\n-3,4\n", r"line 3, column 'input_tokens': negative"),
    ("input_tokens,output_tokens\n10,abc\n", r"line 2, column 'output_tokens'"),
    ("input_tokens,output_tokens\n10,0\n", "zero length"),
    ("input_tokens,output_tokens\n10.5,3\n", "whole number"),
])
def test_bad_traces_raise_data_error_with_location(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_trace(p)
    assert "bad.csv" in str(err.value)


def test_missing_column_for_named_format(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("ContextTokens,GeneratedTokens\n3,4\n")
    with pytest.raises(DataError, match="missing column.*'TIMESTAMP'.*azure"):
        load_trace(p, "azure")
    with pytest.raises(DataError, match="not found"):
        load_trace(tmp_path / "nope.csv")


def test_rate_scale_and_tiling(azure_sample):
    base = build_workload(WorkloadSection(trace=azure_sample))
    fast = build_workload(WorkloadSection(trace=azure_sample, rate_scale=2.0))
    np.testing.assert_allclose(fast.arrival_s, base.arrival_s / 2.0)
    tiled = build_workload(WorkloadSection(trace=azure_sample, num_requests=4500))
    assert len(tiled) == 4500 and tiled.info["tiles"] == 3
    assert (np.diff(tiled.arrival_s) >= 0).all()
    assert (tiled.input_tokens[2000:4000] == base.input_tokens).all()
    span = base.arrival_s[-1]
    assert tiled.arrival_s[2000] > span


def test_trace_lengths_with_synthetic_arrivals(azure_sample):
    w = build_workload(WorkloadSection(trace=azure_sample, arrival="poisson", rate=50.0,
                                       num_requests=1000, seed=2))
    assert 1 / np.diff(w.arrival_s).mean() == pytest.approx(50.0, rel=0.1)
    assert w.input_tokens[0] == 374


def test_workload_needs_an_arrival_process():
    with pytest.raises(ConfigError, match="arrival"):
        build_workload(WorkloadSection(num_requests=3))


def test_seeded_streams_are_independent():
    a = build_workload(WorkloadSection(rate=5, num_requests=100, prompt="uniform:1,1000",
                                       output="uniform:1,100", seed=3))
    b = build_workload(WorkloadSection(rate=9, num_requests=100, prompt="uniform:1,1000",
                                       output="uniform:1,100", seed=3))
    assert (a.input_tokens == b.input_tokens).all()  # changing the rate keeps the lengths
    assert not np.allclose(a.arrival_s, b.arrival_s)


def test_prefix_keys_mooncake_and_shared(mooncake_sample):
    w = build_workload(WorkloadSection(trace=mooncake_sample))
    k0 = w.prefix_keys(0, 64, 16)
    k1 = w.prefix_keys(1, 64, 16)
    assert k0[:32] == k1[:32]  # both start with hash block 0 (a shared system prompt)
    assert k0[32:40] != k1[32:40]
    s = build_workload(WorkloadSection(rate=1, num_requests=4, shared_prefix_tokens=64,
                                       prefix_groups=2))
    assert s.prefix_keys(0, 10, 16) == s.prefix_keys(2, 10, 16) != s.prefix_keys(1, 10, 16)
    assert len(s.prefix_keys(0, 10, 16)) == 4


def test_length_spec_errors_name_the_fix():
    import pytest

    from llmsim.errors import ConfigError
    from llmsim.workload.lengths import make_length_dist

    with pytest.raises(ConfigError, match=r"missing high; write e.g. uniform:low=...,high="):
        make_length_dist("uniform:50:300")
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_length_dist("lognormal:mean=100,sd=3")


def test_arrival_parameters_inline():
    import numpy as np
    import pytest

    from llmsim.errors import ConfigError
    from llmsim.workload.arrivals import make_arrivals

    proc = make_arrivals("gamma:cv=3", rate=6)
    assert proc.cv == 3 and proc.rate == 6
    assert make_arrivals("poisson:rate=8").rate == 8
    t = make_arrivals("gamma:cv=3,rate=10").times(20_000, np.random.default_rng(0))
    gaps = np.diff(t)
    assert abs(gaps.mean() - 0.1) < 0.01 and abs(gaps.std() / gaps.mean() - 3) < 0.3
    with pytest.raises(ConfigError, match="gamma:cv=3"):
        make_arrivals("gamma:cvv=3", rate=1)


@pytest.mark.parametrize("content,match", [
    ("input_tokens,output_tokens\n100,20\n,5\n",
     r"line 3, column 'input_tokens': missing or empty; every request needs a token count$"),
    ("input_tokens,output_tokens\n10,abc\n", r"column 'output_tokens': 'abc' is not a token "
                                             r"count$"),
    ("input_tokens,output_tokens,arrival_time_s\n10,5,0\n10,5,\n",
     r"line 3, column 'arrival_time_s': missing or empty; every request needs a time"),
    ("input_tokens,output_tokens,arrival_time_s\n10,5,soon\n", r"'soon' is not a valid time$"),
    ("input_tokens,output_tokens,priority\n10,5,high\n", r"'high' is not a whole number$"),
])
def test_trace_cell_errors_show_plain_values(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_trace(p)
    assert "np.float64" not in str(err.value) and "nan" not in str(err.value)


def test_optional_keys_missing_from_some_rows_take_their_default(tmp_path):
    jl = tmp_path / "prio.jsonl"
    jl.write_text('{"input_tokens": 10, "output_tokens": 3}\n'
                  '{"input_tokens": 11, "output_tokens": 3, "priority": 2}\n')
    assert load_trace(jl).priority.tolist() == [0, 2]
    csv = tmp_path / "prio.csv"
    csv.write_text("input_tokens,output_tokens,priority\n10,3,1\n11,3,\n")
    assert load_trace(csv).priority.tolist() == [1, 0]
    moon = tmp_path / "moon.jsonl"
    moon.write_text('{"timestamp": 0, "input_length": 1024, "output_length": 3, '
                    '"hash_ids": [7, 8]}\n'
                    '{"timestamp": 5, "input_length": 600, "output_length": 3}\n')
    t = load_trace(moon)
    assert t.hash_offsets.tolist() == [0, 2, 2] and t.hash_values.tolist() == [7, 8]
