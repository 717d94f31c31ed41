"""A simulation's metrics named and computed as vLLM's serving benchmark writes them.

``vllm bench serve --save-result`` (``vllm/benchmarks/serve.py``; before v0.8
``benchmarks/benchmark_serving.py``) saves one JSON object with ``duration``, ``completed``,
``failed``, ``total_input_tokens``, ``total_output_tokens``, ``request_throughput``,
``request_goodput``, ``output_throughput``, ``total_token_throughput`` and, for each metric
``ttft``, ``tpot``, ``itl``, ``e2el``: ``mean_<m>_ms``, ``median_<m>_ms``, ``std_<m>_ms`` and
``p<q>_<m>_ms`` for every ``q`` of ``--metric-percentiles`` (default 99; ``q`` written as an
integer when it is one: ``p99``, ``p99.9``). Its definitions, which :func:`vllm_bench_metrics`
follows over the finished requests:

- TTFT, E2EL: per request (E2EL is vLLM's ``latency``, arrival to last token);
- TPOT: per request with more than one output token, ``(e2el - ttft) / (output_len - 1)``;
- ITL: every gap between two tokens of every request, pooled;
- mean, ``numpy.median``, ``numpy.std`` (population), ``numpy.percentile`` (linear), in ms;
- throughputs: completed requests, their output tokens, their input + output tokens, each over
  ``duration`` (here the simulated time from the first arrival to the end of the run);
- goodput: completed requests meeting every SLO (``--goodput ttft:MS tpot:MS e2el:MS``) per
  second; here llmsim's SLO (``--slo-ttft``, ``--slo-tpot``).

ITL statistics are exact when the run kept every gap (``--save-itls``); otherwise they come from
the streamed ITL histogram (bins 0.58% wide: mean exact, median / percentiles to within a bin,
std from the bin centres).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: vLLM's per-request metrics, in the order its result lists them
METRICS = ("ttft", "tpot", "itl", "e2el")
#: vLLM's default ``--metric-percentiles``
DEFAULT_PERCENTILES = (99.0,)
#: the scalar keys before the per-metric ones
SCALAR_KEYS = ("duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
               "request_throughput", "request_goodput", "output_throughput",
               "total_token_throughput")


def percentile_word(q: float) -> str:
    """``99`` for 99.0, ``99.9`` for 99.9: how vLLM names a percentile key."""
    return str(int(q)) if int(q) == q else str(q)


def metric_keys(percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> list[str]:
    """Every key :func:`vllm_bench_metrics` writes, in order."""
    keys = list(SCALAR_KEYS)
    for m in METRICS:
        keys += [f"mean_{m}_ms", f"median_{m}_ms", f"std_{m}_ms"]
        keys += [f"p{percentile_word(q)}_{m}_ms" for q in percentiles]
    return keys


def parse_percentiles(text: str) -> tuple[float, ...]:
    """``"50,90,99"`` -> (50.0, 90.0, 99.0) (vLLM's ``--metric-percentiles``); each in (0, 100]."""
    from llmsim.errors import ConfigError

    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--percentiles takes numbers separated by commas, e.g. 50,90,99; "
                          f"got {text!r}") from None
    if not values or any(not 0 < q <= 100 for q in values):
        raise ConfigError(f"--percentiles must be in (0, 100], got {text!r}")
    return values


def vllm_bench_metrics(report: Any, percentiles: Sequence[float] = DEFAULT_PERCENTILES
                       ) -> dict[str, Any]:
    """The vLLM-benchmark result of a :class:`SimulationReport` (keys of :func:`metric_keys`)."""
    s = report.summary()
    req = report.requests
    done = (req["status"] == "finished").to_numpy()
    duration = float(s["duration_s"])
    inp = req["input_tokens"].to_numpy()[done]
    out = req["output_tokens"].to_numpy()[done]
    ttft = req["ttft_s"].to_numpy()[done]
    e2e = req["e2e_s"].to_numpy()[done]
    tpot = req["tpot_s"].to_numpy()[done]
    tpot = tpot[(out > 1) & np.isfinite(tpot)]
    completed = int(done.sum())
    result: dict[str, Any] = {
        "duration": duration, "completed": completed, "failed": int(len(req) - completed),
        "total_input_tokens": int(inp.sum()), "total_output_tokens": int(out.sum()),
        "request_throughput": completed / duration,
        "request_goodput": s["goodput_requests_per_s"],
        "output_throughput": float(out.sum()) / duration,
        "total_token_throughput": float(inp.sum() + out.sum()) / duration,
    }
    itls = report.itls["itl_s"].to_numpy() if report.itls is not None else None
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itls), ("e2el", e2e)):
        if values is None:
            result.update(_histogram_stats(name, report.itl_hist, percentiles))
        else:
            result.update(_stats(name, values, percentiles))
    return result


