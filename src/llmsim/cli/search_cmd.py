"""``llmsim search``: the best layout under an SLO (see ``docs/search.md``).

Flags build a :class:`~llmsim.search.SearchConfig` (``--config FILE.yaml`` gives the same in
one file; flags override it). List flags take comma-separated values (``--tp 2,4,8``); one
value pins the dimension.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmsim.cli.options import Format, FormatOpt, ModelOpt
from llmsim.cli.simulate_options import (
    ArrivalOpt,
    ConcurrencyOpt,
    NumRequestsOpt,
    OutputDistOpt,
    ProgressOpt,
    PromptDistOpt,
    RateOpt,
    SeedOpt,
    TraceFormatOpt,
    TraceOpt,
)
from llmsim.errors import ConfigError


def _opt(name: str, help_: str) -> Any:
    return typer.Option(name, help=help_)


ConfigOpt = Annotated[str | None, _opt("--config", "Search config YAML (model, workload, slo, "
                                                   "space, scheduler, hardware, search).")]
SloOpt = Annotated[str | None, _opt("--slo", "Targets, e.g. ttft_p99=1s,tpot_p99=50ms "
                                             "(metrics ttft/tpot/e2e/itl; mean, p50..p99, max).")]
GpusOpt = Annotated[str | None, _opt("--gpus", "GPU types to search, comma-separated "
                                               "(default h100-sxm,h200-sxm,mi300x).")]
MaxGpusOpt = Annotated[int | None, typer.Option("--max-gpus", min=1,
                                                help="Most GPUs of a layout (default 64).")]
TpListOpt = Annotated[str | None, _opt("--tp", "Tensor-parallel sizes (default 1,2,4,8).")]
PpListOpt = Annotated[str | None, _opt("--pp", "Pipeline stages (default 1,2).")]
EpListOpt = Annotated[str | None, _opt("--ep", "Expert-parallel sizes (default 1, and tp for "
                                               "MoE).")]
ReplicasListOpt = Annotated[str | None, _opt("--replicas", "Replica counts (default all "
                                                           "within --max-gpus).")]
SeqsListOpt = Annotated[str | None, _opt("--max-num-seqs", "Engine batch limits (default "
                                                           "64,128,256).")]
TokensListOpt = Annotated[str | None, _opt("--max-num-batched-tokens",
                                           "Token budgets per step (default 2048,8192).")]
WeightListOpt = Annotated[str | None, _opt("--weight-dtype", "Weight formats (default "
                                                             "bf16,fp8).")]
KvListOpt = Annotated[str | None, _opt("--kv-dtype", "KV-cache formats (default bf16,fp8).")]
DtypeOpt = Annotated[str | None, _opt("--dtype", "Compute format (default: the model's).")]
SchedulerOpt = Annotated[str | None, _opt("--scheduler", "Scheduler (engine policy), default "
                                                         "chunked.")]
MemUtilOpt = Annotated[float | None, typer.Option("--memory-utilization", min=0.05, max=1.0,
                                                  help="GPU memory fraction (default 0.9).")]
EstimatorOpt = Annotated[str | None, _opt("--estimator", "Step-time estimator (default "
                                                         "calibrated).")]
ObjectiveOpt = Annotated[str | None, _opt("--objective", "goodput_per_gpu (default) | "
                                                         "goodput_per_dollar.")]
PricesOpt = Annotated[str | None, _opt("--prices", "Price YAML, USD per GPU-hour (default: "
                                                   "the shipped table).")]
IdlePowerOpt = Annotated[float | None, typer.Option(
    "--idle-power-frac", min=0.0, max=1.0, help="Idle draw as a fraction of TDP (default 0).")]
ToleranceOpt = Annotated[float | None, typer.Option(
    "--tolerance", min=1e-4, max=1.0, help="Goodput bisection precision (default 0.05).")]
PruneOpt = Annotated[bool | None, typer.Option(
    "--prune/--no-prune", help="Branch and bound (default); --no-prune simulates every plan.")]
IntervalsOpt = Annotated[bool | None, typer.Option(
    "--intervals/--no-intervals", help="Re-simulate the best under estimator error draws.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="local (process pool) | ray.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-j", min=1,
                                                help="Parallel simulations (default: cores).")]
RayAddressOpt = Annotated[str | None, _opt("--ray-address", "Ray cluster to join (default: "
                                                            "start a local one).")]
OutOpt = Annotated[str | None, _opt("--out", "Folder for search.json, candidates.csv, "
                                             "pareto.png and results.jsonl.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the search in --out "
                                                          "(reads its results.jsonl).")]
RequestsOpt = NumRequestsOpt


def _ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes whole numbers separated by commas, got {text!r}"
                          ) from None


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _put(data: dict[str, Any], section: str, key: str, value: Any) -> None:
    if value is not None:
        sec = data.setdefault(section, {})
        if not isinstance(sec, dict):
            sec = data[section] = {"name": sec}
        sec[key] = value


def search_data(params: dict[str, Any]) -> dict[str, Any]:
    """The search config as a dict: the ``--config`` YAML (paths relative to it) with the
    command-line flags (``params``: the command's parameters by name) put over it."""
    p = params
    config = p.get('config')
    model = p.get('model')
    slo = p.get('slo')
    trace = p.get('trace')
    trace_format = p.get('trace_format')
    arrival = p.get('arrival')
    rate = p.get('rate')
    concurrency = p.get('concurrency')
    prompt_dist = p.get('prompt_dist')
    output_dist = p.get('output_dist')
    num_requests = p.get('num_requests')
    seed = p.get('seed')
    gpus = p.get('gpus')
    max_gpus = p.get('max_gpus')
    tp = p.get('tp')
    pp = p.get('pp')
    ep = p.get('ep')
    replicas = p.get('replicas')
    max_num_seqs = p.get('max_num_seqs')
    max_num_batched_tokens = p.get('max_num_batched_tokens')
    weight_dtype = p.get('weight_dtype')
    kv_dtype = p.get('kv_dtype')
    dtype = p.get('dtype')
    scheduler = p.get('scheduler')
    memory_utilization = p.get('memory_utilization')
    estimator = p.get('estimator')
    objective = p.get('objective')
    prices = p.get('prices')
    idle_power_frac = p.get('idle_power_frac')
    tolerance = p.get('tolerance')
    prune = p.get('prune')
    intervals = p.get('intervals')
    from llmsim.catalog.loader import read_yaml_file
    from llmsim.serving.config import paths_relative_to

    data: dict[str, Any] = {}
    if config:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"--config file not found: {config}")
        raw = read_yaml_file(path, str(path))
        if not isinstance(raw, dict):
            raise ConfigError(f"{config}: a search config is a mapping")
        data = paths_relative_to(raw, path.parent)
    if model is not None:
        data["model"] = {**(data.get("model") if isinstance(data.get("model"), dict)
                            else {}), "name": model}
    _put(data, "model", "dtype", dtype)
    if slo is not None:
        data["slo"] = slo
    for key, value in (("trace", trace), ("trace_format", trace_format), ("arrival", arrival),
                       ("rate", rate), ("concurrency", concurrency), ("prompt", prompt_dist),
                       ("output", output_dist), ("num_requests", num_requests),
                       ("seed", seed)):
        _put(data, "workload", key, value)
    for key, value in (("gpus", _names(gpus)), ("max_gpus", max_gpus),
                       ("tp", _ints(tp, "--tp")), ("pp", _ints(pp, "--pp")),
                       ("ep", _ints(ep, "--ep")), ("replicas", _ints(replicas, "--replicas")),
                       ("max_num_seqs", _ints(max_num_seqs, "--max-num-seqs")),
                       ("max_num_batched_tokens",
                        _ints(max_num_batched_tokens, "--max-num-batched-tokens")),
                       ("weight_dtype", _names(weight_dtype)), ("kv_dtype", _names(kv_dtype))):
        _put(data, "space", key, value)
    _put(data, "scheduler", "name", scheduler)
    _put(data, "hardware", "memory_utilization", memory_utilization)
    for key, value in (("estimator", estimator), ("objective", objective), ("prices", prices),
                       ("idle_power_frac", idle_power_frac), ("tolerance", tolerance),
                       ("prune", prune), ("intervals", intervals)):
        _put(data, "search", key, value)
    if "model" not in data:
        raise ConfigError("search needs --model (or model: in --config)")
    if "slo" not in data:
        raise ConfigError("search needs --slo, e.g. --slo ttft_p99=1s,tpot_p99=50ms")
    return data


