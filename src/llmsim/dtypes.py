"""Numeric formats: bytes per element, group-scale overhead, and which peak a GEMM runs at.

Weights, activations and KV cache choose their formats independently. A GEMM's math runs in
the *compute* format: the narrower of weight and activation formats the hardware supports, else
the activation format (weight-only quantization such as W4A16 dequantizes to the activation format,
so it saves bytes but not FLOPs; AWQ/GPTQ kernels behave this way).

Group-scaled formats carry one scale per group (``int4``: fp16 scale per 128 weights, as in
AWQ/GPTQ; ``fp4``: fp8 scale per 16 values, as NVFP4). The scale bytes are counted in weights.
"""

from __future__ import annotations

from enum import Enum

from llmsim.errors import UnknownNameError


class DType(str, Enum):
    """A numeric format. The value is the canonical CLI/spec name."""

    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    FP4 = "fp4"

    @property
    def bits(self) -> float:
        return _BITS[self]

    @property
    def bytes(self) -> float:
        """Bytes per element, excluding group scales."""
        return _BITS[self] / 8.0

    @property
    def scale_bytes_per_element(self) -> float:
        """Group-scale overhead per element (0 for formats without group scales)."""
        group, scale_bytes = _GROUP_SCALES.get(self, (0, 0.0))
        return scale_bytes / group if group else 0.0

    @property
    def bytes_with_scales(self) -> float:
        """Bytes per stored element including its share of group scales."""
        return self.bytes + self.scale_bytes_per_element

    @property
    def is_float(self) -> bool:
        return self not in (DType.INT8, DType.INT4)

    @classmethod
    def parse(cls, name: str | DType) -> DType:
        """Parse a name such as ``bf16``, ``bfloat16``, ``float16``, ``half``, ``e4m3``."""
        if isinstance(name, DType):
            return name
        key = str(name).strip().lower()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise UnknownNameError("dtype", str(name), [d.value for d in cls]) from None


_BITS = {
    DType.FP32: 32, DType.TF32: 32, DType.BF16: 16, DType.FP16: 16,
    DType.FP8: 8, DType.INT8: 8, DType.INT4: 4, DType.FP4: 4,
}
# (group size, scale bytes): AWQ/GPTQ int4 uses an fp16 scale (+ packed zero) per 128 weights;
# NVFP4 uses one fp8 (E4M3) scale per 16 values.
_GROUP_SCALES = {DType.INT4: (128, 2.0), DType.FP4: (16, 1.0)}
_ALIASES = {
    "float32": "fp32", "float": "fp32", "f32": "fp32",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "float8": "fp8", "e4m3": "fp8", "fp8_e4m3": "fp8", "float8_e4m3fn": "fp8", "fp8_block": "fp8",
    "w4": "int4", "awq": "int4", "gptq": "int4", "nvfp4": "fp4", "mxfp4": "fp4",
    "auto": "bf16",
}


def compute_dtype(weight: DType, activation: DType, supported: set[DType]) -> DType:
    """The format a GEMM's math runs in (see module docstring).

    W8A8 (fp8/int8 weights and activations) runs at the 8-bit peak; weight-only formats
    (int4, fp4 weights with 16-bit activations) dequantize and run at the activation peak.
    fp4 with fp4 activations runs at the fp4 peak where the part has one.
    """
    if weight == activation and weight in supported:
        return weight
    if weight.bits >= activation.bits:
        return activation if activation in supported else weight
    return activation
