"""Bad Python API calls raise the project's own errors (``LLMSimError`` subclasses), one line.

A table of bad values per argument of every public entry point (issue 9: ``estimate(tp=0)``
raised pydantic's ``ValidationError``, ``get_model(5)`` an ``AttributeError``,
``price_op(efficiency=0)`` a ``ZeroDivisionError``, ``batch=2.5`` ran as 2 ...). Each call must
raise an ``LLMSimError`` whose message is one line; the good call beside each table must work,
so a case fails for its bad value, not for a broken base call.
"""

from __future__ import annotations

import math

import pytest

import llmsim
from llmsim import placement
from llmsim.errors import LLMSimError, UnknownNameError

NAN, INF = math.nan, math.inf
LONG = "x" * 300
#: values that are not a positive whole number
NOT_COUNTS = [0, -1, 2.5, True, "8", None, NAN, INF, [4]]
NOT_FRACTIONS = [0, -1, 2, 5, NAN, INF, "0.5", True]


def _cases(base: dict, table: dict[str, list]) -> list:
    return [pytest.param(base, key, value, id=f"{key}={value!r}"[:60])
            for key, values in table.items() for value in values]


def _raises_one_line(fn, kwargs):
    with pytest.raises(LLMSimError) as info:
        fn(**kwargs)
    message = str(info.value)
    assert message and "\n" not in message, message
    return info.value


# ----------------------------------------------------------------------------- estimate
ESTIMATE = dict(model="llama-3.1-8b", hardware="h100-sxm", batch=2, prompt=128, output=16)
ESTIMATE_BAD = {
    "model": [None, 5, "", "llama-3.1-8bb", LONG, "/nonexistent/config.json", ["llama"]],
    "hardware": [5, "", "h100-sxmm", LONG],
    "batch": NOT_COUNTS + [10**30],
    "prompt": NOT_COUNTS + [10**9],
    "output": NOT_COUNTS,
    "beam": NOT_COUNTS,
    "tp": NOT_COUNTS + [3],
    "pp": NOT_COUNTS + [1000],
    "ep": NOT_COUNTS,
    "dp": NOT_COUNTS,
    "num_gpus": [0, -1, 2.5, True, "8"],
    "micro_batches": [-1, 2.5, True, "1"],
    "dtype": [5, "", "fp9"],
    "kv_dtype": [5, "int3"],
    "act_dtype": ["fp7"],
    "profile": [5, "/nonexistent/profile.yaml", LONG],
    "efficiency": [0, -1, 2, NAN, INF, "0.5", True],
    "memory_utilization": NOT_FRACTIONS,
    "cluster": [5, "dgx-h1000"],
}


def test_estimate_base_call_works():
    assert llmsim.estimate(**ESTIMATE).ttft_s > 0


@pytest.mark.parametrize("base, key, value", _cases(ESTIMATE, ESTIMATE_BAD))
def test_estimate_rejects(base, key, value):
    _raises_one_line(llmsim.estimate, {**base, key: value})


def test_estimate_unknown_model_suggests_a_name():
    err = _raises_one_line(llmsim.estimate, {**ESTIMATE, "model": "llama-3.1-8bb"})
    assert isinstance(err, UnknownNameError) and "did you mean" in str(err).lower()


# ----------------------------------------------------------------------------- price_op
GEMM = dict(kind="gemm", hardware="h100-sxm", m=16, n=4096, k=4096)
GEMM_BAD = {
    "kind": [5, "", "gemmm", None],
    "hardware": [5, None, "", LONG],
    "m": NOT_COUNTS, "n": NOT_COUNTS, "k": NOT_COUNTS,
    "dtype": [5, "fp9"],
    "efficiency": [0, -1, 2, NAN, INF, "0.5", True],
    "profile": [5, "/nonexistent.yaml"],
    # shape keys or flags the kind does not use change nothing: errors
    "num_heads": [8], "batch": [4], "message_bytes": [1e6], "ep": [2], "top_k": [2],
    "inter_node": [True], "kv_dtype": ["fp8"],
    # unknown keys
    "mm": [16], "foo": [1],
}
ATTN = dict(kind="attention-decode", hardware="h100-sxm", batch=4, context_len=1024,
            num_heads=32, num_kv_heads=8, head_dim=128)
