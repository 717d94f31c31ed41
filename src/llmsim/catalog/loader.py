"""Catalog lookups: package data read with ``importlib.resources``, validated once, cached.

Names are case-insensitive; aliases and HF ids work; unknown names raise with a did-you-mean.
A model may also be a path to a local ``config.json`` (or a folder holding one).
"""

from __future__ import annotations

import json
import logging
import numbers
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from llmsim import units
from llmsim.catalog import files
from llmsim.catalog._base import Spec, validate_spec
from llmsim.catalog.cluster import Cluster, ClusterSpec, resolve_cluster
from llmsim.catalog.files import read_yaml_file
from llmsim.catalog.hardware import HardwareSpec, HostSpec
from llmsim.catalog.hf import from_hf_config
from llmsim.catalog.model import ModelSpec
from llmsim.errors import SpecError, UnknownNameError
from llmsim.io import path_name_problem, shown

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Spec)

_DATA = "llmsim.data"


def _data_dir(sub: str):
    return resources.files(_DATA).joinpath(sub)


def _load_dir(sub: str, cls: type[S]) -> dict[str, S]:
    """All specs in ``data/<sub>/*.yaml``, keyed by lower-case name and aliases."""
    out: dict[str, S] = {}
    for entry in sorted(_data_dir(sub).iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        origin = f"{sub}/{entry.name}"
        spec = validate_spec(cls, read_yaml_file(entry, origin), origin)
        for key in (spec.name, *spec.aliases):  # type: ignore[attr-defined]
            k = key.lower()
            if k in out and out[k] is not spec:
                raise SpecError(f"{sub}: name {key!r} used twice")
            out[k] = spec
    return out


@cache
def _hardware() -> dict[str, HardwareSpec]:
    return _load_dir("hardware", HardwareSpec)


@cache
def _hosts() -> dict[str, HostSpec]:
    return _load_dir("hosts", HostSpec)


@cache
def _clusters() -> dict[str, ClusterSpec]:
    return _load_dir("clusters", ClusterSpec)


def _lookup(table: dict[str, S], kind: str, name: str) -> S:
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{kind} must be a name (see `llmsim catalog list`), got "
                        f"{type(name).__name__} {name!r}")
    spec = table.get(name.strip().lower())
    if spec is None:
        canonical = sorted({s.name for s in table.values()})  # type: ignore[attr-defined]
        raise UnknownNameError(kind, name, canonical)
    return spec


def get_hardware(name: str | HardwareSpec) -> HardwareSpec:
    """An accelerator by canonical name or alias, e.g. ``h100-sxm``, ``H100``, or a YAML file
    (``catalog.hardware_file``: llmsim's format or the layer-template simulator's)."""
    if isinstance(name, HardwareSpec):
        return name
    from llmsim.catalog.hardware_file import load_hardware_file, looks_like_path

    if looks_like_path(name):
        return load_hardware_file(name)
    return _lookup(_hardware(), "hardware", name)


def get_host(name: str | HostSpec) -> HostSpec:
    """A host (CPU, DRAM, PCIe, disk) spec for offloading."""
    if isinstance(name, HostSpec):
        return name
    return _lookup(_hosts(), "host", name)


#: hosts paired with a GPU by name (the box its published numbers come from, or the kind of
#: machine the card goes into); every other GPU gets a generic server of its PCIe generation
DEFAULT_HOST_FOR = {
    "t4": "gcp-t4-flexgen",  # FlexGen's GCP machine
    "rtx-3090": "workstation-pcie4",  # GeForce cards sit in desktop workstations
    "rtx-4090": "workstation-pcie4",
}


def default_host(hardware: str | HardwareSpec) -> str:
    """The host a GPU is paired with when none is named (``offload`` and ``moe-offload``).

    :data:`DEFAULT_HOST_FOR` by name; otherwise a generic server of the GPU's PCIe generation
    from its host-link bandwidth per direction (up to 16 GB/s: Gen3 ``generic-pcie3-ddr4``, up
    to 32: Gen4 ``generic-pcie4-ddr4``, more: Gen5 ``generic-pcie5-ddr5``).
    """
    hardware = get_hardware(hardware)
    if hardware.name in DEFAULT_HOST_FOR:
        return DEFAULT_HOST_FOR[hardware.name]
    bw = hardware.host_link.bandwidth_bytes_per_s
    if bw <= 16.5 * units.GB:
        return "generic-pcie3-ddr4"
    if bw <= 33 * units.GB:
        return "generic-pcie4-ddr4"
    return "generic-pcie5-ddr5"


