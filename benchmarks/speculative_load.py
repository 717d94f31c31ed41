"""Speculative decoding under load: where it helps and where it hurts (``llmsim simulate``).

    python benchmarks/speculative_load.py                 # the table (a few minutes)
    python benchmarks/speculative_load.py --rates 0.5 16 --num-requests 200

Llama-3.1-70B on 4x H100 (TP 4), chunked scheduler, Poisson arrivals of prompts of 1024 and
outputs of 256 tokens, at rising request rates: plain decoding, a Llama-3.1-8B draft model
(k = 3, acceptance 0.7) and n-gram drafts (k = 4, acceptance 0.5). At low load decode steps are
memory-bound, verifying k + 1 tokens costs about one step, and TPOT falls by about the tokens
per step; near saturation the batch is compute-bound, the rejected drafts' FLOPs (and the
draft model's steps) are paid by every request and TPOT rises above plain decoding, while the
proposer's weights, KV and draft slots take KV capacity.
"""

from __future__ import annotations

import argparse
import sys

from llmsim.serving.config import SimulationConfig
from llmsim.serving.run import simulate

METHODS = {
    "plain": None,
    "draft 8B k3 a.7": {"spec_method": "draft", "draft_model": "llama-3.1-8b",
                        "spec_tokens": 3, "spec_acceptance": 0.7},
    "ngram k4 a.5": {"spec_method": "ngram", "spec_tokens": 4, "spec_acceptance": 0.5},
}


def run(rate: float, n: int, decoding: dict | None) -> dict:
    extra = {} if decoding is None else {"decoding": decoding}
    cfg = SimulationConfig(model="llama-3.1-70b", hardware="h100-sxm",
                           parallelism={"tp": 4},
                           workload={"rate": rate, "num_requests": n, "prompt": "1024",
                                     "output": "256", "seed": 0}, **extra)
    return simulate(cfg).summary()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.5, 2.0, 8.0, 16.0, 24.0])
    ap.add_argument("--num-requests", type=int, default=400)
    args = ap.parse_args(argv)
    print(f"{'rate/s':>6s}  {'method':16s} {'TTFT p50 ms':>11s} {'TPOT p50 ms':>11s} "
          f"{'ITL p50 ms':>10s} {'out tok/s':>9s} {'tok/step':>8s} {'TPOT vs plain':>13s}")
    for rate in args.rates:
        base = None
        for name, dec in METHODS.items():
            s = run(rate, args.num_requests, dec)
            tpot = s["tpot_s"]["p50"]
            base = tpot if base is None else base
            tps = s.get("speculative", {}).get("tokens_per_step", 1.0)
            print(f"{rate:6.1f}  {name:16s} {s['ttft_s']['p50'] * 1e3:11.1f} {tpot * 1e3:11.2f} "
                  f"{s['itl_s']['p50'] * 1e3:10.2f} {s['output_tokens_per_s']:9.0f} "
                  f"{tps:8.2f} {tpot / base:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
