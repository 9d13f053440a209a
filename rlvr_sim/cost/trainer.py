"""Trainer timing of one RL step over the whole trainer pool, as FSDP/Megatron-style trainers run it.

Layout: gpus = dp x tp x pp x cp; experts split over `ep` ranks; FSDP shards the parameters over a
group of `fsdp_shard_size` data-parallel ranks (hybrid shard: groups replicate and all-reduce
their gradients); None shards over all dp ranks.

FLOPs (T tokens of the batch, x pad_factor when micro-batches are padded; s = mean sequence length;
dense / expert = active non-expert / routed-expert params; d = attention width):
    forward   = 2 (dense + expert) T + 4 L d s T
    fwd + bwd = 3 x forward            (+ one more forward with activation recompute)
    ref / old log-prob forwards: one forward each over the batch
Compute seconds of a pass = [dense flops / peak_lin + expert flops x moe_imbalance / (peak_lin x
grouped_gemm_eff) + attention flops / peak_bf16] / (gpus x MFU(t)) / (1 - PP bubble) x imbalance
- peak_lin is the fp8 rate with `fp8` training (linear layers only; attention stays bf16);
- MFU(t) = train_mfu x t / (t + train_mfu_half_tokens) (None: flat train_mfu), t = tokens of one
  micro-batch per GPU = micro-batch tokens of a data-parallel rank / (tp x cp): small work per
  GPU runs at a lower fraction of peak, so more trainer GPUs are not a free 1/N;
- imbalance = busiest data-parallel rank / mean (cost.balance: packing vs padding);
- moe_imbalance applies only with ep > 1 (the busiest expert rank decides).
Overlapped communication (max with compute, as FSDP prefetch does), per mini-batch: FSDP
all-gather forward + all-gather backward + reduce-scatter of (S-1)/S of the rank's weights over the
shard group's link, hybrid-shard gradient all-reduce across the S-groups, plain DP's gradient
all-reduce, parameter offload's host traffic. Exposed (serial) communication: TP all-reduces (2
per layer forward), Ulysses context-parallel all-to-alls (4 per layer forward: q, k, v, out) and
expert-parallel dispatch + combine (2 per MoE layer forward, of the tokens/tp a GPU holds under
sequence parallelism x top-k hidden vectors); a backward pass counts 2 forwards
of traffic (3 with recompute). A group's link is NVLink when it fits in a node, else the network.
Optimizer per mini-batch: parameters per GPU x optimizer_s_per_param + train_overhead_s; with
optimizer offload, CPU Adam (cpu_adam_s_per_param) plus 4 bytes per parameter over the host link
(bf16 grads down, bf16 params up). Each pass pays train_pass_overhead_s and layer_overhead_s per
layer (x3 for forward+backward); each step pays train_step_overhead_s once.
Limits: no 1F1B interleaving detail beyond the bubble, no overlap of exposed collectives with
compute, attention FLOPs use the mean sequence length (not sum of squares).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlvr_sim.cost.balance import Balance
from rlvr_sim.cost.collectives import all_to_all_s, allreduce_s, link_for
from rlvr_sim.cost.params import ParamCounts, dtype_bytes, param_counts
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
    cp: int = 1                              # context (sequence) parallel degree, Ulysses
    ep: int = 1                              # expert parallel degree
    fsdp_shard_size: int | None = None       # dp ranks per FSDP shard group (None: all)
    micro_batch_tokens: int | None = None    # token budget of one micro-batch per dp rank
    fp8: bool = False                        # fp8 linear layers (Transformer Engine style)
    offload_optimizer: bool = False          # Adam states on the host, CPU Adam
    offload_params: bool = False             # parameters streamed from the host each pass
    balance: Balance = field(default_factory=Balance)

    @property
    def dp(self) -> int:
        return max(self.gpus // (self.tp * self.pp * self.cp), 1)

    @property
    def shard_group(self) -> int:
        """Data-parallel ranks one FSDP shard group spans (1 without FSDP)."""
        if not self.fsdp:
            return 1
        s = self.fsdp_shard_size or self.dp
        return max(min(s, self.dp), 1)


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
    fixed_s: float = 0.0              # train_step_overhead_s
    mfu: float = 0.0                  # MFU the passes ran at (after the micro-batch curve)
    exposed_comm_s: float = 0.0       # TP + CP + EP collectives on the critical path, all passes
    ep_all_to_all_s: float = 0.0      # the expert-parallel part of exposed_comm_s
    overlapped_comm_s: float = 0.0    # FSDP/DP/offload traffic (hidden under compute when smaller)

    @property
    def total_s(self) -> float:
        return (self.ref_logprob_s + self.old_logprob_s + self.forward_backward_s
                + self.optimizer_s + self.fixed_s)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.total_s if self.total_s > 0 else 0.0


def train_mfu(hw: HardwareProfile, tokens_per_gpu: float) -> float:
    """MFU at `tokens_per_gpu` tokens of one micro-batch per GPU (the efficiency contract)."""
    eff = hw.efficiency
    half = eff.train_mfu_half_tokens
    if half is None:
        return eff.train_mfu
    t = max(float(tokens_per_gpu), 0.0)
    return eff.train_mfu * t / (t + half) if t > 0 else eff.train_mfu * 1e-9


def params_per_gpu(counts: ParamCounts, shape: TrainerShape) -> float:
    """Parameters whose states one GPU holds: non-expert / (tp pp S), experts / (tp pp max(S, ep))
    with FSDP (S = shard group), experts / (tp pp ep) without."""
    base = shape.tp * shape.pp
    s = shape.shard_group
    expert_shards = base * (max(s, shape.ep) if shape.fsdp else shape.ep)
    return (counts.total - counts.expert) / (base * s) + counts.expert / expert_shards


def _rank_weight_bytes(counts: ParamCounts, shape: TrainerShape) -> float:
    """bf16 weight bytes of one data-parallel rank's replica slice (before FSDP sharding)."""
    b = dtype_bytes(shape.dtype)
    base = shape.tp * shape.pp
    return b * ((counts.total - counts.expert) / base + counts.expert / (base * shape.ep))


