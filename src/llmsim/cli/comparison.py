"""Comparisons in one command: ``estimate`` / ``simulate`` with comma lists
(``-H a100-sxm-80gb,h100-sxm,mi300x --tp 4,8``) run every combination and print one table
(``--out x.html``: one page of bars). The lists come from
:func:`llmsim.cli.conventions.take_lists`.

Each value is checked before anything runs (names against their catalog with a did-you-mean,
numbers as whole numbers in ``1..10**6``): a bad value is an error. A combination that cannot
be priced (``--tp 3`` for a model of 32 heads, in a list that also holds ``--tp 4``) is a row
with its ``error`` and a warning after the table; when none can be, the first error is the
command's."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from llmsim.errors import ConfigError

log = logging.getLogger("llmsim.cli")

#: the parameters whose list values are whole numbers, and their bound
_INT_PARAMS = ("tp", "pp", "ep", "dp", "replicas")
_MAX_WAYS = 1_000_000
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


def _checked(name: str, value: str) -> Any:
    """One list value: a whole number for :data:`_INT_PARAMS`, a known model / hardware /
    engine name (UnknownNameError with a did-you-mean otherwise), else as given."""
    from llmsim import checks

    if name in _INT_PARAMS:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"--{name} takes whole numbers, e.g. 4,8; got {value!r}") from None
        return checks.whole(number, f"--{name}", 1, _MAX_WAYS)
    if name == "hardware":
        from llmsim.catalog import get_hardware

        get_hardware(value)
    elif name == "model":
        from llmsim.catalog import get_model

        get_model(value)
    elif name == "engine":
        from llmsim.engines import resolve_engine

        resolve_engine(value)
    return value


def combinations(lists: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Every combination of the lists (parameter -> value), each value checked once
    (:func:`_checked`)."""
    names = list(lists)
    checked = {n: [_checked(n, v) for v in lists[n]] for n in names}
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(checked[n] for n in names))]


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
    errors = _errors(frame)
    if len(errors) == len(frame):
        raise ConfigError(f"no combination could be estimated; {errors[0]}")
    write_runs(frame, fmt, out, f"{len(combos)} estimates compared", ESTIMATE_BARS)
    for message in errors:
        log.warning("%s", message)


def _errors(frame: Any) -> list[str]:
    """``run: error`` of each row that could not be estimated."""
    if "error" not in frame:
        return []
    failed = frame[frame["error"].notna() & (frame["error"].astype(str) != "")]
    return [f"{run}: {error}" for run, error in zip(failed["run"], failed["error"],
                                                     strict=True)]


def simulate_comparison(params: Mapping[str, Any], lists: Mapping[str, Sequence[str]],
                        fmt: str, out: str | None, run_simulation: Any) -> None:
    """One simulation per combination (``params`` with its values, run by
    ``run_simulation(params) -> SimulationReport``: the command's own), one table of their key
    metrics (:data:`SIMULATE_METRICS`; ``--format csv/json``: every summary key)."""
    import pandas as pd

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
