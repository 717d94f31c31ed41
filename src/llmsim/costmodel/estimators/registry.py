"""The registry of step-time estimators: name -> factory ``(Deployment) -> StepTimeModel``.

An estimator is one module with one decorator (as schedulers are)::

    @ESTIMATORS.register("my-estimator")
    def build(deployment: Deployment) -> StepTimeModel: ...

:func:`llmsim.costmodel.build_step_model` dispatches on ``Deployment.estimator`` through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from llmsim.registry import Registry

if TYPE_CHECKING:
    from llmsim.costmodel.deployment import Deployment
    from llmsim.costmodel.step import StepTimeModel

ESTIMATORS: Registry[Callable[[Deployment], StepTimeModel]] = Registry("estimator")