def get_cluster_spec(name: str) -> ClusterSpec:
    return _lookup(_clusters(), "cluster", name)


def list_hardware() -> list[HardwareSpec]:
    return sorted({id(s): s for s in _hardware().values()}.values(), key=lambda s: s.name)


def list_hosts() -> list[HostSpec]:
    return sorted({id(s): s for s in _hosts().values()}.values(), key=lambda s: s.name)


def list_clusters() -> list[ClusterSpec]:
    return sorted({id(s): s for s in _clusters().values()}.values(), key=lambda s: s.name)


def get_cluster(
    cluster: str | None = None,
    hardware: str | HardwareSpec | None = None,
    num_gpus: int | None = None,
    host: str | HostSpec | None = None,
) -> Cluster:
    """Resolve a cluster from a cluster name and/or a hardware name (and a GPU count).

    With only ``hardware``, the part's own scale-up fabric links the GPUs of a node and nodes
    are joined as in the ``nv_like`` template (``pcie_like`` for parts without a scale-up link).
    """
    if cluster is None and hardware is None:
        raise SpecError("give --hardware or --cluster")
    if num_gpus is not None and (isinstance(num_gpus, bool)
                                 or not isinstance(num_gpus, numbers.Integral) or num_gpus < 1):
        raise SpecError(f"num_gpus must be a whole number >= 1, got {num_gpus!r}")
    if cluster is not None:
        spec = get_cluster_spec(cluster)
        if spec.hardware is None and hardware is None:
            raise SpecError(f"cluster {spec.name!r} is a template; add --hardware")
        if spec.hardware is not None and hardware is not None:
            hw = get_hardware(hardware)
            if hw.name != get_hardware(spec.hardware).name:
                raise SpecError(
                    f"cluster {spec.name!r} is built from {spec.hardware}, not {hw.name}; "
                    "drop --hardware or use a template cluster (nv_like, pcie_like)"
                )
        hw = get_hardware(hardware if hardware is not None else spec.hardware)  # type: ignore[arg-type]
    else:
        hw = get_hardware(hardware)  # type: ignore[arg-type]
        spec = get_cluster_spec("nv_like" if hw.scale_up is not None else "pcie_like")
    host_spec = None
    if host is not None:
        host_spec = get_host(host)
    elif spec.host is not None:
        host_spec = get_host(spec.host)
    return resolve_cluster(spec, hw, host_spec, num_gpus)


# ----------------------------------------------------------------------------- models


