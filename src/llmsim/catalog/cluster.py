"""Cluster specs (GPUs per node, intra-node fabric, inter-node network) and their resolution.

A cluster file either names its accelerator (``dgx-h100``) or is a template for any accelerator
(the comm backends ``nv_like`` and ``pcie_like``): then ``--hardware`` picks the part and the
intra-node link comes from that part's datasheet (its scale-up fabric, or its PCIe host link).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydantic import Field

from llmsim.catalog._base import Spec
from llmsim.catalog.hardware import HardwareSpec, HostSpec, LinkSpec, LinkTopology


class IntraNodeFrom(str, Enum):
    """Where a template cluster takes its intra-node link from."""

    SCALE_UP = "scale_up"  # the part's NVLink / XGMI / ICI (PCIe if it has none)
    PCIE = "pcie"  # the part's PCIe host link, shared through a PCIe switch


class ClusterSpec(Spec):
    """A node layout and its networks. ``hardware`` None means a template for any part."""

    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    hardware: str | None = None
    gpus_per_node: int | None = Field(default=None, gt=0)
    num_nodes: int = Field(default=1, gt=0)
    intra_node: LinkSpec | IntraNodeFrom = IntraNodeFrom.SCALE_UP
    inter_node: LinkSpec
    host: str | None = None
    source: str = Field(min_length=3)


@dataclass(frozen=True)
class Cluster:
    """A resolved cluster: concrete accelerator, links and node count (runtime object)."""

    name: str
    hardware: HardwareSpec
    gpus_per_node: int
    num_nodes: int
    intra_node: LinkSpec
    inter_node: LinkSpec
    host: HostSpec | None = None

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_node * self.num_nodes

    def link_for_group(self, group_size: int, stride: int = 1) -> tuple[LinkSpec, int]:
        """The bottleneck link of a communication group and how many nodes it spans.

        Ranks are packed node by node; a group of ``group_size`` ranks spaced ``stride`` apart
        stays inside one node when ``group_size * stride <= gpus_per_node``.
        """
        span = group_size * stride
        if span <= self.gpus_per_node:
            return self.intra_node, 1
        nodes = -(-span // self.gpus_per_node)
        return self.inter_node, nodes


def resolve_cluster(
    spec: ClusterSpec, hardware: HardwareSpec, host: HostSpec | None, num_gpus: int | None
) -> Cluster:
    """Bind a cluster spec to an accelerator and size it to ``num_gpus`` (if given)."""
    gpus_per_node = spec.gpus_per_node or hardware.default_gpus_per_node
    if isinstance(spec.intra_node, LinkSpec):
        intra = spec.intra_node
    elif spec.intra_node == IntraNodeFrom.PCIE:
        intra = hardware.host_link.model_copy(update={"topology": LinkTopology.SHARED})
    else:
        intra = hardware.scale_up_link
    num_nodes = spec.num_nodes
    if num_gpus is not None:
        if num_gpus <= gpus_per_node:
            gpus_per_node, num_nodes = num_gpus, 1
        else:
            num_nodes = -(-num_gpus // gpus_per_node)
    return Cluster(
        name=spec.name,
        hardware=hardware,
        gpus_per_node=gpus_per_node,
        num_nodes=num_nodes,
        intra_node=intra,
        inter_node=spec.inter_node,
        host=host,
    )
