"""What the cost model predicts for one public-measurement row under a hardware profile.

Each function inverts nothing itself: it runs the simulator's own cost functions
(`rlvr_sim.cost.sampler`, `rlvr_sim.cost.trainer`, `rlvr_sim.cost.memory`) on the row's setup, so
that fitting efficiencies to make these predictions match the measurements fits the same formulas
the simulator uses. Every function returns SECONDS (per token, per collective, per GEMM) so that
`calibration.lsq.fit_positive` fits all kinds in relative (log) terms.

- training row: seconds per token per GPU of one optimizer step over the global batch
  (`train_step` with one mini-batch, no reference / old-log-prob passes). The MFU-vs-work curve of
  the contract, MFU(t) = train_mfu x t / (t + train_mfu_half_tokens) with t = tokens per GPU per
  micro-batch, and the MoE grouped-GEMM factor are applied here as an effective flat MFU, which is
  exactly what a cost model implementing the contract computes for a uniform batch.
- decode row (offline max-load throughput, fixed ISL/OSL): B concurrent requests, B = what the KV
  pool holds (`sampler_memory_plan` at 0.95 of HBM, capped at the largest CUDA-graph batch 8192),
  each cycle = chunked prefill of B x ISL tokens + `decode_span_s` of OSL iterations; seconds per
  output token = cycle / (B x OSL).
- gemm row (one layer's GEMMs, operator profile): the sampler's roofline, compute at decode_mfu
  below 512 tokens (decode batches) and prefill_mfu from 512 (prefill chunks), weights at
  decode_bw_eff, combined with decode_overlap; no per-call overheads (operator time only).
- collective row: `allreduce_s` over the intra-node link (rows spanning nodes are not fitted:
  the cost model has one link_eff for both links).
Limits: a decode row's steady state is approximated by synchronous cycles (in-flight batching
overlaps prefill with decode); the KV dtype of the TensorRT-LLM rows is not stated (bf16 assumed).
"""

from __future__ import annotations

import math

from calibration.public_data import CollectiveRow, DecodeRow, GemmRow, TrainingRow, model_spec
from rlvr_sim.cost.memory import PREFILL_CHUNK_TOKENS, sampler_memory_plan
from rlvr_sim.cost.params import param_counts
from rlvr_sim.cost.collectives import allreduce_s
from rlvr_sim.cost.sampler import DecodeCoeffs, SamplerShape, Speculative, decode_span_s, prefill
from rlvr_sim.cost.trainer import TrainerShape, train_step
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec

DECODE_KV_FRACTION = 0.95       # trtllm-bench kv_cache_free_gpu_mem_fraction (perf overview)
DECODE_MAX_BATCH = 8192         # largest CUDA-graph batch in the perf overview's llm_options.yml
GEMM_DECODE_TOKENS = 512        # GEMM rows below this many tokens are decode batches
GPUS_PER_NODE = 8


def effective_train_mfu(m: ModelSpec, hw: HardwareProfile, tokens_per_gpu_micro_batch: float) -> float:
    """Flat MFU equivalent to the contract's curve and grouped-GEMM factor for one batch shape."""
    eff = hw.efficiency
    mfu = eff.train_mfu
    if eff.train_mfu_half_tokens:
        t = tokens_per_gpu_micro_batch
        mfu *= t / (t + eff.train_mfu_half_tokens)
    g = eff.grouped_gemm_eff
    if g and m.num_experts:
        counts = param_counts(m)
        expert = counts.expert_active / counts.active
        mfu /= (1.0 - expert) + expert / g
    return mfu


def _with_train_mfu(hw: HardwareProfile, mfu: float) -> HardwareProfile:
    eff = hw.efficiency.model_copy(update={"train_mfu": min(max(mfu, 1e-9), 1.0)})
    return hw.model_copy(update={"efficiency": eff})


