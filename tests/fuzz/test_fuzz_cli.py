"""Bad command lines through the CLI: each gives exactly one ``error:`` line and exit code 2.

Tables of bad values per flag of every sub-command (issue 9 found 21 command lines with a
traceback and 23 that ran nonsense), applied one at a time to a command line that works (each
base line is checked to succeed, so a case fails for its bad value). ``@name`` values are files
from ``fuzz_files.py``: a config.json that is a list or has 0 heads, YAML nested thousands deep
or not UTF-8, a trace with a 23-digit token count, a folder, names over 255 bytes, ...
"""

from __future__ import annotations

import fuzz_files
import pytest

LONG = "x" * 300
COUNT = ["0", "-1", "2.5", "abc", "", "1e26", "99999999999999999999999"]
REAL = ["nan", "inf", "-inf", "-1", "abc", "", "1e400"]
FRACTION = ["0", "-0.5", "2", "nan", "inf", "abc"]
NAME = ["", LONG, "no-such-name"]
READ_PATH = ["@missing", "@folder", "@long_name", "@long_path", "@binary.yaml", "@latin1.yaml"]
YAML_FILES = READ_PATH + ["@invalid.yaml", "@tab.yaml", "@deep.yaml", "@deep_block.yaml",
                          "@list.yaml", "@empty.yaml", "@scalar.yaml", "@control_char.yaml"]
OUT_FILE = ["@folder", "@under_a_file", "@long_name", "@long_path", ""]

MODEL_FILES = ["@config_list.json", "@config_zero_heads.json", "@config_str_layers.json",
               "@config_bool_layers.json", "@config_odd_hidden.json", "@config_bad_dtype.json",
               "@config_bad_kv_heads.json", "@config_negative_vocab.json",
               "@config_unknown_type.json", "@config_missing_key.json", "@config_invalid.json",
               "@config_deep.json", "@binary.json", "@folder", "@long_name", "@missing"]
TRACES = ["@trace_overflow.csv", "@trace_negative.csv", "@trace_fraction.csv",
          "@trace_text.csv", "@trace_inf.csv", "@trace_header_only.csv", "@trace_columns.csv",
          "@trace_time_nan.csv", "@trace_time_negative.csv", "@trace_priority_huge.csv",
          "@trace_empty.csv", "@trace_not_object.jsonl", "@trace_bad_json.jsonl",
          "@trace_deep.jsonl", "@trace_hash_huge.jsonl", "@trace_hash_text.jsonl",
          "@binary.csv", "@binary.jsonl", "@folder", "@missing", "@long_name", "@long_path"]
SIM_CONFIGS = YAML_FILES + ["","@dup_model.yaml", "@tp_true.yaml", "@tp_float.yaml",
                            "@num_requests_huge.yaml", "@rate_inf.yaml",
                            "@rate_scale_no_trace.yaml", "@window_inf.yaml",
                            "@unknown_key.yaml"]
PROFILES = YAML_FILES + ["@profile_bad_field.yaml", "@dup_model.yaml"]

ESTIMATE = ["estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--batch", "2", "--prompt",
            "128", "--output", "16"]
ESTIMATE_BAD = {
    "--batch": COUNT, "--prompt": COUNT + ["200000"], "--output": COUNT, "--beam": COUNT,
    "--tp": COUNT + ["3"], "--pp": COUNT + ["64"], "--ep": COUNT, "--dp": COUNT,
    "--num-gpus": COUNT, "--micro-batches": ["-1", "2.5", "abc", "9"],
    "--dtype": ["fp9", "", "int3"], "--kv-dtype": ["fp9", "int3"], "--act-dtype": ["fp7"],
    "--weight-dtype": ["int2"], "--efficiency": REAL + ["0", "2"],
    "--memory-utilization": FRACTION, "--model": NAME + MODEL_FILES, "--hardware": NAME,
    "--cluster": NAME, "--profile": PROFILES, "--scenario": YAML_FILES,
    "--cases": ["@cases_empty.csv", "@cases_header_only.csv", "@cases_unknown_column.csv",
                "@requests_header_only.csv", "@requests_bad.csv", "@binary.csv", "@folder",
                "@missing", "@long_name"],
    "--out": OUT_FILE, "--format": ["xml", ""],
}

