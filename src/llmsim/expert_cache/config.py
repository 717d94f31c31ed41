"""Expert-cache settings and the executor's presets.

- :class:`OffloadConfig`: the knobs of the expert cache (capacity ``C`` experts per MoE layer,
  replacement policy, ``P`` prefetched experts per layer with accuracy ``a``, miss handling,
  seed). The simulator and the PyTorch executor take the same object.
- :data:`PRESETS`: named executor workloads (a model in the ``llmsim-moe`` format,
  :class:`~llmsim.catalog.moe_format.MoEModelConfig`, plus cache settings and a run shape).

Models come in through the one catalog loader (:func:`llmsim.catalog.get_model`: catalog names,
HF ids, ``config.json`` files and ``llmsim-moe`` files); preset names are resolved here.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from llmsim.catalog import ModelSpec, get_model
from llmsim.catalog._base import Spec, validate_spec
from llmsim.catalog.loader import read_model_file
from llmsim.catalog.moe_format import FORMAT_TAG, MoEModelConfig
from llmsim.dtypes import DType
from llmsim.errors import ConfigError
from llmsim.io import path_name_problem
from llmsim.seeds import check_seed


class MissMode(str, Enum):
    """What happens to a routed expert that is not on the GPU.

    FETCH: copy its weights host->device over PCIe, then compute on the GPU.
    CPU: compute it on the CPU from host memory; the tokens' activations go down (D2H) and the
    results come back (H2D).
    """

    FETCH = "fetch"
    CPU = "cpu"


class OffloadConfig(Spec):
    """Expert-cache settings, identical for the simulator and the executor.

    ``capacity``: experts held on the GPU per MoE layer (``C``). ``prefetch``: experts per layer
    guessed and copied ahead (``P``) while the previous layer computes; each guess is right with
    probability ``prefetch_accuracy`` (``a``). ``policy``: a name in
    :data:`llmsim.expert_cache.policies.CACHE_POLICIES` (``lru``, ``lfu``, ``static``).
    """

    capacity: int = Field(default=8, ge=0)
    policy: str = "lru"
    prefetch: int = Field(default=4, ge=0)
    prefetch_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    miss: MissMode = MissMode.FETCH
    seed: int = 0

    @field_validator("seed", mode="before")
    @classmethod
    def _check_seed(cls, value: Any) -> int:
        return check_seed(value)  # a ValueError: pydantic reports it (build() raises it bare)

    @model_validator(mode="after")
    def _check_policy(self) -> OffloadConfig:
        from llmsim.expert_cache.policies import CACHE_POLICIES

        CACHE_POLICIES.get(self.policy)  # UnknownNameError with a did-you-mean
        return self

    @classmethod
    def build(cls, **values: Any) -> OffloadConfig:
        """Validate ``values`` with one-line SpecErrors (for CLI input)."""
        if "seed" in values:
            check_seed(values["seed"])
        return validate_spec(cls, values, "offload settings")  # type: ignore[return-value]

    def replace(self, **changes: Any) -> OffloadConfig:
        """A validated copy with ``changes`` applied."""
        return type(self).build(**{**self.model_dump(), **changes})

    def for_model(self, num_experts: int) -> OffloadConfig:
        """Validate against a model: capacity and prefetch cannot exceed the expert count."""
        if self.capacity > num_experts:
            raise ConfigError(
                f"cache capacity {self.capacity} exceeds the {num_experts} experts per layer; "
                f"use --cache-capacity {num_experts} or less"
            )
        if self.prefetch > num_experts:
            raise ConfigError(
                f"prefetch {self.prefetch} exceeds the {num_experts} experts per layer"
            )
        return self


class Preset(Spec):
    """A named executor workload: model config, offload settings and the run shape."""

    name: str
    description: str
    model: MoEModelConfig
    offload: OffloadConfig
    prompt_tokens: int = Field(gt=0)
    decode_steps: int = Field(ge=0)


# The big default (hidden 4096, 10 layers, 64 experts, top-4, cache 8, prefetch accuracy
# 0.8, 256-token prefill, 10 decode steps). Heads/KV heads/head dim follow Llama/Mixtral
# (32 x 128, 8 KV heads); the expert width is DeepSeek-V2-Lite's 1408, which keeps the 640
# experts at 22 GB in fp16 host memory.
_GPU_MODEL = MoEModelConfig(name="moe-4096x10", hidden_size=4096, num_layers=10, num_heads=32,
                            num_kv_heads=8, head_dim=128, num_experts=64, top_k=4,
                            expert_intermediate_size=1408, vocab_size=32000,
                            weight_dtype=DType.FP16)
# Scaled down so that a 2-core CPU runs prefill + decode in about a second (fp32).
_CPU_MODEL = MoEModelConfig(name="moe-512x4", hidden_size=512, num_layers=4, num_heads=8,
                            num_kv_heads=2, head_dim=64, num_experts=16, top_k=2,
                            expert_intermediate_size=768, vocab_size=4096,
                            weight_dtype=DType.FP32)
_TINY_MODEL = MoEModelConfig(name="moe-tiny", hidden_size=64, num_layers=2, num_heads=4,
                             num_kv_heads=2, head_dim=16, num_experts=8, top_k=2,
                             expert_intermediate_size=96, vocab_size=128,
                             weight_dtype=DType.FP32)

PRESETS: dict[str, Preset] = {
    "gpu-default": Preset(
        name="gpu-default", description="the issue's default: 4096 hidden, 10 layers, 64x top-4",
        model=_GPU_MODEL, offload=OffloadConfig(capacity=8, prefetch=4, prefetch_accuracy=0.8),
        prompt_tokens=256, decode_steps=10),
    "cpu-small": Preset(
        name="cpu-small", description="scaled down for a CPU: 512 hidden, 4 layers, 16x top-2",
        model=_CPU_MODEL, offload=OffloadConfig(capacity=4, prefetch=2, prefetch_accuracy=0.8),
        prompt_tokens=128, decode_steps=16),
    "tiny": Preset(
        name="tiny", description="a toy for tests: 64 hidden, 2 layers, 8x top-2",
        model=_TINY_MODEL, offload=OffloadConfig(capacity=3, prefetch=2, prefetch_accuracy=0.8),
        prompt_tokens=16, decode_steps=4),
}


def get_preset(name: str) -> Preset:
    from llmsim.errors import UnknownNameError

    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise UnknownNameError("executor preset", name, PRESETS)
    return preset


def load_moe_config(source: str | Path | MoEModelConfig) -> MoEModelConfig:
    """An executor model config from a preset name, an ``llmsim-moe`` file, or any catalog
    model / HF config the executor can build (via ``get_model``)."""
    if isinstance(source, MoEModelConfig):
        return source
    key = str(source).strip()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()].model
    path = Path(key).expanduser()
    if path_name_problem(key) is None and path.is_file() \
            and path.suffix in (".json", ".yaml", ".yml"):
        data = read_model_file(path)
        if data.get("format") == FORMAT_TAG:
            return validate_spec(MoEModelConfig, data, str(path))  # type: ignore[return-value]
    return MoEModelConfig.from_model_spec(get_model(key))


def load_model_spec(source: str | Path | ModelSpec | MoEModelConfig) -> ModelSpec:
    """A :class:`ModelSpec` from an executor preset name or anything :func:`get_model` takes
    (catalog name, HF id, ``config.json``, ``llmsim-moe`` file): the one loader every command
    that takes these uses (``moe-offload``, ``offload``, ``executor``)."""
    if isinstance(source, ModelSpec):
        return source
    if isinstance(source, MoEModelConfig):
        return source.to_model_spec()
    key = str(source).strip()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()].model.to_model_spec()
    return get_model(key)


def load_moe_model(source: str | Path | ModelSpec | MoEModelConfig) -> ModelSpec:
    """A MoE :class:`ModelSpec` (see :func:`load_model_spec`). Raises ConfigError for dense
    models."""
    spec = load_model_spec(source)
    if not spec.is_moe:
        raise ConfigError(f"{spec.name} is a dense model; expert offloading needs a MoE model "
                          "(mixtral-8x7b, deepseek-v2-lite, qwen3-30b-a3b, deepseek-v3, ...)")
    return spec
