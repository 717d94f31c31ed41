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


def _cdf(ax: Any, values: np.ndarray, label: str) -> None:
    v = np.sort(values[np.isfinite(values)])
    if len(v) == 0:
        ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
        return
    ax.plot(v * 1e3, np.arange(1, len(v) + 1) / len(v), lw=1.5, label=label)


def plot_latency_cdfs(report: Any, path: Path) -> Path:
    """CDFs of TTFT, TPOT, E2E (per request) and ITL (from the streamed histogram)."""
    plt = _plt()
    req = report.requests
    s = report.summary()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key, title in zip(axes[:3], ("ttft_s", "tpot_s", "e2e_s"),
                              ("TTFT", "TPOT", "E2E"), strict=True):
        _cdf(ax, req[key].to_numpy(dtype=float), title)
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
    fig.suptitle(f"{s.get('model')} on {s.get('num_gpus')}x {s.get('hardware')} - "
                 f"{s.get('scheduler')}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_timeseries(report: Any, path: Path) -> Path:
    """Output token throughput, queue / running requests and KV usage over time."""
    plt = _plt()
    ts = report.timeseries
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    if len(ts):
        t = ts["time_s"]
        axes[0].plot(t, ts["output_tokens_per_s"], lw=1, label="output tokens/s")
        axes[0].plot(t, ts["prefill_tokens_per_s"], lw=1, alpha=0.7, label="prefill tokens/s")
        axes[0].legend(fontsize=8)
        axes[1].plot(t, ts["waiting"], lw=1, label="waiting")
        axes[1].plot(t, ts["running"], lw=1, label="running")
        if ts["swapped"].any():
            axes[1].plot(t, ts["swapped"], lw=1, label="swapped")
        axes[1].legend(fontsize=8)
        axes[2].plot(t, ts["kv_usage_frac"] * 100, lw=1)
    axes[0].set_ylabel("tokens/s")
    axes[1].set_ylabel("requests")
    axes[2].set_ylabel("KV usage %")
    axes[2].set_ylim(0, 105)
    axes[2].set_xlabel("simulated time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
