"""Frozen, validated specs: hardware, hosts, clusters, models, parallel plans, scenarios."""

from llmsim.catalog.blocks import (
    AttentionBlock,
    CommBlock,
    FFNBlock,
    LayerTemplate,
    MoEBlock,
    Shard,
    Weight,
)
from llmsim.catalog.cluster import Cluster, ClusterSpec
from llmsim.catalog.hardware import HardwareSpec, HostSpec, LinkSpec
from llmsim.catalog.loader import (
    default_host,
    get_cluster,
    get_hardware,
    get_host,
    get_model,
    list_clusters,
    list_hardware,
    list_hosts,
    list_models,
)
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.parallel import ParallelSpec

__all__ = [
    "AttentionBlock", "CommBlock", "FFNBlock", "LayerTemplate", "MoEBlock", "Shard", "Weight",
    "Cluster", "ClusterSpec", "HardwareSpec", "HostSpec", "LinkSpec", "ModelSpec",
    "ParallelSpec", "default_host", "get_cluster", "get_hardware", "get_host", "get_model",
    "list_clusters",
    "list_hardware", "list_hosts", "list_models",
]
