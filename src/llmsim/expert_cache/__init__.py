"""MoE expert offloading: a per-layer GPU expert cache with prefetch and CPU fallback, simulated
with the core cost model (``simulate``) and shared, decision for decision, with the PyTorch
executor (``llmsim.expert_cache_executor``) through :class:`ExpertCacheEngine`."""

from llmsim.catalog import default_host
from llmsim.expert_cache.cache import AccessPlan, ExpertCacheEngine, Load, PhaseStats, PrefetchPlan
from llmsim.expert_cache.config import (
    PRESETS,
    MissMode,
    MoEModelConfig,
    OffloadConfig,
    Preset,
    check_seed,
    get_preset,
    load_model_spec,
    load_moe_config,
    load_moe_model,
)
from llmsim.expert_cache.costs import OffloadCosts, Platform, cpu_op_time, link_time
from llmsim.expert_cache.policies import CACHE_POLICIES
from llmsim.expert_cache.result import LayerEvent, OffloadResult
from llmsim.expert_cache.routing import (
    ROUTING_DISTRIBUTIONS,
    RoutingSource,
    RoutingTrace,
    check_routing,
    parse_distribution,
    read_trace,
    resolve_routing,
)
from llmsim.expert_cache.simulate import auto_capacity, check_context, make_platform, simulate

__all__ = [
    "AccessPlan", "CACHE_POLICIES", "ExpertCacheEngine", "LayerEvent", "Load", "MissMode",
    "MoEModelConfig", "OffloadConfig", "OffloadCosts", "OffloadResult", "PRESETS",
    "PhaseStats", "Platform", "PrefetchPlan", "Preset", "ROUTING_DISTRIBUTIONS",
    "RoutingSource", "RoutingTrace", "auto_capacity", "check_context", "check_routing",
    "check_seed", "cpu_op_time", "default_host", "get_preset", "link_time", "load_model_spec",
    "load_moe_config", "load_moe_model", "make_platform", "parse_distribution", "read_trace",
    "resolve_routing", "simulate",
]
