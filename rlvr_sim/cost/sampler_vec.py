"""Decode iteration time on arrays: `rlvr_sim.cost.sampler.step_s` for many batches in one call.

The simulator's whole-batch sync path (rlvr_sim.sim.batch_sync) plans every decode span of every
sampler replica of a step first and then costs them together; these functions take numpy arrays
(batch sizes, context sums, context maxima) and return an array of seconds, computed with the same
formulas, in the same order of floating-point operations, as the scalar `_terms` /
`iteration_s` / `step_s` (tests check them equal to within 1e-12 relative on random batches of
every shipped scenario's model and hardware). The scalar functions stay the reference: a change
to the roofline there must be made here too (the test fails otherwise).
"""

from __future__ import annotations

import numpy as np

from rlvr_sim.cost.sampler import DecodeCoeffs, Speculative


def iteration_s_v(c: DecodeCoeffs, batch: np.ndarray, context_tokens_sum: np.ndarray,
                  context_tokens_max: np.ndarray, width: int = 1) -> np.ndarray:
    """`iteration_s` of each (batch, context sum, context max) triple (arrays of one shape)."""
    batch = np.where(batch > 0, batch, 0.0)
    tokens = batch * width
    compute_s = (2.0 * (c.active_params + c.expert_active_params * (c.expert_flop_scale - 1.0))
                 * tokens + c.attn_flop_per_ctx_token * context_tokens_sum * width) / c.flop_per_s
    if c.num_experts:
        w_params = c.non_expert_params + (c.expert_params * c.expert_bytes_scale
                                          * (1.0 - (1.0 - c.top_k / c.num_experts) ** tokens))
        w_bytes = w_params * c.weight_bytes_per_param
    else:
        w_bytes = np.full_like(tokens, c.non_expert_params * c.weight_bytes_per_param)
    kv_bytes = context_tokens_sum * c.kv_bytes_per_token
    kv_s = kv_bytes * c.pp_time / c.kv_read_bytes_per_s
    memory_s = w_bytes * c.pp / c.bytes_per_s + kv_s
    ok = (context_tokens_max > 0) & (batch > 0)
    safe_batch = np.where(ok, batch, 1.0)
    safe_max = np.where(ok, context_tokens_max, 1.0)
    frac = (safe_max - context_tokens_sum / safe_batch) / safe_max
    skew_s = np.where(ok, c.skew_coef * kv_s * np.minimum(np.maximum(frac, 0.0), 1.0), 0.0)
    act_bytes = tokens * c.hidden_bytes_per_token
    comm_s = np.zeros_like(tokens)
    if c.allreduce_s_per_byte:
        comm_s = comm_s + (act_bytes * c.allreduce_s_per_byte + c.allreduce_fixed_s)
    if c.pp > 1:
        comm_s = comm_s + (act_bytes * c.pp_s_per_byte + c.pp_fixed_s)
    if c.a2a_s_per_byte:
        comm_s = comm_s + (act_bytes * c.a2a_s_per_byte + c.a2a_fixed_s)
    mem = memory_s + skew_s
    hi = np.where(compute_s >= mem, compute_s, mem)
    lo = np.where(compute_s >= mem, mem, compute_s)
    out: np.ndarray = hi + (1.0 - c.overlap) * lo + comm_s + c.overhead_s
    return out


def step_s_v(c: DecodeCoeffs, spec: Speculative, batch: np.ndarray, context_tokens_sum: np.ndarray,
             context_tokens_max: np.ndarray) -> np.ndarray:
    """`step_s` on arrays: one decode iteration (one verify step with speculative decoding; ngram
    adds the profile's host cost per step, fixed + per running sequence)."""
    base = iteration_s_v(c, batch, context_tokens_sum, context_tokens_max)
    if not spec.enabled:
        return base
    verify = iteration_s_v(c, batch, context_tokens_sum, context_tokens_max, spec.verify_width)
    if spec.method == "ngram":
        verify = verify + (c.ngram_fixed_s + c.ngram_s_per_seq * batch)
    step: np.ndarray = spec.draft_tokens * spec.draft_cost_ratio * base + verify
    return step
