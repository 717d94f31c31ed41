"""Speculative decoding / MTP: llmsim's predicted speed-up next to published ones.

    python benchmarks/speculative_published.py            # the table (about a minute)
    python benchmarks/speculative_published.py --out spec.json

Each row is one published measurement of MTP speculation on DeepSeek-V3 / R1 (one MTP module,
k = 1 draft token per step) and llmsim's ``estimate --spec-method mtp`` of the same setting:
the decode speed-up (TPOT without speculation / TPOT with it; for a static batch this is the
output tokens/s ratio of the decode phase) under the assumptions written in the row (hardware,
lengths and batch where the source does not give them). Sources:

- DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437, section 5.4.3: "the
  acceptance rate of the second token prediction ranges between 85% and 90% ... delivering
  1.8 times TPS". Deployment (section 3.4.2): H800 nodes with large expert parallelism;
  batch and lengths not given. Assumed: 8x H200 (llmsim has no H800; the same SXM compute,
  more HBM), TP 8, prompt 1024, output 512, batch 1 and 32, acceptance 0.85 and 0.90.
- SGLang PR #3582 (sgl-project/sglang, "Support NextN (MTP) speculative decoding for
  DeepSeek-V3/R1", Feb 2025): 1.76x at batch 1 (77 output tok/s), average accept length ~1.9
  with one draft token (acceptance ~0.9). Hardware not named in the description: assumed
  8x H200, TP 8 (SGLang's DeepSeek reference setup), prompt 1024, output 512.
- HabanaAI/vllm-fork PR #1264 ("enable padding_aware_scheduler for speculative decoding",
  May 2025): DeepSeek-R1 with MTP, throughput speed-up 1.6x at batch 4, 1.5x at 32, 1.35x at
  128, "no obvious improvement" at 256; accepted / proposed draft tokens 1918 / 2180, 15371 /
  17408, 61143 / 69988, 122973 / 139286 (acceptance 0.87-0.88). Gaudi generation and lengths
  not given: assumed 8x Gaudi 3 (the 128 GB part holds the FP8 model with room for KV), TP 8,
  prompt 1024, output 1024.
"""

from __future__ import annotations

import argparse
import json
import sys

from llmsim.costmodel.speculative import Speculation
from llmsim.errors import DoesNotFitError
from llmsim.estimates.static_batch import estimate

#: (source, hardware, batch, prompt, output, acceptance, published speed-up or None, note)
ROWS = [
    ("DeepSeek-V3 report 5.4.3", "h200-sxm", 1, 1024, 512, 0.85, 1.8, "a 85%"),
    ("DeepSeek-V3 report 5.4.3", "h200-sxm", 1, 1024, 512, 0.90, 1.8, "a 90%"),
    ("DeepSeek-V3 report 5.4.3", "h200-sxm", 32, 1024, 512, 0.85, 1.8, "a 85%"),
    ("DeepSeek-V3 report 5.4.3", "h200-sxm", 32, 1024, 512, 0.90, 1.8, "a 90%"),
    ("SGLang PR 3582", "h200-sxm", 1, 1024, 512, 0.90, 1.76, "accept len 1.9"),
    ("vllm-fork (Gaudi) PR 1264", "gaudi3", 4, 1024, 1024, 1918 / 2180, 1.6, ""),
    ("vllm-fork (Gaudi) PR 1264", "gaudi3", 32, 1024, 1024, 15371 / 17408, 1.5, ""),
    ("vllm-fork (Gaudi) PR 1264", "gaudi3", 128, 1024, 1024, 61143 / 69988, 1.35, ""),
    ("vllm-fork (Gaudi) PR 1264", "gaudi3", 256, 1024, 1024, 122973 / 139286, 1.0,
     "'no obvious improvement'"),
]


def predict(hardware: str, batch: int, prompt: int, output: int, acceptance: float
            ) -> dict[str, float]:
    """llmsim's decode speed-up of DeepSeek-V3 with MTP (k = 1) in this setting."""
    spec = Speculation.build("mtp", 1, acceptance)
    r = estimate("deepseek-v3", hardware, tp=8, batch=batch, prompt=prompt, output=output,
                 speculative=spec, allow_overflow=True)
    sp = r.speculative
    return {"speedup": float(sp["speedup"]), "tpot_s": r.tpot_s,
            "baseline_tpot_s": float(sp["baseline_tpot_s"]), "itl_s": float(sp["itl_s"]),
            "tokens_per_step": spec.expected_tokens_per_step,
            "fits": bool(r.fits and sp["fits_with_draft"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'source':27s} {'hardware':9s} {'batch':>5s} {'a':>5s} {'tok/step':>8s} "
          f"{'published':>9s} {'llmsim':>7s} {'llmsim/pub':>10s}  ITL ms  TPOT ms  fits  note")
    for source, hw, batch, prompt, output, a, published, note in ROWS:
        try:
            p = predict(hw, batch, prompt, output, a)
        except DoesNotFitError as exc:
            print(f"{source:27s} {hw:9s} {batch:5d} {a:5.3f}  does not fit: {exc}")
            continue
        ratio = p["speedup"] / published if published else float("nan")
        print(f"{source:27s} {hw:9s} {batch:5d} {a:5.3f} {p['tokens_per_step']:8.3f} "
              f"{published:9.2f} {p['speedup']:7.2f} {ratio:10.2f}  {p['itl_s'] * 1e3:6.2f}"
              f"  {p['tpot_s'] * 1e3:7.2f}  {'yes' if p['fits'] else 'NO':4s}  {note}")
        rows.append({"source": source, "hardware": hw, "batch": batch, "prompt": prompt,
                     "output": output, "acceptance": a, "published_speedup": published, **p})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