def search_cmd(
    ctx: typer.Context, config: ConfigOpt = None, model: ModelOpt = None, slo: SloOpt = None,
    trace: TraceOpt = None, trace_format: TraceFormatOpt = None, arrival: ArrivalOpt = None,
    rate: RateOpt = None, concurrency: ConcurrencyOpt = None,
    prompt_dist: PromptDistOpt = None, output_dist: OutputDistOpt = None,
    num_requests: RequestsOpt = None, seed: SeedOpt = None,
    gpus: GpusOpt = None, max_gpus: MaxGpusOpt = None, tp: TpListOpt = None,
    pp: PpListOpt = None, ep: EpListOpt = None, replicas: ReplicasListOpt = None,
    max_num_seqs: SeqsListOpt = None, max_num_batched_tokens: TokensListOpt = None,
    weight_dtype: WeightListOpt = None, kv_dtype: KvListOpt = None, dtype: DtypeOpt = None,
    scheduler: SchedulerOpt = None, memory_utilization: MemUtilOpt = None,
    estimator: EstimatorOpt = None, objective: ObjectiveOpt = None, prices: PricesOpt = None,
    idle_power_frac: IdlePowerOpt = None, tolerance: ToleranceOpt = None,
    prune: PruneOpt = None, intervals: IntervalsOpt = None,
    backend: BackendOpt = "local", workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None, out: OutOpt = None, resume: ResumeOpt = False,
    progress: ProgressOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Search GPU type and count, parallel plan, engine limits and formats for the best
    goodput per GPU (or per dollar) that meets an SLO at a requested load."""
    from llmsim.report.progress import progress as progress_callback
    from llmsim.report.search import write_search, write_search_dir
    from llmsim.search import load_search_config, run_search

    data = search_data(ctx.params)
    cfg = load_search_config(data)
    if resume and not out:
        raise ConfigError("--resume continues the search in an --out folder; add --out DIR")
    results_path = None
    if out:
        from llmsim.io import prepare_dir

        results_path = prepare_dir(out, "--out", "search writes a folder") / "results.jsonl"
    show = sys.stderr.isatty() if progress is None else progress
    with progress_callback(show, "simulating plans", "plans") as tick:
        result = run_search(cfg, backend=backend, workers=workers, address=ray_address,
                            results_path=results_path, resume=resume, progress=tick)
    if out:
        write_search_dir(result, out)
    write_search(result, fmt.value if hasattr(fmt, "value") else str(fmt))


def register(app: typer.Typer) -> None:
    """Attach ``llmsim search`` to the root app (called by ``llmsim.cli.app``)."""
    app.command("search")(search_cmd)
