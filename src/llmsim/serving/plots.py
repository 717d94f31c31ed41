"""Matplotlib figures of a simulation (Agg backend, written to files; nothing is shown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from llmsim.io import atomic_path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, summary: dict[str, Any], path: Path) -> Path:
    """Title the figure with the run (model, GPUs, scheduler), write it as PNG, close it."""
    s = summary
    fig.suptitle(f"{s.get('model')} on {s.get('num_gpus')}x {s.get('hardware')} - "
                 f"{s.get('scheduler')}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


#: the most points one CDF curve is drawn with (longer runs: evenly spaced ranks, the first and
#: the last included; a curve this dense looks the same, and matplotlib holds several copies
#: of what it draws -- millions of points would cost more memory than the run)
CDF_POINTS = 20_000


def _cdf(ax: Any, values: np.ndarray, label: str) -> None:
    v = values[np.isfinite(values)]
    v.sort()
    if len(v) == 0:
        ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
        return
    ranks = (np.arange(len(v)) if len(v) <= CDF_POINTS
             else np.unique(np.linspace(0, len(v) - 1, CDF_POINTS).astype(np.int64)))
    ax.plot(v[ranks] * 1e3, (ranks + 1) / len(v), lw=1.5, label=label)


def plot_latency_cdfs(report: Any, path: Path) -> Path:
    """CDFs of TTFT, TPOT, E2E (per request) and ITL (from the streamed histogram)."""
    plt = _plt()
    s = report.summary()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key, title in zip(axes[:3], ("ttft_s", "tpot_s", "e2e_s"),
                              ("TTFT", "TPOT", "E2E"), strict=True):
        _cdf(ax, np.asarray(report.request_column(key), dtype=float), title)
        slo = (s.get("slo") or {}).get(key)
        if slo:
            ax.axvline(slo * 1e3, color="red", ls="--", lw=1, label=f"SLO {slo * 1e3:g} ms")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(title)
    hist = report.itl_hist
    ax = axes[3]
    counts = np.asarray(hist.counts)
    if counts.sum() > 0:
        edges = 10.0 ** (hist.lo_log + np.arange(hist.bins + 1) / hist.per_decade)
        nz = np.nonzero(counts)[0]
        lo, hi = nz[0], nz[-1] + 1
        ax.plot(edges[lo + 1:hi + 1] * 1e3, np.cumsum(counts[lo:hi]) / counts.sum(), lw=1.5)
    ax.set_title("ITL (all token gaps)")
    for ax in axes:
        ax.set_xlabel("ms")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of requests")
    return _save(plt, fig, s, path)


def _rates(ts: Any, column: str, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Rate of a cumulative column over ~``points`` equal windows (smooths sampling noise)."""
    t = ts["time_s"].to_numpy(dtype=float)
    c = ts[column].to_numpy(dtype=float)
    if len(t) < 3:
        return t, np.zeros_like(t)
    step = max(len(t) // points, 1)
    tt, cc = t[::step], c[::step]
    return 0.5 * (tt[1:] + tt[:-1]), np.diff(cc) / np.diff(tt)


def plot_timeseries(report: Any, path: Path) -> Path:
    """Token throughput, queue / running requests and KV usage over time."""
    plt = _plt()
    ts = report.timeseries
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    if len(ts):
        t = ts["time_s"]
        axes[0].plot(*_rates(ts, "output_tokens"), lw=1.2, color="C0")
        axes[1].plot(*_rates(ts, "prefill_tokens"), lw=1.2, color="C1")
        axes[2].plot(t, ts["waiting"], lw=1, label="waiting")
        axes[2].plot(t, ts["running"], lw=1, label="running")
        if ts["swapped"].any():
            axes[2].plot(t, ts["swapped"], lw=1, label="swapped")
        axes[2].legend(fontsize=8)
        axes[3].plot(t, ts["kv_usage_frac"] * 100, lw=1)
    axes[0].set_ylabel("output tokens/s")
    axes[1].set_ylabel("prompt tokens/s")
    axes[2].set_ylabel("requests")
    axes[3].set_ylabel("KV usage %")
    axes[3].set_ylim(0, 105)
    axes[3].set_xlabel("simulated time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(plt, fig, report.summary(), path)
