"""``llmsim moe-offload simulate``: a GPU expert cache with prefetch and CPU fallback, simulated."""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim import units
from llmsim.cli.options import EfficiencyOpt, Format, FormatOpt, OutOpt, ProfileOpt
from llmsim.errors import ConfigError

app = typer.Typer(name="moe-offload", no_args_is_help=True,
                  help="MoE expert offloading: GPU expert cache, prefetch, CPU fallback.")


def register(root: typer.Typer) -> None:
    """Add ``moe-offload`` to the root app."""
    root.add_typer(app, name="moe-offload")


def parse_capacity(value: str) -> int | None:
    """``auto`` -> None (fit the GPU), else a non-negative int."""
    if value.strip().lower() == "auto":
        return None
    try:
        out = int(value)
    except ValueError:
        raise ConfigError(f"--cache-capacity must be a number of experts or 'auto', not "
                          f"{value!r}") from None
    if out < 0:
        raise ConfigError(f"--cache-capacity must be >= 0, got {out}")
    return out


@app.command("simulate")
def simulate_cmd(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Catalog MoE model, HF config.json, executor preset or "
                              "llmsim-moe config file.")],
    hardware: Annotated[str, typer.Option("--hardware", "-H", help="GPU (see `llmsim catalog "
                                                                   "list hardware`).")
                        ] = "rtx-4090",
    host: Annotated[str | None, typer.Option(
        "--host", help="Host: CPU, DRAM, PCIe (see `llmsim catalog list hosts`; default: the "
                       "GPU's, as in `llmsim offload`: workstation-pcie4 for an RTX 3090/4090, "
                       "gcp-t4-flexgen for a T4, else a generic server of the GPU's PCIe "
                       "generation).")] = None,
    cache_capacity: Annotated[str, typer.Option(
        "--cache-capacity", "-C", help="Experts cached on the GPU per MoE layer, or 'auto' "
                                       "(as many as fit).")] = "auto",
    prefetch: Annotated[int | None, typer.Option(
        "--prefetch", "-P", min=0, help="Experts prefetched per layer (default: top-k; 0 off).")
    ] = None,
    prefetch_accuracy: Annotated[float, typer.Option(
        "--prefetch-accuracy", "-a", min=0.0, max=1.0,
        help="Probability that a prefetched expert is used.")] = 0.8,
    policy: Annotated[str, typer.Option("--policy", help="Cache policy: lru, lfu, static.")
                      ] = "lru",
    routing: Annotated[str, typer.Option(
        "--routing", help="uniform | zipf:S | correlated:R (+ ,corr=R ,sticky=R) | a JSONL/CSV "
                          "routing trace (FILE or trace:FILE).")] = "uniform",
    miss: Annotated[str, typer.Option("--miss", help="Miss handling: fetch (PCIe, then GPU) "
                                                     "or cpu (compute on the CPU).")
                    ] = "fetch",
    prompt: Annotated[int | None, typer.Option(
        "--prompt", min=1, help="Prompt tokens (default 256, or the trace's).")] = None,
    decode_steps: Annotated[int | None, typer.Option(
        "--decode-steps", min=0, help="Decode steps (default 10, or the trace's).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of routing and prefetch guesses "
                                                     "(0..2**63-1).")] = 0,
    dtype: Annotated[str | None, typer.Option(
        "--dtype", help="Weights/activations format (default: the model's).")] = None,
    profile: ProfileOpt = None,
    efficiency: EfficiencyOpt = None,
    cpu_efficiency: Annotated[float, typer.Option(
        "--cpu-efficiency", min=0.01, max=1.5,
        help="Fraction of the host's datasheet CPU peaks reached by CPU experts.")] = 1.0,
    allow_overflow: Annotated[bool, typer.Option(
        "--allow-overflow", help="Simulate even if the cache does not fit the GPU.")] = False,
    timeline: Annotated[bool, typer.Option(
        "--timeline", help="Include the per-step, per-layer timeline (JSON: a list; table: "
                           "one row per step and layer; CSV is always the timeline).")] = False,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Predict prefill time, decode time per token, hit rate and PCIe traffic of a MoE model
    whose experts live in host memory behind a per-layer GPU cache."""
    from llmsim.costmodel import Profile
    from llmsim.expert_cache import (
        MissMode,
        OffloadConfig,
        auto_capacity,
        check_context,
        check_routing,
        check_seed,
        load_moe_model,
        make_platform,
        simulate,
    )
    from llmsim.expert_cache.routing import read_trace, trace_path

    # cheap flags first (no model, no pricing)
    check_seed(seed)
    try:
        miss_mode = MissMode(miss.strip().lower())
    except ValueError:
        raise ConfigError(f"--miss must be fetch or cpu, not {miss!r}") from None
    capacity = parse_capacity(cache_capacity)
    check_routing(routing)
    spec = load_moe_model(model)
    moe = spec.moe
    assert moe is not None
    p = moe.top_k if prefetch is None else prefetch
    # capacity and prefetch against the expert count before any sizing (one message either way)
    config = OffloadConfig.build(capacity=capacity or 0, policy=policy, prefetch=p,
                                 prefetch_accuracy=prefetch_accuracy, miss=miss_mode,
                                 seed=seed).for_model(moe.num_experts)
    n_prompt, n_steps = prompt or 256, decode_steps if decode_steps is not None else 10
    path = trace_path(routing)
    if path is not None:
        trace = read_trace(path, spec)
        n_prompt = trace.prompt_tokens if prompt is None else prompt
        n_steps = trace.decode_steps if decode_steps is None else decode_steps
    check_context(spec, n_prompt, n_steps)
    platform = make_platform(hardware, host, cpu_efficiency)
    if capacity is None:
        capacity = auto_capacity(spec, platform, p, n_prompt, n_steps, dtype)
        config = config.replace(capacity=capacity)
    prof = Profile.load(profile) if profile else None
    result = simulate(spec, config=config, routing=routing, prompt_tokens=prompt,
                      decode_steps=decode_steps, dtype=dtype, profile=prof,
                      efficiency=efficiency, platform=platform, allow_overflow=allow_overflow)
    if fmt == Format.json:
        from llmsim.report.render import as_json, emit

        emit(as_json(result.as_dict(timeline=timeline)), out)
    elif fmt == Format.csv:
        import pandas as pd

        from llmsim.report.render import emit, frame_to_csv

        emit(frame_to_csv(pd.DataFrame([e.__dict__ for e in result.timeline])), out)
    else:
        from llmsim.report.render import output_console

        with output_console(out) as con:
            _tables(result, con)
            if timeline:
                con.print(_timeline_table(result))


def _per_s(v: float, digits: int = 2) -> str:
    return "n/a" if v != v else f"{v:,.{digits}f} tokens/s"


def _tables(r, con) -> None:  # noqa: ANN001 - OffloadResult, rich Console
    from rich.table import Table

    from llmsim.report.render import kv_table

    t, pct = units.fmt_time, units.fmt_pct
    con.print(kv_table(
        f"{r.model} on {r.hardware} + {r.host} ({r.precision}); cache {r.capacity}/layer "
        f"{r.policy}, prefetch {r.prefetch} @ {r.prefetch_accuracy:g}, miss {r.miss}",
        [
            ("routing", f"{r.routing} (seed {r.seed})"),
            ("prefill", f"{t(r.prefill_s)} for {r.prompt_tokens} tokens "
                        f"({_per_s(r.prefill_tokens_per_s, 0)})"),
            ("decode per token", f"{t(r.decode_s_per_token)} ({_per_s(r.tokens_per_s)}, "
                                 f"{r.decode_steps} steps)" if r.decode_steps else
             "n/a (0 decode steps)"),
            ("hit rate", f"{pct(r.hit_rate)} (prefill {pct(r.prefill_hit_rate)}, decode "
                         f"{pct(r.decode_hit_rate)}; token-weighted {pct(r.token_hit_rate)})"),
            ("prefetch accuracy (measured)", pct(r.measured_prefetch_accuracy)),
            ("PCIe traffic", f"{units.fmt_bytes(r.pcie_bytes)} (H2D "
                             f"{units.fmt_bytes(r.h2d_bytes)}, D2H "
                             f"{units.fmt_bytes(r.d2h_bytes)}); link busy {t(r.transfer_s)}"),
            ("GPU / CPU expert time", f"{t(r.gpu_expert_s)} / {t(r.cpu_expert_s)}"),
            ("non-expert GPU time", t(r.dense_s)),
            ("stall (unhidden transfers)", t(r.stall_s)),
            ("GPU memory", f"{units.fmt_bytes(r.gpu_memory_bytes)} of "
                           f"{units.fmt_bytes(r.gpu_usable_bytes)} usable"
                           + ("" if r.fits else "  [red]DOES NOT FIT[/red]")),
        ]))
    for phase in ("prefill", "decode"):
        rows = r.per_layer(phase)
        if not rows:
            continue
        title = ("prefill per layer" if phase == "prefill"
                 else "decode per layer (mean per step)")
        table = Table(title=title, title_justify="left")
        for c in ("layer", "time ms", "other ms", "GPU exp ms", "CPU exp ms", "stall ms",
                  "H2D MB", "hits"):
            table.add_column(c, justify="right")
        for row in rows:
            table.add_row(str(row["layer"]), f"{row['time_s'] * 1e3:.3f}",
                          f"{row['dense_s'] * 1e3:.3f}", f"{row['gpu_expert_s'] * 1e3:.3f}",
                          f"{row['cpu_expert_s'] * 1e3:.3f}", f"{row['stall_s'] * 1e3:.3f}",
                          f"{row['h2d_bytes'] / 1e6:.1f}",
                          units.fmt_pct(row["hit_rate"], 0) if row["moe"] else "-")
        con.print(table)


def _timeline_table(r):  # noqa: ANN001, ANN202 - OffloadResult -> rich Table
    """``--timeline`` as a table: one row per step and decoder layer (fits 80 columns)."""
    from rich.table import Table

    table = Table(title="timeline (step 0 = prefill; start on the run's clock; hits: hits / "
                        "experts used; pref: prefetch copies issued)", title_justify="left",
                  show_edge=False, pad_edge=False)
    for c in ("step", "layer", "start s", "time ms", "stall ms", "H2D MB", "D2H MB", "hits",
              "pref"):
        table.add_column(c, justify="right", no_wrap=True)
    for e in r.timeline:
        table.add_row(str(e.step), str(e.layer), f"{e.start_s:.4f}",
                      f"{e.time_s * 1e3:.3f}", f"{e.stall_s * 1e3:.3f}",
                      f"{e.h2d_bytes / 1e6:,.1f}", f"{e.d2h_bytes / 1e6:,.1f}",
                      f"{e.hits}/{e.experts}" if e.moe else "-", str(e.prefetch_loads))
    return table
