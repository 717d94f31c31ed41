"""Option types shared by the CLI commands (one definition per flag and help text).

A flag whose type differs between commands has one ``typer.Option`` and two ``Annotated``
types: ``TpOpt`` (an int, default given by the command) and ``MaybeTpOpt`` (None when not
given: the value then comes from a scenario or config file, else the default).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer


def non_empty_path(value: str | None) -> str | None:
    """Option callback: an empty path (``--out ""``) is a usage error, never "not given"."""
    if value is not None and not value.strip():
        raise typer.BadParameter("an empty path; give a file or folder name, or leave the "
                                 "option out")
    return value


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"
    html = "html"


ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Catalog alias, HF id, or a config.json path.")]
HardwareOpt = Annotated[str | None, typer.Option(
    "--hardware", "-H", help="Accelerator name, e.g. h100-sxm (see `llmsim catalog list`).")]
ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", help="Cluster preset (dgx-h100, nv_like, pcie_like, 8x-rtx4090-pcie, ...).")]
NumGpusOpt = Annotated[int | None, typer.Option(
    "--num-gpus", min=1, help="GPUs in the cluster (default: tp x pp x dp).")]

_TP = typer.Option("--tp", min=1, help="Tensor-parallel ways.")
_PP = typer.Option("--pp", min=1, help="Pipeline stages.")
_MICRO = typer.Option("--micro-batches", min=0, help="Pipeline micro-batches (0: one per stage).")
TpOpt = Annotated[int, _TP]
MaybeTpOpt = Annotated[int | None, _TP]
PpOpt = Annotated[int, _PP]
MaybePpOpt = Annotated[int | None, _PP]
EpOpt = Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel ways (divides tp x dp).")]
MaybeEpOpt = Annotated[int | None, typer.Option("--ep", min=1, help="Expert-parallel ways.")]
DpOpt = Annotated[int, typer.Option(
    "--dp", min=1, help="Data-parallel replicas (attention-DP for MoE with --ep).")]
MaybeDpOpt = Annotated[int | None, typer.Option("--dp", min=1, help="Data-parallel replicas.")]
MicroOpt = Annotated[int, _MICRO]
MaybeMicroOpt = Annotated[int | None, _MICRO]

DtypeOpt = Annotated[str | None, typer.Option(
    "--dtype", help="Weight format fp32 bf16 fp16 fp8 int8 int4 fp4; float formats of 8+ bits "
                    "also set activations and KV (fp8: W8A8 + fp8 KV), int8/int4/fp4 run "
                    "weight-only with 16-bit activations. Override with --act-dtype/--kv-dtype.")]
WeightDtypeOpt = Annotated[str | None, typer.Option("--weight-dtype", help="Weight format.")]
ActDtypeOpt = Annotated[str | None, typer.Option("--act-dtype", help="Activation format.")]
KvDtypeOpt = Annotated[str | None, typer.Option("--kv-dtype", help="KV-cache format.")]
MaxModelLenOpt = Annotated[int | None, typer.Option(
    "--max-model-len", min=2, help="Longest input+output served (default: the model's "
                                   "trained context; engines serve more with rope scaling).")]
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="Calibration profile YAML (default: the shipped fitted profile).")]
EfficiencyOpt = Annotated[float | None, typer.Option(
    "--efficiency", help="Flat efficiency for every op (GenZ system_eff); replaces the profile.")]

_MEMORY_UTILIZATION = typer.Option(
    "--memory-utilization", min=0.05, max=1.0,
    help="Fraction of GPU memory the engine may use (vLLM gpu_memory_utilization).")
MemoryUtilizationOpt = Annotated[float, _MEMORY_UTILIZATION]
MaybeMemoryUtilizationOpt = Annotated[float | None, _MEMORY_UTILIZATION]
ScenarioOpt = Annotated[str | None, typer.Option(
    "--scenario", help="Scenario YAML: hardware + layer templates + defaults.")]

FormatOpt = Annotated[Format, typer.Option(
    "--format", "-f", help="Output format (default: --out's extension, else table).")]
OutOpt = Annotated[str | None, typer.Option(
    "--out", "-o", callback=non_empty_path,
    help="Write the output to this file (atomically) instead of stdout; its extension sets "
         "the format unless --format is given (docs/cli.md).")]