ATTN_BAD = {"batch": NOT_COUNTS, "context_len": NOT_COUNTS, "num_heads": NOT_COUNTS + [12],
            "num_kv_heads": NOT_COUNTS + [3], "head_dim": NOT_COUNTS, "kv_dtype": ["int3", 5],
            "m": [16], "seq_len": [8]}
MOE = dict(kind="moe", hardware="h100-sxm", num_tokens=64, hidden_size=4096,
           intermediate_size=14336, num_experts=8, top_k=2)
MOE_BAD = {"num_tokens": NOT_COUNTS, "num_experts": NOT_COUNTS, "top_k": NOT_COUNTS + [9],
           "ep": [0, 3, 2.5, True], "hidden_size": NOT_COUNTS}
ALL_REDUCE = dict(kind="all-reduce", hardware="h100-sxm", message_bytes=1e6, num_gpus=8)
ALL_REDUCE_BAD = {"message_bytes": [0, -1, NAN, INF, "1e6", True, None],
                  "num_gpus": [0, 1, -2, 2.5, True, "8"], "inter_node": [True],
                  "m": [4]}
P2P = dict(kind="p2p", hardware="h100-sxm", message_bytes=1e6)
P2P_BAD = {"message_bytes": [0, INF, NAN], "num_gpus": [4], "inter_node": ["maybe", 2]}


@pytest.mark.parametrize("base", [GEMM, ATTN, MOE, ALL_REDUCE, P2P],
                         ids=lambda b: b["kind"])
def test_price_op_base_calls_work(base):
    assert llmsim.price_op(**base).time_s > 0


@pytest.mark.parametrize("base, key, value", _cases(GEMM, GEMM_BAD) + _cases(ATTN, ATTN_BAD)
                         + _cases(MOE, MOE_BAD) + _cases(ALL_REDUCE, ALL_REDUCE_BAD)
                         + _cases(P2P, P2P_BAD))
def test_price_op_rejects(base, key, value):
    _raises_one_line(llmsim.price_op, {**base, key: value})


def test_price_op_unknown_shape_key_suggests_the_right_one():
    err = _raises_one_line(llmsim.price_op, {**GEMM, "mm": 16})
    assert "'m'" in str(err)


# ----------------------------------------------------------------------------- catalog
@pytest.mark.parametrize("fn", [llmsim.get_model, llmsim.get_hardware])
@pytest.mark.parametrize("value", [5, None, "", LONG, ["h100"], 3.5, "no-such-name"])
def test_catalog_lookups_reject(fn, value):
    _raises_one_line(fn, {"name": value})


@pytest.mark.parametrize("kwargs", [
    {"cluster": 5}, {"cluster": None, "hardware": None}, {"cluster": "dgx-h1000"},
    {"hardware": "h100-sxm", "num_gpus": 0}, {"hardware": "h100-sxm", "num_gpus": 2.5},
    {"hardware": "h100-sxm", "num_gpus": True}, {"hardware": 5},
])
def test_get_cluster_rejects(kwargs):
    _raises_one_line(llmsim.get_cluster, kwargs)


@pytest.mark.parametrize("value", [5, "/nonexistent.yaml", LONG, ""])
def test_profile_load_rejects(value):
    _raises_one_line(llmsim.Profile.load, {"path": value})


# ----------------------------------------------------------------------------- memory
def _memory(**kw):
    from llmsim.catalog import ParallelSpec, get_cluster, get_model
    from llmsim.costmodel.ops import Precision

    model = get_model("llama-3.1-8b")
    args = dict(model=model, cluster=get_cluster(hardware="h100-sxm", num_gpus=1),
                plan=ParallelSpec(), precision=Precision.resolve(model.weight_dtype),
                kv_tokens=1000)
    return llmsim.analyze_memory(**{**args, **kw})


