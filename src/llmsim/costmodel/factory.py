"""The one factory of the seam: a :class:`Deployment` in, its :class:`StepTimeModel` out.

Every front end (``estimate``, ``simulate``, the offload solvers, calibration checks) prices
through the model this returns; none constructs an estimator itself. The estimator is
``deployment.estimator`` (``costmodel/estimators``: ``calibrated`` by default, ``analytic``,
``table``, ``learned``), looked up in :data:`~llmsim.costmodel.estimators.ESTIMATORS`; a
deployment with ``afd`` gets the attention-FFN pipeline over two models of that estimator
(``costmodel/afd.py``).
"""

from __future__ import annotations

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.estimators import ESTIMATORS
from llmsim.costmodel.step import StepTimeModel
from llmsim.errors import ConfigError


def build_step_model(deployment: Deployment) -> StepTimeModel:
    """The step-time model of ``deployment`` under its estimator."""
    if not isinstance(deployment, Deployment):
        raise ConfigError(f"build_step_model takes a Deployment (Deployment.resolve(model, "
                          f"hardware, ...)), got {type(deployment).__name__}")
    build = ESTIMATORS.get(deployment.estimator)
    if deployment.afd is not None:  # attention-FFN disaggregation: the two sides' pipeline
        from llmsim.costmodel.afd import AFDStepTimeModel

        return AFDStepTimeModel(deployment, build)
    return build(deployment)
