"""The deployment flags (``--model --hardware --cluster --num-gpus --tp --pp --ep --dp
--micro-batches --dtype --weight-dtype --act-dtype --kv-dtype --profile --efficiency
--estimator --estimator-model``) as one
typed value, merged over a scenario file once and turned into what a front end takes:

- :meth:`DeploymentFlags.deployment`: a :class:`llmsim.costmodel.Deployment` (``memory``,
  ``simulate`` with a scenario's model);
- :meth:`DeploymentFlags.given`: the keyword arguments of the estimate API (``estimate``,
  ``predict_requests``, the defaults of ``estimate_cases``);
- :meth:`DeploymentFlags.as_dict`: the values ``simulate`` maps onto its config sections
  (``llmsim.cli.simulate_options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from llmsim.errors import ConfigError

if TYPE_CHECKING:
    from llmsim.catalog import ModelSpec
    from llmsim.costmodel import Deployment


@dataclass(frozen=True)
class DeploymentFlags:
    """What to price: a model on a cluster, a parallel plan, numeric formats and a calibration.

    None is "not given": the value then comes from a scenario file (:meth:`over`) or is the
    front end's default (tp, pp, ep, dp 1; micro-batches 0: one per stage; formats as the
    checkpoint's; the shipped profile). ``model`` is a catalog alias, HF id, ``config.json``
    path or, from a scenario file, the :class:`ModelSpec` it defines.
    """

    model: str | ModelSpec | None = None
    hardware: str | None = None
    cluster: str | None = None
    num_gpus: int | None = None
    tp: int | None = None
    pp: int | None = None
    ep: int | None = None
    dp: int | None = None
    micro_batches: int | None = None
    dtype: str | None = None
    weight_dtype: str | None = None
    act_dtype: str | None = None
    kv_dtype: str | None = None
    profile: str | None = None
    efficiency: float | None = None
    expert_skew: float | None = None
    redundant_experts: int | None = None
    ep_kernel: str | None = None
    two_batch_overlap: bool | None = None
    estimator: str | None = None
    estimator_model: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DeploymentFlags:
        """The flags among a command's parameters (typer's ``ctx.params``), by name; the names
        a command does not take are None."""
        return cls(**{f.name: params.get(f.name) for f in fields(cls)})

    def over(self, base: DeploymentFlags) -> DeploymentFlags:
        """These flags where given, else ``base``'s (a scenario file's)."""
        return replace(base, **self.given())

    def given(self) -> dict[str, Any]:
        """The flags given (not None), by name: keyword arguments of the estimate API."""
        return {k: v for k, v in self.as_dict().items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        """Every flag by name, None where not given."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def names_a_target(self) -> bool:
        """A model and where it runs (a hardware part or a cluster preset) are given."""
        return self.model is not None and (self.hardware is not None or self.cluster is not None)

    def replica(self) -> DeploymentFlags:
        """One replica of a serving deployment: ``dp`` replicas are separate deployments of
        ``tp x pp`` GPUs each (the cluster sized ``num_gpus``, default ``tp x pp``), as
        :func:`llmsim.serving.config.deployment_of` resolves a simulation config."""
        return replace(self, dp=1, num_gpus=self.num_gpus or (self.tp or 1) * (self.pp or 1))

    def deployment(self) -> Deployment:
        """The :class:`Deployment` these flags name (defaults where not given)."""
        from llmsim.costmodel import Deployment

        if self.model is None:
            raise ConfigError("give --model")
        return Deployment.resolve(
            self.model, self.hardware, self.cluster, self.num_gpus, tp=self.tp or 1,
            pp=self.pp or 1, ep=self.ep or 1, dp=self.dp or 1,
            micro_batches=self.micro_batches or 0, dtype=self.dtype,
            weight_dtype=self.weight_dtype, act_dtype=self.act_dtype, kv_dtype=self.kv_dtype,
            profile=self.profile, efficiency=self.efficiency,
            expert_skew=self.expert_skew or 0.0, redundant_experts=self.redundant_experts or 0,
            ep_kernel=self.ep_kernel, two_batch_overlap=bool(self.two_batch_overlap),
            estimator=self.estimator or "calibrated", estimator_model=self.estimator_model)

    def with_estimator(self) -> DeploymentFlags:
        """The estimator flags checked and canonical (``llmsim.cli.estimator_options``)."""
        from llmsim.cli.estimator_options import resolve_estimator

        name, data = resolve_estimator(self.estimator, self.estimator_model)
        return replace(self, estimator=name, estimator_model=data)


