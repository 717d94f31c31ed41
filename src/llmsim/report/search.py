"""Rendering of a search: the best layout, the runners-up, why the others lost (table, JSON,
CSV) and the Pareto frontier plot (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from llmsim.report.render import as_json, emit, frame_table, frame_to_csv, kv_table, print_tables

if TYPE_CHECKING:
    from llmsim.search import SearchResult

#: column -> header of the best / runners-up table (figures at the requested load)
SHOWN_COLUMNS = {"rank": "#", "layout": "layout", "num_gpus": "GPUs",
                 "goodput_rps_per_gpu": "goodput req/s/GPU",
                 "output_tokens_per_s_per_gpu": "tok/s/GPU",
                 "tokens_per_s_per_user": "tok/s/user", "ttft_p99_s": "TTFT p99 s",
                 "tpot_p99_s": "TPOT p99 s"}
LOST_COLUMNS = ("layout", "status", "reason")


def candidates_frame(result: SearchResult) -> pd.DataFrame:
    return pd.DataFrame(result.candidates)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def summary_rows(result: SearchResult) -> list[tuple[str, str]]:
    s, c, t = result.settings, result.counts, result.timing
    slo = ", ".join(f"{x['metric']}_{x['stat']} <= {x['limit_s'] * 1e3:g} ms" for x in s["slo"])
    rows = [("model", s["model"]), ("load", f"{s['load']:g} ({s['mode']})"), ("SLO", slo),
            ("objective", s["objective"]),
            ("layouts", f"{c['layouts']:,} ({c.get('ok', 0)} confirmed to meet the SLO, "
                        f"{c.get('dominated', 0)} dominated, {c.get('slo_missed', 0)} SLO "
                        f"missed, {c.get('does_not_fit', 0)} do not fit, "
                        f"{c.get('invalid', 0)} invalid)"),
            ("plans", f"{c['plans']} survive the analytic stage; {c['plans_simulated']} "
                      f"simulated ({c['simulations']} simulations), "
                      f"{c['plans_pruned_by_bound']} pruned by their bound"),
            ("wall time", f"analytic {t['analytic_wall_s']:.1f} s, simulation "
                          f"{t['simulate_wall_s']:.0f} s")]
    if s.get("disagg") == "only":  # no aggregated plans: their counts say nothing
        rows = [r for r in rows if r[0] != "plans"]
    if c.get("disaggregated_layouts"):
        rows.append(("disaggregated", disagg_summary(result)))
    b = result.best
    if b is None:
        rows.append(("best", "no layout meets the SLO at the requested load"
                     + (" in the serving simulation" if result.best_disaggregated else "")))
        return rows
    rows += [("best", b["layout"]), ("GPUs", gpus_text(b))]
    if b["kind"] == "disaggregated":
        rows.append(("stage", f"{b['stage']}; {b['slo_basis']}" if b.get("slo_basis")
                     else b["stage"]))
    rows += [
             ("goodput", f"{_fmt(b['goodput_rps_per_gpu'])} req/s per GPU "
                         f"({_fmt(b['goodput_rps_per_replica'])} "
                         f"{'for the layout' if b['kind'] == 'disaggregated' else 'per replica'})"),
             ("at the requested load", f"{_fmt(b['output_tokens_per_s_per_gpu'])} output "
                                       f"tokens/s per GPU, {_fmt(b['tokens_per_s_per_user'])} "
                                       "tokens/s per user")]
    for x in s["slo"]:
        name = f"{x['metric']}_{x['stat']}"
        v = b.get(name + "_s")
        iv = ((result.intervals or {}).get("intervals") or {}).get(name)
        band = f" [{iv[0] * 1e3:.1f}, {iv[1] * 1e3:.1f}]" if iv else ""
        rows.append((name, f"{v * 1e3:.1f} ms{band}" if v is not None else "-"))
    if result.intervals:
        iv = result.intervals["intervals"].get("output_tokens_per_s_per_gpu")
        rows.append(("intervals", f"{result.intervals['level']:.0%} over "
                                  f"{result.intervals['draws']} estimator draws; tokens/s per "
                                  f"GPU [{_fmt(iv[0])}, {_fmt(iv[1])}]; SLO met in "
                                  f"{result.intervals['slo_met_frac']:.0%} of draws"))
    rows.append(("energy", f"{_fmt(b.get('energy_per_token_j'))} J per output token"))
    if b.get("usd_per_hour"):
        rows.append(("cost", f"${b['usd_per_hour']:.2f}/h, "
                             f"${_fmt(b['usd_per_million_output_tokens'])} per 1M output tokens"
                             f" (prices {s['prices']['date']})"))
    return rows


def gpus_text(b: dict[str, Any]) -> str:
    """The GPUs of a candidate row: ``2 x h100-sxm (tp 2 x pp 1, 1 replicas)`` or, for xPyD,
    both pools."""
    if b.get("kind") == "disaggregated":
        return (f"{b['num_gpus']}: {b['prefill_workers']} prefill x {b['prefill_gpu']} tp "
                f"{b['prefill_tp']} + {b['decode_workers']} decode x {b['decode_gpu']} tp "
                f"{b['decode_tp']} ({b['ratio']}"
                + (", heterogeneous)" if b.get("heterogeneous") else ")"))
    return (f"{b['num_gpus']} x {b['gpu']} (tp {b['tp']} x pp {b['pp']}, {b['replicas']} "
            "replicas)" + (f", {b['engine']}" if b.get("engine") else ""))


def disagg_summary(result: SearchResult) -> str:
    """One line on the disaggregated layouts: how many, how they were priced, the best."""
    c = result.counts
    text = (f"{c['disaggregated_layouts']:,} xPyD layouts, {c['disaggregated_survivors']} "
            f"survive the analytic bounds, {c['disaggregated_estimated']} priced by the static "
            f"estimate ({c.get('static_estimates', 0)} estimates), "
            f"{c['disaggregated_pruned_by_bound']} pruned by their bound; "
            + (f"{c.get('disaggregated_simulated', 0)} confirmed in the serving simulation "
               f"({c.get('disaggregated_simulations', 0)} simulations)"
               if result.settings.get("disagg_serving", False) else
               "serving confirmation off"))
    bd = result.best_disaggregated
    if bd is not None:
        text += (f"; best {bd['layout']}: {_fmt(bd['goodput_rps_per_gpu'])} req/s per GPU "
                 "(ranked on its own)")
    elif result.settings.get("disagg") != "only" and not any(
            c["kind"] == "disaggregated" and c["status"] == "ok" for c in result.candidates):
        text += "; none meets the SLO"
    return text


def lost_examples(result: SearchResult, per_status: int = 3) -> pd.DataFrame:
    """A few layouts of each losing status (one per plan; aggregated first, at least one
    disaggregated where there are both), with why."""
    frame = candidates_frame(result)
    if frame.empty:
        return frame
    kinds = frame["kind"] if "kind" in frame else pd.Series("aggregated", index=frame.index)
    parts = []
    for st in ("dominated", "slo_missed", "does_not_fit", "invalid", "not_run"):
        mine = frame[frame["status"] == st].drop_duplicates("plan_key")
        agg = mine[kinds[mine.index] == "aggregated"]
        dis = mine[kinds[mine.index] != "aggregated"]
        n_dis = min(len(dis), max(1, per_status - len(agg)) if len(agg) else per_status)
        parts.append(pd.concat([agg.head(per_status - min(n_dis, 1) if len(dis) else
                                         per_status), dis.head(n_dis)]))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts)[list(LOST_COLUMNS)] if parts else frame.head(0)


def write_search(result: SearchResult, fmt: str, out: str | None = None) -> None:
    """``table``: summary, best + runners-up, examples of each losing reason; ``json``: the
    whole result (``best``, ``candidates``, ``pareto``...); ``csv``: one row per layout."""
    if fmt == "json":
        emit(as_json(result.as_dict()), out)
        return
    frame = candidates_frame(result)
    if fmt == "csv":
        emit(frame_to_csv(frame), out)
        return
    tables: list[Any] = [kv_table("search", summary_rows(result))]
    n = 1 + result.settings.get("runners_up", 5)
    only = result.settings.get("disagg") == "only"
    for group, title in (("serving", "best and runners-up (at the requested load)"),
                         ("static", "best and runners-up (at the requested load; xPyD static "
                                    "estimate, not serving-confirmed)" if only else
                                    "disaggregated, ranked on their own (xPyD static "
                                    "estimate, not serving-confirmed)")):
        ok = frame[(frame["status"] == "ok") & (frame["group"] == group)].head(n) \
            if len(frame) and "group" in frame else frame.head(0)
        if len(ok):
            cols = [c for c in SHOWN_COLUMNS if c in ok.columns]
            shown = ok[cols].rename(columns=SHOWN_COLUMNS).map(
                lambda v: f"{v:.3g}" if isinstance(v, float) else v)
            tables.append(frame_table(shown, title))
    lost = lost_examples(result)
    if len(lost):
        tables.append(frame_table(lost, "why the others lost (examples; all in the JSON / CSV)"))
    print_tables(tables, out)


def points_of(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(tokens/s per user, output tokens/s per GPU) of evaluated rows at their goodput."""
    xs, ys = [], []
    for r in rows:
        at = r.get("at_goodput") or {}
        if at.get("tokens_per_s_per_user") and at.get("output_tokens_per_s_per_gpu"):
            xs.append(at["tokens_per_s_per_user"])
            ys.append(at["output_tokens_per_s_per_gpu"])
    return xs, ys


