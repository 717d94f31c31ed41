"""``llmsim offload solve|evaluate``: FlexGen-style placement of weights, KV cache and
activations over GPU, CPU and disk (see ``llmsim.placement`` and docs/offload.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim.cli.offload_options import (
    COMPRESSION,
    MACHINE,
    PRICING,
    CompressionOptions,
    FmtOpt,
    GenOpt,
    MachineOptions,
    ModelArg,
    NoOverlap,
    OutFormat,
    PinWeight,
    PricingOptions,
    PromptOpt,
)
from llmsim.cli.option_groups import takes
from llmsim.cli.options import MaxModelLenOpt, OutOpt
from llmsim.errors import ConfigError

app = typer.Typer(
    help="Offloading policy (FlexGen): best placement over GPU/CPU/disk and its throughput.",
    no_args_is_help=True,
)

SolveCpuCacheOpt = Annotated[bool | None, typer.Option(
    "--cpu-cache-compute/--no-cpu-cache-compute",
    help="Force attention over CPU-resident cache on the CPU (or on the GPU); "
         "default: try both.")]
SolveBatchOpt = Annotated[int | None, typer.Option(
    "--gpu-batch-size", help="Fix the GPU batch size (default: search).")]
SolveNumBatchesOpt = Annotated[int | None, typer.Option(
    "--num-gpu-batches", help="Fix the number of GPU batches (default: search).")]
BatchOpt = Annotated[int | None, typer.Option(
    "--gpu-batch-size", help="Sequences per GPU batch.")]
NumBatchesOpt = Annotated[int, typer.Option(
    "--num-gpu-batches", help="GPU batches per block (zig-zag schedule).")]
PercentOpt = Annotated[tuple[float, float, float, float, float, float], typer.Option(
    "--percent", help="wg wc cg cc hg hc: percent of weights, cache, activations on GPU "
                      "and CPU (the disk holds the rest).")]
CpuCacheOpt = Annotated[bool, typer.Option(
    "--cpu-cache-compute", help="Attention over CPU/disk-resident cache runs on the CPU.")]


def _need_model(model: str | None) -> str:
    if not model:
        raise ConfigError("give --model (e.g. --model opt-30b)")
    return model


@app.command("solve")
@takes(machine=MachineOptions, compression=CompressionOptions, pricing=PricingOptions)
def solve_cmd(
    model: ModelArg = None,
    prompt_len: PromptOpt = 512,
    gen_len: GenOpt = 32,
    max_model_len: MaxModelLenOpt = None,
    machine: MachineOptions = MACHINE,
    compression: CompressionOptions = COMPRESSION,
    cpu_cache_compute: SolveCpuCacheOpt = None,
    no_overlap: NoOverlap = False,
    pin_weight: PinWeight = True,
    gpu_batch_size: SolveBatchOpt = None,
    num_gpu_batches: SolveNumBatchesOpt = None,
    pricing: PricingOptions = PRICING,
    fmt: FmtOpt = OutFormat.table,
    out: OutOpt = None,
) -> None:
    """Find the policy with the highest generation throughput (LP per candidate batch)."""
    from llmsim.placement import solve
    from llmsim.report.placement import write_placement

    res = solve(
        _need_model(model), prompt_len, gen_len, compress_weight=compression.weights,
        compress_cache=compression.cache, cpu_cache_compute=cpu_cache_compute,
        overlap=not no_overlap, pin_weight=pin_weight,
        gpu_batch_sizes=None if gpu_batch_size is None else [gpu_batch_size],
        num_gpu_batches=None if num_gpu_batches is None else [num_gpu_batches],
        max_model_len=max_model_len, **pricing.kwargs(), **machine.kwargs())
    write_placement(res, fmt, out, "best policy")
    _advise(res)


@app.command("evaluate")
@takes(machine=MachineOptions, compression=CompressionOptions, pricing=PricingOptions)
def evaluate_cmd(
    model: ModelArg = None,
    prompt_len: PromptOpt = 512,
    gen_len: GenOpt = 32,
    max_model_len: MaxModelLenOpt = None,
    gpu_batch_size: BatchOpt = None,
    num_gpu_batches: NumBatchesOpt = 1,
    percent: PercentOpt = (100, 0, 100, 0, 100, 0),
    machine: MachineOptions = MACHINE,
    compression: CompressionOptions = COMPRESSION,
    cpu_cache_compute: CpuCacheOpt = False,
    no_overlap: NoOverlap = False,
    pin_weight: PinWeight = True,
    pricing: PricingOptions = PRICING,
    fmt: FmtOpt = OutFormat.table,
    out: OutOpt = None,
) -> None:
    """Throughput, peak memory per tier and feasibility of a given policy."""
    from llmsim.placement import OffloadPolicy, evaluate
    from llmsim.report.placement import write_placement

    if gpu_batch_size is None:
        raise ConfigError("give --gpu-batch-size (and --num-gpu-batches, --percent)")
    policy = OffloadPolicy.from_percent(
        gpu_batch_size, num_gpu_batches, percent, compress_weight=compression.weights,
        compress_cache=compression.cache, cpu_cache_compute=cpu_cache_compute,
        overlap=not no_overlap, pin_weight=pin_weight)
    res = evaluate(_need_model(model), policy, prompt_len, gen_len,
                   max_model_len=max_model_len, **pricing.kwargs(), **machine.kwargs())
    write_placement(res, fmt, out, "policy")
    _advise(res)


def register(root: typer.Typer) -> None:
    """Attach ``llmsim offload`` to the root app (called by ``llmsim.cli.app``)."""
    root.add_typer(app, name="offload")


def _advise(res: object) -> None:
    """Log what the policy's numbers show but do not say (printed after the output)."""
    import logging

    from llmsim.placement.diagnosis import offload_advice

    for message in offload_advice(res):
        logging.getLogger("llmsim.placement").warning(message)
