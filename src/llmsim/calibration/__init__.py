"""Calibration: measured data -> fitted efficiency profiles, and predicted-vs-measured error.

- ``sources``, ``aiconfigurator``, ``vidur``, ``llmcompass``, ``splitwise``: loaders of the
  measured tables in ``../shared/data`` into one normalized measurement table (``table``);
- ``predict``: the cost model's time for every row, vectorised through ``costmodel.kernels``;
- ``fit``, ``build``, ``default_profile``: least-squares fits of the efficiency model
  (``costmodel/profile.py``) per hardware and family, and the shipped default profile;
- ``reference``: which tables are fitted on and which are held out;
- ``accuracy``, ``e2e``: error tables (``benchmarks/accuracy.py``) and the Splitwise check;
- ``user``: ``llmsim calibrate`` / ``llmsim validate`` on a user's own measurements;
- ``importers``: ``--from vidur:DIR | aiconfigurator:DIR | llmcompass:DIR | FILE`` (importing
  this package registers them with the table estimator's sources);
- ``runs``: the end-to-end measurement schema (one measured configuration per row);
- ``transfer``: the rule for a GPU without data, and its leave-one-GPU-out check;
- ``residuals``: validation residuals -> the per-family error factors of the intervals.

docs/calibration.md describes the model, the data and the measured accuracy.
"""

from llmsim.calibration import importers as _importers  # noqa: F401  (registers sources)
