"""Collectives over the link hierarchy: all-reduce, all-gather, reduce-scatter, all-to-all, p2p.

Alpha-beta model per link class (Thakur, Rabenseifner & Gropp, "Optimization of Collective
Communication Operations in MPICH", IJHPCA 2005; NCCL's ring/tree algorithms). For a group of
``n`` ranks and a message of ``S`` bytes (the full tensor each rank holds / receives):

- ring all-reduce: ``2(n-1)`` steps, each rank moves ``2 (n-1)/n * S`` bytes;
- all-gather / reduce-scatter: ``n-1`` steps, ``(n-1)/n * S`` bytes;
- all-to-all: each rank sends ``(n-1)/n`` of its ``S`` bytes, concurrently to all peers;
- p2p: ``S`` bytes, one step.

time = base_latency + steps * latency + bytes / (per-GPU link bandwidth * bw_eff), with
``base_latency`` (one collective's fixed launch / protocol cost) and ``latency`` (per step) from
the calibration profile where it has them (else 0 and the link's datasheet latency). A group
spanning several
nodes runs hierarchically (NCCL's tree/ring across nodes): intra-node reduce-scatter, inter-node
all-reduce of ``S / g`` per GPU over its own NIC share, intra-node all-gather. On a ``shared``
(PCIe-switch) fabric a collective of more than two GPUs crosses the root complex, which halves
the usable bandwidth (assumption, documented in docs/cost-model.md).

Serving engines do not run NCCL for their tensor-parallel all-reduces inside a node: vLLM and
SGLang use a custom all-reduce over peer-mapped buffers (vLLM ``custom_all_reduce.py``: world
sizes up to 8, fully NVLink-connected GPUs, messages up to 8 MiB), TensorRT-LLM its one-/two-shot
kernels with NCCL for large messages (``AllReduceStrategy.AUTO``). At decode sizes (16-128 KB) they
take 3-8 us where NCCL takes 6-19 us (AIConfigurator's H100 tables, TP 2-8). ``library="auto"``
(what every priced step uses) takes ``min(NCCL, custom)`` for an intra-node all-reduce of at most
:data:`CUSTOM_ALLREDUCE_MAX_GPUS` GPUs on a non-shared fabric, where the profile has a
``comm_custom`` curve (same formula, its own fitted ``base_latency_s``, ``latency_s``,
``bw_eff``); ``"nccl"`` and ``"custom"`` force one (the calibration prices each measured table
with its own library).

Full-mesh fabrics (``mesh`` topology: AMD XGMI on MI300X, Gaudi's scale-up ports): the link
bandwidth is the GPU's aggregate over its ``N - 1`` peer links (``N`` GPUs per node). A group of
``n`` GPUs can drive ``n - 1`` of them at once (multi-ring / direct all-to-all, as RCCL does), so
it gets ``(n - 1) / (N - 1)`` of the aggregate; a p2p transfer gets ``1 / (N - 1)``.
"""

from __future__ import annotations

from llmsim.catalog.cluster import Cluster
from llmsim.catalog.hardware import LinkSpec, LinkTopology
from llmsim.costmodel.ops import Bound, OpCost, OpKind
from llmsim.costmodel.profile import HardwareProfile, ResolvedComm
from llmsim.errors import ConfigError

_SHARED_FABRIC_FACTOR = 0.5
#: the largest group the engines' custom all-reduce serves (vLLM: world sizes 2, 4, 6, 8)
CUSTOM_ALLREDUCE_MAX_GPUS = 8
#: ``library`` values: the faster of the two (engines), NCCL's alone, the custom kernel's alone
LIBRARIES = ("auto", "nccl", "custom")


def _link_time(steps: float, nbytes: float, link: LinkSpec, group: int, inter: bool,
               prof: HardwareProfile, node_gpus: int = 8,
               eff: ResolvedComm | None = None) -> float:
    eff = prof.comm(inter) if eff is None else eff
    bandwidth = link.bandwidth_bytes_per_s * eff.bw_eff
    if link.topology == LinkTopology.SHARED and group > 2:
        bandwidth *= _SHARED_FABRIC_FACTOR
    elif link.topology == LinkTopology.MESH and node_gpus > 2:
        bandwidth *= min(1.0, (group - 1) / (node_gpus - 1))
    latency = link.latency_s if eff.latency_s is None else eff.latency_s
    return eff.base_latency_s + steps * latency + nbytes / bandwidth


def _all_reduce(size: float, n: int, link: LinkSpec, inter: bool, prof: HardwareProfile,
                node_gpus: int = 8, library: str = "auto") -> tuple[float, bool]:
    """``(seconds, whether the engines' custom kernel priced it)`` of a flat all-reduce: the
    ring, or ``min(ring, custom)`` where the custom kernel applies (module docstring)."""
    ring = _link_time(2 * (n - 1), 2.0 * (n - 1) / n * size, link, n, inter, prof, node_gpus)
    custom = (None if library == "nccl" or inter else
              custom_allreduce_time(size, n, link, prof, node_gpus))
    if custom is None or (library == "auto" and ring <= custom):
        return ring, False
    return custom, True


def _flat(kind: OpKind, size: float, n: int, link: LinkSpec, inter: bool,
          prof: HardwareProfile, node_gpus: int = 8) -> float:
    if kind == OpKind.ALL_REDUCE:  # within a node :func:`_priced` calls _all_reduce itself
        return _all_reduce(size, n, link, inter, prof, node_gpus)[0]
    if kind in (OpKind.ALL_GATHER, OpKind.REDUCE_SCATTER):
        return _link_time(n - 1, (n - 1) / n * size, link, n, inter, prof, node_gpus)
    if kind == OpKind.ALL_TO_ALL:
        return _link_time(1, (n - 1) / n * size, link, n, inter, prof, node_gpus)
    if kind == OpKind.P2P:
        return _link_time(1, size, link, 2, inter, prof, node_gpus)
    raise ValueError(kind)


