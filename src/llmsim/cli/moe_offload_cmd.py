"""``llmsim moe-offload simulate``: a GPU expert cache with prefetch and CPU fallback, simulated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llmsim.cli.estimator_options import EstimatorModelOpt, EstimatorOpt
from llmsim.cli.options import (
    EfficiencyOpt,
    Format,
    FormatOpt,
    MaxModelLenOpt,
    OutOpt,
    ProfileOpt,
)
from llmsim.errors import ConfigError

if TYPE_CHECKING:
    from llmsim.catalog import ModelSpec
    from llmsim.expert_cache import MissMode

app = typer.Typer(name="moe-offload", no_args_is_help=True,
                  help="MoE expert offloading: GPU expert cache, prefetch, CPU fallback.")

MoeModelOpt = Annotated[str, typer.Option(
    "--model", "-m", help="Catalog MoE model, HF config.json, executor preset or "
                          "llmsim-moe config file.")]
GpuOpt = Annotated[str, typer.Option("--hardware", "-H", help="GPU (see `llmsim catalog "
                                                              "list hardware`).")]
HostOpt = Annotated[str | None, typer.Option(
    "--host", help="Host: CPU, DRAM, PCIe (see `llmsim catalog list hosts`; default: the "
                   "GPU's, as in `llmsim offload`: workstation-pcie4 for an RTX 3090/4090, "
                   "gcp-t4-flexgen for a T4, else a generic server of the GPU's PCIe "
                   "generation).")]
CapacityOpt = Annotated[str, typer.Option(
    "--cache-capacity", "-C", help="Experts cached on the GPU per MoE layer, or 'auto' "
                                   "(as many as fit).")]
PrefetchOpt = Annotated[int | None, typer.Option(
    "--prefetch", "-P", min=0, help="Experts prefetched per layer (default: top-k; 0 off).")]
AccuracyOpt = Annotated[float, typer.Option(
    "--prefetch-accuracy", "-a", min=0.0, max=1.0,
    help="Probability that a prefetched expert is used.")]
PolicyOpt = Annotated[str, typer.Option("--policy", help="Cache policy: lru, lfu, static.")]
RoutingOpt = Annotated[str, typer.Option(
    "--routing", help="uniform | zipf:S | correlated:R (+ ,corr=R ,sticky=R) | a JSONL/CSV "
                      "routing trace (FILE or trace:FILE).")]
MissOpt = Annotated[str, typer.Option("--miss", help="Miss handling: fetch (PCIe, then GPU) "
                                                     "or cpu (compute on the CPU).")]
PromptOpt = Annotated[int | None, typer.Option(
    "--input-len", min=1, help="Prompt tokens (default 256, or the trace's).")]
StepsOpt = Annotated[int | None, typer.Option(
    "--output-len", min=0, help="Output tokens = decode steps (default 10, or the trace's).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of routing and prefetch guesses "
                                                     "(0..2**63-1).")]
MoeDtypeOpt = Annotated[str | None, typer.Option(
    "--dtype", help="Weight format (default: the model's); float formats of 8+ bits also set "
                    "activations and KV, as on `estimate`.")]
CpuEfficiencyOpt = Annotated[float, typer.Option(
    "--cpu-efficiency", min=0.01, max=1.5,
    help="Fraction of the host's datasheet CPU peaks reached by CPU experts.")]
AllowOverflowOpt = Annotated[bool, typer.Option(
    "--allow-overflow", help="Simulate even if the cache does not fit the GPU.")]
BatchOpt = Annotated[int, typer.Option(
    "--batch", min=1, help="Sequences of the same length decoded together (one prefill step "
                           "of all prompts, then steps of one token each; every MoE layer "
                           "looks up the union of their experts). Needs a routing "
                           "distribution.")]
TimelineOpt = Annotated[bool, typer.Option(
    "--timeline", help="Include the per-step, per-layer timeline (JSON: a list; table: "
                       "one row per step and layer; CSV is always the timeline).")]

#: run shape without a routing trace or flags
DEFAULT_PROMPT_TOKENS, DEFAULT_DECODE_STEPS = 256, 10


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
    model: MoeModelOpt,
    hardware: GpuOpt = "rtx-4090",
    host: HostOpt = None,
    cache_capacity: CapacityOpt = "auto",
    prefetch: PrefetchOpt = None,
    prefetch_accuracy: AccuracyOpt = 0.8,
    policy: PolicyOpt = "lru",
    routing: RoutingOpt = "uniform",
    miss: MissOpt = "fetch",
    prompt: PromptOpt = None,
    decode_steps: StepsOpt = None,
    seed: SeedOpt = 0,
    max_model_len: MaxModelLenOpt = None,
    dtype: MoeDtypeOpt = None,
    profile: ProfileOpt = None,
    efficiency: EfficiencyOpt = None,
    estimator: EstimatorOpt = None,
    estimator_model: EstimatorModelOpt = None,
    cpu_efficiency: CpuEfficiencyOpt = 1.0,
    allow_overflow: AllowOverflowOpt = False,
    batch: BatchOpt = 1,
    timeline: TimelineOpt = False,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Predict prefill time, decode time per token, hit rate and PCIe traffic of a MoE model
    whose experts live in host memory behind a per-layer GPU cache."""
    from llmsim.cli.estimator_options import resolve_estimator
    from llmsim.costmodel import Profile
    from llmsim.expert_cache import OffloadConfig, auto_capacity, load_moe_model, make_platform
    from llmsim.expert_cache import simulate as simulate_cache
    from llmsim.report.expert_cache import write_expert_cache

    miss_mode, capacity = _cheap_flags(seed, miss, cache_capacity, routing)
    name, data = resolve_estimator(estimator, estimator_model)
    spec = load_moe_model(model)
    moe = spec.moe
    assert moe is not None
    p = moe.top_k if prefetch is None else prefetch
    # capacity and prefetch against the expert count before any sizing (one message either way)
    config = OffloadConfig.build(capacity=capacity or 0, policy=policy, prefetch=p,
                                 prefetch_accuracy=prefetch_accuracy, miss=miss_mode,
                                 seed=seed).for_model(moe.num_experts)
    n_prompt, n_steps = _run_shape(spec, routing, prompt, decode_steps, max_model_len)
    platform = make_platform(hardware, host, cpu_efficiency)
    if capacity is None:
        config = config.replace(capacity=auto_capacity(spec, platform, p, n_prompt, n_steps,
                                                       dtype, batch, max_model_len))
    result = simulate_cache(spec, config=config, routing=routing, prompt_tokens=prompt,
                            decode_steps=decode_steps, dtype=dtype,
                            profile=Profile.load(profile) if profile else None,
                            efficiency=efficiency, platform=platform,
                            allow_overflow=allow_overflow, batch=batch,
                            max_model_len=max_model_len,
                            **({"estimator": name, "estimator_model": data} if name else {}))
    write_expert_cache(result, fmt, out, timeline=timeline)


