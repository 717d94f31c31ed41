"""``llmsim catalog list|show``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import pandas as pd
import typer

from llmsim import catalog, units
from llmsim.cli.options import Format, FormatOpt, OutOpt
from llmsim.errors import UnknownNameError
from llmsim.report.render import as_json, emit, frame_table, frame_to_csv, output_console

app = typer.Typer(help="List and show hardware, hosts, clusters and models.",
                  no_args_is_help=True)


class Kind(str, Enum):
    hardware = "hardware"
    models = "models"
    clusters = "clusters"
    hosts = "hosts"


def _hardware_rows() -> list[dict]:
    rows = []
    for h in catalog.list_hardware():
        rows.append({
            "name": h.name, "vendor": h.vendor, "family": h.family,
            "memory_gb": round(h.memory_bytes / units.GB, 1),
            "bandwidth_tb_s": round(h.memory_bandwidth_bytes_per_s / units.TB, 3),
            **{f"{d.value}_tflops": round(v / 1e12, 1) for d, v in h.peak_flops_per_s.items()},
            "scale_up_gb_s": round(h.scale_up.bandwidth_bytes_per_s / units.GB, 1)
            if h.scale_up else None,
        })
    return rows


def _model_rows() -> list[dict]:
    rows = []
    for e in catalog.list_models():
        m = catalog.get_model(e["alias"])
        rows.append({"name": m.name, "hf_id": m.hf_id, "family": m.family,
                     "params_b": round(m.num_params / 1e9, 2),
                     "active_params_b": round(m.num_active_params / 1e9, 2),
                     "layers": m.num_layers, "attention": m.attention.kind,
                     "moe": f"{m.moe.num_experts}x top{m.moe.top_k}" if m.moe else ""})
    return rows


def _cluster_rows() -> list[dict]:
    return [{"name": c.name, "hardware": c.hardware or "(any)",
             "gpus_per_node": c.gpus_per_node or "(part default)", "num_nodes": c.num_nodes,
             "intra_node": c.intra_node if isinstance(c.intra_node, str) else
             getattr(c.intra_node, "value", None) or c.intra_node.kind.value,
             "inter_node_gb_s": round(c.inter_node.bandwidth_bytes_per_s / units.GB, 2),
             "description": c.description} for c in catalog.list_clusters()]


def _host_rows() -> list[dict]:
    return [{"name": h.name, "cpu": h.cpu, "dram_gb": round(h.cpu_memory_bytes / units.GB),
             "dram_gb_s": round(h.cpu_memory_bandwidth_bytes_per_s / units.GB, 1),
             "h2d_gb_s": round(h.h2d_bandwidth_bytes_per_s / units.GB, 1),
             "disk_read_gb_s": round(h.disk_read_bandwidth_bytes_per_s / units.GB, 2)}
            for h in catalog.list_hosts()]


_ROWS = {Kind.hardware: _hardware_rows, Kind.models: _model_rows, Kind.clusters: _cluster_rows,
         Kind.hosts: _host_rows}


@app.command("list")
def list_cmd(
    kind: Annotated[Kind | None, typer.Argument(help="What to list (default: all).")] = None,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """List catalog entries."""
    kinds = [kind] if kind else list(Kind)
    if fmt == Format.json:
        emit(as_json({k.value: _ROWS[k]() for k in kinds}), out)
        return
    if fmt == Format.csv:
        emit("".join(frame_to_csv(pd.DataFrame(_ROWS[k]())) for k in kinds), out)
        return
    with output_console(out) as con:
        for k in kinds:
            con.print(frame_table(pd.DataFrame(_ROWS[k]()), title=k.value))


@app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="A model, hardware, cluster or host name.")],
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Show one entry (models include num_params and num_active_params)."""
    data: dict | None = None
    for getter, kind in ((catalog.get_model, "model"), (catalog.get_hardware, "hardware"),
                         (catalog.get_host, "host")):
        try:
            obj = getter(name)
        except UnknownNameError:
            continue
        data = obj.summary() if kind == "model" else {"kind": kind, **obj.model_dump(mode="json")}
        if kind == "model":
            data = {"kind": "model", **data}
        break
    if data is None:
        try:
            spec = catalog.loader.get_cluster_spec(name)
            data = {"kind": "cluster", **spec.model_dump(mode="json")}
        except UnknownNameError:
            known = ([e["alias"] for e in catalog.list_models()]
                     + [h.name for h in catalog.list_hardware()]
                     + [c.name for c in catalog.list_clusters()]
                     + [h.name for h in catalog.list_hosts()])
            raise UnknownNameError("catalog entry", name, known) from None
    if fmt == Format.json:
        emit(as_json(data), out)
        return
    if fmt == Format.csv:
        flat = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
        emit(frame_to_csv(pd.DataFrame([flat])), out)
        return
    from llmsim.report.render import kv_table

    with output_console(out) as con:
        con.print(kv_table(str(data.get("name")), [(k, str(v)) for k, v in data.items()]))
