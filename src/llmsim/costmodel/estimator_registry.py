"""The registry of step-time estimators: name -> factory ``(Deployment) -> StepTimeModel``.

An estimator is one module with one decorator (as schedulers are)::

    @ESTIMATORS.register("my-estimator")
    def build(deployment: Deployment) -> StepTimeModel: ...

:func:`llmsim.costmodel.build_step_model` dispatches on ``Deployment.estimator`` through it.
The estimators (``costmodel/estimators/``) register when ``llmsim.costmodel`` is imported, so
every ``Deployment`` sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmsim.registry import Registry

#: ``(Deployment) -> StepTimeModel``; typed loosely because this leaf sits below ``deployment``
#: (which canonicalises names through it) and the estimators register into it from above.
EstimatorFactory = Callable[[Any], Any]

ESTIMATORS: Registry[EstimatorFactory] = Registry("estimator")