def plot_frontier(result: SearchResult, path: str | Path) -> Path:
    """PNG: every simulated plan at its goodput load, throughput per GPU against tokens/s per
    user, the frontier joined, the best marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmsim.io import atomic_path

    xs, ys = points_of(result.plans)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    only = result.settings.get("disagg") == "only" and bool(result.plans) \
        and (result.best or {}).get("group") == "static"
    ax.scatter(xs, ys, s=14, alpha=0.5, label="xPyD layouts, static estimate (at goodput)"
               if only else "simulated plans (at goodput)")
    fx = [p["tokens_per_s_per_user"] for p in result.frontier]
    fy = [p["output_tokens_per_s_per_gpu"] for p in result.frontier]
    ax.plot(fx, fy, "-o", color="C3", ms=4, label="Pareto frontier")
    dx, dy = points_of(result.disagg_rows) if not only else ([], [])
    if dx:
        ax.scatter(dx, dy, s=14, alpha=0.5, marker="^", color="C1",
                   label="xPyD layouts, static estimate (at goodput)")
        fd = result.frontier_disaggregated
        ax.plot([p["tokens_per_s_per_user"] for p in fd],
                [p["output_tokens_per_s_per_gpu"] for p in fd], "--", color="C1", lw=1,
                label="xPyD frontier (static)")
    best = result.best
    if best is not None:
        ax.scatter([best["tokens_per_s_per_user_at_goodput"]],
                   [best["goodput_output_tokens_per_s_per_gpu"]], marker="*", s=160,
                   color="C2", zorder=5, label=f"best: {best['layout']}")
    ax.set_xlabel("tokens/s per user (1 / mean TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(f"{result.settings['model']}: throughput per GPU vs per-user speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return target


def write_search_dir(result: SearchResult, out_dir: str | Path) -> list[Path]:
    """``search.json``, ``candidates.csv`` and ``pareto.png`` in ``out_dir``."""
    from llmsim.io import prepare_dir, write_json, write_table

    out = prepare_dir(out_dir, "--out", "search writes a folder (search.json, candidates.csv, "
                                        "pareto.png, results.jsonl)")
    paths = [out / "search.json", out / "candidates.csv", out / "pareto.png"]
    write_json(paths[0], result.as_dict())
    write_table(paths[1], candidates_frame(result))
    plot_frontier(result, paths[2])
    return paths


def write_search_page(result: SearchResult, path: str | Path) -> Path:
    """The HTML report page of a search (``report/html.py:search_html``) at ``path``."""
    from llmsim.report.html import search_html
    from llmsim.report.render import emit_html

    emit_html(search_html(result, summary_rows(result), lost_examples(result)), str(path))
    return Path(path)
