"""Moving new policy weights from the trainer to the samplers, and colocated phase switches.

Weight sync sends the bf16 weights in buckets of `bucket_bytes`; each sampler GPU receives its
shard, weights / (tp x pp) of its replica, and replicas receive in parallel (pipelined broadcast),
so the time is one shard over the slowest link on the path plus a fixed latency per bucket:
- colocated: the weights are already in the pool; the trainer's FSDP shards are all-gathered
  (NVLink inside a node, else the network) and copied through HBM into the sampler.
- disaggregated, nccl: NVLink when trainer + sampler GPUs fit in one node, else the network.
- disaggregated, disk: the trainer writes a checkpoint and every sampler reads it back.
Colocated switch: the sampler's weights are offloaded to host memory and reloaded (vLLM sleep
level 1) over the host link each step, plus a fixed wake/sleep cost. Disaggregated: 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlvr_sim.cost.params import weight_bytes
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec


@dataclass(frozen=True)
class SyncLayout:
    placement: str = "colocated"   # colocated | disaggregated
    method: str = "nccl"           # nccl | disk
    bucket_bytes: float = 512 * 2**20
    sampler_gpus: int = 8
    sampler_tp: int = 1
    sampler_pp: int = 1
    trainer_gpus: int = 8
    gpus_per_node: int = 8
    dtype: str = "bf16"


@dataclass(frozen=True)
class WeightSyncBreakdown:
    bytes_total: float
    bytes_per_receiver: float
    buckets: int
    link: str
    transfer_s: float
    latency_s: float

    @property
    def total_s(self) -> float:
        return self.transfer_s + self.latency_s


def weight_sync(m: ModelSpec, hw: HardwareProfile, lay: SyncLayout) -> WeightSyncBreakdown:
    eff, ds = hw.efficiency, hw.datasheet
    total = weight_bytes(m, lay.dtype)
    shard = total / (lay.sampler_tp * lay.sampler_pp)
    buckets = max(math.ceil(total / lay.bucket_bytes), 1)
    if lay.placement == "colocated":
        # FSDP shards are all-gathered across the pool's GPUs, then copied into the sampler
        rate = ds.hbm_bytes_per_s * eff.decode_bw_eff
        link_name = "hbm"
        if lay.sampler_gpus > 1:
            link = ds.intra_node_bytes_per_s if lay.sampler_gpus <= lay.gpus_per_node \
                else ds.inter_node_bytes_per_s
            rate = min(rate, link * eff.link_eff)
            link_name = "nvlink" if lay.sampler_gpus <= lay.gpus_per_node else "network"
        transfer = shard / rate
    elif lay.method == "disk":
        link_name = "disk"
        transfer = total / eff.disk_bytes_per_s + shard / eff.disk_bytes_per_s
    else:
        one_node = lay.sampler_gpus + lay.trainer_gpus <= lay.gpus_per_node
        link_name = "nvlink" if one_node else "network"
        link = ds.intra_node_bytes_per_s if one_node else ds.inter_node_bytes_per_s
        transfer = shard / (link * eff.link_eff)
    return WeightSyncBreakdown(total, shard, buckets, link_name, transfer,
                               buckets * eff.bucket_latency_s)


def switch_s(m: ModelSpec, hw: HardwareProfile, placement: str, tp: int, pp: int,
             weight_dtype: str = "bf16", offload: bool = True) -> float:
    """Per-step cost of alternating generate and train on the same GPUs (0 if disaggregated).
    `offload=False`: both copies stay resident, only the fixed wake/sleep cost remains."""
    if placement != "colocated":
        return 0.0
    if not offload:
        return hw.efficiency.switch_fixed_s
    per_gpu = weight_bytes(m, weight_dtype) / (tp * pp)
    return 2.0 * per_gpu / hw.datasheet.host_bytes_per_s + hw.efficiency.switch_fixed_s

