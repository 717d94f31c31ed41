"""The HTML report: one self-contained page (plotly, its JavaScript embedded once, no network
needed to open it) per run.

- :func:`simulation_html`: a serving run: its summary, latency CDFs (TTFT, TPOT, E2E, ITL) with
  the SLO lines, throughput / queue / KV-usage time series, and a per-request scatter;
- :func:`estimate_html`: a static batch: its summary, the per-op time breakdown of the prefill
  and decode steps, and the roofline of those ops against the part's peaks;
- :func:`comparison_html`: several runs side by side (bars of their key metrics);
- :func:`search_html`: a layout search: its summary, the Pareto frontier of throughput per GPU
  against tokens/s per user (every evaluated layout at its goodput, the best starred), the
  best layout and the runners-up with why each lost, and examples of every other reason;
- :func:`validation_html`: predicted against measured (``llmsim validate --out x.html``): the
  log-log scatter with the ``y = x`` line, the histogram of the relative error
  ``predicted / measured - 1`` and the per-group error table.

Built from what the run wrote (``llmsim report RUN_DIR`` rebuilds a simulation's page from its
``--out-dir`` bundle: ``report.serving.bundle_html``). plotly is the optional ``report``
extra; without it asking for HTML is a one-line error.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmsim.errors import ConfigError

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table.kv { border-collapse: collapse; font-size: 0.92em; }
table.kv td { padding: 2px 12px 2px 0; vertical-align: top; }
table.kv td:first-child { font-weight: 600; white-space: nowrap; }
.plot { margin: 0.5em 0 1.5em; }
footer { color: #777; font-size: 0.8em; margin-top: 2em; }
"""


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ConfigError("the HTML report needs plotly, which is not installed; "
                          "pip install 'llmsim[report]' (or pip install plotly)") from None
    return go


