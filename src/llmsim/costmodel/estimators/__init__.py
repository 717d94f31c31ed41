"""Step-time estimators behind the one seam (``StepTimeModel``), registered by name.

- ``calibrated`` (default): the roofline with the calibration profile's fitted efficiency
  curves (:class:`~llmsim.costmodel.step.AnalyticStepTimeModel`);
- ``analytic``: the same op lists at the datasheet peaks (``Profile.empty()``: efficiency 1, no
  launch costs) -- the ``uncalibrated`` column of ``benchmarks/accuracy.py``;
- ``table``: interpolation over measured kernels of the deployment's GPU (:mod:`.table`), per op
  family falling back to ``calibrated`` where the table has no data;
- ``learned``: a scikit-learn regressor of ``log(measured / datasheet roofline)`` over op
  features (:mod:`.learned`), falling back to ``calibrated`` outside its training envelope.

Every op of a table or learned step records where its time came from (``OpCost.source``) and
:func:`~llmsim.costmodel.estimators.repriced.source_shares` sums a step's time by source.
"""

from llmsim.costmodel.estimator_registry import ESTIMATORS
from llmsim.costmodel.estimators import analytic, learned, table  # noqa: F401  (register)
from llmsim.costmodel.estimators.repriced import KernelPricer


def kernel_pricer(estimator: str, estimator_model: str | None, hardware: str
                  ) -> KernelPricer | None:
    """The per-op pricer of a measured-data estimator on ``hardware`` (None for the roofline
    estimators): what ``price_op`` re-prices one op case with."""
    name = ESTIMATORS.canonical(estimator)
    if name == "table":
        return table.load_table(estimator_model, hardware)
    if name == "learned":
        if not estimator_model:
            raise learned.ConfigError("the learned estimator needs a model file: "
                                      "--estimator-model model.joblib")
        from llmsim.catalog import get_hardware

        return learned.LearnedPricer(learned.load_model(str(estimator_model)),
                                     get_hardware(hardware))
    return None


__all__ = ["ESTIMATORS", "kernel_pricer"]
