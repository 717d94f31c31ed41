"""Prefill/decode disaggregation (xPyD): two pools with their own plans and limits, the KV
cache moved between them, and the x:y ratio that balances them (``estimate_disagg``)."""

from llmsim.disagg.estimate import DisaggResult, estimate_disagg
from llmsim.disagg.kv_transfer import KVLink, kv_transfer_s, parse_kv_link
from llmsim.disagg.pools import PoolSpec, parse_pool

__all__ = ["DisaggResult", "KVLink", "PoolSpec", "estimate_disagg", "kv_transfer_s",
           "parse_kv_link", "parse_pool"]