@dataclass(frozen=True)
class _Pass:
    compute_s: float
    exposed_s: float
    ep_s: float


def _compute_pass(m: ModelSpec, hw: HardwareProfile, shape: TrainerShape, counts: ParamCounts,
                  tokens_c: float, seq_c: float, mfu: float, micro: float,
                  forwards: int) -> _Pass:
    """`forwards` forward-equivalents (1: a forward; 3 or 4: forward + backward) over `tokens_c`
    computed tokens: compute seconds and exposed collective seconds."""
    ds, eff = hw.datasheet, hw.efficiency
    dense = counts.active - counts.expert_active
    lin_peak = ds.peak_fp8_flop_per_s if shape.fp8 else ds.peak_bf16_flop_per_s
    gge = eff.grouped_gemm_eff or 1.0
    moe_imb = (eff.moe_imbalance or 1.0) if shape.ep > 1 else 1.0
    attn_flop = 4.0 * m.num_hidden_layers * m.q_dim * seq_c * tokens_c
    seconds_at_peak = (2.0 * dense * tokens_c / lin_peak
                       + 2.0 * counts.expert_active * tokens_c * moe_imb / (lin_peak * gge)
                       + attn_flop / ds.peak_bf16_flop_per_s)
    bubble = (shape.pp - 1) / (micro + shape.pp - 1) if shape.pp > 1 else 0.0
    compute_s = (forwards * seconds_at_peak / (shape.gpus * mfu) / (1.0 - bubble)
                 * shape.balance.imbalance)
    # exposed collectives: a backward moves as much as a forward; recompute adds a forward
    traffic = 1 if forwards == 1 else forwards - 1
    layers = m.num_hidden_layers / shape.pp
    tokens_gpu = tokens_c / (shape.dp * shape.cp)      # tokens one GPU's sequence shard holds
    h2 = m.hidden_size * 2.0
    gpn = shape.gpus_per_node
    tp_s = 0.0
    if shape.tp > 1:
        _, tp_link = link_for(shape.tp, gpn, hw)
        tp_s = traffic * 2 * layers * allreduce_s(tokens_gpu / shape.pp * h2, shape.tp, tp_link, hw)
    cp_s = 0.0
    if shape.cp > 1:
        _, cp_link = link_for(shape.cp * shape.tp, gpn, hw)
        kv_dim = m.kv_heads * int(m.head_dim or 0) if not m.is_mla else m.q_dim
        qkvo = tokens_gpu / shape.tp * (2 * m.q_dim + 2 * kv_dim) * 2.0
        cp_s = traffic * layers * (all_to_all_s(qkvo, shape.cp, cp_link, hw)
                                   + 3 * hw.efficiency.collective_latency_s)
    ep_s = 0.0
    if shape.ep > 1 and m.is_moe:
        _, ep_link = link_for(shape.ep, gpn, hw)
        moe_layers = m.moe_layers / shape.pp
        # with TP, sequence parallelism splits the tokens over the TP ranks before dispatch
        dispatch = tokens_gpu / shape.tp * m.num_experts_per_tok * h2 * moe_imb
        ep_s = traffic * moe_layers * 2 * all_to_all_s(dispatch, shape.ep, ep_link, hw)
    return _Pass(compute_s, tp_s + cp_s + ep_s, ep_s)


