"""``llmsim train``: the learned estimator's model file from measured kernels.

:func:`train_from` reads every source spec (``vidur:DIR``, ``aiconfigurator:DIR?framework=F``,
``llmcompass:DIR``, an op-timing FILE: :func:`~llmsim.calibration.importers.load_source`), puts
their rows together and calls the one trainer,
:func:`llmsim.costmodel.estimators.learned.train` (docs/estimators.md, ``learned``).
``scripts/train_learned.py`` trains the default recipe (every fitted part's tables of
``../shared/data``) with the same call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from llmsim.calibration.importers import load_source
from llmsim.costmodel.estimators import learned
from llmsim.errors import ConfigError


def train_from(specs: Sequence[str], out_path: str | Path, hardware: str | None = None, *,
               max_rows_per_part: int = 15_000, quick: bool = False,
               seed: int = 0) -> learned.LearnedModel:
    """Train on the rows of ``specs`` (``hardware``: keep, or fill in, that part's rows) and
    write the model to ``out_path``."""
    if not specs:
        raise ConfigError("give at least one --measurements SPEC (FILE, vidur:DIR, "
                          "aiconfigurator:DIR, llmcompass:DIR)")
    rows = pd.concat([load_source(s, hardware) for s in specs], ignore_index=True)
    return learned.train(rows, out_path, max_rows_per_part=max_rows_per_part, quick=quick,
                         seed=seed, origin=", ".join(specs))
