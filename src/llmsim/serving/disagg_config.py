"""The ``disagg`` section of a simulation config: prefill/decode disaggregation (xPyD).

::

    disagg:
      prefill_pool: {workers: 2, tp: 4}          # or the inline spec "workers=2,tp=4"
      decode_pool: "workers=1,tp=8,max_num_seqs=128"
      kv_link: rdma                              # nvlink | rdma | ethernet[:BANDWIDTH]
      kv_layerwise: true

The pool keys are those of ``estimate --prefill-pool`` (:class:`llmsim.disagg.pools.PoolSpec`,
parsed by the same ``parse_pool`` / ``pool_from_dict``); the link is ``--kv-link``
(``disagg.kv_transfer.parse_kv_link``). With the section the run is disaggregated: the
``parallelism`` plan keys (``tp``, ``pp``, ``ep``, ``replicas``) and ``hardware.num_gpus`` do
not apply (each pool has its own) and are refused, as are the features the disaggregated run
does not model (speculative decoding, beam search, ``save_itls``).
"""

from __future__ import annotations

from typing import Any

from pydantic import field_serializer, field_validator

from llmsim.catalog._base import Spec
from llmsim.disagg.kv_transfer import KVLink, parse_kv_link
from llmsim.disagg.pools import PoolSpec, parse_pool, pool_from_dict
from llmsim.errors import ConfigError


def _pool(value: Any, role: str) -> PoolSpec:
    if isinstance(value, PoolSpec):
        return pool_from_dict(value.model_dump(), role)
    if isinstance(value, str):
        return parse_pool(value, role)
    if isinstance(value, dict):
        return pool_from_dict(value, role)
    raise ConfigError(f"--{role}-pool (disagg.{role}_pool) is an inline spec "
                      f"'workers=N,tp=..' or a mapping, got {value!r}")


class DisaggSection(Spec):
    """Both pools and the KV link (module docstring)."""

    prefill_pool: PoolSpec | None = None
    decode_pool: PoolSpec | None = None
    kv_link: str = "rdma"
    kv_layerwise: bool = True

    @field_validator("prefill_pool", mode="before")
    @classmethod
    def _prefill(cls, value: Any) -> Any:
        return None if value is None else _pool(value, "prefill")

    @field_validator("decode_pool", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        return None if value is None else _pool(value, "decode")

    @field_validator("kv_link")
    @classmethod
    def _link(cls, value: str) -> str:
        parse_kv_link(value)  # checked now
        return value

    @field_serializer("prefill_pool", "decode_pool")
    def _given_keys(self, pool: PoolSpec | None) -> dict[str, Any] | None:
        """A pool as the keys given (a pool default never overrides an engine's limit when
        a written config is read back)."""
        return None if pool is None else pool.model_dump(exclude_unset=True)

    def link(self) -> KVLink:
        return parse_kv_link(self.kv_link, self.kv_layerwise)


#: keys that describe one aggregated deployment and do not apply to the pools' own plans
_NOT_APPLICABLE = (("parallelism", "tp", "--tp"), ("parallelism", "pp", "--pp"),
                   ("parallelism", "ep", "--ep"), ("parallelism", "replicas", "--replicas"),
                   ("hardware", "num_gpus", "--num-gpus"))


def check_disagg(cfg: Any) -> None:
    """A disaggregated config names both pools and nothing that would be silently ignored
    (one-line :class:`ConfigError` each)."""
    sec: DisaggSection = cfg.disagg
    if sec.prefill_pool is None or sec.decode_pool is None:
        missing = "--prefill-pool" if sec.prefill_pool is None else "--decode-pool"
        raise ConfigError(f"a disaggregated run needs both --prefill-pool and --decode-pool "
                          f"(disagg.prefill_pool / decode_pool); {missing} is missing")
    for section, key, flag in _NOT_APPLICABLE:  # set to other than its default (a written
        part = getattr(cfg, section)  # config holds the defaults)
        if getattr(part, key) != type(part).model_fields[key].default:
            raise ConfigError(f"{flag} ({section}.{key}) does not apply to a disaggregated run: "
                              "each pool has its own plan; put it inside --prefill-pool / "
                              "--decode-pool (e.g. workers=2,tp=4)")
    if cfg.decoding.spec_method is not None or cfg.decoding.beam > 1:
        raise ConfigError("speculative decoding and beam search (decoding section) are not "
                          "modelled with --prefill-pool / --decode-pool; drop one")
    if cfg.parallelism.afd is not None:
        raise ConfigError("--afd (parallelism.afd) is not modelled with --prefill-pool / "
                          "--decode-pool (no prefill pool in front of an AFD unit); drop one")
    if cfg.expert_offload is not None:
        raise ConfigError("expert offload (--expert-cache-*, the expert_offload section) is "
                          "not modelled with --prefill-pool / --decode-pool; drop one")
    if cfg.scheduler.order.value == "priority":
        raise ConfigError("--order priority (scheduler.order) is not modelled with "
                          "--prefill-pool / --decode-pool; use fcfs")
    if cfg.metrics.save_itls:
        raise ConfigError("--save-itls (metrics.save_itls) is not recorded in a disaggregated "
                          "run; drop it (the ITL histogram and itl_max_s still are)")
