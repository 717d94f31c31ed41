"""MoE dispatch / combine over a large expert-parallel group, as DeepEP's kernels move it.

An attention-DP rank holds ``T`` tokens (``T / tp`` per TP rank). Each token goes to its
``k`` experts, spread over ``ep`` ranks on ``M = ep / g`` nodes (``g`` EP ranks per node).
Bytes per token one rank sends (``b``: bytes of one token's hidden vector in the message
format: dispatch FP8 = ``h (1 + 4/128)`` (a float32 scale per 128 values) when activations are
8-bit, else ``2h``; combine is BF16, ``2h``):

- **normal kernels** (prefill; NVLink forwarding): a token crosses the scale-out network once
  per *remote node* it reaches and NVLink once per *GPU* it reaches other than its own:
  ``inter = b (M - 1) / M x nodes_hit``, ``intra = b x (ranks_hit - ranks_hit / ep)``, with
  ``nodes_hit = expected_groups_hit(E, k, M)``, ``ranks_hit = expected_groups_hit(E, k, ep)``
  (the ``(M - 1)/M`` and ``1/ep`` remove the own node's / own GPU's share, by symmetry);
- **low-latency kernels** (decode; pure RDMA point-to-point, no deduplication): every
  ``(token, expert)`` copy is sent: ``k b`` per token, the ``(g - 1)/ep`` share for peers in
  the node over NVLink and the ``(ep - g)/ep`` share over the network (the own GPU's ``1/ep``
  stays local).

``time = latency + imbalance x max(intra / (B_intra e_intra), inter / (B_inter e_inter))``: the
two links run concurrently; the most loaded rank receives ``imbalance`` times the balanced
share (``expert_routing.load_imbalance``). The achieved fractions ``e`` and the latency are
DeepEP's published H800 figures (README of deepseek-ai/DeepEP: normal kernels 153-158 GB/s of
H800's ~160 GB/s NVLink and 43-58 GB/s of a 50 GB/s CX7 NIC; low-latency kernels at 128 tokens
x 7168 hidden, top-8: 98 GB/s dispatch at 8 ranks, 39-46 GB/s at 32-256 ranks). They are
fractions of the cluster's own links, so a faster link is never slower.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.catalog.cluster import Cluster
from llmsim.catalog.parallel import EPKernel, ParallelSpec
from llmsim.costmodel.expert_routing import expected_groups_hit
from llmsim.costmodel.ops import Bound, OpCost, OpKind

#: achieved fraction of the link's per-GPU bandwidth and fixed latency per kernel call
#: (DeepEP README, H800: NVLink ~160 GB/s usable, CX7 400 Gb/s = 50 GB/s)
_EFFICIENCY = {
    # normal: ~155 of 160 GB/s NVLink; ~47 of 50 GB/s RDMA (mean of the 43-58 GB/s rows)
    EPKernel.NORMAL: (155 / 160, 47 / 50, 20e-6),
    # low latency: 98 GB/s at 8 ranks (NVLink share) and ~40 GB/s at 128-256 ranks (RDMA)
    EPKernel.LOW_LATENCY: (98 / 160, 40 / 50, 10e-6),
}
_SCALE_GROUP = 128  # DeepEP's FP8 dispatch: one float32 scale per 128 values


@dataclass(frozen=True)
class EPVolumes:
    """Bytes one EP rank sends per token over NVLink (``intra``) and the network (``inter``)."""

    intra_bytes_per_token: float
    inter_bytes_per_token: float


def token_bytes(hidden_size: int, fp8: bool) -> float:
    """Bytes of one token's hidden vector in the message: FP8 with scales, else BF16."""
    return hidden_size * (1.0 + 4.0 / _SCALE_GROUP) if fp8 else 2.0 * hidden_size


def ranks_per_node(plan: ParallelSpec, cluster: Cluster) -> int:
    """EP ranks in one node (ranks packed node by node)."""
    return max(1, min(plan.ep, cluster.gpus_per_node))


def ep_volumes(kernel: EPKernel, num_experts: int, top_k: int, ep: int, per_node: int,
               bytes_per_token: float) -> EPVolumes:
    """Bytes per token per rank of one dispatch (or combine) pass; see the module docstring."""
    if ep <= 1:
        return EPVolumes(0.0, 0.0)
    nodes = max(1, ep // per_node)
    if kernel == EPKernel.LOW_LATENCY:
        copies = top_k * bytes_per_token
        return EPVolumes(copies * (per_node - 1) / ep, copies * (ep - per_node) / ep)
    nodes_hit = expected_groups_hit(num_experts, top_k, nodes)
    ranks_hit = expected_groups_hit(num_experts, top_k, ep)
    inter = bytes_per_token * nodes_hit * (nodes - 1) / nodes if nodes > 1 else 0.0
    return EPVolumes(bytes_per_token * ranks_hit * (1.0 - 1.0 / ep), inter)


def ep_transfer(kernel: EPKernel, tokens: float, volumes: EPVolumes, cluster: Cluster,
                imbalance: float, name: str) -> OpCost:
    """One dispatch or combine of ``tokens`` per rank as an :class:`OpCost` record."""
    e_intra, e_inter, latency = _EFFICIENCY[kernel]
    intra = tokens * volumes.intra_bytes_per_token * imbalance
    inter = tokens * volumes.inter_bytes_per_token * imbalance
    t_intra = intra / (cluster.intra_node.bandwidth_bytes_per_s * e_intra)
    t_inter = inter / (cluster.inter_node.bandwidth_bytes_per_s * e_inter) if inter else 0.0
    t = latency + max(t_intra, t_inter) if tokens > 0 else 0.0
    return OpCost(name, OpKind.ALL_TO_ALL, 0.0, 0.0, 0.0, 0.0, 0.0, t, 0.0, t,
                  Bound.COMMUNICATION, comm_bytes=intra + inter,
                  shape={"message_bytes": intra + inter, "intra_bytes": intra,
                         "inter_bytes": inter, "imbalance": imbalance})
