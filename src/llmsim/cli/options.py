"""Option types shared by the CLI commands (one definition per flag)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Catalog alias, HF id, or a config.json path.")]
HardwareOpt = Annotated[str | None, typer.Option(
    "--hardware", "-H", help="Accelerator name, e.g. h100-sxm (see `llmsim catalog list`).")]
ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", help="Cluster preset (dgx-h100, nv_like, pcie_like, 8x-rtx4090-pcie, ...).")]
NumGpusOpt = Annotated[int | None, typer.Option(
    "--num-gpus", min=1, help="GPUs in the cluster (default: tp x pp x dp).")]
TpOpt = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel ways.")]
PpOpt = Annotated[int, typer.Option("--pp", min=1, help="Pipeline stages.")]
EpOpt = Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel ways (divides tp x dp).")]
DpOpt = Annotated[int, typer.Option(
    "--dp", min=1, help="Data-parallel replicas (attention-DP for MoE with --ep).")]
MicroOpt = Annotated[int, typer.Option(
    "--micro-batches", min=0, help="Pipeline micro-batches (0: one per stage).")]
DtypeOpt = Annotated[str | None, typer.Option(
    "--dtype", help="Weight format fp32 bf16 fp16 fp8 int8 int4 fp4; float formats of 8+ bits "
                    "also set activations and KV (fp8: W8A8 + fp8 KV), int8/int4/fp4 run "
                    "weight-only with 16-bit activations. Override with --act-dtype/--kv-dtype.")]
WeightDtypeOpt = Annotated[str | None, typer.Option("--weight-dtype", help="Weight format.")]
ActDtypeOpt = Annotated[str | None, typer.Option("--act-dtype", help="Activation format.")]
KvDtypeOpt = Annotated[str | None, typer.Option("--kv-dtype", help="KV-cache format.")]
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="Calibration profile YAML (default: the shipped fitted profile).")]
EfficiencyOpt = Annotated[float | None, typer.Option(
    "--efficiency", help="Flat efficiency for every op (GenZ system_eff); replaces the profile.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutOpt = Annotated[str | None, typer.Option(
    "--out", "-o", help="Write the output to this file (atomically) instead of stdout.")]
