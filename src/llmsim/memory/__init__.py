"""Memory analysis: weights, KV cache, activations per device; does it fit."""

from llmsim.memory.footprint import (
    MemoryReport,
    analyze_memory,
    check_weights_fit,
    kv_bytes_per_token_per_device,
    max_sequences,
    weight_bytes_per_device,
)

__all__ = ["MemoryReport", "analyze_memory", "check_weights_fit",
           "kv_bytes_per_token_per_device", "max_sequences", "weight_bytes_per_device"]