OP = ["op", "--kind", "gemm", "-H", "h100-sxm", "--m", "16", "--n", "4096", "--k", "4096"]
OP_BAD = {
    "--m": COUNT, "--n": COUNT, "--k": COUNT, "--kind": ["", "gemmm", LONG],
    "--hardware": NAME, "--dtype": ["fp9", ""], "--efficiency": REAL + ["0", "2"],
    "--profile": PROFILES,
    # flags a GEMM does not use change nothing: errors
    "--num-heads": ["8"], "--batch": ["4"], "--seq-len": ["16"], "--message-bytes": ["1e6"],
    "--top-k": ["2"], "--num-gpus": ["8"], "--ep": ["2"], "--kv-dtype": ["fp8"],
    "--cases": ["@cases_empty.csv", "@ops_header_only.csv", "@ops_unknown_column.csv",
                "@binary.csv", "@folder", "@missing", "@long_name"],
    "--out": OUT_FILE,
}
ALL_REDUCE = ["op", "--kind", "all-reduce", "-H", "h100-sxm", "--message-bytes", "1e6",
              "--num-gpus", "8"]
ALL_REDUCE_BAD = {"--message-bytes": REAL + ["0"], "--num-gpus": ["1", "abc", "2.5"],
                  "--act-dtype": ["fp8"], "--m": ["4"], "--cluster": NAME}
DECODE = ["op", "--kind", "attention-decode", "-H", "h100-sxm", "--batch", "4",
          "--context-len", "1024", "--num-heads", "32", "--num-kv-heads", "8", "--head-dim",
          "128"]
DECODE_BAD = {"--num-heads": ["12", "0"], "--num-kv-heads": ["3", "0"], "--head-dim": COUNT,
              "--context-len": COUNT, "--kv-dtype": ["int3"], "--m": ["16"]}

MEMORY = ["memory", "-m", "llama-3.1-8b", "-H", "h100-sxm"]
MEMORY_BAD = {"--batch": ["-1", "abc", "2.5"], "--seq-len": ["0", "abc", "100000000"],
              "--tp": ["0", "3", "abc"], "--pp": ["64"], "--memory-utilization": FRACTION,
              "--dtype": ["fp9"], "--kv-dtype": ["int3"], "--model": NAME + MODEL_FILES[:6],
              "--max-num-batched-tokens": ["0", "abc"], "--out": OUT_FILE}

SIM = ["simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--rate", "4", "-n", "20",
       "--prompt-dist", "64", "--output-dist", "8", "--no-plots"]
SIM_BAD = {
    "--rate": REAL + ["0"], "--num-requests": COUNT, "--rate-scale": ["2", "0", "nan", "inf"],
    "--prefix-groups": ["4", "0"], "--shared-prefix": ["-1", "100000"],
    "--batch-window": ["1", "inf", "nan", "-1"], "--seed": ["-1", "abc", "1e3",
                                                           "99999999999999999999999"],
    "--slo-ttft": REAL, "--slo-tpot": REAL, "--sample-interval": ["0", "inf", "nan"],
    "--think-time": ["1", "inf"], "--swap-space": ["1", "inf"],
    "--max-num-seqs": COUNT, "--max-num-batched-tokens": COUNT, "--block-size": COUNT,
    "--max-model-len": ["1", "abc", "-5"], "--kv-capacity-tokens": COUNT,  # beyond the
    # trained context is allowed (issue 13: engines serve it with rope scaling)
    "--scheduler": NAME, "--order": NAME, "--preemption": NAME, "--router": NAME,
    "--arrival": NAME + ["gamma:cv=inf", "gamma:cv=-1", "poisson:rate=inf", "gamma:nope=1"],
    "--cv": ["2"], "--concurrency": ["0", "abc"],
    "--prompt-dist": ["nope:1", "uniform:0,0", "lognormal:mean=inf,cv=1", "0", "-5",
                      "zipf:a=nan", LONG],
    "--output-dist": ["0", "uniform:5,1"],
    "--trace": TRACES, "--trace-format": ["nope"], "--config": SIM_CONFIGS,
    "--memory-utilization": FRACTION, "--efficiency": REAL + ["0", "2"],
    "--tp": ["3", "0"], "--replicas": ["0"], "--num-gpus": ["3"],
    "--model": NAME + MODEL_FILES[:8], "--hardware": NAME, "--profile": PROFILES[:8],
    "--out": ["@a_file", "@long_name", "@long_path", "@under_a_file", ""],
    "--requests-format": ["xml"], "--save-itls": [None], "--chrome-trace": [None],
}
SIM_GAMMA = SIM + ["--arrival", "gamma"]
SIM_GAMMA_BAD = {"--cv": REAL + ["0"]}
SIM_DYNAMIC = SIM + ["--scheduler", "dynamic"]
SIM_DYNAMIC_BAD = {"--batch-window": ["inf", "nan", "-1", "abc"]}