@pytest.mark.parametrize("key, value", [
    ("memory_utilization", v) for v in NOT_FRACTIONS] + [
    ("kv_tokens", v) for v in (-1, NAN, INF, "8", True)] + [
    ("max_tokens", v) for v in (-1, 2.5, True)] + [
    ("model", "llama-3.1-8b"), ("plan", 5), ("precision", "bf16")])
def test_analyze_memory_rejects(key, value):
    _raises_one_line(_memory, {key: value})


@pytest.mark.parametrize("kwargs", [{"tp": 0}, {"tp": True}, {"pp": 2.5}, {"dp": "2"},
                                    {"micro_batches": -1}, {"ep": None}])
def test_parallel_spec_rejects(kwargs):
    _raises_one_line(llmsim.catalog.ParallelSpec, kwargs)


# ----------------------------------------------------------------------------- simulate
SIM = {"model": "llama-3.1-8b", "hardware": "h100-sxm",
       "workload": {"rate": 4, "num_requests": 20, "prompt": 64, "output": 8}}


def test_simulate_base_call_works():
    assert llmsim.simulate(SIM).summary()["num_requests"] == 20


@pytest.mark.parametrize("config", [
    42, None, 3.5, ["model"], b"yaml", "", "/nonexistent/sim.yaml", LONG,
    {}, {"model": 5}, {"model": "llama-3.1-8b"},
    {**SIM, "workload": {**SIM["workload"], "rate": INF}},
    {**SIM, "workload": {**SIM["workload"], "rate": NAN}},
    {**SIM, "workload": {**SIM["workload"], "rate": -1}},
    {**SIM, "workload": {**SIM["workload"], "num_requests": 10**26}},
    {**SIM, "workload": {**SIM["workload"], "num_requests": 1e26}},
    {**SIM, "workload": {**SIM["workload"], "num_requests": True}},
    {**SIM, "workload": {**SIM["workload"], "num_requests": 2.5}},
    {**SIM, "workload": {**SIM["workload"], "rate_scale": 2}},
    {**SIM, "workload": {**SIM["workload"], "arrival": "gamma", "cv": INF}},
    {**SIM, "workload": {**SIM["workload"], "arrival": "gamma", "cv": -1}},
    {**SIM, "workload": {**SIM["workload"], "arrival": "gamma:cv=-1"}},
    {**SIM, "workload": {**SIM["workload"], "arrival": "gamma:cv=inf"}},
    {**SIM, "workload": {**SIM["workload"], "arrival": "poisson:rate=inf"}},
    {**SIM, "workload": {**SIM["workload"], "prefix_groups": 4}},
    {**SIM, "workload": {**SIM["workload"], "seed": True}},
    {**SIM, "workload": {**SIM["workload"], "seed": -1}},
    {**SIM, "workload": {**SIM["workload"], "think_time_s": INF, "concurrency": 2}},
    {**SIM, "scheduler": {"name": "dynamic", "batch_window_s": INF}},
    {**SIM, "scheduler": {"name": "dynamic", "batch_window_s": NAN}},
    {**SIM, "scheduler": {"max_num_seqs": True}},
    {**SIM, "scheduler": {"max_num_seqs": 0}},
    {**SIM, "parallelism": {"tp": True}},
    {**SIM, "parallelism": {"tp": 2.5}},
    {**SIM, "parallelism": {"tp": 0}},
    {**SIM, "hardware": {"name": "h100-sxm", "memory_utilization": 5}},
    {**SIM, "hardware": {"name": "h100-sxm", "efficiency": 0}},
    {**SIM, "hardware": {"name": "h100-sxm", "efficiency": NAN}},
    {**SIM, "hardware": {"name": "h100-sxm", "efficiency": 2}},
    {**SIM, "slo": {"ttft_s": INF}},
    {**SIM, "slo": {"ttft_s": -1}},
    {**SIM, "model": {"name": "llama-3.1-8b", "max_model_len": True}},
], ids=lambda c: repr(c)[:70])
def test_simulate_rejects(config):
    _raises_one_line(llmsim.simulate, {"config": config})


