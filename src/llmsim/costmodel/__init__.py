"""Pure cost functions: op lists, FLOPs/bytes, roofline time, collectives; the StepTimeModel."""

from llmsim.costmodel.ops import Bound, OpCost, OpKind, Precision
from llmsim.costmodel.profile import Profile
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import AnalyticStepTimeModel, LayerRecord, StepCost, StepTimeModel

__all__ = ["AnalyticStepTimeModel", "BatchShape", "Bound", "LayerRecord", "OpCost", "OpKind",
           "Precision", "Profile", "StepCost", "StepTimeModel"]
