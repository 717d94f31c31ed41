"""Predicted-vs-measured pictures (``validate --plot DIR``, ``estimate --cases FILE --plot
DIR``): per figure a log-log scatter with the ``y = x`` line, a histogram of the relative error
``predicted / measured - 1`` and the per-row (per-request) error, as PNG (matplotlib, Agg
backend; nothing is shown). The numbers beside them (median / p90 error, bias, Pearson r of
the logs) are :func:`llmsim.estimates.sweep.error_stats`, printed in the command's table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llmsim.io import atomic_path, prepare_dir

#: the files written per figure, by kind
PLOTS = ("scatter", "error_hist", "error_by_row")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _pairs(pred: np.ndarray, meas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, m = np.asarray(pred, float), np.asarray(meas, float)
    ok = np.isfinite(p) & np.isfinite(m) & (p > 0) & (m > 0)
    return p, m, ok


def write_accuracy_plots(out_dir: str | Path, series: Mapping[str, tuple[Any, Any]],
                         title: str = "", unit: str = "s") -> list[Path]:
    """For every ``name -> (predicted, measured)`` of ``series``: ``{name}_scatter.png``,
    ``{name}_error_hist.png`` and ``{name}_error_by_row.png`` in ``out_dir`` (made if need
    be). Returns the paths written."""
    out = Path(prepare_dir(out_dir, "--plot"))
    plt = _plt()
    paths: list[Path] = []
    for name, (pred, meas) in series.items():
        p, m, ok = _pairs(pred, meas)
        label = f"{title} {name}".strip()
        err = (p[ok] / m[ok] - 1.0) * 100.0
        fig, ax = plt.subplots(figsize=(4.8, 4.4))
        if ok.any():
            ax.scatter(m[ok], p[ok], s=12, alpha=0.7)
            lo, hi = float(min(m[ok].min(), p[ok].min())), float(max(m[ok].max(), p[ok].max()))
            ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="y = x")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.legend(loc="upper left", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
        ax.set_xlabel(f"measured ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{label}: predicted vs measured", fontsize=10)
        paths.append(_save(plt, fig, out / f"{name}_scatter.png"))

        fig, ax = plt.subplots(figsize=(4.8, 3.6))
        if err.size:
            ax.hist(err, bins=min(40, max(5, err.size // 2)), color="tab:blue", alpha=0.8)
            ax.axvline(0.0, color="black", lw=1)
            ax.axvline(float(np.median(err)), color="red", ls="--", lw=1,
                       label=f"median {np.median(err):+.1f}%")
            ax.legend(fontsize=8)
        ax.set_xlabel("relative error (predicted / measured - 1), %")
        ax.set_ylabel("rows")
        ax.set_title(f"{label}: relative error", fontsize=10)
        paths.append(_save(plt, fig, out / f"{name}_error_hist.png"))

        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        idx = np.flatnonzero(ok)
        if idx.size:
            ax.plot(idx, err, marker="o", ms=3, lw=0.6)
            ax.axhline(0.0, color="black", lw=1)
        ax.set_xlabel("row (request)")
        ax.set_ylabel("error, %")
        ax.set_title(f"{label}: error per row", fontsize=10)
        paths.append(_save(plt, fig, out / f"{name}_error_by_row.png"))
    return paths
