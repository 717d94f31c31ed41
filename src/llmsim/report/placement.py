"""Outputs of ``llmsim offload solve|evaluate`` (the FlexGen placement LP, ``llmsim.placement``):
the policy, where weights / KV cache / activations sit, peak memory per tier, and each stream
of one prefill and one decode step."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from llmsim import units
from llmsim.report.render import as_json, console, emit, kv_table


def write_placement(res: Any, fmt: str, out: str | None, what: str) -> None:
    """A placement result as JSON or as :func:`placement_tables` (``out``: their text)."""
    if fmt == "json":
        emit(as_json(res.as_dict()), out)
        return
    tables = placement_tables(res, what)
    con = console()
    if out:
        with con.capture() as cap:
            for t in tables:
                con.print(t)
        emit(cap.get(), out)
        return
    for t in tables:
        con.print(t)


def placement_tables(res: Any, what: str) -> list[Table]:
    """Summary, placement, peak memory per tier and per-stream step tables of a placement
    result; ``what`` names it in the title (``offload best policy``, ``offload policy``)."""
    pct, t = units.fmt_pct, units.fmt_time_short
    p = res.policy
    flags = [n for n in ("compress_weight", "compress_cache", "cpu_cache_compute")
             if getattr(p, n)] + ([] if p.overlap else ["no overlap"]) + \
        ([] if p.pin_weight else ["pageable weights"])
    status = "yes" if res.feasible else f"[red]NO[/red]: {res.reason}"
    rows = [
        ("model / GPU / host", f"{res.model} / {res.hardware} / {res.host}"),
        ("runtime / host efficiency", f"{res.runtime} / {res.system.host_eff.describe()}"),
        ("prompt -> generated", f"{res.prompt_len} -> {res.gen_len} tokens"
         + (f"  (MoE experts moved: {res.moe_experts})" if res.moe_experts != "all" else "")),
        ("feasible", status),
        ("throughput", f"{res.throughput_tokens_per_s:,.3f} tokens/s"),
        ("batch", f"{p.gpu_batch_size} x {p.num_gpu_batches} GPU batches = block "
                  f"{p.block_size}"),
        ("flags", ", ".join(flags) or "-"),
        ("prefill / decode step / total",
         f"{units.fmt_time(res.prefill_time_s)} / {units.fmt_time(res.decode_step_time_s)} / "
         f"{units.fmt_time(res.total_time_s)}"),
        ("bound (prefill / decode)", f"{res.prefill.bound} / {res.decode.bound}"),
    ]
    if res.candidates_evaluated:
        rows.append(("candidates evaluated", str(res.candidates_evaluated)))
    summary = kv_table(f"offload {what}", rows)

    place = Table(title="placement", title_justify="left")
    for c in ("", "GPU", "CPU", "disk"):
        place.add_column(c, justify="left" if not c else "right")
    place.add_row("weights", pct(p.w_gpu_frac), pct(p.w_cpu_frac), pct(p.w_disk_frac))
    place.add_row("KV cache", pct(p.cache_gpu_frac), pct(p.cache_cpu_frac),
                  pct(p.cache_disk_frac))
    place.add_row("activations", pct(p.act_gpu_frac), pct(p.act_cpu_frac),
                  pct(p.act_disk_frac))

    mem = Table(title="peak memory per tier", title_justify="left")
    for c in ("tier", "prefill", "decode", "limit"):
        mem.add_column(c, justify="left" if c == "tier" else "right")
    for tier in ("gpu", "cpu", "disk"):
        mem.add_row(tier, units.fmt_bytes(res.peak_bytes["prefill"][tier]),
                    units.fmt_bytes(res.peak_bytes["decode"][tier]),
                    units.fmt_bytes(res.limit_bytes[tier]))

    # one row per stream, one column per stage: every value stays readable at 80 columns
    stages = Table(title="one step: time and each stream summed over layers",
                   caption="a layer takes its host staging, then its slowest stream",
                   title_justify="left", caption_justify="left", min_width=60)
    for c in ("", "prefill", "decode"):
        stages.add_column(c, justify="left" if not c else "right", no_wrap=True)
    pre, dec = res.prefill, res.decode
    stages.add_row("time", t(pre.time_s), t(dec.time_s))
    stages.add_row("bound", pre.bound, dec.bound)
    for key, label in (("ctog", "ctog (CPU->GPU)"), ("gtoc", "gtoc (GPU->CPU)"),
                       ("dtoc", "dtoc (disk->CPU)"), ("ctod", "ctod (CPU->disk)"),
                       ("compute", "compute"), ("staging", "staging (pageable)")):
        stages.add_row(label, t(pre.streams_s[key]), t(dec.streams_s[key]))
    return [summary, place, mem, stages]
