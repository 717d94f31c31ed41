"""DeepSeek-V3/R1 inference system (deepseek-ai/open-infra-index, 202502OpenSourceWeek day 6,
CC0) reproduced with llmsim's large-EP cost model: per-node prefill and decode throughput
against the published figures.

Published: prefill EP32 (4 nodes of 8 H800, attention DP32, 32 redundant experts, two-batch
overlap), ~73.7k input tokens/s per node including on-disk KV-cache hits (56.3% of input
tokens hit); decode EP144 (18 nodes, attention DP144, 32 redundant experts), ~14.8k output
tokens/s per node at 20-22 tokens/s per user; average KV length 4,989 tokens.

Assumptions (not published; written down here, varied below where it matters):
- H800 = llmsim's h100-sxm datasheet with NVLink 200 GB/s per direction (400 GB/s
  bidirectional, the H800's export-limited NVLink); nodes on 400 Gb/s CX7 InfiniBand per GPU
  (the ``nv_like`` cluster), FP8 weights and activations and the default KV format;
- prefill: each DP rank prefills 4 requests of 4,096 input tokens per step, 56.3% of them
  cached (attention still reads the cached keys), DeepEP normal kernels;
- decode: each DP rank decodes 88 sequences (14.8k tok/s per node / 8 GPUs / 21 tok/s per
  user) at the average KV length 4,989, DeepEP low-latency kernels, two-batch overlap; MTP
  speculative decoding is not modelled (DeepSeek's decode uses it; it raises tokens per step);
- expert skew (Zipf exponent) 0.5 with EPLB's 32 redundant experts (sensitivity printed).

Run: ``python benchmarks/deepseek_day6.py``.
"""

from __future__ import annotations

import sys

from llmsim.catalog import get_hardware
from llmsim.costmodel import BatchShape, Deployment, build_step_model

PUBLISHED_PREFILL = 73.7e3  # input tokens/s per node (cache hits included)
PUBLISHED_DECODE = 14.8e3  # output tokens/s per node
GPUS_PER_NODE = 8
PROMPT, HIT, REQS_PER_RANK = 4096, 0.563, 4
DECODE_BATCH, KV_LEN = 88, 4989


def h800():
    h100 = get_hardware("h100-sxm")
    link = h100.scale_up.model_copy(update={"bandwidth_bytes_per_s": 200e9})
    return h100.model_copy(update={"name": "h800-sxm", "scale_up": link})


def prefill_per_node(skew: float, tbo: bool = True) -> float:
    dep = Deployment.resolve("deepseek-v3", h800(), "nv_like", 32, dp=32, ep=32,
                             redundant_experts=32, ep_kernel="normal", expert_skew=skew,
                             two_batch_overlap=tbo)
    past = round(PROMPT * HIT)
    t = build_step_model(dep).step_time(BatchShape.prefill(REQS_PER_RANK, PROMPT - past, past))
    return GPUS_PER_NODE * REQS_PER_RANK * PROMPT / t


def decode_per_node(skew: float, tbo: bool = True) -> tuple[float, float]:
    dep = Deployment.resolve("deepseek-v3", h800(), "nv_like", 144, dp=144, ep=144,
                             redundant_experts=32, ep_kernel="low_latency", expert_skew=skew,
                             two_batch_overlap=tbo)
    tpot = build_step_model(dep).step_time(BatchShape.decode(DECODE_BATCH, float(KV_LEN)))
    return GPUS_PER_NODE * DECODE_BATCH / tpot, 1.0 / tpot


def main() -> int:
    print("DeepSeek-V3/R1 day-6 deployment on H800 (per node = 8 GPUs)")
    print(f"{'case':<40} {'prefill in tok/s/node':>22} {'err':>6} {'decode out tok/s/node':>22}"
          f" {'err':>6} {'tok/s/user':>10}")
    for skew, tbo, label in ((0.5, True, "assumed (skew 0.5, TBO)"),
                             (0.0, True, "balanced routing (skew 0)"),
                             (1.0, True, "skew 1.0"),
                             (0.5, False, "skew 0.5, no two-batch overlap")):
        pre = prefill_per_node(skew, tbo)
        dec, user = decode_per_node(skew, tbo)
        print(f"{label:<40} {pre:>22,.0f} {pre / PUBLISHED_PREFILL - 1:>+6.0%} {dec:>22,.0f} "
              f"{dec / PUBLISHED_DECODE - 1:>+6.0%} {user:>10.1f}")
    print(f"{'published':<40} {PUBLISHED_PREFILL:>22,.0f} {'':>6} {PUBLISHED_DECODE:>22,.0f}"
          f" {'':>6} {'20-22':>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
