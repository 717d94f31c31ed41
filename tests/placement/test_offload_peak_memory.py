"""The GPU/CPU peak of a FlexGen policy is what FlexLLMGen holds at once: whole-tensor weight
placement, one decoder layer of weights in flight, two prefill score copies, compressed
embedding tables, a cache of s + n - 1 tokens. Every published FlexLLMGen policy must evaluate
as fitting the machine it ran on (the T4 box of tests/golden/flexgen_throughput.csv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.placement import OffloadPolicy, evaluate, solve
from llmsim.placement import host_fit as hf
from llmsim.placement.solver import _workload, placed_fractions

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "flexgen_throughput.csv"
T4 = {"hardware": "t4", "host": "gcp-t4-flexgen"}
CASES = hf.load_flexgen_cases(GOLDEN)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_published_policies_fit_where_they_ran(case):
    res = evaluate(case.model, case.policy, case.prompt_len, case.gen_len, **T4)
    assert res.feasible, res.reason


def _run(model: str, runtime: str = "flexgen"):
    return _workload(model, 512, 32, "t4", "gcp-t4-flexgen", None, "all", None, None, {},
                     runtime, 1.5)


def test_flexllmgen_places_whole_tensors_by_their_midpoint():
    """--percent 20 80 on OPT: the attention layer [q, k, v, out] has midpoints 12.5 .. 87.5%,
    the MLP [fc1, fc2] 25 and 75%: only out_proj (and the 1-D weights) reach the GPU's top 20%,
    1/12 of a decoder layer."""
    wl = _run("opt-30b")
    gpu, cpu = wl.placed_weight_fractions(0.2, 0.8, False)
    assert gpu == pytest.approx(1 / 12, abs=0.01) and gpu + cpu == pytest.approx(1.0)
    # 50/50 CPU/disk splits the decoder exactly (q, k | v, out; fc1 | fc2)
    gpu, cpu = wl.placed_weight_fractions(0.0, 0.5, False)
    assert gpu == 0 and cpu == pytest.approx(0.5, abs=0.01)
    assert _run("opt-30b", "fused").placed_weight_fractions(0.2, 0.8, False) == (0.2, 0.8)


def test_opt30b_published_policy_peak_is_what_flexllmgen_holds():
    """18.1 GiB before (20% of the weights on the GPU, two decoder layers in flight), which a
    16 GiB T4 cannot hold although FlexLLMGen ran it."""
    policy = OffloadPolicy.from_percent(48, 3, (20, 80, 0, 100, 0, 100), cpu_cache_compute=True)
    res = evaluate("opt-30b", policy, 512, 32, **T4)
    assert res.weight_placement["gpu"] == pytest.approx(1 / 12, abs=0.01)
    assert 11 * 2**30 < res.peak_bytes["prefill"]["gpu"] < 13 * 2**30
    assert res.feasible


def test_solve_returns_a_placement_the_runtime_realises_within_limits():
    res = solve("opt-30b", 512, 32, gpu_batch_sizes=(8, 16, 32, 48), num_gpu_batches=(1, 2, 4),
                **T4)
    wl = _run("opt-30b")
    wg, wc = placed_fractions(wl, res.policy)[:2]
    assert (res.weight_placement["gpu"], res.weight_placement["cpu"]) == pytest.approx((wg, wc))
    for stage in ("prefill", "decode"):
        for tier, limit in res.limit_bytes.items():
            assert res.peak_bytes[stage][tier] <= limit * (1 + 1e-9) + 1
