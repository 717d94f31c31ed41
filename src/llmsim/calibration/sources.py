"""Where the measured reference data lives and what each source is.

The measured tables sit in ``../shared/data`` beside the repository (development checkouts and
CI); a user's clone has only the small golden subsets in ``tests/golden``. Nothing here is
downloaded. ``LLMSIM_SHARED_DATA`` overrides the location.

Each :class:`Source` records the upstream repository, commit, path and license so that every fitted
number can name the table it came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmsim.errors import DataError

ENV_VAR = "LLMSIM_SHARED_DATA"


@dataclass(frozen=True)
class Source:
    """One upstream data set."""

    key: str
    repo: str
    commit: str
    license: str
    description: str

    def cite(self, path: str = "") -> str:
        return f"{self.repo}@{self.commit[:8]}{':' + path if path else ''} ({self.license})"


AICONFIGURATOR = Source(
    "aiconfigurator", "ai-dynamo/aiconfigurator", "095f58a51c4ca8e61b66ec108d86f223f8d559ce",
    "Apache-2.0",
    "per-kernel latencies measured with each framework's kernels (latency column in ms)",
)
VIDUR = Source(
    "vidur", "microsoft/vidur", "7d47513363ec447a741ac5e47241580b47724fbf", "MIT",
    "per-operator GPU times of sarathi-serve (ms) and NCCL collectives (ms)",
)
VIDUR_ATTENTION = Source(
    "vidur", "microsoft/vidur", "e2d00e9a", "MIT",
    "A100 attention profile recovered from history (FLASH_ATTENTION backend, ms)",
)
LLMCOMPASS = Source(
    "llmcompass", "PrincetonUniversity/LLMCompass", "2e015fd2ee750e6cad8d7152df52551e5b41ef20",
    "BSD-3-Clause", "ISCA'24 artifact real-hardware kernel measurements (A100, PyTorch 2.0)",
)
SPLITWISE = Source(
    "splitwise", "Mutinifni/splitwise-sim", "8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0", "MIT",
    "DGX-A100 / DGX-H100 end-to-end prefill and decode latencies (ms)",
)
SOURCES = {s.key: s for s in (AICONFIGURATOR, VIDUR, LLMCOMPASS, SPLITWISE)}


def default_data_root() -> Path:
    """``$LLMSIM_SHARED_DATA``, else ``../shared/data`` beside the repository checkout."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    # src/llmsim/calibration/sources.py -> repo root is parents[3]
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def data_root(path: str | Path | None = None) -> Path:
    """Resolve and check the measured-data folder (raises :class:`DataError` when absent)."""
    root = Path(path) if path is not None else default_data_root()
    if not root.is_dir():
        raise DataError(
            f"measured data folder {root} not found; pass --data PATH or set {ENV_VAR} "
            "(it holds ../shared/data: kernels/, e2e/)"
        )
    return root


def has_data_root(path: str | Path | None = None) -> bool:
    root = Path(path) if path is not None else default_data_root()
    return (root / "kernels").is_dir()
