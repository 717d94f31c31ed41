"""Bad values of the flags added in the last sessions (disaggregated pools and their KV link,
arrival burstiness and client jitter, interval draws, large expert parallelism, speculative
decoding, beams, ``--max-model-len``, vLLM percentiles, comma-list comparisons): each gives
exactly one ``error:`` line and exit code 2, never a traceback. Same pattern as
``test_fuzz_cli.py``: a base line that works, and a table of bad values per flag."""

from __future__ import annotations

import pytest
from test_fuzz_cli import COUNT, FRACTION, LONG, NAME, REAL, _table, one_error_line

MAX_LEN = ["0", "1", "-5", "abc", "2.5", "", "99999999999999999999999", "nan"]

ESTIMATE = ["estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--batch", "2", "--input-len",
            "128", "--output-len", "16"]
ESTIMATE_BAD = {
    "--beam": COUNT + ["100000"],
    "--max-model-len": MAX_LEN + ["100"],  # 100 < 128 + 16: the context error
    "--engine": NAME + ["vllm@", "@1.0", "vllm,,sglang"],  # vllm@99: its unversioned profile
    "--interval-level": ["0", "1", "nan", "inf", "abc", ""],
    "--spec-method": NAME + ["mtp"],  # llama has no MTP layers
    "--spec-tokens": COUNT + ["65"],
    "--spec-acceptance": ["0.8"],  # without --spec-method: a flag that changes nothing
    "--draft-model": ["llama-3.1-8b"],  # likewise
    "--expert-skew": ["0.5"], "--redundant-experts": ["2"],  # a dense model has no experts
    "--kv-link": ["rdma", "nvlink"],  # no pools: nothing crosses a link
    "--kv-layerwise": [None], "--no-kv-layerwise": [None],
    "--prefill-pool": ["", "workers=0,tp=1", "workers=abc", "tp=3", "nope=1", "workers=2,tp",
                       "workers=2,tp=1,tp=2", "workers=1e30", "workers=nan", LONG, ",,,"],
    "--decode-pool": ["", "workers=-1", "tp=0", "hardware=nope", "max_num_seqs=abc"],
    # comma lists compare every combination: each value is checked
    "-H": ["h100-sxm,nope", ",", "h100-sxm,", ",h100-sxm", "h100-sxm,,a100-sxm-80gb",
           "h100-sxm," + LONG],
    "--model": ["llama-3.1-8b,nope", "llama-3.1-8b,"],
    "--tp": ["1,abc", "1,0", "3,5", ",", "1,,2", "1,2.5", "1,-1", "1,99999999999999999999999"],
    "--pp": ["1,0", "1,abc"], "--dp": ["1,0", "1,x"], "--ep": ["1,0"],
}
ESTIMATE_SPEC = ["estimate", "-m", "llama-3.1-70b", "-H", "h100-sxm", "--tp", "4", "--batch",
                 "2", "--input-len", "128", "--output-len", "16", "--spec-method", "draft",
                 "--draft-model", "llama-3.1-8b", "--spec-acceptance", "0.8"]
ESTIMATE_SPEC_BAD = {
    "--spec-acceptance": ["2", "-0.1", "nan", "inf", "abc", "", "0.8,abc", "0.8,,0.7", "1.5,0.5",
                          "0.9,0.8,0.7,0.6,0.5"],  # 5 positions for k = 3
    "--spec-tokens": ["0", "65", "abc"],
    "--draft-model": NAME + ["llama-3.1-405b"],  # a draft larger than its target
    "--beam": ["2"], "--pp": ["2"],
}
ESTIMATE_MOE = ["estimate", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--tp", "2", "--ep", "2",
                "--batch", "2", "--input-len", "128", "--output-len", "16"]
ESTIMATE_MOE_BAD = {
    "--expert-skew": REAL + ["9", "-0.5"],
    "--redundant-experts": ["-1", "abc", "2.5", "", "99999999999999999999999", "1e9"],
    "--ep-kernel": NAME,
}
ESTIMATE_DISAGG = [*ESTIMATE, "--prefill-pool", "workers=1,tp=1", "--decode-pool",
                   "workers=1,tp=1"]
ESTIMATE_DISAGG_BAD = {
    "--kv-link": NAME + ["ethernet:abc", "ethernet:-1", "ethernet:0", "ethernet:nan",
                         "ethernet:inf", ":100"],
    "--prefill-pool": ["workers=1,tp=3", "workers=1,tp=1,hardware=nope", "workers=1,pp=64"],
    # the single-estimate flags a disaggregated estimate does not take
    "--beam": ["2"], "--engine": ["vllm"], "--estimator": ["analytic"], "--intervals": [None],
    "--no-intervals": [None], "--max-model-len": ["4096"], "--memory-utilization": ["0.8"],
    "--spec-method": ["ngram"],
}

SIM = ["simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--rate", "4", "-n", "20",
       "--input-len", "64", "--output-len", "8", "--no-plots"]