# ----------------------------------------------------------------------------- placement
def test_offload_base_calls_work():
    res = placement.solve("opt-6.7b", 512, 32, gpu_batch_sizes=(1, 2), num_gpu_batches=(1,),
                          hardware="t4", host="gcp-t4-flexgen")
    assert res.feasible


@pytest.mark.parametrize("kwargs", [
    {"gpu_batch_sizes": 8}, {"gpu_batch_sizes": "8"}, {"gpu_batch_sizes": [0]},
    {"gpu_batch_sizes": [2.5]}, {"gpu_batch_sizes": [True]}, {"gpu_batch_sizes": []},
    {"num_gpu_batches": 4}, {"num_gpu_batches": [-1]},
    {"prompt_len": 0}, {"prompt_len": 2.5}, {"prompt_len": True}, {"gen_len": "32"},
    {"prompt_len": 10**9}, {"model": 5}, {"model": "opt-6.7bb"}, {"hardware": 5},
    {"host": "no-such-host"}, {"moe_experts": "some"}, {"runtime": "nope"},
    {"gpu_mem_bytes": -1}, {"gpu_mem_bytes": NAN}, {"alpha_g": 0}, {"alpha_g": 2},
    {"efficiency": 0}, {"efficiency": NAN}, {"no_such_knob": 1},
])
def test_offload_solve_rejects(kwargs):
    args = dict(model="opt-6.7b", prompt_len=512, gen_len=32, hardware="t4",
                host="gcp-t4-flexgen", gpu_batch_sizes=(1, 2), num_gpu_batches=(1,))
    _raises_one_line(placement.solve, {**args, **kwargs})


@pytest.mark.parametrize("args", [
    (0, 1), (1, 0), (2.5, 1), (True, 1), ("2", 1), (1, 1, 2.0), (1, 1, NAN), (1, 1, -0.5),
    (1, 1, 0.7, 0.7),
])
def test_offload_policy_rejects(args):
    _raises_one_line(lambda: placement.OffloadPolicy(*args), {})


@pytest.mark.parametrize("percent", [(1, 2), (50, 60, 0, 100, 0, 100), (-1, 0, 100, 0, 100, 0),
                                     ("a", 0, 0, 0, 0, 0), (NAN, 0, 100, 0, 100, 0)])
def test_offload_policy_from_percent_rejects(percent):
    _raises_one_line(lambda: placement.OffloadPolicy.from_percent(2, 1, percent), {})


@pytest.mark.parametrize("policy", [5, None, "2x1", {"gpu_batch_size": 2}])
def test_offload_evaluate_rejects(policy):
    _raises_one_line(placement.evaluate, {"model": "opt-6.7b", "policy": policy,
                                          "hardware": "t4"})


# ----------------------------------------------------------------------------- step models
@pytest.mark.parametrize("value", [5, None, "llama-3.1-8b", object()])
def test_build_step_model_rejects(value):
    _raises_one_line(llmsim.build_step_model, {"deployment": value})


@pytest.mark.parametrize("kwargs", [{"model": None}, {"model": 5}, {"tp": 0}, {"tp": True},
                                    {"hardware": None}, {"num_gpus": -1}, {"efficiency": 0},
                                    {"dtype": "fp9"}, {"profile": 7}])
def test_deployment_resolve_rejects(kwargs):
    args = {"model": "llama-3.1-8b", "hardware": "h100-sxm", **kwargs}
    _raises_one_line(llmsim.Deployment.resolve, args)


@pytest.mark.parametrize("args", [(0, 128), (-1, 128), (2.5, 128), (True, 128), ("2", 128)])
def test_batch_shape_constructors_reject(args):
    """(The dataclass itself stays unchecked: the schedulers build one per step.)"""
    _raises_one_line(lambda: llmsim.BatchShape.prefill(*args), {})
    _raises_one_line(lambda: llmsim.BatchShape.decode(*args), {})


@pytest.mark.parametrize("context", [-1, NAN, INF, "8", True])
def test_batch_shape_decode_rejects_context(context):
    _raises_one_line(lambda: llmsim.BatchShape.decode(2, context), {})