OFFLOAD = ["offload", "evaluate", "-m", "opt-6.7b", "--gpu-batch-size", "2", "--percent",
           "100", "0", "100", "0", "100", "0"]
OFFLOAD_BAD = {
    "--gpu-batch-size": COUNT, "--num-gpu-batches": COUNT, "--prompt-len": COUNT + ["9000"],
    "--gen-len": COUNT, "--gpu-mem": REAL + ["0"], "--cpu-mem": REAL + ["0"],
    "--nvme-mem": REAL, "--h2d-bw": REAL + ["0"], "--d2h-bw": ["0", "nan"],
    "--disk-read-bw": ["0", "inf"], "--cpu-tflops": ["0", "nan"], "--cpu-mem-bw": ["-1"],
    "--alpha-g": FRACTION, "--alpha-c": ["0", "nan"], "--alpha-n": ["2"],
    "--efficiency": REAL + ["0", "2"], "--hardware": NAME, "--host": NAME,
    "--model": NAME + MODEL_FILES[:5], "--profile": PROFILES[:6], "--runtime": ["nope"],
    "--moe-experts": ["some"], "--out": OUT_FILE,
}
OFFLOAD_PERCENT = [["101", "0", "100", "0", "100", "0"], ["nan", "0", "100", "0", "100", "0"],
                   ["-1", "0", "100", "0", "100", "0"], ["60", "60", "100", "0", "100", "0"],
                   ["a", "0", "100", "0", "100", "0"], ["inf", "0", "100", "0", "100", "0"]]

MOE = ["moe-offload", "simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--decode-steps",
       "2", "--prompt", "16"]
MOE_BAD = {
    "--cache-capacity": ["-1", "abc", "1000", "2.5", ""], "--prefetch": ["-1", "abc", "100"],
    "--prefetch-accuracy": ["2", "nan", "-1"], "--policy": NAME, "--miss": NAME,
    "--routing": ["zipf:nan", "zipf:-1", "nope", "trace:@missing", "@folder",
                  "correlated:2", "@binary.jsonl", "@trace_empty.csv"],
    "--prompt": COUNT, "--decode-steps": ["-1", "abc"], "--seed": ["-1", "abc"],
    "--dtype": ["fp9"], "--efficiency": ["0", "nan", "2"], "--cpu-efficiency": ["0", "nan"],
    "--hardware": NAME, "--host": NAME, "--model": NAME + MODEL_FILES[:5],
    "--profile": PROFILES[:6], "--out": OUT_FILE,
}

# the executor fails before building its PyTorch model on each of these (no base run: it times
# the machine)
EXECUTOR = ["executor", "run", "--config", "tiny", "--device", "cpu", "--decode-steps", "1",
            "--repeats", "1", "--warmup", "0"]
EXECUTOR_BAD = {
    "--config": ["@binary.json", "@folder", "@config_zero_heads.json", "@config_list.json",
                 "@long_name", "@missing", "no-such-preset", ""],
    "--routing": ["zipf:nan", "zipf:-1", "@binary.jsonl", "@trace_empty.csv", "nope"],
    "--threads": ["0", "abc"], "--dtype": ["fp9"], "--device": ["tpu", ""],
    "--cache-capacity": ["-1", "abc"], "--seed": ["-1"], "--prefetch-accuracy": ["2"],
}

