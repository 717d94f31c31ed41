"""Pure cost functions: op lists, FLOPs/bytes, roofline time, collectives; the ``Deployment``
that is priced and the one factory of its ``StepTimeModel``."""

from llmsim.costmodel.deployment import Deployment, check_plan_args
from llmsim.costmodel.factory import build_step_model
from llmsim.costmodel.ops import Bound, OpCost, OpKind, Precision
from llmsim.costmodel.profile import Profile
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import (
    AnalyticStepTimeModel,
    LayerRecord,
    StepCost,
    StepTimeModel,
    StepTimeModelBase,
)

__all__ = ["AnalyticStepTimeModel", "BatchShape", "Bound", "Deployment", "LayerRecord",
           "OpCost", "OpKind", "Precision", "Profile", "StepCost", "StepTimeModel",
           "StepTimeModelBase", "build_step_model", "check_plan_args"]