class Page:
    """An HTML page of headings, key/value tables and plotly figures; plotly.js is embedded
    once, in the first figure."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self._js_done = False

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def table(self, rows: Sequence[tuple[str, str]]) -> None:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        self.parts.append(f'<table class="kv">{body}</table>')

    def figure(self, fig: Any, height: int = 420) -> None:
        import plotly.io as pio

        fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                          template="plotly_white")
        self.parts.append('<div class="plot">' + pio.to_html(
            fig, full_html=False, include_plotlyjs=not self._js_done,
            config={"displaylogo": False, "responsive": True}) + "</div>")
        self._js_done = True

    def render(self) -> str:
        from llmsim import __version__

        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                f"<body><h1>{html.escape(self.title)}</h1>{''.join(self.parts)}"
                f"<footer>llmsim {__version__}: predicted, not measured</footer>"
                "</body></html>\n")


# ----------------------------------------------------------------------------- simulate
def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(values[np.isfinite(values)])
    return v, np.arange(1, len(v) + 1) / max(len(v), 1)


def simulation_html(summary: Mapping[str, Any], requests: pd.DataFrame,
                    timeseries: pd.DataFrame, itls: pd.DataFrame | None = None,
                    rows: Sequence[tuple[str, str]] = ()) -> str:
    """The page of one serving run: ``rows`` (the summary table's key/value rows), latency
    CDFs in ms with the SLO lines, time series, and the per-request scatter."""
    go = _plotly()
    from plotly.subplots import make_subplots

    s = summary
    page = Page(f"{s['model']} on {s['num_gpus']}x {s['hardware']}: serving simulation")
    page.table(list(rows))
    done = requests[requests["status"] == "finished"]
    page.heading("latency CDFs")
    metrics = [("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")]
    fig = make_subplots(rows=1, cols=4 if itls is not None else 3,
                        subplot_titles=[n for _, n in metrics] + (["ITL"] if itls is not None
                                                                  else []))
    slo = s.get("slo") or {}
    for i, (key, name) in enumerate(metrics, 1):
        x, y = _cdf(done[key].to_numpy(dtype=float) * 1e3)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name), row=1, col=i)
        if slo.get(key) is not None:
            fig.add_vline(x=slo[key] * 1e3, line_dash="dash", line_color="red", row=1, col=i,
                          annotation_text=f"SLO {slo[key] * 1e3:g} ms")
        fig.update_xaxes(title_text=f"{name} (ms)", row=1, col=i)
    if itls is not None:
        x, y = _cdf(itls["itl_s"].to_numpy(dtype=float) * 1e3)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="ITL"), row=1, col=4)
        fig.update_xaxes(title_text="ITL (ms)", row=1, col=4)
    fig.update_yaxes(title_text="fraction of requests", range=[0, 1], row=1, col=1)
    page.figure(fig, height=380)
    page.heading("over time")
    ts = timeseries
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True,
                        subplot_titles=["output tokens/s", "requests waiting / running",
                                        "KV-cache usage"])
    if "output_tokens_per_s" in ts:
        fig.add_trace(go.Scatter(x=ts["time_s"], y=ts["output_tokens_per_s"], name="output tok/s"),
                      row=1, col=1)
    for col in ("waiting", "running"):
        if col in ts:
            fig.add_trace(go.Scatter(x=ts["time_s"], y=ts[col], name=col), row=2, col=1)
    if "kv_usage_frac" in ts:
        fig.add_trace(go.Scatter(x=ts["time_s"], y=ts["kv_usage_frac"], name="KV usage"),
                      row=3, col=1)
        fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=3, col=1)
    fig.update_xaxes(title_text="simulated time (s)", row=3, col=1)
    page.figure(fig, height=640)
    page.heading("per request")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["TTFT by arrival", "E2E by length"])
    fig.add_trace(go.Scattergl(x=done["arrival_s"], y=done["ttft_s"] * 1e3, mode="markers",
                               marker={"size": 4}, name="TTFT"), row=1, col=1)
    fig.add_trace(go.Scattergl(
        x=done["input_tokens"] + done["output_tokens"], y=done["e2e_s"] * 1e3, mode="markers",
        marker={"size": 4, "color": done["output_tokens"], "colorscale": "Viridis",
                "colorbar": {"title": "output tokens"}}, name="E2E"), row=1, col=2)
    fig.update_xaxes(title_text="arrival (s)", row=1, col=1)
    fig.update_xaxes(title_text="input + output tokens", row=1, col=2)
    fig.update_yaxes(title_text="TTFT (ms)", row=1, col=1)
    fig.update_yaxes(title_text="E2E (ms)", row=1, col=2)
    page.figure(fig, height=420)
    return page.render()


# ----------------------------------------------------------------------------- estimate
def op_frame(result_dict: Mapping[str, Any]) -> pd.DataFrame:
    """Every op of the prefill and decode steps of an estimate's JSON (``as_dict(layers=True,
    ops=True)``): stage, layer, op, kind, time (x the layer's repeat), FLOPs, bytes, bound."""
    rows = []
    for stage, layers in (result_dict.get("layers") or {}).items():
        for layer in layers:
            rep = layer.get("repeat", 1)
            for op in layer.get("ops") or []:
                rows.append({"step": stage, "layer": layer["name"], "op": op["name"],
                             "kind": op["kind"], "time_s": op["time_s"] * op.get("count", 1) * rep,
                             "op_time_s": op["time_s"], "flops": op["flops"],
                             "bytes": op["bytes"], "bound": op["bound"]})
    return pd.DataFrame(rows)


def estimate_html(result: Any, rows: Sequence[tuple[str, str]] = ()) -> str:
    """The page of one static-batch estimate: ``rows`` (its summary), the per-op time of each
    step (stacked by op), and the roofline: each op's arithmetic intensity (FLOP / byte) and
    achieved FLOP/s against the part's peak FLOP/s and memory bandwidth."""
    go = _plotly()
    from llmsim import catalog

    d = result.as_dict(layers=True, ops=True)
    ops = op_frame(d)
    page = Page(f"{d['model']} on {d['num_gpus']}x {d['hardware']}: static batch "
                f"{d['batch']} x {d['prompt']} -> {d['output']}")
    page.table(list(rows))
    page.heading("time per op (one prefill step, one decode step at mid context)")
    fig = go.Figure()
    if len(ops):
        by = ops.groupby(["step", "op"], sort=False)["time_s"].sum().reset_index()
        for op, part in by.groupby("op", sort=False):
            fig.add_trace(go.Bar(x=part["step"], y=part["time_s"] * 1e3, name=str(op)))
    fig.update_layout(barmode="stack", yaxis_title="time (ms)")
    page.figure(fig)
    page.heading("roofline (per op, against the part's peaks)")
    hw = catalog.get_hardware(d["hardware"])
    bw = hw.memory_bandwidth_bytes_per_s
    peaks = {k.value: v for k, v in hw.peak_flops_per_s.items()}
    fig = go.Figure()
    ops = ops[(ops["flops"] > 0) & (ops["bytes"] > 0) & (ops["op_time_s"] > 0)]
    if len(ops):
        ai = ops["flops"] / ops["bytes"]
        achieved = ops["flops"] / ops["op_time_s"]
        for step, part in ops.assign(ai=ai, achieved=achieved).groupby("step", sort=False):
            fig.add_trace(go.Scatter(
                x=part["ai"], y=part["achieved"] / 1e12, mode="markers", name=f"{step} ops",
                text=part["layer"] + " / " + part["op"], marker={"size": 8}))
        x = np.logspace(np.log10(max(ai.min() / 4, 1e-3)), np.log10(ai.max() * 4), 200)
        for fmt in ("bf16", "fp8"):
            if fmt in peaks:
                fig.add_trace(go.Scatter(x=x, y=np.minimum(peaks[fmt], bw * x) / 1e12,
                                         mode="lines", line={"dash": "dash"},
                                         name=f"roof: {fmt} peak, {bw / 1e12:.2f} TB/s"))
    fig.update_xaxes(type="log", title_text="arithmetic intensity (FLOP / byte)")
    fig.update_yaxes(type="log", title_text="achieved TFLOP/s")
    page.figure(fig, height=480)
    return page.render()


# ----------------------------------------------------------------------------- comparisons
def comparison_html(title: str, frame: pd.DataFrame, label: str,
                    metrics: Sequence[tuple[str, str]]) -> str:
    """Several runs side by side: one bar chart per ``(column, axis title)`` of ``metrics``
    over the runs (``label``: the column naming each run), and the table of all columns."""
    go = _plotly()
    page = Page(title)
    for col, name in metrics:
        if col in frame:
            fig = go.Figure(go.Bar(x=frame[label], y=frame[col], name=name))
            fig.update_layout(title=name, yaxis_title=name)
            page.figure(fig, height=340)
    page.heading("all runs")
    page.parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                    classes="kv", border=0))
    return page.render()