def _stats(name: str, values_s: np.ndarray, percentiles: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values_s, dtype=np.float64)
    v = v[np.isfinite(v)] * 1e3
    if len(v) == 0:  # vLLM: numpy of an empty list (0 for the mean, std and median it prints)
        return {f"mean_{name}_ms": 0.0, f"median_{name}_ms": 0.0, f"std_{name}_ms": 0.0,
                **{f"p{percentile_word(q)}_{name}_ms": 0.0 for q in percentiles}}
    out = {f"mean_{name}_ms": float(v.mean()), f"median_{name}_ms": float(np.median(v)),
           f"std_{name}_ms": float(v.std())}
    for q, p in zip(percentiles, np.percentile(v, list(percentiles)), strict=True):
        out[f"p{percentile_word(q)}_{name}_ms"] = float(p)
    return out


def _histogram_stats(name: str, hist: Any, percentiles: Sequence[float]) -> dict[str, float]:
    """Mean (exact), median and percentiles (within a bin) of the streamed histogram; std from
    the bin centres (geometric) around the exact mean."""
    if not hist.count:
        return _stats(name, np.array([]), percentiles)
    counts = np.asarray(hist.counts)
    edges = 10.0 ** (hist.lo_log + np.arange(hist.bins + 1) / hist.per_decade)
    centres = np.sqrt(edges[:-1] * edges[1:])
    mean = hist.mean()
    var = float((counts * (centres - mean) ** 2).sum() / hist.count)
    out = {f"mean_{name}_ms": mean * 1e3, f"median_{name}_ms": hist.percentile(50) * 1e3,
           f"std_{name}_ms": math.sqrt(max(var, 0.0)) * 1e3}
    for q in percentiles:
        out[f"p{percentile_word(q)}_{name}_ms"] = hist.percentile(q) * 1e3
    return out


def read_vllm_result(path: str) -> dict[str, Any]:
    """A vLLM benchmark result JSON (one object; older versions spell the goodput key
    ``request_goodput:``, read as ``request_goodput``); a file that is not one is a one-line
    :class:`ConfigError` naming what is missing."""
    import json
    from pathlib import Path

    from llmsim.errors import ConfigError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--measured: no file {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--measured {path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--measured {path}: a vLLM result is one JSON object")
    if "request_goodput:" in data and "request_goodput" not in data:
        data["request_goodput"] = data.pop("request_goodput:")
    if not any(k in data for k in metric_keys(measured_percentiles(data))):
        raise ConfigError(f"--measured {path}: no vLLM benchmark keys (mean_ttft_ms, "
                          "request_throughput, ...): is it a `vllm bench serve --save-result` "
                          "file?")
    return data


def measured_percentiles(measured: Mapping[str, Any]) -> tuple[float, ...]:
    """The percentiles a vLLM result reports (its ``p<q>_ttft_ms`` keys), default 99."""
    found = sorted({float(k[1:].split("_", 1)[0]) for k in measured
                    if k.startswith("p") and k.endswith("_ms") and "_" in k
                    and _is_number(k[1:].split("_", 1)[0])})
    return tuple(found) or DEFAULT_PERCENTILES


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def comparison_rows(measured: Mapping[str, Any], predicted: Mapping[str, Any],
                    keys: Iterable[str]) -> list[dict[str, Any]]:
    """One row per key both sides have as a number: measured, predicted, and the error
    ``predicted / measured - 1`` in % (None where the measured value is 0 or missing)."""
    rows = []
    for key in keys:
        m, p = measured.get(key), predicted.get(key)
        if not isinstance(m, (int, float)) or isinstance(m, bool) or p is None:
            continue
        err = (p / m - 1.0) * 100.0 if m else None
        rows.append({"metric": key, "measured": float(m), "predicted": float(p),
                     "error_pct": err})
    return rows
