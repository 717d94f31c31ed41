"""The estimator flags every pricing command takes: ``--estimator NAME`` and
``--estimator-model PATH`` (``costmodel/estimators``; docs/estimators.md).

The source design's spelling ``--estimator ml --model x.pkl`` is accepted, by one rule:

- ``ml`` is an alias of ``learned`` (the registry's), ``roofline`` of ``analytic``, ``silicon``
  of ``table``;
- ``--ml-model PATH`` is another name of ``--estimator-model``;
- on ``llmsim op`` (which prices no LLM) ``--model PATH`` is the estimator's model;
- elsewhere ``--model`` is the LLM, and a ``--model`` value ending in ``.pkl`` or ``.joblib``
  (never a catalog name, HF id or ``config.json``) under ``--estimator learned`` without
  ``--estimator-model`` is taken as the estimator's model file; the LLM must then come from
  ``--scenario`` (otherwise a one-line error names both flags);
- ``--estimator-model`` without ``--estimator`` means ``learned`` for a ``.pkl`` / ``.joblib``
  file and ``table`` for anything else (a source spec: ``aiconfigurator:DIR``, a CSV, ...).
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim.errors import ConfigError

EstimatorOpt = Annotated[str | None, typer.Option(
    "--estimator", help="Step-time estimator: calibrated (default), analytic (datasheet "
                        "roofline), table (measured kernels), learned (alias ml; needs "
                        "--estimator-model).")]
EstimatorModelOpt = Annotated[str | None, typer.Option(
    "--estimator-model", "--ml-model",
    help="The estimator's data: a model file (learned, from `llmsim train`) or a source spec "
         "(table: vidur:DIR, aiconfigurator:DIR?framework=trtllm, FILE.csv; default the "
         "shipped table).")]

#: file endings of a learned model (joblib pickles); an LLM is never one of these
MODEL_FILE_SUFFIXES = (".pkl", ".joblib")


def is_model_file(value: object) -> bool:
    """A ``--model`` value that names a learned-estimator file, not an LLM."""
    return isinstance(value, str) and value.lower().endswith(MODEL_FILE_SUFFIXES)


def resolve_estimator(estimator: str | None, estimator_model: str | None,
                      ) -> tuple[str | None, str | None]:
    """The canonical estimator name (unknown: a did-you-mean) and its model; a model without a
    name implies ``learned`` (a ``.pkl`` / ``.joblib`` file) or ``table`` (a source spec)."""
    from llmsim.costmodel.estimators import ESTIMATORS

    if estimator is None and estimator_model:
        estimator = "learned" if is_model_file(estimator_model) else "table"
    if estimator is None:
        return None, estimator_model
    name = ESTIMATORS.canonical(estimator)
    if name == "learned" and not estimator_model:
        raise ConfigError("the learned estimator needs a model file: --estimator-model "
                          "model.joblib (train one with `llmsim train`)")
    return name, estimator_model


def model_file_alias(estimator: str | None, estimator_model: str | None, model: object
                     ) -> tuple[str | None, str | None, object]:
    """``(estimator, estimator_model, model)`` after the ``--estimator ml --model x.pkl`` rule
    (module docstring): a model-file ``--model`` under a learned estimator moves to
    ``estimator_model`` (the LLM becomes None, to come from a scenario)."""
    if not is_model_file(model):
        return estimator, estimator_model, model
    from llmsim.costmodel.estimators import ESTIMATORS

    learned = estimator is not None and ESTIMATORS.canonical(estimator) == "learned"
    if not learned or estimator_model:
        raise ConfigError(f"--model {model} is a learned-estimator file, not an LLM; give "
                          f"the LLM with --model NAME and the file with --estimator learned "
                          f"--estimator-model {model}")
    return estimator, str(model), None


IntervalsOpt = Annotated[bool | None, typer.Option(
    "--intervals/--no-intervals",
    help="Error bars from the estimator's validation residuals (estimate: on by default; "
         "sweeps, request files and validate: off unless given).")]
IntervalLevelOpt = Annotated[float, typer.Option(
    "--interval-level", min=0.01, max=0.99,
    help="Nominal level of the intervals (0.8: the 10th-90th percentile).")]
IntervalDrawsOpt = Annotated[int, typer.Option(
    "--interval-draws", min=0, max=10_000,
    help="simulate: re-run the simulation under this many error-factor draws for intervals "
         "(0: none; each draw costs one more simulation).")]
PlotDirOpt = Annotated[str | None, typer.Option(
    "--plot", help="Write predicted-vs-measured PNGs (log-log scatter, error histogram, error "
                   "per row) to this folder.")]


def interval_options(on: bool | None, level: float, default: bool):
    """The :class:`~llmsim.estimates.intervals.IntervalOptions` of the flags (None: off),
    ``default`` when ``--intervals`` / ``--no-intervals`` was not given."""
    if not (default if on is None else on):
        return None
    from llmsim.estimates.intervals import IntervalOptions

    return IntervalOptions(level=level)
