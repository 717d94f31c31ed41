"""Moving a request's KV cache from its prefill instance to its decode instance.

Each decode GPU receives its own shard of the KV (its KV heads; MLA's latent whole on every TP
rank) over its own link, all GPUs in parallel, so

    bytes per receiving GPU = prompt x kv_bytes_per_token_per_device(decode layout)
    transfer_s = latency + bytes / (link bandwidth per GPU x efficiency)

(``memory.footprint.kv_bytes_per_token_per_device``: the one KV formula; with decode PP the
heaviest stage's shard). With layer-wise transfer (Mooncake / NIXL / SGLang send each layer's
KV as soon as it is written), the transfer runs under the prefill and only what outlasts it
shows: ``exposed = max(transfer_s - prefill_s x (L - 1) / L, transfer_s / L)`` (the last layer's
share always comes after the prefill ends). Without it, the whole transfer follows the prefill.

Links (per GPU, one direction): ``nvlink`` (the part's scale-up link: both pools in one NVLink
domain), ``rdma`` (the cluster's inter-node network: InfiniBand 400 Gb/s per GPU by default),
``ethernet`` (100 Gb/s, 20 us). ``KIND:BANDWIDTH`` overrides the bandwidth
(``rdma:200Gbps``). Efficiency 0.9 of the link (assumed; Mooncake reports ~87-90% of the NIC
with its transfer engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmsim import units
from llmsim.catalog.cluster import Cluster
from llmsim.errors import ConfigError

KV_LINK_EFFICIENCY = 0.9
_ETHERNET = (100e9 / 8, 20e-6)
_KINDS = ("nvlink", "rdma", "ethernet")


@dataclass(frozen=True)
class KVLink:
    """The link KV caches cross: ``kind`` and an optional bandwidth per GPU (bytes/s)."""

    kind: str = "rdma"
    bandwidth_bytes_per_s: float | None = None
    layerwise: bool = True

    def resolve(self, cluster: Cluster) -> tuple[float, float]:
        """``(bandwidth bytes/s per GPU, latency s)`` of this link on ``cluster``."""
        if self.kind == "nvlink":
            bw, lat = cluster.intra_node.bandwidth_bytes_per_s, cluster.intra_node.latency_s
        elif self.kind == "rdma":
            bw, lat = cluster.inter_node.bandwidth_bytes_per_s, cluster.inter_node.latency_s
        else:
            bw, lat = _ETHERNET
        return (self.bandwidth_bytes_per_s or bw), lat


def parse_kv_link(text: str, layerwise: bool = True) -> KVLink:
    """``nvlink`` | ``rdma`` | ``ethernet``, optionally ``:BANDWIDTH`` (``rdma:200Gbps``)."""
    kind, _, bw = str(text).partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS:
        raise ConfigError(f"--kv-link {text!r}: the kind is one of {', '.join(_KINDS)} "
                          "(optionally :BANDWIDTH, e.g. rdma:200Gbps)")
    value = units.parse_bandwidth(bw.strip(), "--kv-link bandwidth") if bw.strip() else None
    if value is not None and value <= 0:
        raise ConfigError(f"--kv-link bandwidth must be positive, got {bw!r}")
    return KVLink(kind, value, layerwise)


def kv_bytes_per_gpu(deployment: Any, tokens: float) -> float:
    """KV bytes of ``tokens`` tokens that each GPU of ``deployment`` (the decode side) holds:
    ``tokens x memory.footprint.kv_bytes_per_token_per_device`` (module docstring)."""
    from llmsim.costmodel.layers import Layout
    from llmsim.memory.footprint import kv_bytes_per_token_per_device

    d = deployment
    layout = Layout(d.model, d.cluster, d.plan, d.precision, d.hardware_profile)
    return tokens * kv_bytes_per_token_per_device(layout)


def kv_transfer_s(bytes_per_gpu: float, link: KVLink, cluster: Cluster) -> float:
    """Seconds to move ``bytes_per_gpu`` to each decode GPU over ``link`` (all in parallel)."""
    bw, latency = link.resolve(cluster)
    return latency + bytes_per_gpu / (bw * KV_LINK_EFFICIENCY)


def exposed_transfer_s(transfer_s: float, prefill_s: float, num_layers: int,
                       layerwise: bool) -> float:
    """The part of the transfer that delays the first decode step (module docstring)."""
    if not layerwise or num_layers <= 1:
        return transfer_s
    return max(transfer_s - prefill_s * (num_layers - 1) / num_layers, transfer_s / num_layers)
