"""Trainer timing of one RL step over the whole trainer pool.

FLOPs (T tokens of the batch, s = mean sequence length, A = active params, d = attention width):
    forward       = 2 A T + 4 L d s T
    fwd + bwd     = 6 A T + 12 L d s T   (+ one more forward with activation recompute)
    ref / old log-prob forwards: one forward each over the batch
Time of a pass = max(FLOPs / (gpus x peak_bf16 x train_mfu) / (1 - PP bubble),
                     FSDP/DP traffic / link)  + TP all-reduces (4 per layer fwd+bwd, 2 fwd).
FSDP moves 3 x (dp-1)/dp of the sharded weights per mini-batch (all-gather forward and backward,
reduce-scatter grads); plain DP all-reduces the grads. The link is NVLink when the pool fits in one
node, else the network. Optimizer: per mini-batch, parameters per GPU x optimizer_s_per_param +
train_overhead_s. Each pass (a mini-batch forward+backward, a log-prob forward) also pays
train_pass_overhead_s, the dispatch floor MFU cannot express, and layer_overhead_s per layer
(x3 for forward+backward). MoE: active params for FLOPs, total params for memory and traffic; expert-parallel
all-to-all is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvr_sim.cost.params import dtype_bytes, param_counts
from rlvr_sim.cost.sampler import allreduce_s
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec


@dataclass(frozen=True)
class TrainerShape:
    gpus: int = 8
    tp: int = 1
    pp: int = 1
    fsdp: bool = True
    mini_batches: int = 4
    reference_model: bool = True
    old_logprob: bool = True
    recompute_activations: bool = True
    dtype: str = "bf16"
    gpus_per_node: int = 8

    @property
    def dp(self) -> int:
        return max(self.gpus // (self.tp * self.pp), 1)


@dataclass(frozen=True)
class TrainBreakdown:
    """Seconds of one RL step on the trainer pool (all mini-batches)."""

    ref_logprob_s: float
    old_logprob_s: float
    forward_backward_s: float
    optimizer_s: float
    tokens: int
    flop: float
    bound: str  # "compute" | "communication"

    @property
    def total_s(self) -> float:
        return self.ref_logprob_s + self.old_logprob_s + self.forward_backward_s + self.optimizer_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s if self.total_s > 0 else 0.0


def _link_bytes_per_s(hw: HardwareProfile, shape: TrainerShape) -> float:
    ds = hw.datasheet
    link = ds.intra_node_bytes_per_s if shape.gpus <= shape.gpus_per_node else ds.inter_node_bytes_per_s
    return link * hw.efficiency.link_eff


def _pass_s(flop: float, shard_traffic_bytes: float, tp_allreduces: int, tokens: float,
            m: ModelSpec, hw: HardwareProfile, shape: TrainerShape, micro_batches: float) -> tuple[float, str]:
    """Seconds of one pass over `tokens` tokens; returns (seconds, bound)."""
    bubble = (shape.pp - 1) / (micro_batches + shape.pp - 1) if shape.pp > 1 else 0.0
    peak = hw.datasheet.peak_bf16_flop_per_s * hw.efficiency.train_mfu
    compute_s = flop / (shape.gpus * peak) / (1.0 - bubble)
    comm_s = shard_traffic_bytes / _link_bytes_per_s(hw, shape)
    tokens_per_gpu = tokens / max(shape.dp * shape.pp, 1)
    tp_s = tp_allreduces * m.num_hidden_layers / shape.pp * allreduce_s(
        tokens_per_gpu * m.hidden_size * 2.0, shape.tp, hw.datasheet.intra_node_bytes_per_s, hw)
    bound = "compute" if compute_s >= comm_s else "communication"
    return max(compute_s, comm_s) + tp_s, bound


def train_step(m: ModelSpec, hw: HardwareProfile, shape: TrainerShape, sequences: int,
               prompt_tokens: int, output_tokens: int) -> TrainBreakdown:
    """One RL step. `prompt_tokens` and `output_tokens` are sums over the `sequences` trained
    sequences (each sample carries its prompt)."""
    counts = param_counts(m)
    tokens = max(int(prompt_tokens) + int(output_tokens), 0)
    seq = tokens / max(sequences, 1)
    d, layers = m.q_dim, m.num_hidden_layers
    fwd = 2.0 * counts.active * tokens + 4.0 * layers * d * seq * tokens
    fb = 3.0 * fwd + (fwd if shape.recompute_activations else 0.0)
    shard_bytes = counts.total * dtype_bytes(shape.dtype) / (shape.tp * shape.pp)
    dp = shape.dp
    frac = (dp - 1) / dp
    if shape.fsdp:
        fb_traffic = shape.mini_batches * 3.0 * frac * shard_bytes
        fwd_traffic = frac * shard_bytes
    else:
        fb_traffic = shape.mini_batches * 2.0 * frac * shard_bytes  # grad all-reduce
        fwd_traffic = 0.0
    micro = max(sequences / max(shape.mini_batches * dp, 1), 1.0)
    fb_s, bound = _pass_s(fb, fb_traffic, 4, tokens, m, hw, shape, micro)
    fwd_s, _ = _pass_s(fwd, fwd_traffic, 2, tokens, m, hw, shape, micro * shape.mini_batches)
    eff = hw.efficiency
    layers_per_gpu = m.num_hidden_layers / shape.pp
    fb_s += shape.mini_batches * (eff.train_pass_overhead_s + 3 * layers_per_gpu * eff.layer_overhead_s)
    fwd_s += eff.train_pass_overhead_s + layers_per_gpu * eff.layer_overhead_s
    shards = shape.tp * shape.pp * (dp if shape.fsdp else 1)
    opt_s = shape.mini_batches * (counts.total / shards * hw.optimizer_s_per_param
                                  + hw.efficiency.train_overhead_s)
    return TrainBreakdown(
        ref_logprob_s=fwd_s if shape.reference_model and tokens else 0.0,
        old_logprob_s=fwd_s if shape.old_logprob and tokens else 0.0,
        forward_backward_s=fb_s if tokens else 0.0,
        optimizer_s=opt_s,
        tokens=tokens,
        flop=fb + fwd * (int(shape.reference_model) + int(shape.old_logprob)),
        bound=bound,
    )
