"""``llmsim executor run|check|presets``: the PyTorch MoE executor and the closed loop.

Needs the ``executor`` extra (PyTorch); without it every command fails with one line and exit 2.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from llmsim.cli.options import Format, FormatOpt, OutOpt, non_empty_path
from llmsim.errors import ConfigError, LLMSimError

app = typer.Typer(name="executor", no_args_is_help=True,
                  help="Run a real PyTorch MoE decoder with an offloaded expert cache, and "
                       "check the simulation against it (needs PyTorch: "
                       "pip install 'llmsim\\[executor]').")


def register(root: typer.Typer) -> None:
    """Add ``executor`` to the root app."""
    root.add_typer(app, name="executor")


class RunFormat(str, Enum):
    """``run`` and ``check`` write a table or JSON (no CSV: their results are not one table)."""

    table = "table"
    json = "json"


RunFormatOpt = Annotated[RunFormat, typer.Option("--format", "-f", help="Output format.")]
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", "-c", callback=non_empty_path,
    help="Preset (gpu-default, cpu-small, tiny), an llmsim-moe JSON/YAML file "
         "or an executor-buildable catalog/HF model. Default: the device's preset.")]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="cpu or cuda (default: cuda when present).")]
DtypeOpt = Annotated[str | None, typer.Option(
    "--dtype", help="fp32 or bf16 on CPU; fp16, bf16 or fp32 on CUDA.")]
CapacityOpt = Annotated[int | None, typer.Option(
    "--cache-capacity", "-C", min=0, help="Experts cached per layer (default: preset's).")]
PrefetchOpt = Annotated[int | None, typer.Option(
    "--prefetch", "-P", min=0, help="Experts prefetched per layer (default: preset's).")]
AccuracyOpt = Annotated[float | None, typer.Option(
    "--prefetch-accuracy", "-a", min=0.0, max=1.0, help="Prefetch accuracy (default: "
                                                        "preset's).")]
PolicyOpt = Annotated[str, typer.Option("--policy", help="Cache policy: lru, lfu, static.")]
RoutingOpt = Annotated[str, typer.Option(
    "--routing", help="router (the model's own) | uniform | zipf:S | correlated:R | a routing "
                      "trace file, FILE or trace:FILE (forced routing).")]
MissOpt = Annotated[str, typer.Option("--miss", help="fetch or cpu.")]
PromptOpt = Annotated[int | None, typer.Option("--input-len", min=1, help="Prompt tokens.")]
StepsOpt = Annotated[int | None, typer.Option("--output-len", min=0, help="Decode steps.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of weights, prompt, routing and "
                                                     "prefetch guesses (0..2**63-1).")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Untimed passes first.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", min=1, help="Timed passes (best kept).")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, help="CPU threads for torch (default: torch's; 1 is steadier on a "
                             "shared machine).")]


def _check_flags(seed: int, policy: str, miss: str, routing: str,
                 sim_routing: str | None = None) -> None:
    """The flags that need neither torch nor a model, checked before any slow work."""
    from llmsim.expert_cache import check_routing, check_seed
    from llmsim.expert_cache.policies import CACHE_POLICIES

    check_seed(seed)
    CACHE_POLICIES.get(policy)  # UnknownNameError with a did-you-mean
    if miss.strip().lower() not in ("fetch", "cpu"):
        raise ConfigError(f"--miss must be fetch or cpu, not {miss!r}")
    if routing != "router":
        check_routing(routing)
    if sim_routing is not None:
        try:
            check_routing(sim_routing)
        except LLMSimError as exc:  # name the flag: --routing takes the same values
            raise ConfigError(f"--sim-routing: {exc}") from None


def _setup(config: str | None, device: str | None, threads: int | None) -> tuple[Any, str, Any]:
    from llmsim.expert_cache.config import PRESETS, get_preset
    from llmsim.expert_cache_executor._torch import require_torch, resolve_device

    torch = require_torch()
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    name = config or ("gpu-default" if dev.startswith("cuda") else "cpu-small")
    preset = get_preset(name) if name.strip().lower() in PRESETS else None
    return preset, name, dev


def _offload(preset: Any, num_experts: int, capacity: int | None, prefetch: int | None,
             accuracy: float | None, policy: str, miss: str, seed: int) -> Any:
    from llmsim.expert_cache import MissMode, OffloadConfig

    base = preset.offload if preset is not None else OffloadConfig(
        capacity=min(8, num_experts), prefetch=min(4, num_experts))
    try:
        miss_mode = MissMode(miss.strip().lower())
    except ValueError:
        raise ConfigError(f"--miss must be fetch or cpu, not {miss!r}") from None
    return base.replace(
        capacity=base.capacity if capacity is None else capacity,
        prefetch=base.prefetch if prefetch is None else prefetch,
        prefetch_accuracy=base.prefetch_accuracy if accuracy is None else accuracy,
        policy=policy, miss=miss_mode, seed=seed)


def _shape(preset: Any, prompt: int | None, steps: int | None,
           routing: str) -> tuple[int | None, int | None]:
    """Prompt and decode steps: the flags, else the preset's (a trace file sets its own)."""
    from llmsim.expert_cache.routing import is_trace_path

    if routing != "router" and is_trace_path(routing):
        return prompt, steps
    p = prompt or (preset.prompt_tokens if preset is not None else 256)
    s = steps if steps is not None else (preset.decode_steps if preset is not None else 10)
    return p, s


