"""One pool of a disaggregated deployment: ``workers`` identical instances, each a
``tp x pp x dp`` plan (``ep`` expert-parallel ways), with its engine limits and, optionally,
its own accelerator. On the command line a pool is one inline spec,
``workers=2,tp=4[,ep=..,dp=..,pp=..,max_num_seqs=..,max_num_batched_tokens=..,hardware=..]``;
in YAML the same keys."""

from __future__ import annotations

from pydantic import Field

from llmsim.catalog._base import Spec
from llmsim.errors import ConfigError

_INT_KEYS = ("workers", "tp", "pp", "ep", "dp", "max_num_seqs", "max_num_batched_tokens")


class PoolSpec(Spec):
    """A prefill or decode pool (``workers`` instances of one plan)."""

    workers: int = Field(ge=0, le=1_000_000)
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    max_num_seqs: int = Field(default=256, gt=0)
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    hardware: str | None = None

    @property
    def gpus_per_worker(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def num_gpus(self) -> int:
        return self.workers * self.gpus_per_worker


def parse_pool(text: str, role: str) -> PoolSpec:
    """A pool from ``key=value,...`` (``role``: ``prefill`` / ``decode``, for messages)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--{role}-pool is empty; give e.g. workers=2,tp=4")
    values: dict[str, object] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"--{role}-pool: {part.strip()!r} is not key=value "
                              "(e.g. workers=2,tp=4)")
        if key in values:
            raise ConfigError(f"--{role}-pool gives {key} twice")
        if key in _INT_KEYS:
            if not value.isdigit():
                raise ConfigError(f"--{role}-pool: {key} must be a whole number, got {value!r}")
            values[key] = int(value)
        else:
            values[key] = value
    if "workers" not in values:
        raise ConfigError(f"--{role}-pool needs workers=N (e.g. workers=2,tp=4)")
    return pool_from_dict(values, role)


def pool_from_dict(values: dict, role: str) -> PoolSpec:
    """A pool from a mapping (a YAML section), checked; ``workers=0`` is refused."""
    from llmsim.catalog._base import validate_spec

    pool = validate_spec(PoolSpec, dict(values), f"--{role}-pool")
    if pool.workers == 0:
        raise ConfigError(f"--{role}-pool has workers=0: a disaggregated deployment needs at "
                          f"least one {role} worker (drop both pools to serve aggregated)")
    return pool  # type: ignore[return-value]
