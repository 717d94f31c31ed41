"""``AFDSpec``: an attention-FFN disaggregation unit as a deployment names it (``--afd``,
YAML ``parallelism.afd``): instance counts, micro-batches, the link and the experts' routing
skew. A leaf: the pricing of such a unit is :mod:`llmsim.costmodel.afd`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmsim import checks
from llmsim.errors import ConfigError

LINK_KINDS = ("nvlink", "rdma", "ethernet")


@dataclass(frozen=True)
class AFDSpec:
    """An AFD unit: ``attention`` attention instances, ``ffn`` FFN instances, ``microbatches``
    per step, the link between them (``nvlink`` | ``rdma`` | ``ethernet``, optionally a
    bandwidth per GPU), and the routing skew / EPLB redundancy of the experts on the FFN
    instances (``expert_routing``)."""

    attention: int = 1
    ffn: int = 1
    microbatches: int = 2
    link: str = "rdma"
    link_bandwidth_bytes_per_s: float | None = None
    expert_skew: float = 0.0
    redundant_experts: int = 0

    def __post_init__(self) -> None:
        checks.whole(self.attention, "afd attention instances", high=100_000)
        checks.whole(self.ffn, "afd ffn instances", high=100_000)
        checks.whole(self.microbatches, "afd microbatches", high=1024)
        if self.link not in LINK_KINDS:
            raise ConfigError(f"afd link {self.link!r} is not one of {', '.join(LINK_KINDS)}")
        if self.link_bandwidth_bytes_per_s is not None:
            checks.number(self.link_bandwidth_bytes_per_s, "afd link bandwidth", 1.0)
        checks.number(self.expert_skew, "afd expert_skew", 0.0, 8.0)
        checks.whole(self.redundant_experts, "afd redundant_experts", low=0, high=100_000)

    def num_gpus(self, attention_tp: int = 1) -> int:
        """GPUs of the unit: ``attention x tp + ffn``."""
        return self.attention * attention_tp + self.ffn

    def describe(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_afd(text: str) -> AFDSpec:
    """``attention=2,ffn=4,microbatches=3[,link=rdma:200Gbps][,skew=0.5][,redundant=8]``
    (``--afd``; the YAML key takes the same text or a mapping of :class:`AFDSpec` keys)."""
    from llmsim import units

    keys = {"attention": "attention", "ffn": "ffn", "microbatches": "microbatches",
            "m": "microbatches", "link": "link", "skew": "expert_skew",
            "expert_skew": "expert_skew", "redundant": "redundant_experts",
            "redundant_experts": "redundant_experts"}
    out: dict[str, object] = {}
    for part in str(text).split(","):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or key not in keys:
            raise ConfigError(f"--afd {text!r}: {part.strip()!r} is not KEY=VALUE with KEY one "
                              "of attention, ffn, microbatches, link, skew, redundant")
        if key == "link":
            kind, _, bw = value.partition(":")
            out["link"] = kind.strip().lower()
            if bw.strip():
                out["link_bandwidth_bytes_per_s"] = units.parse_bandwidth(bw.strip(),
                                                                          "--afd link")
        elif keys[key] == "expert_skew":
            try:
                out["expert_skew"] = float(value)
            except ValueError:
                raise ConfigError(f"--afd {key}={value!r} is not a number") from None
        else:
            try:
                out[keys[key]] = int(value)
            except ValueError:
                raise ConfigError(f"--afd {key}={value!r} is not a whole number") from None
    for need in ("attention", "ffn"):
        if need not in out:
            raise ConfigError(f"--afd {text!r} needs {need}=N (e.g. attention=2,ffn=4,"
                              "microbatches=3)")
    return AFDSpec(**out)  # type: ignore[arg-type]


def afd_from_value(value: object) -> AFDSpec | None:
    """An :class:`AFDSpec` from ``None``, a spec, the inline text or a mapping of its keys."""
    if value is None or isinstance(value, AFDSpec):
        return value
    if isinstance(value, str):
        return parse_afd(value)
    if isinstance(value, dict):
        return parse_afd(",".join(f"{k}={v}" for k, v in value.items()))
    raise ConfigError(f"afd must be an inline spec (attention=2,ffn=4,microbatches=3) or a "
                      f"mapping, got {type(value).__name__}")
