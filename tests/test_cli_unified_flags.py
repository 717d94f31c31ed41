"""One name per thing on every command (issue 13): the number-format flags ``--dtype`` /
``--weight-dtype`` / ``--act-dtype`` / ``--kv-dtype`` and their hidden aliases, and
``--max-model-len`` on every command that checks the context, named in the error."""

from __future__ import annotations

import pytest

EST = ("-m", "llama-3.1-8b", "-H", "h100-sxm")
#: command -> (its arguments, the format flags it takes with a value each accepts)
DTYPE_FLAGS = {
    "estimate": (("estimate", *EST, "--format", "json"),
                 {"--dtype": "bf16", "--weight-dtype": "fp8", "--act-dtype": "bf16",
                  "--kv-dtype": "fp8"}),
    "memory": (("memory", *EST, "--format", "json"),
               {"--dtype": "bf16", "--weight-dtype": "fp8", "--act-dtype": "bf16",
                "--kv-dtype": "fp8"}),
    "op": (("op", "--kind", "attention-decode", "-H", "h100-sxm", "--batch", "4",
            "--context-len", "512", "--num-heads", "32", "--num-kv-heads", "8",
            "--head-dim", "128", "--format", "json"),
           {"--dtype": "bf16", "--weight-dtype": "bf16", "--act-dtype": "bf16",
            "--kv-dtype": "fp8"}),
    "offload": (("offload", "evaluate", "-m", "opt-6.7b", "--gpu-batch-size", "4",
                 "--format", "json"),
                {"--weight-dtype": "int4", "--kv-dtype": "int4"}),
    "moe-offload": (("moe-offload", "simulate", "-m", "mixtral-8x7b", "-C", "0",
                     "--format", "json"), {"--dtype": "fp8"}),
}
#: hidden spelling -> the flag it is
ALIASES = {"--kv-cache-dtype": "--kv-dtype", "--activation-dtype": "--act-dtype",
           "--weights-dtype": "--weight-dtype"}


@pytest.mark.parametrize("command", sorted(DTYPE_FLAGS))
def test_every_command_takes_the_unified_format_flags_and_their_aliases(cli, command):
    base, flags = DTYPE_FLAGS[command]
    help_text = cli(*base[:2] if "offload" in command else base[:1], "--help").out
    for flag, value in flags.items():
        assert flag in help_text, (command, flag)
        res = cli(*base, flag, value)
        assert res.code == 0, (command, flag, res.err)
        for alias, canonical in ALIASES.items():
            if canonical == flag:
                assert alias not in help_text
                assert cli(*base, alias, value).json() == res.json(), (command, alias)


def test_offload_formats_are_flexgens_compression():
    from llmsim.cli.offload_options import CompressionOptions
    from llmsim.errors import UnknownNameError

    assert CompressionOptions(weight_dtype="int4").weights
    assert not CompressionOptions(weight_dtype="fp16").weights
    assert CompressionOptions(compress_cache=True).cache
    with pytest.raises(UnknownNameError, match="int4"):
        _ = CompressionOptions(kv_dtype="fp8").cache


def test_offload_weight_dtype_int4_is_compress_w(cli):
    base = ("offload", "evaluate", "-m", "opt-6.7b", "--gpu-batch-size", "4", "--format", "json")
    assert cli(*base, "--weight-dtype", "int4").json() == cli(*base, "--compress-w").json()
    res = cli(*base, "--kv-dtype", "fp8")
    assert res.code == 2 and res.err.count("error:") == 1 and "int4" in res.err


#: command line whose prompt + output exceeds the model's context, and the longer context
TOO_LONG = {
    "estimate": (("estimate", *EST, "--input-len", "131000", "--output-len", "200"),
                 "131200"),
    "memory": (("memory", *EST, "--seq-len", "140000"), "140000"),
    "offload solve": (("offload", "solve", "-m", "opt-6.7b", "--input-len", "2000",
                       "--output-len", "100", "--gpu-batch-size", "1",
                       "--num-gpu-batches", "1"), "2100"),
    "offload evaluate": (("offload", "evaluate", "-m", "opt-6.7b", "--input-len", "2000",
                          "--output-len", "100", "--gpu-batch-size", "1"), "2100"),
    "moe-offload": (("moe-offload", "simulate", "-m", "mixtral-8x7b", "--input-len", "32768",
                     "--output-len", "10", "-C", "0"), "32778"),
}


@pytest.mark.parametrize("command", sorted(TOO_LONG))
def test_max_model_len_on_every_command_that_checks_the_context(cli, command):
    argv, longer = TOO_LONG[command]
    res = cli(*argv)
    assert res.code == 2 and res.err.count("error:") == 1, res.err
    assert "exceeds" in res.err and "--max-model-len" in res.err
    res = cli(*argv, "--max-model-len", longer, "--format", "json")
    assert res.code == 0, res.err
    res = cli(*argv, "--max-model-len", str(int(longer) - 1))
    assert res.code == 2 and f"--max-model-len {int(longer) - 1}" in res.err
