"""Expert offloading under load: hit rate, misses and stalls against the batch (``llmsim
simulate`` with a per-replica GPU expert cache).

    python benchmarks/expert_offload_load.py                  # the table of docs/serving.md
    python benchmarks/expert_offload_load.py --capacities 2 4 --concurrency 1 8 -n 16

Mixtral-8x7B in int4 on one RTX 4090 behind a PCIe 4 workstation host (the Mixtral-offloading
setting: the experts do not all fit, the rest stream from host memory), LRU cache with
``C`` experts per layer, prefetch of 2 experts per layer at accuracy 0.8, misses fetched over
PCIe; a closed loop of ``c`` clients sending prompts of 256 and outputs of 64 tokens
(routing ``zipf:1.2``). Per row: the expert-lookup hit rate (moe-offload's definition: falls
toward ``C / E`` as the batch's union of experts grows), the amortised hit rate (``1 -
misses / (tokens x top_k)``: rises with the batch), misses and experts per step, the share of
step time stalled on copies, GB copied per output token, and TPOT / TTFT p50.
"""

from __future__ import annotations

import argparse

from llmsim.serving.run import simulate


def run(capacity: int, concurrency: int, n: int, routing: str) -> dict:
    cfg = {"model": {"name": "mixtral-8x7b", "dtype": "int4"}, "hardware": "rtx-4090",
           "workload": {"concurrency": concurrency, "num_requests": n, "prompt": "256",
                        "output": "64", "seed": 0},
           "expert_offload": {"cache_experts": capacity, "prefetch": 2,
                              "prefetch_accuracy": 0.8, "routing": routing}}
    return simulate(cfg).summary()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capacities", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("-n", "--num-requests", type=int, default=32)
    ap.add_argument("--routing", default="zipf:1.2")
    args = ap.parse_args(argv)
    print(f"mixtral-8x7b int4, rtx-4090, routing {args.routing}, {args.num_requests} requests "
          "of 256 + 64 tokens, closed loop")
    print(f"{'C':>2s} {'clients':>7s} {'hit':>6s} {'amort.':>6s} {'miss/step':>9s} "
          f"{'experts/step':>12s} {'stall':>6s} {'GB/out tok':>10s} {'TPOT p50 ms':>11s} "
          f"{'TTFT p50 ms':>11s} {'out tok/s':>9s}")
    for c in args.capacities:
        for conc in args.concurrency:
            s = run(c, conc, args.num_requests, args.routing)
            eo = s["expert_offload"]
            out_tokens = s["output_tokens_per_s"] * s["duration_s"]
            print(f"{c:2d} {conc:7d} {eo['hit_rate']:6.1%} {eo['amortized_hit_rate']:6.1%} "
                  f"{eo['misses_per_step']:9.1f} {eo['experts_per_step']:12.1f} "
                  f"{eo['stall_frac']:6.1%} {eo['h2d_bytes'] / out_tokens / 1e9:10.2f} "
                  f"{s['tpot_s']['p50'] * 1e3:11.1f} {s['ttft_s']['p50'] * 1e3:11.1f} "
                  f"{s['output_tokens_per_s']:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
