"""The one place the executor imports PyTorch (lazily, with a helpful error)."""

from __future__ import annotations

from typing import Any

from llmsim.errors import ConfigError

INSTALL_HINT = ("make install-torch TORCH_PIP_ARGS='--index-url "
                "https://download.pytorch.org/whl/cpu' (the CPU build, before llmsim)")


def require_torch() -> Any:
    """Import torch or raise ConfigError with the install command (CLI: one line, exit 2)."""
    try:
        import torch
    except ImportError:
        raise ConfigError(f"the executor needs PyTorch, which is not installed; "
                          f"{INSTALL_HINT}") from None
    return torch


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_device(device: str | None) -> str:
    """``cpu`` or ``cuda`` (default: cuda when present). Raise when cuda is asked but absent."""
    torch = require_torch()
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = device.strip().lower()
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine "
                              "(torch.cuda.is_available() is False); use --device cpu")
        return name
    if name != "cpu":
        raise ConfigError(f"unknown device {device!r}; use cpu or cuda")
    return name


_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def resolve_dtype(name: str | None, device: str, default: str) -> Any:
    """torch dtype for ``fp32``/``bf16``/``fp16``; CPU runs fp32/bf16, CUDA fp16/bf16/fp32."""
    torch = require_torch()
    from llmsim.dtypes import DType

    key = DType.parse(name or default).value
    if key not in _DTYPES:
        raise ConfigError(f"the executor runs fp32, bf16 or fp16, not {key}")
    if device == "cpu" and key == "fp16":
        raise ConfigError("--dtype fp16 is not supported on the CPU executor; use fp32 or bf16")
    return getattr(torch, _DTYPES[key])


def dtype_name(torch_dtype: Any) -> str:
    """``torch.float32`` -> ``fp32``."""
    for key, attr in _DTYPES.items():
        if str(torch_dtype).endswith(attr):
            return key
    raise ConfigError(f"unsupported torch dtype {torch_dtype}")
