"""Analytic cost model: pure functions in the submodules, one `CostModel` facade per scenario.

Submodules: `params` (parameter counts, weight and KV bytes), `memory` (sampler KV plan, trainer
memory), `sampler` (decode roofline, prefill, speculative decoding), `trainer` (RL step on the
trainer pool), `weight_sync` (policy broadcast, colocated switch). All return seconds or bytes,
with breakdown dataclasses that say which bound applied. The facade only binds a scenario's
model, hardware profile and parallel shapes to them (docs/contracts.md, "Cost model facade").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Callable

import numpy as np

from rlvr_sim.cost.balance import Balance, batch_balance
from rlvr_sim.cost.memory import SamplerMemoryPlan, TrainerMemory, sampler_memory_plan, trainer_memory
from rlvr_sim.cost.params import ParamCounts, kv_bytes_per_token, param_counts, weight_bytes
from rlvr_sim.cost.sampler import (DecodeBreakdown, DecodeCoeffs, PrefillBreakdown, PrefillCoeffs,
                                   SamplerShape, Speculative, decode_iteration_c, decode_span_s, prefill,
                                   plain_step_function, prefill_s_c, sampler_call_s, step_s)
from rlvr_sim.cost.sampler_vec import step_s_v
from rlvr_sim.cost.trainer import TrainBreakdown, TrainerShape, train_step
from rlvr_sim.cost.weight_sync import SyncLayout, WeightSyncBreakdown, switch_s, weight_sync
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario

__all__ = ["CostModel", "Balance", "trainer_shape", "DecodeBreakdown", "PrefillBreakdown", "SamplerMemoryPlan", "TrainBreakdown",
           "TrainerMemory", "WeightSyncBreakdown", "ParamCounts", "param_counts", "weight_bytes",
           "kv_bytes_per_token"]


def trainer_shape(sc: "Scenario") -> TrainerShape:
    """The trainer layout of a scenario, with the data-parallel balance of one seeded draw of its
    batch lengths (cost.balance)."""
    t, w = sc.trainer, sc.workload
    shape = TrainerShape(gpus=t.gpus, tp=t.tp, pp=t.pp, fsdp=t.fsdp, mini_batches=t.mini_batches,
                         reference_model=t.reference_model, old_logprob=t.old_logprob,
                         recompute_activations=t.recompute_activations, dtype=t.dtype,
                         gpus_per_node=sc.hardware.gpus_per_node, cp=t.cp, ep=t.ep,
                         fsdp_shard_size=t.fsdp_shard_size, micro_batch_tokens=t.micro_batch_tokens,
                         fp8=t.fp8, offload_optimizer=t.offload_optimizer,
                         offload_params=t.offload_params)
    if shape.dp == 1 and t.packing:
        return shape
    bal = _balance_of_draw(w.prompt_tokens.model_dump_json(), w.response_tokens.model_dump_json(),
                           w.seed, w.prompts_per_step, w.samples_per_prompt, shape.dp,
                           t.mini_batches, t.packing, t.micro_batch_sequences, t.micro_batch_tokens)
    return replace(shape, balance=bal)


@lru_cache(maxsize=512)
def _balance_of_draw(prompt_json: str, response_json: str, seed: int, prompts: int, k: int,
                     dp: int, mini_batches: int, packing: bool, micro_batch_sequences: int,
                     micro_batch_tokens: int | None) -> Balance:
    """Balance of one seeded draw of a step's lengths (cached: sweeps revisit the same shapes)."""
    from rlvr_sim.scenario import Workload

    w = Workload.model_validate({"prompt_tokens": json.loads(prompt_json),
                                 "response_tokens": json.loads(response_json)})
    rng = np.random.default_rng([seed, 0xBA1A])
    prompt = np.repeat(w.prompt_tokens.sample_tokens(rng, prompts), k)
    lengths = (prompt + w.response_tokens.sample_tokens(rng, prompts * k)).tolist()
    return batch_balance(lengths, dp, mini_batches, packing=packing,
                         micro_batch_sequences=micro_batch_sequences,
                         micro_batch_tokens=micro_batch_tokens)