def training_s_per_token(row: TrainingRow, hw: HardwareProfile) -> float:
    """Seconds per token per GPU the cost model predicts for a pre-training throughput row."""
    m = model_spec(row.model)
    hw_row = _with_train_mfu(hw, effective_train_mfu(m, hw, row.tokens_per_gpu_micro_batch))
    shape = TrainerShape(gpus=row.gpus, tp=row.tp, pp=row.pp, fsdp=row.fsdp, mini_batches=1,
                         reference_model=False, old_logprob=False,
                         recompute_activations=row.recompute == "full", dtype="bf16",
                         gpus_per_node=GPUS_PER_NODE)
    tokens = row.global_batch * row.seq_len
    step = train_step(m, hw_row, shape, row.global_batch, tokens, 0)
    return step.total_s * row.gpus / tokens


def decode_batch(row: DecodeRow, hw: HardwareProfile) -> int:
    """Concurrent requests of a max-load run: what the KV pool holds (0 when it does not fit)."""
    m = model_spec(row.model)
    ctx = row.input_tokens + row.output_tokens
    plan = sampler_memory_plan(m, hw.datasheet.hbm_bytes, tp=row.tp, pp=row.pp,
                               gpu_memory_utilization=DECODE_KV_FRACTION,
                               weight_dtype=row.weight_dtype, kv_dtype=row.kv_dtype,
                               max_num_seqs=DECODE_MAX_BATCH, prefix_caching=False,
                               min_context_tokens=ctx)
    return plan.max_concurrent_sequences(ctx)


def decode_s_per_token(row: DecodeRow, hw: HardwareProfile) -> float:
    """Seconds per output token (whole replica) of a max-load fixed-length throughput run."""
    m = model_spec(row.model)
    shape = SamplerShape(tp=row.tp, pp=row.pp, weight_dtype=row.weight_dtype,
                         kv_dtype=row.kv_dtype)
    batch = decode_batch(row, hw)
    if batch <= 0:
        return math.inf
    isl, osl = row.input_tokens, row.output_tokens
    new = batch * isl
    chunks = max(math.ceil(new / PREFILL_CHUNK_TOKENS), 1)
    per_chunk = new / chunks
    prefill_s = chunks * prefill(m, hw, shape, int(round(per_chunk)),
                                 sequences=max(int(round(per_chunk / isl)), 1)).total_s
    coeffs = DecodeCoeffs.build(m, hw, shape)
    decode_s = decode_span_s(coeffs, Speculative(), batch, float(batch * isl), float(isl), osl)
    return (prefill_s + decode_s) / (batch * osl)


def gemm_s(row: GemmRow, hw: HardwareProfile) -> float:
    """Seconds of one layer's GEMMs under the sampler's roofline (bf16 peak)."""
    eff, ds = hw.efficiency, hw.datasheet
    mfu = eff.decode_mfu if row.tokens < GEMM_DECODE_TOKENS else eff.prefill_mfu
    compute_s = row.flop / (ds.peak_bf16_flop_per_s * mfu)
    memory_s = row.weight_bytes / (ds.hbm_bytes_per_s * eff.decode_bw_eff)
    hi, lo = max(compute_s, memory_s), min(compute_s, memory_s)
    return hi + (1.0 - eff.decode_overlap) * lo


def collective_in_fit(row: CollectiveRow) -> bool:
    return row.op == "all_reduce" and row.ranks <= row.ranks_per_node


def collective_s(row: CollectiveRow, hw: HardwareProfile) -> float:
    """Seconds of one ring all-reduce (`rlvr_sim.cost.sampler.allreduce_s`)."""
    ds = hw.datasheet
    link = ds.intra_node_bytes_per_s if row.ranks <= row.ranks_per_node else ds.inter_node_bytes_per_s
    return allreduce_s(float(row.bytes), row.ranks, link, hw)


def predict_s(row, hw: HardwareProfile) -> float:
    """Seconds the cost model predicts for any row kind."""
    if isinstance(row, TrainingRow):
        return training_s_per_token(row, hw)
    if isinstance(row, DecodeRow):
        return decode_s_per_token(row, hw)
    if isinstance(row, GemmRow):
        return gemm_s(row, hw)
    if isinstance(row, CollectiveRow):
        return collective_s(row, hw)
    raise TypeError(f"not a public-measurement row: {type(row).__name__}")


def measured_s(row) -> float:
    """The row's measurement in the same unit as `predict_s` (throughputs are inverted)."""
    if isinstance(row, (TrainingRow, DecodeRow)):
        return 1.0 / row.value
    return row.value