# ----------------------------------------------------------------------------- search
#: column -> header of the search page's ranking tables
SEARCH_COLUMNS = {"rank": "#", "layout": "layout", "stage": "stage", "num_gpus": "GPUs",
                  "goodput_rps_per_gpu": "goodput req/s/GPU",
                  "output_tokens_per_s_per_gpu": "tok/s/GPU",
                  "tokens_per_s_per_user": "tok/s/user", "ttft_p99_s": "TTFT p99 s",
                  "tpot_p99_s": "TPOT p99 s", "reason": "why it lost"}


def _frontier_traces(go: Any, fig: Any, rows: Sequence[Mapping[str, Any]],
                     front: Sequence[Mapping[str, Any]], name: str, symbol: str,
                     color: str) -> None:
    pts = [(r["at_goodput"]["tokens_per_s_per_user"],
            r["at_goodput"]["output_tokens_per_s_per_gpu"], r["plan_key"])
           for r in rows if (r.get("at_goodput") or {}).get("tokens_per_s_per_user")
           and (r.get("at_goodput") or {}).get("output_tokens_per_s_per_gpu")]
    if pts:
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                                 text=[p[2] for p in pts], name=f"{name} (at goodput)",
                                 marker={"size": 7, "symbol": symbol, "color": color,
                                         "opacity": 0.55}))
    if front:
        fig.add_trace(go.Scatter(x=[p["tokens_per_s_per_user"] for p in front],
                                 y=[p["output_tokens_per_s_per_gpu"] for p in front],
                                 mode="lines+markers", text=[p["plan_key"] for p in front],
                                 name=f"Pareto frontier: {name}",
                                 line={"color": color}, marker={"size": 5}))


