"""Outputs of ``llmsim catalog list|show``: one record per hardware part, model, cluster or host
(in human units: GB, TB/s, TFLOPS, billions of parameters), and one entry in full."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from llmsim import catalog, units
from llmsim.report.render import (
    TABULAR,
    as_json,
    check_no_report,
    emit,
    emit_frame,
    frame_table,
    frame_to_csv,
    kv_table,
    print_tables,
)


def hardware_rows() -> list[dict[str, Any]]:
    """Every accelerator: memory (GiB: capacities are binary), bandwidth (TB/s), peak TFLOPS
    per format, scale-up GB/s."""
    rows = []
    for h in catalog.list_hardware():
        rows.append({
            "name": h.name, "vendor": h.vendor, "family": h.family,
            "memory_gib": round(h.memory_bytes / units.GiB, 1),
            "bandwidth_tb_s": round(h.memory_bandwidth_bytes_per_s / units.TB, 3),
            **{f"{d.value}_tflops": round(v / 1e12, 1) for d, v in h.peak_flops_per_s.items()},
            "scale_up_gb_s": round(h.scale_up.bandwidth_bytes_per_s / units.GB, 1)
            if h.scale_up else None,
        })
    return rows


def model_rows() -> list[dict[str, Any]]:
    """Every catalog model: parameters (billions, total and active), layers, attention, MoE."""
    rows = []
    for e in catalog.list_models():
        m = catalog.get_model(e["alias"])
        rows.append({"name": m.name, "hf_id": m.hf_id, "family": m.family,
                     "params_b": round(m.num_params / 1e9, 2),
                     "active_params_b": round(m.num_active_params / 1e9, 2),
                     "layers": m.num_layers, "attention": m.attention.kind,
                     "moe": f"{m.moe.num_experts}x top{m.moe.top_k}" if m.moe else ""})
    return rows


def cluster_rows() -> list[dict[str, Any]]:
    """Every cluster preset: part, node layout, intra-node fabric, inter-node GB/s."""
    return [{"name": c.name, "hardware": c.hardware or "(any)",
             "gpus_per_node": c.gpus_per_node or "(part default)", "num_nodes": c.num_nodes,
             "intra_node": c.intra_node if isinstance(c.intra_node, str) else
             getattr(c.intra_node, "value", None) or c.intra_node.kind.value,
             "inter_node_gb_s": round(c.inter_node.bandwidth_bytes_per_s / units.GB, 2),
             "description": c.description} for c in catalog.list_clusters()]


def host_rows() -> list[dict[str, Any]]:
    """Every host: CPU, DRAM (GB and GB/s), host-to-device and disk-read GB/s."""
    return [{"name": h.name, "cpu": h.cpu, "dram_gb": round(h.cpu_memory_bytes / units.GB),
             "dram_gb_s": round(h.cpu_memory_bandwidth_bytes_per_s / units.GB, 1),
             "h2d_gb_s": round(h.h2d_bandwidth_bytes_per_s / units.GB, 1),
             "disk_read_gb_s": round(h.disk_read_bandwidth_bytes_per_s / units.GB, 2)}
            for h in catalog.list_hosts()]


#: the columns of each kind kept when its table is too wide for the terminal
ESSENTIAL: dict[str, tuple[str, ...]] = {
    "hardware": ("name", "vendor", "memory_gib", "bandwidth_tb_s", "bf16_tflops", "fp8_tflops",
                 "scale_up_gb_s"),
    "models": ("name", "family", "params_b", "active_params_b", "layers", "attention", "moe"),
    "clusters": ("name", "hardware", "gpus_per_node", "num_nodes", "intra_node",
                 "inter_node_gb_s"),
    "hosts": ("name", "dram_gb", "dram_gb_s", "h2d_gb_s", "disk_read_gb_s"),
}

#: the records of each kind ``llmsim catalog list`` takes
ROWS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "hardware": hardware_rows, "models": model_rows, "clusters": cluster_rows,
    "hosts": host_rows,
}


def write_list(kinds: Sequence[str], fmt: str, out: str | None = None) -> None:
    """The records of ``kinds`` (keys of :data:`ROWS`): one JSON object keyed by kind, CSV
    blocks one after the other, or one table per kind."""
    check_no_report(fmt, "catalog list")
    if fmt == "json":
        emit(as_json({k: ROWS[k]() for k in kinds}), out)
    elif fmt == "csv":
        emit("".join(frame_to_csv(pd.DataFrame(ROWS[k]())) for k in kinds), out)
    elif fmt == "parquet":  # one file: the kinds' records one after the other, with their kind
        emit_frame(pd.concat([pd.DataFrame(ROWS[k]()).assign(kind=k) for k in kinds]), fmt, out)
    else:
        print_tables([frame_table(pd.DataFrame(ROWS[k]()), title=k, essential=ESSENTIAL[k])
                      for k in kinds], out)


def write_entry(data: dict[str, Any], fmt: str, out: str | None = None) -> None:
    """One catalog entry (``kind`` first): JSON, a CSV row of its scalar fields, or a key/value
    table titled with its name."""
    check_no_report(fmt, "catalog show")
    if fmt == "json":
        emit(as_json(data), out)
    elif fmt in TABULAR:
        flat = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
        emit_frame(pd.DataFrame([flat]), fmt, out)
    else:
        print_tables([kv_table(str(data.get("name")), [(k, str(v)) for k, v in data.items()])],
                     out)
