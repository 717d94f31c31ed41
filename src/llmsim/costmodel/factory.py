"""The one factory of the seam: a :class:`Deployment` in, its :class:`StepTimeModel` out.

Every front end (``estimate``, ``simulate``, the offload solvers, calibration checks) prices
through the model this returns; none constructs an estimator itself.
"""

from __future__ import annotations

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.step import AnalyticStepTimeModel, StepTimeModel
from llmsim.errors import ConfigError


def build_step_model(deployment: Deployment) -> StepTimeModel:
    """The step-time model of ``deployment`` (the calibrated analytic roofline)."""
    if not isinstance(deployment, Deployment):
        raise ConfigError(f"build_step_model takes a Deployment (Deployment.resolve(model, "
                          f"hardware, ...)), got {type(deployment).__name__}")
    return AnalyticStepTimeModel(deployment)