def search_html(result: Any, rows: Sequence[tuple[str, str]] = (),
                lost: pd.DataFrame | None = None) -> str:
    """The page of a layout search (``llmsim search --out FILE.html``): ``rows`` (its summary
    table), the Pareto frontier plot, the best layout with the runners-up and why each lost,
    the disaggregated layouts' own ranking (xPyD static estimate) and ``lost`` (examples of
    every other losing reason)."""
    go = _plotly()
    s = result.settings
    page = Page(f"{s['model']}: layout search at {s['load']:g} ({s['mode']})")
    page.table(list(rows))
    page.heading("Pareto frontier: output tokens/s per GPU against tokens/s per user")
    fig = go.Figure()
    only = s.get("disagg") == "only"
    _frontier_traces(go, fig, result.plans, result.frontier,
                     "xPyD, static estimate" if only else "simulated plans",
                     "triangle-up" if only else "circle", "#1f77b4")
    if not only:
        _frontier_traces(go, fig, result.disagg_rows, result.frontier_disaggregated,
                         "xPyD, static estimate", "triangle-up", "#ff7f0e")
    for label, b in (("best", result.best), ("best xPyD (static)", result.best_disaggregated)):
        if b is not None and b.get("tokens_per_s_per_user_at_goodput"):
            fig.add_trace(go.Scatter(x=[b["tokens_per_s_per_user_at_goodput"]],
                                     y=[b["goodput_output_tokens_per_s_per_gpu"]],
                                     mode="markers", name=f"{label}: {b['layout']}",
                                     marker={"size": 16, "symbol": "star", "color": "#2ca02c"}))
    fig.update_xaxes(title_text="tokens/s per user (1 / mean TPOT)")
    fig.update_yaxes(title_text="output tokens/s per GPU")
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    page.figure(fig, height=560)
    frame = pd.DataFrame(result.candidates)
    n = 1 + int(s.get("runners_up", 5))
    groups = [("serving", "best layout and runners-up (serving simulation)"),
              ("static", "disaggregated layouts, ranked on their own (xPyD static estimate; "
                         "not serving-confirmed)")]
    for group, title in groups:
        if not len(frame) or "group" not in frame:
            break
        ok = frame[(frame["status"] == "ok") & (frame["group"] == group)].head(n)
        if len(ok):
            page.heading(title)
            cols = [c for c in SEARCH_COLUMNS if c in ok.columns]
            page.parts.append(ok[cols].rename(columns=SEARCH_COLUMNS).to_html(
                index=False, float_format=lambda v: f"{v:.4g}", classes="kv", border=0,
                na_rep="-"))
    if lost is not None and len(lost):
        page.heading("why the others lost (examples; every layout is in the JSON / CSV)")
        page.parts.append(lost.to_html(index=False, classes="kv", border=0))
    return page.render()


# ----------------------------------------------------------------------------- validate
def _valid_pairs(pred: Any, meas: Any) -> tuple[np.ndarray, np.ndarray]:
    """The positive, finite (predicted, measured) pairs (a log axis holds no others)."""
    p, m = np.asarray(pred, dtype=float), np.asarray(meas, dtype=float)
    ok = np.isfinite(p) & np.isfinite(m) & (p > 0) & (m > 0)
    return p[ok], m[ok]


def validation_html(title: str, series: Mapping[str, tuple[Any, Any]], errors: pd.DataFrame,
                    rows: Sequence[tuple[str, str]] = (), unit: str = "s") -> str:
    """The page of a predicted-vs-measured validation: ``rows`` (what was validated), one
    log-log scatter of every ``group -> (predicted, measured)`` of ``series`` (a trace per
    group) with the ``y = x`` line, the histogram of each group's relative error
    ``(predicted / measured - 1) x 100`` %, and ``errors`` (one row per group: n, median / p90
    absolute error, bias, Pearson r; :func:`llmsim.estimates.sweep.error_stats`)."""
    go = _plotly()
    page = Page(title)
    page.table(list(rows))
    pairs = {name: _valid_pairs(p, m) for name, (p, m) in series.items()}
    page.heading("predicted vs measured (log-log; on the dashed line the prediction is exact)")
    fig = go.Figure()
    for name, (p, m) in pairs.items():
        fig.add_trace(go.Scatter(x=m, y=p, mode="markers", name=name, marker={"size": 6},
                                 hovertemplate=f"{name}<br>measured %{{x:.4g}} {unit}"
                                               f"<br>predicted %{{y:.4g}} {unit}<extra></extra>"))
    values = np.concatenate([np.concatenate([p, m]) for p, m in pairs.values()] or [[]])
    if values.size:
        lo, hi = float(values.min()) / 1.5, float(values.max()) * 1.5
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                                 line={"dash": "dash", "color": "black", "width": 1}))
    fig.update_xaxes(type="log", title_text=f"measured ({unit})")
    fig.update_yaxes(type="log", title_text=f"predicted ({unit})")
    page.figure(fig, height=520)
    page.heading("relative error (predicted / measured - 1)")
    fig = go.Figure()
    for name, (p, m) in pairs.items():
        fig.add_trace(go.Histogram(x=(p / m - 1.0) * 100.0, name=name, opacity=0.6,
                                   bingroup="error", nbinsx=40))
    fig.add_vline(x=0.0, line_color="black", line_width=1)
    fig.update_layout(barmode="overlay", xaxis_title="relative error (%)",
                      yaxis_title="rows")
    page.figure(fig, height=400)
    page.heading("error per group")
    page.parts.append("<style>table.kv th { padding: 2px 12px 2px 0; text-align: left; }"
                      "</style>")
    page.parts.append(errors.to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                     classes="kv", border=0, na_rep=""))
    return page.render()
