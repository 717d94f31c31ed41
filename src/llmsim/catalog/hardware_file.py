"""A user's accelerator from a YAML file (``--hardware PATH.yaml`` on every command).

Two formats, told apart by their keys:

- llmsim's own (the keys of ``data/hardware/*.yaml``: ``name, vendor, family, memory_bytes,
  memory_bandwidth_bytes_per_s, peak_flops_per_s, ...``, values with units);
- the layer-template simulator format (hsliuustc0106/LLMSimulator's hardware YAML):
  ``name, peak_tflops, memory_bandwidth_gbps, hbm_gb, interconnect_gbps, max_concurrency,
  overlap_efficiency``. Imported by one adapter: ``peak_tflops`` is the dense 16-bit peak
  (TFLOPS = 1e12, also used for fp8 when no ``fp8`` peak is given: a weight-only fp8 model
  then runs at the 16-bit peak), ``memory_bandwidth_gbps`` GB/s (1e9), ``hbm_gb`` GB (1e9),
  ``interconnect_gbps`` GB/s per GPU per direction of the scale-up link (switched).
  ``max_concurrency`` and ``overlap_efficiency`` are scheduling knobs of that design with no
  place in a datasheet spec: read, checked to be numbers, and not used.
"""

from __future__ import annotations

from pathlib import Path

from llmsim.catalog._base import validate_spec
from llmsim.catalog.hardware import HardwareSpec
from llmsim.errors import SpecError

_SOURCE_KEYS = {"name", "peak_tflops", "memory_bandwidth_gbps", "hbm_gb", "interconnect_gbps",
                "max_concurrency", "overlap_efficiency"}


def looks_like_path(name: str) -> bool:
    """A ``--hardware`` value naming a file rather than a catalog part."""
    return isinstance(name, str) and name.lower().endswith((".yaml", ".yml", ".json"))


def load_hardware_file(path: str) -> HardwareSpec:
    """The :class:`HardwareSpec` a YAML file describes (either format); one-line errors."""
    from llmsim.catalog.files import read_yaml_file

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"hardware file not found: {path}")
    data = read_yaml_file(p, path)
    if "peak_tflops" in data:
        return from_source_format(data, path)
    return validate_spec(HardwareSpec, {"source": f"user file {p.name}", **data}, path)


def from_source_format(data: dict, origin: str) -> HardwareSpec:
    """The adapter from the layer-template simulator's hardware YAML (module docstring)."""
    unknown = sorted(set(data) - _SOURCE_KEYS)
    if unknown:
        raise SpecError(f"{origin}: unknown key {unknown[0]!r} (the keys are "
                        f"{', '.join(sorted(_SOURCE_KEYS))})")
    for key in _SOURCE_KEYS - {"name"}:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value <= 0):
            raise SpecError(f"{origin}: {key} must be a positive number, got {value!r}")
    for key in ("name", "peak_tflops", "memory_bandwidth_gbps", "hbm_gb"):
        if data.get(key) is None:
            raise SpecError(f"{origin}: missing {key}")
    peak = float(data["peak_tflops"]) * 1e12
    spec = {
        "name": str(data["name"]), "vendor": "user", "family": "user",
        "memory_bytes": float(data["hbm_gb"]) * 1e9,
        "memory_bandwidth_bytes_per_s": float(data["memory_bandwidth_gbps"]) * 1e9,
        "peak_flops_per_s": {"bf16": peak, "fp16": peak},
        "host_link": {"kind": "pcie", "bandwidth_bytes_per_s": 32e9, "latency_s": 5e-6},
        "source": f"layer-template hardware file {Path(origin).name} (adapted)",
    }
    if data.get("interconnect_gbps"):
        spec["scale_up"] = {"kind": "nvlink", "bandwidth_bytes_per_s":
                            float(data["interconnect_gbps"]) * 1e9, "latency_s": 3e-6}
    return validate_spec(HardwareSpec, spec, origin)  # type: ignore[return-value]