def _cheap_flags(seed: int, miss: str, cache_capacity: str, routing: str
                 ) -> tuple[MissMode, int | None]:
    """The flags that need no model, checked before any loading: the miss mode and the cache
    capacity (None: as many experts as fit)."""
    from llmsim.expert_cache import MissMode, check_routing, check_seed

    check_seed(seed)
    try:
        miss_mode = MissMode(miss.strip().lower())
    except ValueError:
        raise ConfigError(f"--miss must be fetch or cpu, not {miss!r}") from None
    capacity = parse_capacity(cache_capacity)
    check_routing(routing)
    return miss_mode, capacity


def _run_shape(spec: ModelSpec, routing: str, prompt: int | None, decode_steps: int | None,
               max_model_len: int | None = None) -> tuple[int, int]:
    """Prompt tokens and decode steps of the run: the flags, else a routing trace's, else the
    defaults; checked against the context served (the model's, or ``--max-model-len``)."""
    from llmsim.expert_cache import check_context
    from llmsim.expert_cache.routing import read_trace, trace_path

    n_prompt = prompt or DEFAULT_PROMPT_TOKENS
    n_steps = decode_steps if decode_steps is not None else DEFAULT_DECODE_STEPS
    path = trace_path(routing)
    if path is not None:
        trace = read_trace(path, spec)
        n_prompt = trace.prompt_tokens if prompt is None else prompt
        n_steps = trace.decode_steps if decode_steps is None else decode_steps
    check_context(spec, n_prompt, n_steps, max_model_len, flag=True)
    return n_prompt, n_steps