@dataclass(frozen=True)
class BatchShape:
    """A static batch: ``batch`` requests of ``prompt`` input and ``output`` output tokens,
    ``beam`` beams each (None: not given; a scenario's default, else the estimate API's)."""

    batch: int | None = None
    prompt: int | None = None
    output: int | None = None
    beam: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> BatchShape:
        """The shape among a command's parameters, by name."""
        return cls(**{f.name: params.get(f.name) for f in fields(cls)})

    def over(self, base: BatchShape) -> BatchShape:
        """This shape where given, else ``base``'s."""
        return replace(base, **self.given())

    def given(self) -> dict[str, int]:
        """The sizes given (not None), by name: keyword arguments of ``estimate``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def scenario_defaults(path: str | None) -> tuple[DeploymentFlags, BatchShape]:
    """What a scenario file (``--scenario``) sets: its model (a :class:`ModelSpec`), hardware,
    cluster, GPU count, plan and default formats, and its default batch shape. Without a file,
    nothing is set."""
    if not path:
        return DeploymentFlags(), BatchShape()
    from llmsim.catalog.scenario import load_scenario

    sc = load_scenario(path)
    s, d = sc.spec, sc.spec.defaults
    par = s.parallel

    def value(fmt: Any) -> str | None:
        return None if fmt is None else fmt.value

    flags = DeploymentFlags(
        model=sc.model, hardware=s.hardware, cluster=s.cluster, num_gpus=s.num_gpus,
        tp=par.tp, pp=par.pp, ep=par.ep, dp=par.dp, micro_batches=par.micro_batches,
        dtype=value(d.dtype), act_dtype=value(d.act_dtype), kv_dtype=value(d.kv_dtype))
    return flags, BatchShape(batch=d.batch, prompt=d.prompt, output=d.output, beam=d.beam)


def deployment_flags(params: Mapping[str, Any]) -> DeploymentFlags:
    """A command's deployment flags (its ``params``) over its ``--scenario`` file's."""
    return deployment_and_shape(params)[0]


def deployment_and_shape(params: Mapping[str, Any]) -> tuple[DeploymentFlags, BatchShape]:
    """A command's deployment flags and batch shape (its ``params``) over its ``--scenario``
    file's (the flags given win); the estimator flags checked, with the ``--estimator ml
    --model x.pkl`` rule of ``llmsim.cli.estimator_options``."""
    from llmsim.cli.estimator_options import model_file_alias

    given = DeploymentFlags.from_params(params)
    estimator, data, model = model_file_alias(given.estimator, given.estimator_model,
                                              given.model)
    moved = model is None and given.model is not None
    given = replace(given, estimator=estimator, estimator_model=data, model=model)
    flags, shape = scenario_defaults(params.get("scenario"))
    merged = given.over(flags).with_estimator()
    if moved and merged.model is None:
        raise ConfigError(f"--model {data} is the learned estimator's file; give the LLM too: "
                          f"--model NAME --estimator learned --estimator-model {data}")
    return merged, BatchShape.from_params(params).over(shape)


def model_spec(flags: DeploymentFlags) -> ModelSpec | None:
    """The :class:`ModelSpec` a scenario file defined, if the model comes from one (not a name)."""
    return None if flags.model is None or isinstance(flags.model, str) else flags.model
