"""Moving new policy weights from the trainer to the samplers, and colocated phase switches.

What one sync costs, by method (`SyncLayout.method`), B = bf16 bytes of the whole model:
- colocated (nccl or ipc): the trainer's FSDP shards are all-gathered across the pool (NVLink
  inside a node, else the network) and copied through HBM into the sampler (CUDA IPC handles:
  the engine reads the gathered tensors in place): one sampler shard B / (tp x pp) at
  min(HBM, link) rate.
- disaggregated nccl (verl fully_async / NeMo-RL collective refit): bucket by bucket, the trainer
  gathers full tensors from its layout (FSDP shard group x TP x PP x EP: (G-1)/G of B reaches
  the sending rank over the trainer's link) and broadcasts them to every sampler GPU, which
  receives the FULL tensors over the slowest link on the path and slices its own part in
  load_weights. Gather and broadcast are pipelined by bucket: max(gather, broadcast).
- nixl (RDMA reads, as checkpoint engines with NIXL/Mooncake do): every sampler GPU reads only
  its shard B / (tp x pp) straight from the trainer ranks holding it, all NICs in parallel: the
  slower of a sampler GPU's inbound shard and a trainer GPU's outbound share (B x replicas /
  trainer GPUs). No gather.
- disk (checkpoint engine on shared storage): the trainer writes B once, each sampler reads its
  shard: (B + B / (tp x pp)) / disk_bytes_per_s.
Every method then pays a fixed latency per bucket, `sync_per_tensor_s` per named tensor
(params.tensor_count: a 235B MoE has ~37k), and disaggregated methods the engine's load_weights:
the shard written into the engine layout at load_weights_bytes_eff (None: decode_bw_eff) of HBM.
Colocated switch: the sampler's weights are offloaded to host memory and reloaded (vLLM sleep
level 1) over the host link each step, plus a fixed wake/sleep cost. Disaggregated: 0.
Limits: one sender rank (no multi-sender broadcast trees), no overlap of sync with generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlvr_sim.cost.collectives import link_for
from rlvr_sim.cost.params import dtype_bytes, param_counts, tensor_count, weight_bytes
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec


@dataclass(frozen=True)
class SyncLayout:
    placement: str = "colocated"   # colocated | disaggregated
    method: str = "nccl"           # nccl | nixl | ipc | disk
    bucket_bytes: float = 512 * 2**20
    sampler_gpus: int = 8
    sampler_tp: int = 1
    sampler_pp: int = 1
    trainer_gpus: int = 8
    gpus_per_node: int = 8
    dtype: str = "bf16"
    trainer_tp: int = 1
    trainer_pp: int = 1
    trainer_ep: int = 1
    trainer_shard_group: int = 0   # FSDP data-parallel ranks per shard group (0: 1, no FSDP)


@dataclass(frozen=True)
class WeightSyncBreakdown:
    bytes_total: float
    bytes_per_receiver: float
    buckets: int
    link: str
    transfer_s: float
    latency_s: float
    gather_s: float = 0.0          # trainer-side gather (within transfer_s when pipelined)
    tensors: int = 0
    per_tensor_s: float = 0.0      # tensors x sync_per_tensor_s
    load_s: float = 0.0            # engine load_weights

    @property
    def total_s(self) -> float:
        return self.transfer_s + self.latency_s + self.per_tensor_s + self.load_s


def weight_sync(m: ModelSpec, hw: HardwareProfile, lay: SyncLayout) -> WeightSyncBreakdown:
    """Seconds to move one new policy version to all sampler replicas (see module docstring)."""
    eff, ds = hw.efficiency, hw.datasheet
    total = weight_bytes(m, lay.dtype)
    shard = total / (lay.sampler_tp * lay.sampler_pp)
    buckets = max(math.ceil(total / lay.bucket_bytes), 1)
    tensors = tensor_count(m)
    per_tensor = tensors * eff.sync_per_tensor_s
    load_eff = eff.load_weights_bytes_eff or eff.decode_bw_eff
    load = shard / (ds.hbm_bytes_per_s * load_eff)
    gather = 0.0
    if lay.placement == "colocated":
        # FSDP shards are all-gathered across the pool's GPUs, then copied into the sampler
        rate = ds.hbm_bytes_per_s * eff.decode_bw_eff
        link_name = "hbm"
        if lay.sampler_gpus > 1:
            link_name, link = link_for(lay.sampler_gpus, lay.gpus_per_node, hw)
            rate = min(rate, link * eff.link_eff)
        transfer = shard / rate
        received = shard
        load = 0.0                    # the copy above is the load
    elif lay.method == "disk":
        link_name = "disk"
        transfer = total / eff.disk_bytes_per_s + shard / eff.disk_bytes_per_s
        received = shard
    elif lay.method == "nixl":
        link_name, link = link_for(lay.sampler_gpus + lay.trainer_gpus, lay.gpus_per_node, hw)
        replicas = max(lay.sampler_gpus // (lay.sampler_tp * lay.sampler_pp), 1)
        outbound = total * replicas / max(lay.trainer_gpus, 1)
        transfer = max(shard, outbound) / (link * eff.link_eff)
        received = shard
    else:   # nccl (ipc needs colocated placement; scenario checks enforce it)
        link_name, link = link_for(lay.sampler_gpus + lay.trainer_gpus, lay.gpus_per_node, hw)
        broadcast = total / (link * eff.link_eff)
        s = max(lay.trainer_shard_group, 1)
        pieces = min(lay.trainer_gpus, lay.trainer_tp * lay.trainer_pp * lay.trainer_ep * s)
        if pieces > 1:
            _, t_link = link_for(lay.trainer_gpus, lay.gpus_per_node, hw)
            gather = (pieces - 1) / pieces * total / (t_link * eff.link_eff)
        transfer = max(broadcast, gather)
        received = total
    return WeightSyncBreakdown(total, received, buckets, link_name, transfer,
                               buckets * eff.bucket_latency_s, gather, tensors, per_tensor, load)


def legacy_shard_sync_s(m: ModelSpec, hw: HardwareProfile, lay: SyncLayout) -> float:
    """The earlier model (each sampler GPU receives only its shard over the slowest link, no
    gather, no per-tensor or load cost), kept to report the mechanism's effect side by side."""
    eff, ds = hw.efficiency, hw.datasheet
    total = weight_bytes(m, lay.dtype)
    shard = total / (lay.sampler_tp * lay.sampler_pp)
    _, link = link_for(lay.sampler_gpus + lay.trainer_gpus, lay.gpus_per_node, hw)
    return shard / (link * eff.link_eff) + max(math.ceil(total / lay.bucket_bytes), 1) \
        * eff.bucket_latency_s


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


__all__ = ["SyncLayout", "WeightSyncBreakdown", "weight_sync", "legacy_shard_sync_s", "switch_s",
           "dtype_bytes", "param_counts"]
