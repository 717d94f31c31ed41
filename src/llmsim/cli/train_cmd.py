"""``llmsim train``: fit the learned estimator on measured kernels and write its model file
(then ``--estimator learned --estimator-model FILE`` on estimate / op / simulate / offload)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim.cli.options import Format, FormatOpt, HardwareOpt

TrainMeasurementsOpt = Annotated[list[str], typer.Option(
    "--measurements", "--from",
    help="Measured kernels: an op-timing FILE (CSV/Parquet/JSONL), vidur:DIR, "
         "aiconfigurator:DIR[?framework=trtllm], llmcompass:DIR (repeatable).")]
ModelOutOpt = Annotated[str, typer.Option(
    "--out", "-o", help="Model file to write (joblib, e.g. model.joblib).")]
MaxRowsOpt = Annotated[int, typer.Option(
    "--max-rows-per-part", min=50, help="Rows drawn per op kind and part (seeded).")]
QuickOpt = Annotated[bool, typer.Option(
    "--quick", help="Small models (smoke runs; less accurate).")]
TrainSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the row draw and models.")]


def train_cmd(
    measurements: TrainMeasurementsOpt,
    out: ModelOutOpt,
    hardware: HardwareOpt = None,
    max_rows_per_part: MaxRowsOpt = 15_000,
    quick: QuickOpt = False,
    seed: TrainSeedOpt = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Train the learned estimator (scikit-learn) on measured op timings."""
    from llmsim.calibration.training import train_from
    from llmsim.report.calibration import write_training

    model = train_from(measurements, out, hardware, max_rows_per_part=max_rows_per_part,
                       quick=quick, seed=seed)
    write_training(model, out, fmt)


def register(app: typer.Typer) -> None:
    """Attach ``llmsim train`` to the root app."""
    app.command("train")(train_cmd)
