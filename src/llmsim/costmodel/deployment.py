"""``Deployment``: what is priced -- a model on a cluster under a parallel plan and numeric
formats, with the calibration profile that turns datasheet peaks into achieved rates.

Every consumer (``estimate``, ``simulate``, the offload solvers, search) builds one of these and
hands it to :func:`llmsim.costmodel.build_step_model`; nothing else resolves names into specs.
``estimator`` names the step-time estimator that prices it (``costmodel/estimators``:
``analytic``, ``calibrated`` (default), ``table``, ``learned``); ``estimator_model`` is that
estimator's data (a measured-kernel table for ``table``, a trained model file for ``learned``).
:meth:`Deployment.resolve` takes the names a user types (catalog aliases, HF ids, a
``config.json`` path, a cluster preset) and the plan and formats, with the rules of the catalog
(``get_cluster``: the part's own scale-up fabric inside a node) and of :meth:`Precision.resolve`
(defaults as serving engines pick them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmsim import checks
from llmsim.catalog import ModelSpec, ParallelSpec, get_cluster, get_model
from llmsim.catalog.cluster import Cluster
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel.estimator_registry import ESTIMATORS
from llmsim.costmodel.ops import Precision
from llmsim.costmodel.profile import HardwareProfile, Profile
from llmsim.errors import ConfigError

if TYPE_CHECKING:
    from llmsim.costmodel.afd_spec import AFDSpec


@dataclass(frozen=True, eq=False)
class Deployment:
    """A model on a cluster under a plan and formats, priced with ``profile``.

    ``efficiency`` (GenZ's ``system_eff``): a flat fraction of every datasheet peak that
    replaces the profile (``None``: the profile's fitted curves). ``cluster`` must hold the
    plan's GPUs (``tp x pp x dp``); the plan must split the model (``ParallelSpec.validate_for``).
    ``estimator``: a name in :data:`llmsim.costmodel.estimator_registry.ESTIMATORS` (checked here);
    ``estimator_model``: the estimator's table or model file (see each estimator).
    ``afd``: attention-FFN disaggregation (``costmodel/afd.py``): the plan's ``tp`` is each
    attention instance's, the FFN instances are the spec's; ``build_step_model`` then prices
    the micro-batch pipeline.
    """

    model: ModelSpec
    cluster: Cluster
    plan: ParallelSpec = ParallelSpec()
    precision: Precision = None  # type: ignore[assignment]  # None: the checkpoint's, as engines
    profile: Profile = None  # type: ignore[assignment]  # None: the shipped fitted profile
    efficiency: float | None = None
    estimator: str = "calibrated"
    estimator_model: str | None = None
    afd: AFDSpec | None = None

    def __post_init__(self) -> None:
        # unknown name: UnknownNameError with a did-you-mean; aliases become the canonical name
        object.__setattr__(self, "estimator", ESTIMATORS.canonical(self.estimator))
        if self.precision is None:
            object.__setattr__(self, "precision", Precision.resolve(
                self.model.weight_dtype, supported=self.cluster.hardware.supported_dtypes))
        if self.profile is None:
            object.__setattr__(self, "profile", Profile.load())
        self.plan.validate_for(self.model)
        p = self.plan
        if p.num_gpus > self.cluster.num_gpus:
            raise ConfigError(
                f"the plan needs {p.num_gpus} GPUs (tp {p.tp} x pp {p.pp} x dp {p.dp}) but the "
                f"cluster has {self.cluster.num_gpus}; raise --num-gpus")
        checks.efficiency(self.efficiency)
        if self.afd is not None and (p.pp, p.ep, p.dp) != (1, 1, 1):
            raise ConfigError("attention-FFN disaggregation sets its own layout: give tp for "
                              "the attention instances and attention=,ffn= in --afd (no --pp, "
                              "--ep or --dp)")

    @classmethod
    def resolve(cls, model: str | ModelSpec, hardware: str | HardwareSpec | None = None,
                cluster: str | Cluster | None = None, num_gpus: int | None = None,
                tp: int = 1, pp: int = 1, ep: int = 1, dp: int = 1, micro_batches: int = 0,
                dtype: str | None = None, weight_dtype: str | None = None,
                act_dtype: str | None = None, kv_dtype: str | None = None,
                profile: Profile | str | None = None,
                efficiency: float | None = None, estimator: str = "calibrated",
                estimator_model: str | None = None, expert_skew: float = 0.0,
                redundant_experts: int = 0, ep_kernel: str | None = None,
                two_batch_overlap: bool = False, afd: object = None) -> Deployment:
        """A deployment from names: the cluster is sized ``num_gpus`` (default: the plan's).
        ``estimator="analytic"`` is the datasheet roofline and takes no ``profile``.
        ``expert_skew``, ``redundant_experts``, ``ep_kernel`` (``normal`` | ``low_latency``),
        ``two_batch_overlap``: large expert parallelism (``ParallelSpec``); ``afd``: an
        :class:`~llmsim.costmodel.afd.AFDSpec`, its inline text or mapping (the cluster is
        sized for its GPUs unless ``num_gpus``)."""
        from llmsim.costmodel.afd_spec import afd_from_value

        afd_spec = afd_from_value(afd)
        tp, pp, ep, dp, micro_batches, num_gpus = check_plan_args(
            model, tp, pp, ep, dp, micro_batches, num_gpus)
        checks.efficiency(efficiency)
        name = ESTIMATORS.canonical(estimator)
        if name == "analytic" and profile is not None:
            raise ConfigError("estimator analytic is the uncalibrated datasheet roofline and "
                              "takes no profile; drop --profile or use --estimator calibrated")
        spec = get_model(model)
        plan = ParallelSpec(tp=tp, pp=pp, ep=ep, dp=dp, micro_batches=micro_batches,
                            **large_ep_args(expert_skew, redundant_experts, ep_kernel,
                                            two_batch_overlap))
        gpus = num_gpus or (afd_spec.num_gpus(tp) if afd_spec is not None else plan.num_gpus)
        cl = cluster if isinstance(cluster, Cluster) else get_cluster(cluster, hardware, gpus)
        precision = Precision.resolve(spec.weight_dtype, dtype, weight_dtype, act_dtype,
                                      kv_dtype, supported=cl.hardware.supported_dtypes)
        prof = profile if isinstance(profile, Profile) else Profile.load(profile)
        return cls(spec, cl, plan, precision, prof, efficiency, name, estimator_model, afd_spec)

    @property
    def hardware(self) -> HardwareSpec:
        return self.cluster.hardware

    @property
    def hardware_profile(self) -> HardwareProfile:
        """The profile's entries for this part (or the flat ``efficiency``)."""
        return self.profile.for_hardware(self.cluster.hardware, self.efficiency)

    def describe(self) -> dict[str, object]:
        p = self.plan
        large = {k: v for k, v in (("expert_skew", p.expert_skew),
                                   ("redundant_experts", p.redundant_experts),
                                   ("ep_kernel", p.ep_kernel and p.ep_kernel.value),
                                   ("two_batch_overlap", p.two_batch_overlap)) if v}
        return {"model": self.model.name, "hardware": self.hardware.name,
                "cluster": self.cluster.name, "tp": p.tp, "pp": p.pp, "ep": p.ep, "dp": p.dp,
                **large,
                "precision": self.precision.describe(),
                "profile": self.hardware_profile.describe(), "estimator": self.estimator,
                **({"estimator_model": self.estimator_model} if self.estimator_model else {}),
                **({"afd": self.afd.describe()} if self.afd is not None else {})}


def check_plan_args(model: object, tp: object, pp: object, ep: object, dp: object,
                    micro_batches: object, num_gpus: object) -> tuple:
    """The model and plan arguments of an API call, checked (one-line ``ConfigError``):
    ``(tp, pp, ep, dp, micro_batches, num_gpus)`` as ints."""
    checks.one_of_types(model, "model", (str, ModelSpec),
                        "a catalog name, an HF id, a config.json path or a ModelSpec")
    big = MAX_GPUS
    out = (checks.whole(tp, "tp", high=big), checks.whole(pp, "pp", high=big),
           checks.whole(ep, "ep", high=big), checks.whole(dp, "dp", high=big),
           checks.whole(micro_batches, "micro_batches", low=0, high=big),
           checks.optional_whole(num_gpus, "num_gpus", high=big))
    if out[0] * out[1] * out[3] > big:
        raise ConfigError(f"tp {out[0]} x pp {out[1]} x dp {out[3]} is more than {big:,} GPUs")
    return out


def large_ep_args(expert_skew: object, redundant_experts: object, ep_kernel: object,
                  two_batch_overlap: object) -> dict[str, object]:
    """The large-EP arguments of an API call, checked (one-line ``ConfigError``), as
    ``ParallelSpec`` keyword arguments."""
    from llmsim.catalog.parallel import EPKernel

    kernel = None
    if ep_kernel is not None:
        names = [k.value for k in EPKernel]
        if not isinstance(ep_kernel, (str, EPKernel)) or str(getattr(ep_kernel, "value",
                                                                      ep_kernel)) not in names:
            raise ConfigError(f"ep_kernel {ep_kernel!r} is not one of {', '.join(names)}")
        kernel = EPKernel(getattr(ep_kernel, "value", ep_kernel))
    return {"expert_skew": checks.number(expert_skew, "expert_skew", 0.0, 8.0),
            "redundant_experts": checks.whole(redundant_experts, "redundant_experts", low=0,
                                              high=MAX_GPUS),
            "ep_kernel": kernel, "two_batch_overlap": checks.flag(two_batch_overlap,
                                                                  "two_batch_overlap")}


#: more GPUs than any cluster has: a plan beyond it is a typo
MAX_GPUS = 1_000_000