@cache
def _model_index() -> dict[str, dict[str, Any]]:
    """alias / HF id (lower-case) -> index entry."""
    path = _data_dir("models").joinpath("index.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    entries = data["models"] if isinstance(data, dict) else data
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        for key in (e["alias"], e["hf_id"], *(e.get("extra_ids") or [])):
            out[key.lower()] = e
    return out


def list_models() -> list[dict[str, Any]]:
    """Index entries of the shipped models, sorted by alias."""
    seen = {e["alias"]: e for e in _model_index().values()}
    return [seen[k] for k in sorted(seen)]


@cache
def _load_catalog_model(alias: str) -> ModelSpec:
    entry = _model_index()[alias.lower()]
    raw = _data_dir("models").joinpath(entry["file"]).read_text(encoding="utf-8")
    return from_hf_config(json.loads(raw), name=entry["alias"], hf_id=entry["hf_id"],
                          source=entry.get("source", ""))


_TUNED_SUFFIX = re.compile(r"^(?P<base>.+?)[-_](?:instruct|chat|it)"
                           r"(?P<version>[-_]v?\d+(?:\.\d+)*)?(?P<hf>-hf)?$", re.IGNORECASE)


def _tuned_variant(key: str) -> dict[str, str] | None:
    """The catalog entry of an instruction-/chat-tuned variant's base checkpoint
    (``meta-llama/Llama-3.1-8B-Instruct`` -> ``meta-llama/Llama-3.1-8B``,
    ``meta-llama/Llama-2-7b-chat-hf`` -> ``meta-llama/Llama-2-7b-hf``): fine-tuning keeps the
    architecture. Only the same version matches (``Mistral-7B-Instruct-v0.2`` is not v0.1)."""
    m = _TUNED_SUFFIX.match(key)
    if m is None:
        return None
    base, version, hf = m["base"], m["version"] or "", m["hf"] or ""
    for candidate in (base + version + hf, base + version):
        entry = _model_index().get(candidate.lower())
        if entry is not None:
            log.info("%s: same architecture as the catalog's %s", key, entry["alias"])
            return entry
    return None


#: model-file formats beyond HF's ``config.json``: ``(name, loader(path, data) -> ModelSpec |
#: None)``, tried in order on a parsed JSON/YAML file (``None``: not this format). The catalog
#: registers its own (``llmsim-moe``, scenario files) in ``catalog/__init__.py``; a format
#: higher up registers with :func:`register_model_format`, so this module imports none of them.
ModelFileLoader = Callable[[Path, dict[str, Any]], "ModelSpec | None"]
_MODEL_FORMATS: list[tuple[str, ModelFileLoader]] = []


def register_model_format(name: str, loader: ModelFileLoader) -> None:
    """Let :func:`get_model` read one more model-file format (idempotent by name)."""
    global _MODEL_FORMATS
    _MODEL_FORMATS = [(n, f) for n, f in _MODEL_FORMATS if n != name] + [(name, loader)]


def read_model_file(path: Path) -> dict[str, Any]:
    """Parse a JSON (``.json``) or YAML file into a dict (one-line SpecError on bad syntax)."""
    return files.read_mapping(path, what="model file")


def _model_from_file(path: Path) -> ModelSpec:
    """A model file: a registered format that claims it, else (JSON) an HF ``config.json``."""
    data = read_model_file(path)
    for _name, loader in _MODEL_FORMATS:
        spec = loader(path, data)
        if spec is not None:
            return spec
    if path.suffix != ".json":
        raise SpecError(f"{path}: not a model file this version reads (a scenario YAML, an "
                        "llmsim-moe file, or an HF config.json)")
    # HF's own name if the file has one, else the folder of a config.json, else the file
    name = data.get("_name_or_path") or (
        path.parent.name if path.name == "config.json" and path.parent.name else path.stem)
    return from_hf_config(data, name=name, source=str(path))


def get_model(name: str | ModelSpec) -> ModelSpec:
    """A model by alias (``llama-2-7b``), HF id (``meta-llama/Llama-2-7b-hf``) or config path."""
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"a model is a catalog name, an HF id or the path of a config.json, "
                        f"got {type(name).__name__} {name!r}")
    key = name.strip()
    entry = _model_index().get(key.lower()) or _tuned_variant(key)
    if entry is not None:
        return _load_catalog_model(entry["alias"])
    problem = path_name_problem(key)
    if problem:  # cannot name a file: an unknown name, or a path this system cannot have
        if key.endswith((".json", ".yaml", ".yml")) or "/" in key:
            raise SpecError(f"cannot read model file {shown(key)}: {problem}")
        known = sorted({e["alias"] for e in _model_index().values()})
        raise UnknownNameError("model", key, known)
    path = Path(key).expanduser()
    if path.is_dir():
        path = path / "config.json"
    # a path, not an unknown HF id ("org/name"): a config suffix, an explicit folder prefix, or
    # a folder that exists
    looks_like_path = (key.endswith((".json", ".yaml", ".yml"))
                       or key.startswith(("/", "./", "../", "~"))
                       or ("/" in key and path.parent.is_dir() and str(path.parent) != "."))
    if looks_like_path and not path.is_file():
        raise SpecError(f"{path}: no such file (a model is a catalog name, an HF id, or the path "
                        "of a config.json)")
    if path.is_file() and path.suffix in (".json", ".yaml", ".yml"):
        return _model_from_file(path)
    known = sorted({e["alias"] for e in _model_index().values()} |
                   {e["hf_id"] for e in _model_index().values()})
    raise UnknownNameError("model", name, known)