CALIBRATE = ["calibrate", "--measurements", "@measurements_empty.csv", "-H", "h100-sxm"]
VALIDATE = ["validate", "--measurements", "@measurements_empty.csv"]


def _table(base: list[str], table: dict[str, list]) -> list:
    cases = []
    for flag, values in table.items():
        for value in values:
            argv = [*base, flag] if value is None else [*base, flag, value]
            cases.append(pytest.param(argv, id=f"{base[0]}:{flag}={value!r}"[:80]))
    return cases


STANDALONE = [
    *[[*ALL_REDUCE[:-2], "--num-gpus", "8", *extra] for extra in (["--inter-node"],)],
    [*OFFLOAD[:-7], "--percent", "100", "0"],
    *[[*OFFLOAD[:-7], "--percent", *p] for p in OFFLOAD_PERCENT],
    [*CALIBRATE], [*VALIDATE],
    [*CALIBRATE[:3], "@measurements_header_only.csv", *CALIBRATE[3:]],
    [*CALIBRATE[:3], "@binary.csv", *CALIBRATE[3:]],
    [*CALIBRATE[:3], "@folder", *CALIBRATE[3:]],
    [*CALIBRATE[:3], "@missing", *CALIBRATE[3:]],
    *[["calibrate", "--measurements", "@measurements_ok.csv", "-H", "h100-sxm", "--out",
       "@out.yaml", "--base", p] for p in ("@binary.yaml", "@missing", "@invalid.yaml",
                                            "@deep.yaml", "@folder", "@list.yaml",
                                            "@profile_bad_field.yaml")],
    ["calibrate", "--measurements", "@measurements_ok.csv", "-H", "h100-sxm", "--out",
     "@folder"],
    ["calibrate", "--measurements", "@measurements_ok.csv", "-H", "h100-sxm", "--out", ""],
    ["validate", "--measurements", "@measurements_ok.csv", "--out", ""],
    ["catalog", "list", "--out", ""], ["catalog", "show", "h100-sxm", "--out", ""],
    ["executor", "presets", "--out", ""],
    [*OFFLOAD[:1], "solve", "-m", "opt-6.7b", "--out", ""],
    ["catalog", "show", "no-such-thing"], ["catalog", "show", ""], ["catalog", "show", LONG],
    ["catalog", "list", "no-such-kind"], ["no-such-command"], ["estimate", "--no-such-flag"],
    ["estimate"], ["op"], ["simulate"], ["memory"], ["estimate", "-m"],
    ["simulate", "--trace", "azure-conv", "-m", "llama-3.1-8b", "-H", "h100-sxm",
     "--prompt-dist", "64"],
    ["simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--arrival", "batch", "--rate", "2",
     "-n", "5"],
    ["simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--trace", "azure-conv",
     "--rate", "2", "--rate-scale", "2", "-n", "5"],
]


def _resolve(argv: list[str], files: dict[str, str]) -> list[str]:
    out = []
    for a in argv:
        if isinstance(a, str) and "@" in a and not a.startswith("@@"):
            head, _, name = a.rpartition("@")
            a = head + files.get(name, "@" + name)
        out.append(a)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return fuzz_files.make(tmp_path_factory.mktemp("fuzz"))


def one_error_line(res) -> None:
    assert res.code == 2, (res.code, res.err[-2000:])
    assert "Traceback" not in res.err, res.err[-2000:]
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err[-2000:]


@pytest.mark.parametrize("argv", [ESTIMATE, OP, ALL_REDUCE, DECODE, MEMORY, SIM, SIM_GAMMA,
                                  SIM_DYNAMIC, OFFLOAD, MOE],
                         ids=lambda a: " ".join(a[:3]))
def test_base_command_lines_work(cli, argv):
    res = cli(*argv, "--format", "json")
    assert res.code == 0, res.err


