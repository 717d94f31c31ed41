"""Measured data in: ``calibrate --from vidur:DIR | aiconfigurator:DIR | llmcompass:DIR | FILE``.

:func:`load_source` reads any source spec (``llmsim.costmodel.estimators.sources``: ``KIND:PATH``
with ``?framework=F&version=V&hardware=H`` options, or a plain op-timing file) into the one
normalized measurement table (:mod:`.measurements`, docs/calibration.md "The op-timing
schema"). What each importer reads:

- ``aiconfigurator:DIR``: the shared data root, AIConfigurator's ``systems/data`` or one GPU
  folder of it; GEMM, attention, MoE of one framework (``framework``, default ``vllm``; its
  newest version, or ``version``) and the NCCL tables (:mod:`.aiconfigurator`);
- ``vidur:DIR``: the shared data root or a Vidur ``data/`` folder: per-layer GEMMs and
  elementwise ops, A100 FlashAttention, NCCL (:mod:`.vidur`);
- ``llmcompass:DIR``: the shared data root, an LLMCompass checkout or ``ae/figure5``:
  real-hardware matmuls and elementwise kernels (:mod:`.llmcompass`);
- ``FILE`` (or ``file:FILE``): CSV / Parquet / JSONL in the op-timing schema.

Importing this module registers the three importers with the table estimator's source
registry, so ``--estimator table --estimator-model aiconfigurator:DIR`` reads them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmsim.calibration import aiconfigurator as aic
from llmsim.calibration import llmcompass, vidur
from llmsim.calibration.measurements import frame, validate
from llmsim.catalog import get_hardware
from llmsim.costmodel.estimators.sources import (
    SOURCES,
    SourceSpec,
    parse_source,
    read_table_file,
)
from llmsim.errors import DataError


@SOURCES.register("aiconfigurator", "aic")
def read_aiconfigurator(path: Path, options: Mapping[str, str]) -> pd.DataFrame:
    return aic.load_all(path, options.get("framework", "vllm"), options.get("version"))


@SOURCES.register("vidur")
def read_vidur(path: Path, options: Mapping[str, str]) -> pd.DataFrame:
    frames = [vidur.load_compute(path), vidur.load_attention(path), vidur.load_network(path)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else frame({})


@SOURCES.register("llmcompass")
def read_llmcompass(path: Path, options: Mapping[str, str]) -> pd.DataFrame:
    return llmcompass.load_all(path)


def load_source(spec: str | SourceSpec, hardware: str | None = None) -> pd.DataFrame:
    """The measurement table of a source spec, validated; ``hardware`` (or the spec's
    ``hardware=`` option) fills a missing ``hardware`` column of a file and keeps only that
    part's rows. Raises :class:`DataError` for no rows or malformed input."""
    s = spec if isinstance(spec, SourceSpec) else parse_source(spec)
    want = hardware or s.options.get("hardware")
    if s.kind == "file":
        df = read_table_file(s.path)
        if "hardware" not in df.columns:
            if want is None:
                raise DataError(f"{s.path}: no hardware column; pass --hardware")
            df["hardware"] = want
        elif want is not None:
            df["hardware"] = df["hardware"].fillna(want)
    else:
        df = SOURCES.get(s.kind)(Path(s.path), s.options)
    if len(df) == 0:
        raise DataError(f"{s}: no rows")
    if df["hardware"].isna().any():
        raise DataError(f"{s}: some rows have no hardware; fill the column or pass --hardware")
    names = {h: get_hardware(str(h)).name for h in set(df["hardware"])}
    df = df.assign(hardware=df["hardware"].map(names))
    if want is not None:
        name = get_hardware(want).name
        df = df[df["hardware"] == name]
        if len(df) == 0:
            raise DataError(f"{s}: no rows for hardware {name}")
    if "framework" in s.options and "framework" in df.columns and s.kind == "file":
        df = df[df["framework"].astype(str) == s.options["framework"]]
    return validate(df.reset_index(drop=True), origin=str(s))
