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
from llmsim.catalog.layer_templates import model_from_layer_template_file
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
    register_model_format,
)
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.moe_format import MoEModelConfig, model_from_moe_file
from llmsim.catalog.parallel import ParallelSpec
from llmsim.catalog.scenario import model_from_scenario_file

# the model-file formats of the catalog itself (the loader imports neither module)
register_model_format("llmsim-moe", model_from_moe_file)
register_model_format("scenario", model_from_scenario_file)
register_model_format("layer-template", model_from_layer_template_file)

__all__ = [
    "AttentionBlock", "CommBlock", "FFNBlock", "LayerTemplate", "MoEBlock", "Shard", "Weight",
    "Cluster", "ClusterSpec", "HardwareSpec", "HostSpec", "LinkSpec", "ModelSpec",
    "MoEModelConfig", "ParallelSpec", "default_host", "get_cluster", "get_hardware", "get_host",
    "get_model", "list_clusters", "list_hardware", "list_hosts", "list_models",
    "register_model_format",
]
