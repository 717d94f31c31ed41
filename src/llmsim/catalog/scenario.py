"""Scenario files: hardware + ordered layer templates + defaults, in one YAML file.

::

    name: deepseek-v3-on-h200
    hardware: h200-sxm            # or cluster: dgx-h100
    num_gpus: 8
    model:
      base: deepseek-v3           # optional: start from a catalog model
      hidden_size: 7168           # blocks inherit hidden_size from here
      vocab_size: 129280
      weight_dtype: fp8
      layers:                     # optional: replaces the base model's layers
        - name: dense
          repeat: 3
          blocks:
            - {type: attention, num_heads: 128, num_kv_heads: 128, head_dim: 128,
               q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128,
               qk_rope_head_dim: 64, v_head_dim: 128}
            - {type: ffn, intermediate_size: 18432}
        - name: moe
          repeat: 58
          blocks:
            - {type: attention, ...}
            - {type: moe, num_experts: 256, top_k: 8, expert_intermediate_size: 2048,
               num_shared_experts: 1}
            - {type: comm, collective: all_to_all, group: ep, bytes_per_token: 7168}
    parallel: {tp: 8}
    defaults: {batch: 16, prompt: 1024, output: 256, dtype: fp8}

Runtime knobs (batch, prompt, output) given on the CLI override ``defaults``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from llmsim.catalog._base import Spec, validate_spec
from llmsim.catalog.blocks import LayerTemplate
from llmsim.catalog.loader import get_model, read_yaml_file
from llmsim.catalog.model import ModelSpec
from llmsim.catalog.parallel import ParallelSpec
from llmsim.dtypes import DType
from llmsim.errors import SpecError


class ScenarioModel(Spec):
    base: str | None = None
    name: str | None = None
    hidden_size: int | None = Field(default=None, gt=0)
    vocab_size: int | None = Field(default=None, gt=0)
    max_position_embeddings: int | None = Field(default=None, gt=0)
    tie_word_embeddings: bool | None = None
    weight_dtype: DType | None = None
    layers: tuple[LayerTemplate, ...] | None = None


class ScenarioDefaults(Spec):
    batch: int | None = Field(default=None, gt=0)
    prompt: int | None = Field(default=None, gt=0)
    output: int | None = Field(default=None, gt=0)
    dtype: DType | None = None
    kv_dtype: DType | None = None
    act_dtype: DType | None = None
    beam: int | None = Field(default=None, gt=0)


class ScenarioSpec(Spec):
    name: str
    description: str = ""
    hardware: str | None = None
    cluster: str | None = None
    host: str | None = None
    num_gpus: int | None = Field(default=None, gt=0)
    model: ScenarioModel
    parallel: ParallelSpec = ParallelSpec()
    defaults: ScenarioDefaults = ScenarioDefaults()


class Scenario:
    """A loaded scenario: the spec plus the :class:`ModelSpec` it defines."""

    def __init__(self, spec: ScenarioSpec, model: ModelSpec):
        self.spec = spec
        self.model = model


def _inherit_hidden(data: dict[str, Any]) -> dict[str, Any]:
    """Copy ``model.hidden_size`` into blocks that do not set their own."""
    model = data.get("model")
    if not isinstance(model, dict):
        return data
    hidden = model.get("hidden_size")
    for layer in model.get("layers") or []:
        for block in (layer.get("blocks") or []) if isinstance(layer, dict) else []:
            if isinstance(block, dict) and hidden is not None and block.get("type") != "comm":
                block.setdefault("hidden_size", hidden)
    return data


def model_from_scenario_file(path: Path, data: dict[str, Any]) -> ModelSpec | None:
    """The catalog loader hook: the model a parsed YAML scenario file defines, else None (a
    scenario has a ``model`` mapping)."""
    if path.suffix == ".json" or not isinstance(data.get("model"), dict):
        return None
    return load_scenario(path, data).model


def load_scenario(path: str | Path, data: dict[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario YAML file (``data``: its content, already parsed)."""
    path = Path(path)
    data = _inherit_hidden(read_yaml_file(path) if data is None else dict(data))
    spec: ScenarioSpec = validate_spec(ScenarioSpec, data, str(path))  # type: ignore[assignment]
    m = spec.model
    base = get_model(m.base) if m.base else None
    if base is None and (m.layers is None or m.hidden_size is None or m.vocab_size is None):
        raise SpecError(
            f"{path}: model needs either 'base: <catalog model>' or hidden_size, vocab_size "
            "and layers"
        )
    fields: dict[str, Any] = base.model_dump() if base is not None else {
        "family": "scenario", "hf_id": "", "source": str(path),
    }
    fields["name"] = m.name or (base.name if base and m.layers is None else spec.name)
    for key in ("hidden_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings",
                "weight_dtype"):
        value = getattr(m, key)
        if value is not None:
            fields[key] = value
    if m.layers is not None:
        fields["layers"] = m.layers
    try:
        model = ModelSpec.model_validate(fields)
    except Exception as exc:  # pydantic ValidationError -> one line
        raise SpecError(f"{path}: invalid model: {exc}".splitlines()[0]) from None
    return Scenario(spec, model)