def train_step(m: ModelSpec, hw: HardwareProfile, shape: TrainerShape, sequences: int,
               prompt_tokens: int, output_tokens: int) -> TrainBreakdown:
    """One RL step. `prompt_tokens` and `output_tokens` are sums over the `sequences` trained
    sequences (each sample carries its prompt)."""
    counts = param_counts(m)
    eff, ds = hw.efficiency, hw.datasheet
    tokens = max(int(prompt_tokens) + int(output_tokens), 0)
    bal = shape.balance
    tokens_c = tokens * bal.pad_factor
    seq_c = tokens_c / max(sequences, 1)
    mb = shape.mini_batches
    dp = shape.dp
    # tokens of one micro-batch on one dp rank, then per GPU
    rank_mb_tokens = tokens_c / max(mb * dp, 1)
    if bal.micro_batch_tokens > 0:
        rank_mb_tokens = bal.micro_batch_tokens
    if shape.micro_batch_tokens:
        rank_mb_tokens = min(rank_mb_tokens, shape.micro_batch_tokens)
    mfu = train_mfu(hw, rank_mb_tokens / (shape.tp * shape.cp))
    micro = max(sequences / max(mb * dp, 1), 1.0)
    if shape.micro_batch_tokens:
        micro = max(tokens_c / max(mb * dp, 1) / shape.micro_batch_tokens, 1.0)
    forwards_fb = 3 + (1 if shape.recompute_activations else 0)
    fb = _compute_pass(m, hw, shape, counts, tokens_c, seq_c, mfu, micro, forwards_fb)
    fw = _compute_pass(m, hw, shape, counts, tokens_c, seq_c, mfu, micro * mb, 1)
    # overlapped traffic: FSDP / DP gradients, hybrid-shard replica all-reduce, param offload
    rank_bytes = _rank_weight_bytes(counts, shape)
    group = shape.tp * shape.pp * shape.cp
    s = shape.shard_group
    if shape.fsdp:
        _, link = link_for(s * group, shape.gpus_per_node, hw)
        frac = (s - 1) / s
        fb_traffic_s = mb * 3.0 * frac * rank_bytes / (link * eff.link_eff)
        fw_traffic_s = frac * rank_bytes / (link * eff.link_eff)
        replicas = dp // s
        if replicas > 1:
            _, rlink = link_for(shape.gpus, shape.gpus_per_node, hw)
            fb_traffic_s += mb * allreduce_s(rank_bytes / s, replicas, rlink, hw)
    else:
        _, link = link_for(shape.gpus, shape.gpus_per_node, hw)
        fb_traffic_s = mb * 2.0 * (dp - 1) / dp * rank_bytes / (link * eff.link_eff)
        fw_traffic_s = 0.0
    ppg = params_per_gpu(counts, shape)
    if shape.offload_params:
        fb_traffic_s += mb * 3 * 2.0 * ppg / ds.host_bytes_per_s
        fw_traffic_s += 2.0 * ppg / ds.host_bytes_per_s
    fb_s = max(fb.compute_s, fb_traffic_s) + fb.exposed_s
    fw_s = max(fw.compute_s, fw_traffic_s) + fw.exposed_s
    bound = "compute" if fb.compute_s >= fb_traffic_s else "communication"
    layers_per_gpu = m.num_hidden_layers / shape.pp
    fb_s += mb * (eff.train_pass_overhead_s + 3 * layers_per_gpu * eff.layer_overhead_s)
    fw_s += eff.train_pass_overhead_s + layers_per_gpu * eff.layer_overhead_s
    if shape.offload_optimizer:
        cpu_adam = eff.cpu_adam_s_per_param if eff.cpu_adam_s_per_param is not None else \
            32.0 / ds.host_bytes_per_s
        per_mb = ppg * cpu_adam + 4.0 * ppg / ds.host_bytes_per_s
    else:
        per_mb = ppg * hw.optimizer_s_per_param
    opt_s = mb * (per_mb + eff.train_overhead_s)
    n_fwd = int(shape.reference_model) + int(shape.old_logprob)
    lin_fwd = 2.0 * counts.active * tokens_c + 4.0 * m.num_hidden_layers * m.q_dim * seq_c * tokens_c
    flop = lin_fwd * (forwards_fb + n_fwd)
    return TrainBreakdown(
        ref_logprob_s=fw_s if shape.reference_model and tokens else 0.0,
        old_logprob_s=fw_s if shape.old_logprob and tokens else 0.0,
        forward_backward_s=fb_s if tokens else 0.0,
        optimizer_s=opt_s,
        tokens=tokens,
        flop=flop,
        bound=bound,
        fixed_s=eff.train_step_overhead_s,
        mfu=mfu,
        exposed_comm_s=(fb.exposed_s + n_fwd * fw.exposed_s) if tokens else 0.0,
        ep_all_to_all_s=(fb.ep_s + n_fwd * fw.ep_s) if tokens else 0.0,
        overlapped_comm_s=fb_traffic_s + n_fwd * fw_traffic_s,
    )