@app.command("run")
def run_cmd(
    config: ConfigOpt = None, device: DeviceOpt = None, dtype: DtypeOpt = None,
    cache_capacity: CapacityOpt = None, prefetch: PrefetchOpt = None,
    prefetch_accuracy: AccuracyOpt = None, policy: PolicyOpt = "lru",
    routing: RoutingOpt = "router", miss: MissOpt = "fetch", prompt: PromptOpt = None,
    decode_steps: StepsOpt = None, seed: SeedOpt = 0, warmup: WarmupOpt = 1,
    repeats: RepeatsOpt = 3, threads: ThreadsOpt = None,
    profile_dir: Annotated[str | None, typer.Option(
        "--profile-dir", help="Write a torch.profiler Chrome trace of the last timed pass "
                              "here.")] = None,
    nvtx: Annotated[bool, typer.Option("--nvtx", help="NVTX ranges per step and layer (CUDA, "
                                                      "for Nsight Systems).")] = False,
    routing_trace_out: Annotated[str | None, typer.Option(
        "--routing-trace-out", help="Write the executed routing as a JSONL/CSV trace (replay "
                                    "it with moe-offload simulate --routing).")] = None,
    fmt: RunFormatOpt = RunFormat.table, out: OutOpt = None,
) -> None:
    """Build the MoE decoder (random weights), warm up, then time prefill and decode."""
    _check_flags(seed, policy, miss, routing)  # before importing torch

    from llmsim.expert_cache.config import load_moe_config
    from llmsim.expert_cache_executor.runner import run_benchmark
    from llmsim.report.executor import write_run

    preset, name, dev = _setup(config, device, threads)
    cfg = load_moe_config(name)
    off = _offload(preset, cfg.num_experts, cache_capacity, prefetch, prefetch_accuracy, policy,
                   miss, seed)
    p, s = _shape(preset, prompt, decode_steps, routing)
    res = run_benchmark(cfg, off, device=dev, dtype=dtype, routing=routing, prompt_tokens=p,
                        decode_steps=s, warmup=warmup, repeats=repeats, profile_dir=profile_dir,
                        nvtx=nvtx, trace_out=routing_trace_out)
    write_run(res, fmt, out)


@app.command("check")
def check_cmd(
    config: ConfigOpt = None, device: DeviceOpt = None, dtype: DtypeOpt = None,
    cache_capacity: CapacityOpt = None, prefetch: PrefetchOpt = None,
    prefetch_accuracy: AccuracyOpt = None, policy: PolicyOpt = "lru",
    routing: RoutingOpt = "router",
    sim_routing: Annotated[str | None, typer.Option(
        "--sim-routing", help="With --routing router: the distribution the simulation assumes "
                              "for the model's router (default uniform).")] = None,
    miss: MissOpt = "fetch", prompt: PromptOpt = None, decode_steps: StepsOpt = None,
    seed: SeedOpt = 0, warmup: WarmupOpt = 1, repeats: RepeatsOpt = 5,
    threads: ThreadsOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="Shorter measurements (seconds).")
                     ] = False,
    batch: Annotated[int, typer.Option(
        "--batch", min=1, help="Sequences decoded together (the union of their experts per "
                               "layer and step); checked against the serving simulator's "
                               "expert-offload steps for that batch.")] = 1,
    details: Annotated[bool, typer.Option("--details", help="JSON: include the executor and "
                                                            "simulation results in full.")
                       ] = False,
    fmt: RunFormatOpt = RunFormat.table, out: OutOpt = None,
) -> None:
    """Measure this machine, run the executor, simulate the same run on the measured spec, and
    compare prefill time, decode time per token and hit rate."""
    if sim_routing is not None and routing != "router":
        raise ConfigError("--sim-routing applies only with --routing router; with forced "
                          "routing the simulation draws from --routing itself")
    sim_routing = sim_routing or "uniform"
    _check_flags(seed, policy, miss, routing, sim_routing)  # before importing torch

    from llmsim.expert_cache.config import load_moe_config
    from llmsim.expert_cache_executor.closed_loop import run_check
    from llmsim.report.executor import write_check

    preset, name, dev = _setup(config, device, threads)
    cfg = load_moe_config(name)
    off = _offload(preset, cfg.num_experts, cache_capacity, prefetch, prefetch_accuracy, policy,
                   miss, seed)
    p, s = _shape(preset, prompt, decode_steps, routing)
    res = run_check(cfg, off, device=dev, dtype=dtype, routing=routing, sim_routing=sim_routing,
                    prompt_tokens=p, decode_steps=s, warmup=warmup, repeats=repeats, quick=quick,
                    batch=batch)
    write_check(res, fmt, out, details=details)


@app.command("presets")
def presets_cmd(fmt: FormatOpt = Format.table, out: OutOpt = None) -> None:
    """List the executor presets (model config, cache settings, run shape)."""
    from llmsim.expert_cache.config import PRESETS
    from llmsim.report.executor import write_presets

    write_presets(list(PRESETS.values()), fmt, out)
