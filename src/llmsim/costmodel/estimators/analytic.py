"""The two roofline estimators: ``calibrated`` (the profile's fitted curves) and ``analytic``
(the datasheet roofline: ``time = max(F / P, B / W)`` per op, no launch cost, efficiency 1)."""

from __future__ import annotations

import dataclasses

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.estimator_registry import ESTIMATORS
from llmsim.costmodel.profile import Profile
from llmsim.costmodel.step import AnalyticStepTimeModel, StepTimeModel
from llmsim.errors import ConfigError


def _no_model(deployment: Deployment) -> None:
    if deployment.estimator_model:
        raise ConfigError(f"estimator {deployment.estimator} takes no --estimator-model "
                          "(its data is the calibration profile, --profile)")


@ESTIMATORS.register("calibrated")
def calibrated(deployment: Deployment) -> StepTimeModel:
    """The calibrated roofline: the deployment's profile (default: the shipped fit)."""
    _no_model(deployment)
    return AnalyticStepTimeModel(deployment)


@ESTIMATORS.register("analytic", "roofline")
def analytic(deployment: Deployment) -> StepTimeModel:
    """The uncalibrated roofline at datasheet peaks (the profile is ignored; a flat
    ``efficiency`` still applies, as GenZ's ``system_eff``)."""
    _no_model(deployment)
    return AnalyticStepTimeModel(dataclasses.replace(deployment, profile=Profile.empty()))
