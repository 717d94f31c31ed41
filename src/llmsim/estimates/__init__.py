"""The static front end: one batch's TTFT / TPOT / memory (``static_batch``), one op's cost
(``op``), and many cases in one process (``sweep``)."""

from llmsim.estimates.op import price_op
from llmsim.estimates.static_batch import (
    DeploymentArgs,
    EstimateOptions,
    EstimateResult,
    estimate,
    estimate_with,
)

__all__ = ["DeploymentArgs", "EstimateOptions", "EstimateResult", "estimate", "estimate_with",
           "price_op"]