@pytest.mark.parametrize("argv", _table(ESTIMATE, ESTIMATE_BAD) + _table(OP, OP_BAD)
                         + _table(ALL_REDUCE, ALL_REDUCE_BAD) + _table(DECODE, DECODE_BAD)
                         + _table(MEMORY, MEMORY_BAD) + _table(SIM, SIM_BAD)
                         + _table(SIM_GAMMA, SIM_GAMMA_BAD) + _table(SIM_DYNAMIC, SIM_DYNAMIC_BAD)
                         + _table(OFFLOAD, OFFLOAD_BAD) + _table(MOE, MOE_BAD)
                         + _table(EXECUTOR, EXECUTOR_BAD)
                         + [pytest.param(a, id=" ".join(a)[:80]) for a in STANDALONE])
def test_bad_command_line_is_one_error_line(cli, files, argv):
    one_error_line(cli(*_resolve(argv, files)))


def test_calibrate_base_line_works(cli, files):
    res = cli(*_resolve(["calibrate", "--measurements", "@measurements_ok.csv", "-H",
                         "h100-sxm", "--out", "@out.yaml"], files))
    assert res.code == 0, res.err


def test_error_names_the_value_and_the_fix(cli, files):
    """A few of the issue's cases, by their message."""
    res = cli(*SIM, "--rate-scale", "2")
    assert "--rate-scale 2" in res.err and "no trace" in res.err
    res = cli(*OP, "--num-heads", "8")
    assert "does not use --num-heads" in res.err
    res = cli(*SIM[:5], "--trace", files["trace_overflow.csv"], "--rate", "4")
    assert "too many" in res.err and "line 2" in res.err
    res = cli(*SIM, "--config", files["invalid.yaml"])
    assert f"{files['invalid.yaml']}:3:" in res.err  # file:line:col
    res = cli(*SIM, "--config", files["dup_model.yaml"])
    assert "duplicate key 'model'" in res.err
    res = cli("estimate", "-m", files["config_zero_heads.json"], "-H", "h100-sxm")
    assert "num_attention_heads = 0" in res.err


def test_an_empty_out_names_the_option(cli):
    res = cli(*ESTIMATE, "--out", "")
    one_error_line(res)
    assert "'--out'" in res.err and "an empty path" in res.err


def test_memory_with_more_gpus_than_the_plan_says_so(cli):
    """``memory --num-gpus 8`` with a 4-GPU plan: the per-GPU figures are those of the plan's
    GPUs (the same for every replica), and a warning says so and how to use them all (as
    ``estimate`` does), never silence."""
    base = ["memory", "-m", "llama-3.1-70b", "-H", "h100-sxm", "--tp", "4", "--format", "json"]
    plain, wider = cli(*base), cli(*base, "--num-gpus", "8")
    assert plain.code == wider.code == 0, wider.err
    assert plain.err == ""
    assert "--num-gpus 8 sizes the cluster but the plan uses tp 4" in wider.err
    assert "add --dp 2" in wider.err
    assert plain.json()["peak_bytes"] == wider.json()["peak_bytes"]
    one_error_line(cli(*base, "--num-gpus", "2"))  # fewer than the plan: an error


def test_offload_alpha_defaults_are_the_placement_models():
    """The CLI's --alpha-g/-c/-n defaults are llmsim.placement.system's constants (passed
    through, not copied) and its help states them."""
    from llmsim.cli import offload_options
    from llmsim.cli.offload_options import MachineOptions
    from llmsim.placement import system

    machine = MachineOptions()
    assert not {"alpha_g", "alpha_c", "alpha_n"} & set(machine.kwargs())
    built = system.build_system("t4", **{k: v for k, v in machine.kwargs().items()
                                         if k not in ("hardware",)})
    assert (built.alpha_g, built.alpha_c, built.alpha_n) == (
        system.DEFAULT_ALPHA_G, system.DEFAULT_ALPHA_C, system.DEFAULT_ALPHA_N)
    for alias, default in (("AlphaG", system.DEFAULT_ALPHA_G),
                           ("AlphaC", system.DEFAULT_ALPHA_C),
                           ("AlphaN", system.DEFAULT_ALPHA_N)):
        option = getattr(offload_options, alias).__metadata__[0]
        assert f"(default {default:g})" in option.help, alias
