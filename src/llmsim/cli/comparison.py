"""Comparisons in one command: ``estimate`` / ``simulate`` with comma lists
(``-H a100-sxm-80gb,h100-sxm,mi300x --tp 4,8``) run every combination and print one table
(``--out x.html``: one page of bars). The lists come from
:func:`llmsim.cli.conventions.take_lists`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from llmsim.errors import ConfigError

#: the parameters whose list values are whole numbers
_INT_PARAMS = ("tp", "pp", "ep", "dp", "replicas")
#: simulate's metrics in the comparison table (summary keys, flattened)
SIMULATE_METRICS = ("num_gpus", "requests_per_s", "output_tokens_per_s",
                    "output_tokens_per_s_per_gpu", "goodput_requests_per_s",
                    "slo_attainment_frac", "ttft_s.p50", "ttft_s.p99", "tpot_s.p50",
                    "tpot_s.p99", "e2e_s.p99", "num_preemptions", "kv_usage_peak_frac")
#: the bars of a comparison page: (column, axis title)
SIMULATE_BARS = (("output_tokens_per_s_per_gpu", "output tokens/s per GPU"),
                 ("goodput_requests_per_s", "goodput (req/s)"), ("ttft_s.p99", "p99 TTFT (s)"),
                 ("tpot_s.p99", "p99 TPOT (s)"))
ESTIMATE_BARS = (("output_tokens_per_s_per_gpu", "output tokens/s per GPU"),
                 ("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"), ("e2e_s", "E2E (s)"))


def combinations(lists: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Every combination of the lists (parameter -> value), whole numbers where they must be."""
    names = list(lists)
    out = []
    for values in itertools.product(*(lists[n] for n in names)):
        combo: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            if name in _INT_PARAMS:
                try:
                    combo[name] = int(value)
                except ValueError:
                    raise ConfigError(f"--{name} takes whole numbers, e.g. 4,8; got "
                                      f"{value!r}") from None
                if combo[name] < 1:
                    raise ConfigError(f"--{name} must be >= 1, got {value}")
            else:
                combo[name] = value
        out.append(combo)
    return out


def label(combo: Mapping[str, Any]) -> str:
    """``h100-sxm tp8`` for a combination (names as given, numbers after their flag)."""
    return " ".join(str(v) if isinstance(v, str) else f"{k}{v}" for k, v in combo.items())


def estimate_comparison(lists: Mapping[str, Sequence[str]], defaults: Mapping[str, Any],
                        fmt: str, out: str | None) -> None:
    """One estimate per combination (a sweep of those rows over ``defaults``), one table."""
    import pandas as pd

    from llmsim.estimates.sweep import estimate_cases
    from llmsim.report.compare import write_runs

    combos = combinations(lists)
    frame = estimate_cases(pd.DataFrame(combos), dict(defaults))
    frame.insert(0, "run", [label(c) for c in combos])
    write_runs(frame, fmt, out, f"{len(combos)} estimates compared", ESTIMATE_BARS)


def simulate_comparison(params: Mapping[str, Any], lists: Mapping[str, Sequence[str]],
                        fmt: str, out: str | None) -> None:
    """One simulation per combination (``params`` with its values), one table of their key
    metrics (:data:`SIMULATE_METRICS`; ``--format csv/json``: every summary key)."""
    import pandas as pd

    from llmsim.cli.simulate_cmd import run_simulation
    from llmsim.report.compare import write_runs
    from llmsim.report.serving import summary_record

    if params.get("out_dir"):
        raise ConfigError("--out-dir writes one run's bundle; a comparison writes one table "
                          "(--out FILE.csv / .json / .html)")
    rows = []
    for combo in combinations(lists):
        record = summary_record(run_simulation({**params, **combo}).summary())
        rows.append({"run": label(combo), **record})
    frame = pd.DataFrame(rows)
    if fmt == "table":
        frame = frame[["run", *[c for c in SIMULATE_METRICS if c in frame]]]
    write_runs(frame, fmt, out, f"{len(rows)} simulations compared", SIMULATE_BARS)
