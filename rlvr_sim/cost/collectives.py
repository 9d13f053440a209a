"""Collective communication times: ring all-reduce, all-gather / reduce-scatter, all-to-all.

Each function decides the seconds of one collective of `bytes_` per rank over `ranks` ranks on
one link (bytes/s per GPU, one direction), with the profile's achieved fraction and a fixed
latency. `link_for(group_gpus, gpus_per_node, hw)` picks the link a group of GPUs talks over:
NVLink when the group fits in one node, else the network (the slowest hop decides a ring or an
all-to-all that crosses nodes). Limits: no hierarchical (two-level) algorithms, no contention
between concurrent collectives.
"""

from __future__ import annotations

from rlvr_sim.hardware import HardwareProfile


def link_for(group_gpus: int, gpus_per_node: int, hw: HardwareProfile) -> tuple[str, float]:
    """(name, bytes/s per GPU) of the link a group of `group_gpus` consecutive GPUs uses."""
    ds = hw.datasheet
    if group_gpus <= gpus_per_node:
        return "nvlink", ds.intra_node_bytes_per_s
    return "network", ds.inter_node_bytes_per_s


def allreduce_s(bytes_: float, ranks: int, link_bytes_per_s: float, hw: HardwareProfile) -> float:
    """Ring all-reduce: 2 (n-1)/n x bytes over the link, plus a fixed latency."""
    if ranks <= 1:
        return 0.0
    eff = hw.efficiency
    return (2 * (ranks - 1) / ranks * bytes_ / (link_bytes_per_s * eff.link_eff)
            + eff.collective_latency_s)


def allgather_s(bytes_full: float, ranks: int, link_bytes_per_s: float,
                hw: HardwareProfile) -> float:
    """Ring all-gather (or reduce-scatter) of a tensor of `bytes_full` split over `ranks`:
    (n-1)/n x bytes_full over the link, plus a fixed latency."""
    if ranks <= 1:
        return 0.0
    eff = hw.efficiency
    return ((ranks - 1) / ranks * bytes_full / (link_bytes_per_s * eff.link_eff)
            + eff.collective_latency_s)


def all_to_all_s(bytes_per_rank: float, ranks: int, link_bytes_per_s: float,
                 hw: HardwareProfile) -> float:
    """All-to-all where each rank holds `bytes_per_rank` spread evenly over all ranks: (n-1)/n of
    it leaves the GPU, at all_to_all_eff (None: link_eff) of the link, plus a fixed latency."""
    if ranks <= 1:
        return 0.0
    eff = hw.efficiency
    a2a = eff.all_to_all_eff if eff.all_to_all_eff is not None else eff.link_eff
    return ((ranks - 1) / ranks * bytes_per_rank / (link_bytes_per_s * a2a)
            + eff.collective_latency_s)