SIM_BAD = {
    "--burstiness": REAL + ["0"],
    "--client-jitter": ["-1", "nan", "inf", "abc", "", "1e400"],
    "--interval-draws": ["-1", "1", "abc", "2.5", "", "99999999999999999999999"],
    "--interval-level": FRACTION,
    "--beam": COUNT + ["100000"],
    "--max-model-len": ["0", "1", "-5", "abc", "2.5", ""],
    "--metrics": NAME + ["VLLM,"],
    "--percentiles": ["50"],  # without --metrics vllm: changes nothing
    "--spec-method": NAME, "--spec-tokens": COUNT + ["65"],
    "--expert-skew": ["0.5"], "--redundant-experts": ["2"],  # a dense model has no experts
    "--engine": NAME + ["vllm,nope"],
    "-H": ["h100-sxm,nope", ",", "h100-sxm,"],
    "--tp": ["1,abc", "1,0", "1,3", ",", "1,2.5"], "--replicas": ["1,0", "1,x", ","],
    "--model": ["llama-3.1-8b,nope"],
}
SIM_VLLM = [*SIM, "--metrics", "vllm"]
SIM_VLLM_BAD = {
    "--percentiles": ["", "abc", "-1", "101", "nan", "inf", "50,abc", "50,,90", ",", "1e400",
                      LONG, "50;90"],
}
SIM_BURSTY = [*SIM, "--burstiness", "0.5"]  # with --arrival poisson too: as vllm bench
SIM_BURSTY_BAD = {"--cv": ["2"], "--arrival": ["batch", "uniform"]}

# a comparison: every value of a list is checked before anything runs
ESTIMATE_LISTS = [*ESTIMATE, "-H", "h100-sxm,a100-sxm-80gb", "--tp", "1,2"]
ESTIMATE_LISTS_BAD = {"--tp": ["3,5"],  # no combination can be estimated: the first error
                      "--model": ["nope,llama-3.1-8b"], "--pp": ["1,abc"]}
SIM_LISTS = [*SIM, "-H", "h100-sxm,a100-sxm-80gb"]
SIM_LISTS_BAD = {"--replicas": ["1,0"], "--engine": ["vllm,nope"], "--tp": ["1,3"],
                 "--out-dir": ["@folder"]}

MEMORY = ["memory", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--seq-len", "4096"]
MEMORY_BAD = {"--max-model-len": MAX_LEN + ["4000"]}
OFFLOAD = ["offload", "evaluate", "-m", "opt-6.7b", "--gpu-batch-size", "2"]
OFFLOAD_BAD = {"--max-model-len": MAX_LEN + ["100"],
               "--weight-dtype": ["", "fp8", "int3", LONG], "--kv-dtype": ["", "fp8", "abc"],
               "--kv-cache-dtype": ["fp8"]}
OFFLOAD_SOLVE = ["offload", "solve", "-m", "opt-6.7b", "--gpu-batch-size", "2",
                 "--num-gpu-batches", "1"]
OFFLOAD_SOLVE_BAD = {"--max-model-len": ["0", "abc", "100"], "--weight-dtype": ["fp9"]}
MOE = ["moe-offload", "simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--output-len", "2",
       "--input-len", "16"]
MOE_BAD = {"--max-model-len": MAX_LEN + ["10"], "--estimator": NAME + ["learned"],
           "--estimator-model": ["@missing", "@folder", "@binary.csv"]}

TABLES = [(ESTIMATE, ESTIMATE_BAD), (ESTIMATE_SPEC, ESTIMATE_SPEC_BAD),
          (ESTIMATE_MOE, ESTIMATE_MOE_BAD), (ESTIMATE_DISAGG, ESTIMATE_DISAGG_BAD),
          (SIM, SIM_BAD), (SIM_VLLM, SIM_VLLM_BAD), (SIM_BURSTY, SIM_BURSTY_BAD),
          (SIM_LISTS, SIM_LISTS_BAD), (ESTIMATE_LISTS, ESTIMATE_LISTS_BAD),
          (MEMORY, MEMORY_BAD), (OFFLOAD, OFFLOAD_BAD), (OFFLOAD_SOLVE, OFFLOAD_SOLVE_BAD),
          (MOE, MOE_BAD)]


@pytest.mark.parametrize("argv", [base for base, _ in TABLES], ids=lambda a: " ".join(a[:3]))
def test_base_command_lines_work(cli, argv):
    res = cli(*argv, "--format", "json")
    assert res.code == 0, res.err


@pytest.mark.parametrize("argv", [case for base, bad in TABLES for case in _table(base, bad)])
def test_bad_value_is_one_error_line(cli, files, argv):
    from test_fuzz_cli import _resolve

    one_error_line(cli(*_resolve(argv, files)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import fuzz_files

    return fuzz_files.make(tmp_path_factory.mktemp("fuzz_new"))


def test_a_comparison_keeps_the_combinations_that_can_be_priced(cli):
    """``--tp 1,3`` on a 32-head model: tp 1 is estimated, tp 3 is a row with its error and a
    warning after the table (a comparison is a sweep); only when no combination can be priced
    is it an error (``--tp 3,5`` above)."""
    res = cli(*ESTIMATE, "--tp", "1,3", "--format", "json")
    assert res.code == 0, res.err
    rows = {r["run"]: r for r in res.json()["runs"]}
    assert rows["tp1"]["ttft_s"] > 0 and "does not divide" in rows["tp3"]["error"]
    assert res.err.count("tp3: tp 3 does not divide") == 1
