"""Scenario files of the layer-template simulator (hsliuustc0106/LLMSimulator), accepted as
written and imported into llmsim's own specs (one adapter).

The format::

    name: deepseek-v3-h800                 # optional (default: the file's stem)
    hardware: h800.yaml                    # a path, an inline mapping, or a catalog name
    vocab_size: 129280                     # optional (llmsim extension, see below)
    weight_dtype: fp8                      # optional (llmsim extension)
    layers:
      - type: ffn_layer                    # ffn_layer | moe_layer | comm_layer (+ the
        config: ffn_layer_config.yaml      #   source's aliases ffn, moe, communication)
        repeat: 3                          # optional (llmsim extension; num_layers: too)
      - type: moe_layer
        config: moe_layer_config.yaml
        repeat: 58
        overrides: {moe_config: {...}}     # optional: merged over the config's sections

A layer config (a file, or the mapping inline under ``config:``, or the entry itself) holds

- ``attn_config``: ``type`` (``MLA`` | ``GQA`` | ``MHA``; default MLA when ``kv_lora_rank`` is
  given, else GQA), ``d_model, num_attention_heads, head_dim, num_key_value_heads,
  v_head_dim``, for MLA ``qk_nope_head_dim, qk_rope_head_dim`` and the ranks
  ``kv_lora_rank, q_lora_rank`` if given (else DeepSeek-V2/V3's 512 and 1536, logged);
  an MLA's ``head_dim`` (the source writes ``d_model / heads``) is not used: its widths are the
  nope / rope / v dims;
- ``ffn_config`` (``ffn_layer``): ``d_model, d_ff, hidden_act`` (silu | gelu | relu; gated for
  silu as SwiGLU, plain otherwise, unless ``gated:`` says);
- ``moe_config`` (``moe_layer``): ``moe_intermediate_size, num_experts_per_tok,
  n_routed_experts`` (or ``num_experts``), ``n_shared_experts`` (default 0),
  ``shared_expert_intermediate_size`` (optional); ``topk_method: noaux_tc`` adds the router's
  correction bias (as ``catalog/hf.py`` reads DeepSeek-V3); ``topk_group, n_group,
  routed_scaling_factor, num_nextn_predict_layers`` are read and not used (routing quality is
  not modelled: ``--expert-skew`` sets the imbalance);
- ``comm_config`` (``comm_layer``): ``pattern`` (all_reduce | all_to_all | all_gather |
  reduce_scatter), ``group`` (tp | ep | dp | world, default ep), ``bytes_per_token``. The
  source's ``payload_mb`` is a fixed payload per layer at one batch shape; llmsim prices a
  collective per token, so it is refused with a one-line error naming ``bytes_per_token``.

Each entry becomes one :class:`~llmsim.catalog.blocks.LayerTemplate` of ``repeat`` identical
layers (default 1, as the source runs each entry once): an attention block then the FFN or
MoE block; a comm layer is a template of one :class:`CommBlock`. The source design has no
embedding or LM head; ``vocab_size`` adds them (default: the ``vocab_size`` a config gives,
else 1, i.e. priced as nothing). Keys of the source that llmsim does not model (dropout,
rope_theta, norms' eps, ...) are ignored; a key of the wrong type or a missing one is a
one-line :class:`SpecError`.

Paths inside (``hardware:``, ``config:``) are resolved against the scenario file's folder,
then the working directory (the source writes them relative to its project root).
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmsim.catalog.blocks import (
    Activation,
    AttentionBlock,
    CommBlock,
    FFNBlock,
    LayerTemplate,
    MoEBlock,
)
from llmsim.catalog.hardware import HardwareSpec
from llmsim.catalog.model import ModelSpec
from llmsim.dtypes import DType
from llmsim.errors import SpecError

log = logging.getLogger(__name__)

#: the source's layer types (its ``SUPPORTED_LAYER_TYPES`` plus ``comm_layer``) -> llmsim's
LAYER_TYPES = {"ffn_layer": "ffn", "ffn": "ffn", "moe_layer": "moe", "moe": "moe",
               "comm_layer": "comm", "communication": "comm", "comm": "comm"}
#: DeepSeek-V2/V3's MLA ranks, used when an MLA config does not give them
_MLA_DEFAULT_RANKS = {"kv_lora_rank": 512, "q_lora_rank": 1536}
_TOP_KEYS = {"name", "description", "hardware", "layers", "vocab_size", "weight_dtype",
             "max_position_embeddings"}


@dataclass(frozen=True)
class LayerTemplateScenario:
    """A loaded layer-template scenario: its model, its hardware (None when the file names
    none) and where it came from."""

    name: str
    model: ModelSpec
    hardware: HardwareSpec | None
    path: Path


def is_layer_template_scenario(data: dict[str, Any]) -> bool:
    """A parsed YAML mapping in this format: a ``layers`` list whose entries have a ``type``
    of :data:`LAYER_TYPES` (llmsim's own scenario format has a ``model`` mapping instead)."""
    layers = data.get("layers")
    return (not isinstance(data.get("model"), dict) and isinstance(layers, list) and bool(layers)
            and all(isinstance(e, dict) and "type" in e for e in layers))


def model_from_layer_template_file(path: Path, data: dict[str, Any]) -> ModelSpec | None:
    """The catalog loader hook (``-m SCENARIO.yaml``): the model of a file in this format,
    else None."""
    if path.suffix == ".json" or not is_layer_template_scenario(data):
        return None
    return load_layer_template_scenario(path, data).model


def resolve_path(value: str, base: Path, origin: str, what: str) -> Path:
    """``value`` against the scenario's folder ``base``, then the working directory."""
    for candidate in (base / value, Path(value)):
        if candidate.is_file():
            return candidate
    raise SpecError(f"{origin}: {what} file {value!r} not found (looked in {shown(base)} and "
                    "the working directory)")


def shown(path: Path) -> str:
    return str(path) or "."


def shipped_scenarios() -> dict[str, Path]:
    """The scenario files shipped in ``data/scenarios/*/`` by name (their ``name:``, e.g.
    ``deepseek-v3-h800``; the file stem works too)."""
    from importlib import resources

    from llmsim.catalog.files import read_yaml_file

    out: dict[str, Path] = {}
    root = Path(str(resources.files("llmsim.data").joinpath("scenarios")))
    for path in sorted(root.glob("*/*.yaml")):
        data = read_yaml_file(path)
        if is_layer_template_scenario(data):
            out[str(data.get("name") or path.stem)] = path
            out.setdefault(path.stem, path)
    return out


def find_scenario(value: str | Path) -> Path:
    """A scenario file: ``value`` if it is a file, else a shipped scenario of that name."""
    path = Path(value)
    if path.is_file():
        return path
    shipped = shipped_scenarios()
    if str(value) in shipped:
        return shipped[str(value)]
    names = sorted(n for n in shipped if "-" in n)
    raise SpecError(f"scenario file not found: {value} (shipped scenarios: "
                    f"{', '.join(names)})")


def load_layer_template_scenario(path: str | Path, data: dict[str, Any] | None = None
                                 ) -> LayerTemplateScenario:
    """Read a scenario in this format (a path, or the name of a shipped one; ``data``: its
    content, already parsed); one-line :class:`SpecError` for a bad file."""
    from llmsim.catalog.files import read_yaml_file

    if data is None:
        path = find_scenario(path)
        data = read_yaml_file(path)
    path = Path(path)
    origin = str(path)
    if not isinstance(data.get("layers"), list) or not data["layers"]:
        raise SpecError(f"{origin}: a layer-template scenario needs a non-empty 'layers' list "
                        "of {type: ffn_layer|moe_layer|comm_layer, config: PATH}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"{origin}: unknown key {unknown[0]!r} (the keys are "
                        f"{', '.join(sorted(_TOP_KEYS))})")
    base = path.parent
    hardware = _hardware(data.get("hardware"), base, origin)
    templates: list[LayerTemplate] = []
    hidden: int | None = None
    vocab = data.get("vocab_size")
    max_pos = data.get("max_position_embeddings")
    for i, entry in enumerate(data["layers"]):
        where = f"{origin}: layers[{i}]"
        template, h, extra = _layer(entry, i, base, where)
        if hidden is None:
            hidden = h
        elif h is not None and h != hidden:
            raise SpecError(f"{where}: d_model {h} differs from the first layer's {hidden}")
        vocab = vocab if vocab is not None else extra.get("vocab_size")
        max_pos = max_pos if max_pos is not None else extra.get("max_position_embeddings")
        templates.append(template)
    if hidden is None:
        raise SpecError(f"{origin}: no layer gives d_model (an ffn_layer or moe_layer with "
                        "attn_config)")
    name = str(data.get("name") or path.stem)
    fields: dict[str, Any] = {
        "name": name, "family": "layer-template", "hidden_size": hidden,
        "vocab_size": _whole(vocab if vocab is not None else 1, "vocab_size", origin),
        "layers": tuple(templates), "source": f"layer-template scenario {path.name}",
    }
    if max_pos is not None:
        fields["max_position_embeddings"] = _whole(max_pos, "max_position_embeddings", origin)
    if data.get("weight_dtype") is not None:
        try:
            fields["weight_dtype"] = DType(str(data["weight_dtype"]).lower())
        except ValueError:
            raise SpecError(f"{origin}: weight_dtype {data['weight_dtype']!r} is not one of "
                            f"{', '.join(d.value for d in DType)}") from None
    try:
        model = ModelSpec.model_validate(fields)
    except ValueError as exc:
        raise SpecError(f"{origin}: invalid model: {_first_line(exc)}") from None
    return LayerTemplateScenario(name, model, hardware, path)


def _hardware(value: Any, base: Path, origin: str) -> HardwareSpec | None:
    from llmsim.catalog.hardware_file import from_source_format, load_hardware_file, looks_like_path
    from llmsim.catalog.loader import get_hardware

    if value is None:
        return None
    if isinstance(value, dict):
        return from_source_format(value, f"{origin}: hardware")
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{origin}: hardware must be a file path, a mapping or a catalog name, "
                        f"got {value!r}")
    if looks_like_path(value):
        return load_hardware_file(str(resolve_path(value, base, origin, "hardware")))
    return get_hardware(value)


def _layer(entry: Any, index: int, base: Path, where: str
           ) -> tuple[LayerTemplate, int | None, dict[str, Any]]:
    """One ``layers`` entry as a template, its ``d_model`` and model-wide keys it gives."""
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: must be a mapping with 'type' and 'config', got "
                        f"{type(entry).__name__}")
    kind = LAYER_TYPES.get(str(entry.get("type")).strip().lower())
    if kind is None:
        raise SpecError(f"{where}: type {entry.get('type')!r} is not one of "
                        "ffn_layer, moe_layer, comm_layer")
    config = _config(entry, base, where)
    for key, value in (entry.get("overrides") or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    repeat = entry.get("repeat", entry.get("num_layers", 1))
    repeat = _whole(repeat, "repeat", where)
    name = str(entry.get("name") or config.get("name") or f"{kind}_{index}")
    extra = {k: v for section in ("attn_config", "ffn_config", "moe_config")
             for k, v in (config.get(section) or {}).items()
             if k in ("vocab_size", "max_position_embeddings")}
    if kind == "comm":
        block = _comm(_section(config, "comm_config", where, default=config), where)
        return LayerTemplate(name=name, repeat=repeat, blocks=(block,)), None, extra
    attn = _attention(_section(config, "attn_config", where), where)
    if kind == "ffn":
        body: FFNBlock | MoEBlock = _ffn(_section(config, "ffn_config", where), attn.hidden_size,
                                         where)
    else:
        body = _moe(_section(config, "moe_config", where), attn.hidden_size, where)
    try:
        template = LayerTemplate(name=name, repeat=repeat, blocks=(attn, body))
    except ValueError as exc:
        raise SpecError(f"{where}: {_first_line(exc)}") from None
    return template, attn.hidden_size, extra


def _config(entry: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    from llmsim.catalog.files import read_yaml_file

    value = entry.get("config")
    if value is None:  # the entry itself holds the sections
        return {k: v for k, v in entry.items() if k not in ("type", "repeat", "num_layers",
                                                            "overrides", "name")}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: config must be a file path or a mapping, got {value!r}")
    found = resolve_path(value, base, where, "layer config")
    return dict(read_yaml_file(found, str(found)))


def _section(config: dict[str, Any], key: str, where: str, default: Any = None
             ) -> dict[str, Any]:
    value = config.get(key, default)
    if value is None:
        raise SpecError(f"{where}: missing {key}")
    if not isinstance(value, dict):
        raise SpecError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
    return value


def _whole(value: Any, key: str, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise SpecError(f"{where}: {key} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _get(section: dict[str, Any], key: str, where: str, name: str, default: Any = ...,
         low: int = 1) -> int:
    if key not in section or section[key] is None:
        if default is ...:
            raise SpecError(f"{where}: {name} needs {key}")
        return default
    return _whole(section[key], f"{name}.{key}", where, low)


def _attention(c: dict[str, Any], where: str) -> AttentionBlock:
    name = "attn_config"
    h = _get(c, "d_model", where, name)
    heads = _get(c, "num_attention_heads", where, name)
    kind = str(c.get("type") or ("MLA" if c.get("kv_lora_rank") else "GQA")).upper()
    if kind not in ("MLA", "GQA", "MHA", "MQA"):
        raise SpecError(f"{where}: attn_config.type {c.get('type')!r} is not one of MLA, GQA, "
                        "MHA, MQA")
    bias = bool(c.get("attention_bias", False))
    try:
        if kind == "MLA":
            ranks = {}
            for key, default in _MLA_DEFAULT_RANKS.items():
                if c.get(key) is None:
                    log.warning("%s: MLA attn_config has no %s; using DeepSeek-V3's %d", where,
                                key, default)
                ranks[key] = _get(c, key, where, name, default)
            v = _get(c, "v_head_dim", where, name)
            return AttentionBlock(
                hidden_size=h, num_heads=heads, num_kv_heads=heads, head_dim=v,
                q_lora_rank=ranks["q_lora_rank"], kv_lora_rank=ranks["kv_lora_rank"],
                qk_nope_head_dim=_get(c, "qk_nope_head_dim", where, name),
                qk_rope_head_dim=_get(c, "qk_rope_head_dim", where, name), v_head_dim=v,
                o_bias=bias)
        head_dim = _get(c, "head_dim", where, name, h // heads)
        kv = _get(c, "num_key_value_heads", where, name, heads)
        return AttentionBlock(hidden_size=h, num_heads=heads, num_kv_heads=kv, head_dim=head_dim,
                              v_head_dim=_get(c, "v_head_dim", where, name, head_dim),
                              qkv_bias=bias)
    except ValueError as exc:
        raise SpecError(f"{where}: attn_config: {_first_line(exc)}") from None


def _activation(c: dict[str, Any], where: str, name: str) -> Activation:
    act = str(c.get("hidden_act", "silu")).lower()
    try:
        return Activation(act)
    except ValueError:
        raise SpecError(f"{where}: {name}.hidden_act {act!r} is not one of "
                        f"{', '.join(a.value for a in Activation)}") from None


def _ffn(c: dict[str, Any], hidden: int, where: str) -> FFNBlock:
    name = "ffn_config"
    h = _get(c, "d_model", where, name, hidden)
    if h != hidden:
        raise SpecError(f"{where}: ffn_config.d_model {h} differs from attn_config's {hidden}")
    act = _activation(c, where, name)
    gated = c.get("gated", act == Activation.SILU)
    return FFNBlock(hidden_size=h, intermediate_size=_get(c, "d_ff", where, name),
                    activation=act, gated=bool(gated))


def _moe(c: dict[str, Any], hidden: int, where: str) -> MoEBlock:
    name = "moe_config"
    experts_key = "n_routed_experts" if "n_routed_experts" in c else "num_experts"
    shared_size = c.get("shared_expert_intermediate_size")
    try:
        return MoEBlock(
            hidden_size=_get(c, "d_model", where, name, hidden),
            num_experts=_get(c, experts_key, where, name),
            top_k=_get(c, "num_experts_per_tok", where, name),
            expert_intermediate_size=_get(c, "moe_intermediate_size", where, name),
            num_shared_experts=_get(c, "n_shared_experts", where, name, 0, low=0),
            shared_expert_intermediate_size=(None if shared_size is None else _whole(
                shared_size, f"{name}.shared_expert_intermediate_size", where)),
            activation=_activation(c, where, name),
            router_bias=c.get("topk_method") == "noaux_tc")  # DeepSeek's correction bias, as hf.py
    except ValueError as exc:
        raise SpecError(f"{where}: moe_config: {_first_line(exc)}") from None


def _comm(c: dict[str, Any], where: str) -> CommBlock:
    if "bytes_per_token" not in c:
        hint = (" (payload_mb is the source's fixed payload per layer; llmsim prices a "
                "collective per token)") if "payload_mb" in c else ""
        raise SpecError(f"{where}: comm_config needs bytes_per_token{hint}")
    try:
        return CommBlock(collective=str(c.get("pattern", "all_to_all")),
                         group=str(c.get("group", "ep")).lower(),
                         bytes_per_token=c["bytes_per_token"])
    except ValueError as exc:
        raise SpecError(f"{where}: comm_config: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    """Pydantic's message without its URL lines: the first error, on one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            msg = str(first.get("msg", "")).replace("Value error, ", "")
            return f"{loc + ': ' if loc else ''}{msg}"
        except (IndexError, TypeError):
            pass
    return str(exc).splitlines()[0]
