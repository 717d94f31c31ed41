"""Fit the host section of the default calibration profile and merge it into the profile file.

    python scripts/fit_host_profile.py [--golden tests/golden/flexgen_throughput.csv]
                                       [--profile PROFILE.yaml] [--out PROFILE.yaml]

Fits the FlexLLMGen runtime's host efficiencies on the T4 machine (``gcp-t4-flexgen``) to the
published FlexLLMGen throughput (``llmsim.placement.host_fit``: least squares on log throughput
at the published policies, then leave-one-out), pricing the GPU side with the kernel entries
already in the profile file, and writes the file back with the ``gcp-t4-flexgen`` entry replaced.
``scripts/fit_profile.py`` runs the same stage after the kernel fit; this script re-runs only
the host stage (seconds, no ``../shared`` needed). The shipped
``src/llmsim/data/profiles/default.yaml`` is exactly what the two write.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import yaml

from llmsim.calibration.default_profile import to_yaml
from llmsim.catalog._base import validate_spec
from llmsim.costmodel.profile import ProfileFile
from llmsim.errors import LLMSimError
from llmsim.io import write_text
from llmsim.placement import host_fit as host_fit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = REPO / "src" / "llmsim" / "data" / "profiles" / "default.yaml"
GOLDEN = REPO / "tests" / "golden" / "flexgen_throughput.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", default=str(GOLDEN), help="FlexLLMGen throughput CSV")
    ap.add_argument("--profile", default=str(DEFAULT_PROFILE),
                    help="profile whose GPU entries price the GPU side (default: the shipped one)")
    ap.add_argument("--out", default=None, help="profile YAML to write (default: --profile)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    try:
        raw = yaml.safe_load(Path(args.profile).read_text(encoding="utf-8"))
        profile = validate_spec(ProfileFile, raw, args.profile)
        merged, report = host_fit.fit_profile_host(profile, args.golden)  # type: ignore[arg-type]
    except (OSError, LLMSimError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(host_fit.report_lines(report)))
    out = args.out or args.profile
    write_text(out, to_yaml(merged))
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
