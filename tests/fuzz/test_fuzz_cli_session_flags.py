"""Bad values of the flags added with xPyD / AFD / large-EP / expert offload under load / the
xPyD search: one ``error:`` line, exit 2, no traceback."""

from __future__ import annotations

import shlex

import pytest

BAD = [
    "simulate -m mixtral-8x7b -H h100-sxm --afd attention=x",
    "simulate -m mixtral-8x7b -H h100-sxm --afd ffn=2",
    "simulate -m mixtral-8x7b -H h100-sxm --expert-cache-experts -3",
    "simulate -m mixtral-8x7b -H h100-sxm --expert-policy nope --expert-cache-experts 4",
    "simulate -m mixtral-8x7b -H h100-sxm --expert-prefetch-accuracy 2 --expert-cache-experts 4",
    "simulate -m llama-3.1-8b -H h100-sxm --expert-cache-experts 4",
    "moe-offload simulate -m mixtral-8x7b --batch 0",
    "moe-offload simulate -m mixtral-8x7b --batch 1e30",
    "search --model llama-3.1-8b --rate 2 --slo ttft_p99=1s --disagg maybe",
    "search --model llama-3.1-8b --rate 2 --slo ttft_p99=1s --disagg-workers 0",
    "search --model llama-3.1-8b --rate 2 --slo ttft_p99=1s --engine vlm",
    "afd simulate deepseek-v3-h800 --batch 0 --seq 4096",
    "afd simulate nope.yaml --batch 8 --seq 4096",
    "afd simulate deepseek-v3-h800 --batch 8 --seq 4096 --microbatches 0",
    "large-ep evaluate deepseek-v3-h800 --batch 4 --seq -1",
    "simulate -m qwen3-32b -H h100-sxm --prefill-pool workers=1,tp=1 --decode-pool workers=1,tp=x",
    "simulate -m qwen3-32b -H h100-sxm --prefill-pool workers=1,tp=1",
]


@pytest.mark.parametrize("line", BAD)
def test_bad_value_is_one_line_and_exit_2(cli, line):
    res = cli(*shlex.split(line))
    assert res.code == 2, (line, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), (line, res.err)
    assert "Traceback" not in res.err
