"""``llmsim compare --measured vllm_result.json <simulate flags>``: the simulation the flags
describe, next to a measured vLLM benchmark result, key by key.

The measured file is what ``vllm bench serve --save-result`` (or the older
``benchmarks/benchmark_serving.py --save-result``) writes; llmsim's prediction is computed with
vLLM's names and definitions (``llmsim.serving.vllm_bench``) at the percentiles the file
reports. The command takes every flag of ``llmsim simulate`` (its workload, deployment and
scheduler), so the same command line with ``simulate`` prints the prediction alone.
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any

import typer

from llmsim.cli.options import Format, FormatOpt, OutOpt
from llmsim.cli.simulate_cmd import run_simulation, simulate_cmd

MeasuredOpt = Annotated[str, typer.Option(
    "--measured", help="vLLM benchmark result JSON (vllm bench serve --save-result).")]

#: simulate's parameters that steer its own output; compare has its own
_OWN_OUTPUT = ("fmt", "out", "requests", "metrics", "percentiles")


def compare_cmd(ctx: typer.Context, measured: MeasuredOpt, fmt: FormatOpt = Format.table,
                out: OutOpt = None, **simulate_flags: Any) -> None:
    """Simulate, and put the prediction next to a measured vLLM benchmark result."""
    from llmsim.report.compare import write_comparison
    from llmsim.serving.vllm_bench import read_vllm_result

    result = read_vllm_result(measured)
    report = run_simulation(ctx.params)
    write_comparison(result, report, fmt, out, source=measured)


def _signature() -> inspect.Signature:
    """compare's parameters: its own, then every one of ``simulate`` but its output flags (their
    annotations resolved, as typer reads them)."""
    hints = {**typing.get_type_hints(simulate_cmd, include_extras=True),
             **typing.get_type_hints(compare_cmd, include_extras=True)}
    own = list(inspect.signature(compare_cmd).parameters.values())[:-1]
    sim = [p for name, p in inspect.signature(simulate_cmd).parameters.items()
           if name not in ("ctx", *_OWN_OUTPUT)]
    params = [p.replace(annotation=hints.get(p.name, p.annotation),
                        kind=inspect.Parameter.KEYWORD_ONLY if i else p.kind)
              for i, p in enumerate(own + sim)]
    return inspect.Signature(params, return_annotation=None)


compare_cmd.__signature__ = _signature()  # type: ignore[attr-defined]
compare_cmd.__annotations__ = {p.name: p.annotation
                               for p in compare_cmd.__signature__.parameters.values()}


def register(app: typer.Typer) -> None:
    """Attach ``llmsim compare`` to the root app (called by ``llmsim.cli.app``)."""
    app.command("compare")(compare_cmd)
