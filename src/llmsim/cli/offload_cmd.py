"""``llmsim offload solve|evaluate``: FlexGen-style placement of weights, KV cache and
activations over GPU, CPU and disk (see ``llmsim.placement`` and docs/offload.md)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from llmsim import units
from llmsim.cli.options import OutOpt, ProfileOpt
from llmsim.errors import ConfigError

app = typer.Typer(
    help="Offloading policy (FlexGen): best placement over GPU/CPU/disk and its throughput.",
    no_args_is_help=True,
)


class OutFormat(str, Enum):
    table = "table"
    json = "json"


class RuntimeName(str, Enum):
    flexgen = "flexgen"
    fused = "fused"


class MoEExperts(str, Enum):
    all = "all"
    expected = "expected"


ModelArg = Annotated[str | None, typer.Option(
    "--model", "-m", help="Catalog alias, HF id, or a config.json path.")]
PromptOpt = Annotated[int, typer.Option("--prompt-len", help="Prompt tokens per sequence.")]
GenOpt = Annotated[int, typer.Option("--gen-len", help="Generated tokens per sequence.")]
HardwareArg = Annotated[str | None, typer.Option(
    "--hardware", "-H", help="GPU (default t4, the FlexGen paper's GPU).")]
HostArg = Annotated[str | None, typer.Option(
    "--host", help="Host spec: CPU, DRAM, PCIe, disk (default: gcp-t4-flexgen for a T4, "
                   "else a generic server of the GPU's PCIe generation).")]
GpuMemOpt = Annotated[float | None, typer.Option(
    "--gpu-mem", help="GPU memory, GiB (default: the GPU's capacity).")]
CpuMemOpt = Annotated[float | None, typer.Option(
    "--cpu-mem", help="CPU DRAM for offloading, GiB (default: the host's).")]
NvmeMemOpt = Annotated[float | None, typer.Option(
    "--nvme-mem", help="Disk space for offloading, GiB (0: no disk tier; default: the host's).")]
H2dOpt = Annotated[float | None, typer.Option("--h2d-bw", help="CPU->GPU bandwidth, GB/s.")]
D2hOpt = Annotated[float | None, typer.Option("--d2h-bw", help="GPU->CPU bandwidth, GB/s.")]
DiskReadOpt = Annotated[float | None, typer.Option(
    "--disk-read-bw", help="Disk read bandwidth, GB/s.")]
DiskWriteOpt = Annotated[float | None, typer.Option(
    "--disk-write-bw", help="Disk write bandwidth, GB/s.")]
CpuBwOpt = Annotated[float | None, typer.Option(
    "--cpu-mem-bw", help="CPU DRAM bandwidth for CPU attention, GB/s.")]
CpuFlopsOpt = Annotated[float | None, typer.Option(
    "--cpu-tflops", help="CPU compute for CPU attention, TFLOPS.")]
AlphaG = Annotated[float, typer.Option("--alpha-g", help="Usable share of GPU memory.")]
AlphaC = Annotated[float, typer.Option("--alpha-c", help="Usable share of CPU memory.")]
AlphaN = Annotated[float, typer.Option("--alpha-n", help="Usable share of the disk.")]
CompressW = Annotated[bool, typer.Option(
    "--compress-w", "--compress-weight", help="4-bit group-wise weights (FlexGen, group 64).")]
CompressC = Annotated[bool, typer.Option(
    "--compress-cache", help="4-bit group-wise KV cache (FlexGen, group 64).")]
NoOverlap = Annotated[bool, typer.Option(
    "--no-overlap", help="Do not overlap I/O with compute (a layer takes the sum of streams).")]
PinWeight = Annotated[bool, typer.Option(
    "--pin-weight/--no-pin-weight",
    help="CPU weights in pinned host memory (FlexGen's --pin-weight; off: pageable, staged "
         "before each copy).")]
MoEOpt = Annotated[MoEExperts, typer.Option(
    "--moe-experts", help="MoE weights moved per layer: all experts, or the expected distinct "
                          "experts the block's tokens touch.")]
EffOpt = Annotated[float | None, typer.Option(
    "--efficiency", help="Flat efficiency of every GPU and host peak (replaces the profile).")]
FmtOpt = Annotated[OutFormat, typer.Option("--format", "-f", help="Output format.")]
RuntimeOpt = Annotated[RuntimeName, typer.Option(
    "--runtime", help="Implementation priced: flexgen (FlexLLMGen's PyTorch runtime: unfused "
                      "attention, pass-wise 4-bit (de)quantisation, fp32 CPU attention, pageable "
                      "CPU cache) or fused (fused kernels, pinned cache).")]


def _machine(gpu_mem, cpu_mem, nvme_mem, h2d, d2h, disk_r, disk_w, cpu_bw, cpu_tflops,
             alpha_g, alpha_c, alpha_n) -> dict[str, Any]:
    def gbs(v: float | None) -> float | None:
        return None if v is None else v * units.GB

    return {
        "gpu_mem_bytes": None if gpu_mem is None else units.gib_to_bytes(gpu_mem),
        "cpu_mem_bytes": None if cpu_mem is None else units.gib_to_bytes(cpu_mem),
        "disk_mem_bytes": None if nvme_mem is None else units.gib_to_bytes(nvme_mem),
        "h2d_bytes_per_s": gbs(h2d), "d2h_bytes_per_s": gbs(d2h),
        "disk_read_bytes_per_s": gbs(disk_r), "disk_write_bytes_per_s": gbs(disk_w),
        "cpu_mem_bandwidth_bytes_per_s": gbs(cpu_bw),
        "cpu_flops_per_s": None if cpu_tflops is None else cpu_tflops * 1e12,
        "alpha_g": alpha_g, "alpha_c": alpha_c, "alpha_n": alpha_n,
    }


def _need_model(model: str | None) -> str:
    if not model:
        raise ConfigError("give --model (e.g. --model opt-30b)")
    return model


@app.command("solve")
def solve_cmd(
    model: ModelArg = None,
    prompt_len: PromptOpt = 512,
    gen_len: GenOpt = 32,
    gpu_mem: GpuMemOpt = None,
    cpu_mem: CpuMemOpt = None,
    nvme_mem: NvmeMemOpt = None,
    hardware: HardwareArg = None,
    host: HostArg = None,
    h2d_bw: H2dOpt = None,
    d2h_bw: D2hOpt = None,
    disk_read_bw: DiskReadOpt = None,
    disk_write_bw: DiskWriteOpt = None,
    cpu_mem_bw: CpuBwOpt = None,
    cpu_tflops: CpuFlopsOpt = None,
    alpha_g: AlphaG = 0.9,
    alpha_c: AlphaC = 0.9,
    alpha_n: AlphaN = 0.95,
    compress_w: CompressW = False,
    compress_cache: CompressC = False,
    cpu_cache_compute: Annotated[bool | None, typer.Option(
        "--cpu-cache-compute/--no-cpu-cache-compute",
        help="Force attention over CPU-resident cache on the CPU (or on the GPU); "
             "default: try both.")] = None,
    no_overlap: NoOverlap = False,
    pin_weight: PinWeight = True,
    gpu_batch_size: Annotated[int | None, typer.Option(
        "--gpu-batch-size", help="Fix the GPU batch size (default: search).")] = None,
    num_gpu_batches: Annotated[int | None, typer.Option(
        "--num-gpu-batches", help="Fix the number of GPU batches (default: search).")] = None,
    moe_experts: MoEOpt = MoEExperts.all,
    runtime: RuntimeOpt = RuntimeName.flexgen,
    profile: ProfileOpt = None,
    efficiency: EffOpt = None,
    fmt: FmtOpt = OutFormat.table,
    out: OutOpt = None,
) -> None:
    """Find the policy with the highest generation throughput (LP per candidate batch)."""
    from llmsim.placement import solve

    res = solve(
        _need_model(model), prompt_len, gen_len, hardware=hardware, host=host,
        compress_weight=compress_w, compress_cache=compress_cache,
        cpu_cache_compute=cpu_cache_compute, overlap=not no_overlap, pin_weight=pin_weight,
        gpu_batch_sizes=None if gpu_batch_size is None else [gpu_batch_size],
        num_gpu_batches=None if num_gpu_batches is None else [num_gpu_batches],
        moe_experts=moe_experts.value, profile=profile, efficiency=efficiency,
        runtime=runtime.value,
        **_machine(gpu_mem, cpu_mem, nvme_mem, h2d_bw, d2h_bw, disk_read_bw, disk_write_bw,
                   cpu_mem_bw, cpu_tflops, alpha_g, alpha_c, alpha_n),
    )
    _render(res, fmt, out, "best policy")


@app.command("evaluate")
def evaluate_cmd(
    model: ModelArg = None,
    prompt_len: PromptOpt = 512,
    gen_len: GenOpt = 32,
    gpu_batch_size: Annotated[int | None, typer.Option(
        "--gpu-batch-size", help="Sequences per GPU batch.")] = None,
    num_gpu_batches: Annotated[int, typer.Option(
        "--num-gpu-batches", help="GPU batches per block (zig-zag schedule).")] = 1,
    percent: Annotated[tuple[float, float, float, float, float, float], typer.Option(
        "--percent", help="wg wc cg cc hg hc: percent of weights, cache, activations on GPU "
                          "and CPU (the disk holds the rest).")] = (100, 0, 100, 0, 100, 0),
    gpu_mem: GpuMemOpt = None,
    cpu_mem: CpuMemOpt = None,
    nvme_mem: NvmeMemOpt = None,
    hardware: HardwareArg = None,
    host: HostArg = None,
    h2d_bw: H2dOpt = None,
    d2h_bw: D2hOpt = None,
    disk_read_bw: DiskReadOpt = None,
    disk_write_bw: DiskWriteOpt = None,
    cpu_mem_bw: CpuBwOpt = None,
    cpu_tflops: CpuFlopsOpt = None,
    alpha_g: AlphaG = 0.9,
    alpha_c: AlphaC = 0.9,
    alpha_n: AlphaN = 0.95,
    compress_w: CompressW = False,
    compress_cache: CompressC = False,
    cpu_cache_compute: Annotated[bool, typer.Option(
        "--cpu-cache-compute", help="Attention over CPU/disk-resident cache runs on the CPU.")
    ] = False,
    no_overlap: NoOverlap = False,
    pin_weight: PinWeight = True,
    moe_experts: MoEOpt = MoEExperts.all,
    runtime: RuntimeOpt = RuntimeName.flexgen,
    profile: ProfileOpt = None,
    efficiency: EffOpt = None,
    fmt: FmtOpt = OutFormat.table,
    out: OutOpt = None,
) -> None:
    """Throughput, peak memory per tier and feasibility of a given policy."""
    from llmsim.placement import OffloadPolicy, evaluate

    if gpu_batch_size is None:
        raise ConfigError("give --gpu-batch-size (and --num-gpu-batches, --percent)")
    policy = OffloadPolicy.from_percent(
        gpu_batch_size, num_gpu_batches, percent, compress_weight=compress_w,
        compress_cache=compress_cache, cpu_cache_compute=cpu_cache_compute,
        overlap=not no_overlap, pin_weight=pin_weight)
    res = evaluate(
        _need_model(model), policy, prompt_len, gen_len, hardware=hardware, host=host,
        moe_experts=moe_experts.value, profile=profile, efficiency=efficiency,
        runtime=runtime.value,
        **_machine(gpu_mem, cpu_mem, nvme_mem, h2d_bw, d2h_bw, disk_read_bw, disk_write_bw,
                   cpu_mem_bw, cpu_tflops, alpha_g, alpha_c, alpha_n),
    )
    _render(res, fmt, out, "policy")


# ------------------------------------------------------------------------------- rendering
def _render(res: Any, fmt: OutFormat, out: str | None, what: str) -> None:
    from llmsim.report.render import as_json, console, emit

    if fmt == OutFormat.json:
        emit(as_json(res.as_dict()), out)
        return
    tables = _tables(res, what)
    if out:
        con = console()
        with con.capture() as cap:
            for t in tables:
                con.print(t)
        emit(cap.get(), out)
        return
    con = console()
    for t in tables:
        con.print(t)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _t(seconds: float) -> str:
    """Compact time for narrow tables."""
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return "0" if seconds <= 0 else f"{seconds * 1e6:.0f} us"


def _tables(res: Any, what: str) -> list[Any]:
    from rich.table import Table

    from llmsim.report.render import kv_table

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
    place.add_row("weights", _pct(p.w_gpu_frac), _pct(p.w_cpu_frac), _pct(p.w_disk_frac))
    place.add_row("KV cache", _pct(p.cache_gpu_frac), _pct(p.cache_cpu_frac),
                  _pct(p.cache_disk_frac))
    place.add_row("activations", _pct(p.act_gpu_frac), _pct(p.act_cpu_frac),
                  _pct(p.act_disk_frac))

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
    stages.add_row("time", _t(pre.time_s), _t(dec.time_s))
    stages.add_row("bound", pre.bound, dec.bound)
    for key, label in (("ctog", "ctog (CPU->GPU)"), ("gtoc", "gtoc (GPU->CPU)"),
                       ("dtoc", "dtoc (disk->CPU)"), ("ctod", "ctod (CPU->disk)"),
                       ("compute", "compute"), ("staging", "staging (pageable)")):
        stages.add_row(label, _t(pre.streams_s[key]), _t(dec.streams_s[key]))
    return [summary, place, mem, stages]


def register(root: typer.Typer) -> None:
    """Attach ``llmsim offload`` to the root app (called by ``llmsim.cli.app``)."""
    root.add_typer(app, name="offload")
