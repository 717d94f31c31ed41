"""Random seeds given by users: one check for every front end (simulate, moe-offload,
executor), so they accept and reject the same values."""

from __future__ import annotations

from numbers import Integral

from llmsim.errors import ConfigError

#: the largest seed every consumer accepts (numpy's SeedSequence and torch.manual_seed)
MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> int:
    """``seed`` as an int in ``0..2**63-1``, else :class:`ConfigError` (a ``ValueError``, so
    pydantic validators may call it too)."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be an integer in 0..2**63-1, got {seed!r}")
    return int(seed)
