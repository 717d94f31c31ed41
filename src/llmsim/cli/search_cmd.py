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
EngineListOpt = Annotated[str | None, _opt("--engine", "Serving engines to search over, "
                                                     "comma-separated: vllm, sglang, trtllm "
                                                     "(NAME@VERSION; default: engine-neutral).")]
DisaggOpt = Annotated[str | None, _opt("--disagg", "Disaggregated prefill/decode layouts: auto "
                                                   "(default: searched, ranked on their own) | "
                                                   "off | only.")]
DisaggWorkersOpt = Annotated[str | None, _opt("--disagg-workers", "Worker counts of each "
                                                                  "xPyD pool (default "
                                                                  "1,2,4,8).")]
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
                                             "pareto.png and results.jsonl; or FILE.html: "
                                             "the HTML report page.")]
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


def _names(text: str | None, flag: str = "") -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _put(data: dict[str, Any], section: str, key: str, value: Any) -> None:
    if value is not None:
        sec = data.setdefault(section, {})
        if not isinstance(sec, dict):
            sec = data[section] = {"name": sec}
        sec[key] = value


#: flag (parameter name) -> (config section, key, conversion of the flag's text)
FLAG_KEYS: dict[str, tuple[str, str, Any]] = {
    "dtype": ("model", "dtype", None),
    **{k: ("workload", v, None) for k, v in (
        ("trace", "trace"), ("trace_format", "trace_format"), ("arrival", "arrival"),
        ("rate", "rate"), ("concurrency", "concurrency"), ("prompt_dist", "prompt"),
        ("output_dist", "output"), ("num_requests", "num_requests"), ("seed", "seed"))},
    "gpus": ("space", "gpus", _names), "max_gpus": ("space", "max_gpus", None),
    **{k: ("space", k, _ints) for k in ("tp", "pp", "ep", "replicas", "max_num_seqs",
                                        "max_num_batched_tokens")},
    "weight_dtype": ("space", "weight_dtype", _names),
    "kv_dtype": ("space", "kv_dtype", _names),
    "engine": ("space", "engine", _names),
    "disagg": ("space", "disagg", None),
    "disagg_workers": ("space", "disagg_workers", _ints),
    "scheduler": ("scheduler", "name", None),
    "memory_utilization": ("hardware", "memory_utilization", None),
    **{k: ("search", k, None) for k in ("estimator", "objective", "prices", "idle_power_frac",
                                        "tolerance", "prune", "intervals")},
}


def config_data(config: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The search config as a dict: ``--config`` YAML (paths relative to its folder) with the
    flags given laid over it."""
    from llmsim.catalog.files import read_yaml_file
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
    if params.get("model") is not None:
        model = data.get("model")
        data["model"] = {**(model if isinstance(model, dict) else {}), "name": params["model"]}
    if params.get("slo") is not None:
        data["slo"] = params["slo"]
    for flag, (section, key, convert) in FLAG_KEYS.items():
        value = params.get(flag)
        if value is not None and convert is not None:
            value = convert(value, "--" + flag.replace("_", "-"))
        _put(data, section, key, value)
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
    engine: EngineListOpt = None, disagg: DisaggOpt = None,
    disagg_workers: DisaggWorkersOpt = None,
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
    from llmsim.report.search import write_search, write_search_dir, write_search_page
    from llmsim.search import load_search_config, run_search

    cfg = load_search_config(config_data(config, ctx.params))
    page = out is not None and out.lower().endswith(".html")
    if resume and (not out or page):
        raise ConfigError("--resume continues the search in an --out folder; add --out DIR")
    results_path = None
    if page:
        from llmsim.report.html import _plotly

        _plotly()  # one-line error before the search when plotly is missing
    elif out:
        from llmsim.io import prepare_dir

        results_path = prepare_dir(out, "--out", "search writes a folder") / "results.jsonl"
    show = sys.stderr.isatty() if progress is None else progress
    with progress_callback(show, "simulating plans", "plans") as tick:
        result = run_search(cfg, backend=backend, workers=workers, address=ray_address,
                            results_path=results_path, resume=resume, progress=tick)
    if page:
        write_search_page(result, out)
    elif out:
        write_search_dir(result, out)
    write_search(result, fmt.value if hasattr(fmt, "value") else str(fmt))


def register(app: typer.Typer) -> None:
    """Attach ``llmsim search`` to the root app (called by ``llmsim.cli.app``)."""
    app.command("search")(search_cmd)