@dataclass(frozen=True)
class CostModel:
    """Cost functions bound to one model, hardware profile and layout. Sampler figures are per
    replica (tp x pp GPUs); trainer figures are for the whole trainer pool."""

    model: ModelSpec
    hardware: HardwareProfile
    sampler: SamplerShape
    speculative: Speculative
    trainer: TrainerShape
    sync: SyncLayout
    gpu_memory_utilization: float = 0.9
    block_tokens: int = 16
    max_num_seqs: int = 256
    prefix_caching: bool = True
    max_context_tokens: int = 4096
    placement: str = "colocated"
    offload_on_switch: bool = True
    inference_only: bool = False

    @classmethod
    def from_scenario(cls, sc: "Scenario") -> "CostModel":
        s, t, o = sc.sampler, sc.trainer, sc.orchestration
        sp = s.speculative
        tshape = trainer_shape(sc)
        return cls(
            model=sc.model,
            hardware=sc.hardware_profile,
            sampler=SamplerShape(tp=s.tp, pp=s.pp, weight_dtype=s.weight_dtype, kv_dtype=s.kv_dtype,
                                 ep=s.ep, pp_overlap=s.pp_overlap,
                                 gpus_per_node=sc.hardware.gpus_per_node),
            speculative=Speculative(method=sp.method, draft_tokens=sp.draft_tokens,
                                    acceptance_rate=sp.acceptance_rate,
                                    draft_cost_ratio=sp.draft_cost_ratio,
                                    tree_width=sp.tree_width),
            trainer=tshape,
            sync=SyncLayout(placement=o.placement, method=o.weight_sync.method,
                            bucket_bytes=o.weight_sync.bucket_bytes, sampler_gpus=s.gpus,
                            sampler_tp=s.tp, sampler_pp=s.pp,
                            trainer_gpus=0 if o.placement == "colocated" else t.gpus,
                            gpus_per_node=sc.hardware.gpus_per_node, dtype=t.dtype,
                            trainer_tp=t.tp, trainer_pp=t.pp, trainer_ep=t.ep,
                            trainer_shard_group=tshape.shard_group if t.fsdp else 0),
            gpu_memory_utilization=s.gpu_memory_utilization,
            block_tokens=s.block_tokens,
            max_num_seqs=s.max_concurrent_sequences,
            prefix_caching=s.prefix_caching,
            max_context_tokens=sc.max_context_tokens,
            placement=o.placement,
            offload_on_switch=o.offload_on_switch,
            inference_only=o.inference_only,
        )

    # --- memory ---------------------------------------------------------------------------------
    @cached_property
    def params(self) -> ParamCounts:
        return param_counts(self.model)

    @cached_property
    def sampler_plan(self) -> SamplerMemoryPlan:
        return sampler_memory_plan(
            self.model, self.hardware.datasheet.hbm_bytes, tp=self.sampler.tp, pp=self.sampler.pp,
            gpu_memory_utilization=self.gpu_memory_utilization,
            weight_dtype=self.sampler.weight_dtype, kv_dtype=self.sampler.kv_dtype,
            block_tokens=self.block_tokens, max_num_seqs=self.max_num_seqs,
            prefix_caching=self.prefix_caching, min_context_tokens=self.max_context_tokens)

    @cached_property
    def trainer_memory(self) -> TrainerMemory:
        t = self.trainer
        return trainer_memory(self.model, self.hardware.datasheet.hbm_bytes, gpus=t.gpus, tp=t.tp,
                              pp=t.pp, fsdp=t.fsdp, seq_tokens=self.max_context_tokens,
                              reference_model=t.reference_model,
                              recompute_activations=t.recompute_activations, cp=t.cp, ep=t.ep,
                              fsdp_shard_size=t.fsdp_shard_size,
                              offload_optimizer=t.offload_optimizer,
                              offload_params=t.offload_params)

    # --- sampler timing -------------------------------------------------------------------------
    @cached_property
    def decode_coeffs(self) -> DecodeCoeffs:
        return DecodeCoeffs.build(self.model, self.hardware, self.sampler)

    @property
    def tokens_per_iteration(self) -> float:
        return self.speculative.tokens_per_iteration

    def prefill_breakdown(self, new_tokens: int, sequences: int = 1,
                          context_before: int = 0) -> PrefillBreakdown:
        return prefill(self.model, self.hardware, self.sampler, new_tokens, sequences, context_before)

    @cached_property
    def prefill_coeffs(self) -> PrefillCoeffs:
        return PrefillCoeffs.build(self.model, self.hardware, self.sampler)

    def prefill_s(self, new_tokens: int, sequences: int = 1) -> float:
        """Seconds to prefill `new_tokens` tokens over `sequences` sequences on one replica
        (`prefill_breakdown(...).total_s`, from constants computed once)."""
        return prefill_s_c(self.prefill_coeffs, self.hardware, new_tokens, sequences)

    def decode_breakdown(self, sequences: float, context_tokens_sum: float,
                         context_tokens_max: float) -> DecodeBreakdown:
        """One plain decode iteration (width 1) of `sequences` sequences (fractional: a mean
        batch), with its compute/memory bound."""
        return decode_iteration_c(self.decode_coeffs, sequences, context_tokens_sum,
                                  context_tokens_max)

    def decode_step_s(self, sequences: float, context_tokens_sum: float,
                      context_tokens_max: float) -> float:
        """One iteration (one verify step with speculative decoding)."""
        return step_s(self.decode_coeffs, self.speculative, sequences, context_tokens_sum,
                      context_tokens_max)

    def decode_step_function(self) -> Callable[[float, float, float], float]:
        """`decode_step_s` as a plain function, the per-replica constants folded in where the
        cost model allows it (cost.sampler.plain_step_function: same result, fewer calls),
        else the method itself."""
        fused = plain_step_function(self.decode_coeffs, self.speculative)
        return fused if fused is not None else self.decode_step_s

    def decode_steps_s(self, sequences: np.ndarray, context_tokens_sum: np.ndarray,
                       context_tokens_max: np.ndarray) -> np.ndarray:
        """`decode_step_s` of many batches at once (arrays in, array out; cost.sampler_vec)."""
        return step_s_v(self.decode_coeffs, self.speculative, sequences, context_tokens_sum,
                        context_tokens_max)

    def decode_span_s(self, sequences: int, context_tokens_sum: float, context_tokens_max: float,
                      iterations: int) -> float:
        """Seconds of `iterations` decode iterations of a fixed batch (see cost.sampler)."""
        return decode_span_s(self.decode_coeffs, self.speculative, sequences, context_tokens_sum,
                             context_tokens_max, iterations)

    def sampler_call_s(self, sequences: int) -> float:
        """Host seconds of one generate call of `sequences` sequences on one replica, beyond
        its engine steps (cost.sampler.sampler_call_s; 0 where the profile has no such terms)."""
        return sampler_call_s(self.hardware, sequences)

    # --- trainer, sync --------------------------------------------------------------------------
    def train_step(self, sequences: int, prompt_tokens: int, output_tokens: int) -> TrainBreakdown:
        """Whole trainer pool, all mini-batches; token arguments are sums over the sequences."""
        return train_step(self.model, self.hardware, self.trainer, sequences, prompt_tokens,
                          output_tokens)

    @cached_property
    def _minibatch_shape(self) -> TrainerShape:
        return replace(self.trainer, mini_batches=1)

    def train_minibatch(self, sequences: int, prompt_tokens: int,
                        output_tokens: int) -> TrainBreakdown:
        """One mini-batch of a streaming trainer (its log-prob forwards, forward/backward, one
        optimizer step), on the same layout and balance; the per-step fixed cost is spread
        evenly over the step's mini-batches."""
        tb = train_step(self.model, self.hardware, self._minibatch_shape, sequences,
                        prompt_tokens, output_tokens)
        return replace(tb, fixed_s=tb.fixed_s / self.trainer.mini_batches)

    @cached_property
    def weight_sync(self) -> WeightSyncBreakdown:
        return weight_sync(self.model, self.hardware, self.sync)

    @property
    def weight_sync_s(self) -> float:
        if self.inference_only:
            return 0.0
        return self.weight_sync.total_s

    @cached_property
    def switch_s(self) -> float:
        return switch_s(self.model, self.hardware, self.placement, self.sampler.tp,
                        self.sampler.pp, self.sampler.weight_dtype, self.offload_on_switch)