def custom_allreduce_time(size: float, n: int, link: LinkSpec, prof: HardwareProfile,
                          node_gpus: int = 8) -> float | None:
    """The engines' custom all-reduce of ``size`` bytes over ``n`` GPUs of one node: the ring's
    accounting (``2 (n - 1)`` steps, ``2 (n - 1) / n * size`` bytes per rank) priced with the
    profile's ``comm_custom`` curve; None where it does not apply (no curve, more than
    :data:`CUSTOM_ALLREDUCE_MAX_GPUS` GPUs, a shared PCIe fabric)."""
    eff = prof.custom_allreduce()
    if eff is None or n > CUSTOM_ALLREDUCE_MAX_GPUS or link.topology == LinkTopology.SHARED:
        return None
    return _link_time(2 * (n - 1), 2.0 * (n - 1) / n * size, link, n, False, prof, node_gpus,
                      eff)


def collective_time(kind: OpKind, message_bytes: float, group_size: int, cluster: Cluster,
                    prof: HardwareProfile, stride: int = 1, library: str = "auto") -> float:
    """Seconds for one collective of ``message_bytes`` over ``group_size`` ranks.

    ``stride``: spacing of the group's ranks (TP groups are contiguous: 1; a DP/EP group whose
    ranks interleave with TP ranks has stride ``tp``), used to tell intra- from inter-node.
    ``library``: one of :data:`LIBRARIES` for an intra-node all-reduce (module docstring).
    """
    return _priced(kind, message_bytes, group_size, cluster, prof, stride, library)[0]


def _priced(kind: OpKind, message_bytes: float, group_size: int, cluster: Cluster,
            prof: HardwareProfile, stride: int, library: str) -> tuple[float, bool]:
    """``(seconds, whether the engines' custom all-reduce priced it)`` of a collective."""
    if library not in LIBRARIES:
        raise ConfigError(f"collective library {library!r} is not one of {', '.join(LIBRARIES)}")
    if group_size <= 1 or message_bytes <= 0:
        return 0.0, False
    if kind == OpKind.ALL_REDUCE and group_size * stride <= cluster.gpus_per_node:
        return _all_reduce(message_bytes, group_size, cluster.intra_node, False, prof,
                           cluster.gpus_per_node, library)
    return _group_time(kind, message_bytes, group_size, cluster, prof, stride), False


def _group_time(kind: OpKind, message_bytes: float, group_size: int, cluster: Cluster,
                prof: HardwareProfile, stride: int) -> float:
    """Every collective but an intra-node all-reduce (those: :func:`_all_reduce`)."""
    if kind == OpKind.P2P:
        link, nodes = cluster.link_for_group(2, stride)
        return _flat(kind, message_bytes, 2, link, nodes > 1, prof, cluster.gpus_per_node)
    if group_size * stride <= cluster.gpus_per_node:
        return _flat(kind, message_bytes, group_size, cluster.intra_node, False, prof,
                     cluster.gpus_per_node)
    # Spans nodes: ranks per node g, nodes N.
    per_node = max(1, cluster.gpus_per_node // stride)
    per_node = min(per_node, group_size)
    nodes = -(-group_size // per_node)
    if nodes > cluster.num_nodes:
        raise ConfigError(
            f"a group of {group_size} GPUs needs {nodes} nodes but the cluster has "
            f"{cluster.num_nodes}; add --num-gpus or lower the parallel degree"
        )
    intra, inter = cluster.intra_node, cluster.inter_node
    g = cluster.gpus_per_node
    if kind == OpKind.ALL_REDUCE:
        t = _flat(OpKind.REDUCE_SCATTER, message_bytes, per_node, intra, False, prof, g)
        t += _flat(OpKind.ALL_REDUCE, message_bytes / per_node, nodes, inter, True, prof)
        t += _flat(OpKind.ALL_GATHER, message_bytes, per_node, intra, False, prof, g)
        return t
    if kind in (OpKind.ALL_GATHER, OpKind.REDUCE_SCATTER):
        # across nodes each GPU exchanges its 1/g share with its peers, then within the node
        return (_flat(kind, message_bytes / per_node, nodes, inter, True, prof)
                + _flat(kind, message_bytes, per_node, intra, False, prof, g))
    if kind == OpKind.ALL_TO_ALL:
        # the share of each rank's data bound for other nodes crosses its NIC share
        off_node = message_bytes * (group_size - per_node) / group_size
        on_node = message_bytes * (per_node - 1) / group_size
        t_inter = _link_time(1, off_node, inter, nodes, True, prof)
        t_intra = _link_time(1, on_node, intra, per_node, False, prof, g)
        return max(t_inter, t_intra)
    raise ValueError(kind)


def collective(kind: OpKind, message_bytes: float, group_size: int, cluster: Cluster,
               prof: HardwareProfile, stride: int = 1, name: str | None = None,
               library: str = "auto") -> OpCost:
    """:func:`collective_time` as an :class:`OpCost` record; an all-reduce's shape also says
    whether the engines' custom kernel priced it (``custom``: 1 or 0; the error bars draw its
    factor from that kernel's residuals)."""
    t, custom = _priced(kind, message_bytes, group_size, cluster, prof, stride, library)
    shape = {"message_bytes": message_bytes, "num_gpus": group_size}
    if kind == OpKind.ALL_REDUCE:
        shape["custom"] = float(custom)
    return OpCost(name or kind.value, kind, 0.0, 0.0, 0.0, 0.0, 0.0, t, 0.0, t,
                  Bound.COMMUNICATION, comm_bytes=message_bytes, shape=shape)

