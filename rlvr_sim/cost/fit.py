"""Does a scenario fit in GPU memory? A cost-model result, not a schema rule (issue 17).

`memory_fit(scenario)` plans the sampler replica's memory (weights, activation reserve, KV pool
for one longest sequence) and the trainer's per-GPU states, on the scenario's hardware profile
datasheet HBM, and returns both plans with the verdict. Scenario loading calls it once, after the
schema and the rules (`rlvr_sim.rules`) have passed (`rlvr_sim.scenario.load_scenario`, unless
`check_fit=False`); `describe` reports it. Limits: the plans of `rlvr_sim.cost.memory` (one
longest sequence of `Scenario.max_context_tokens`; no fragmentation beyond whole KV blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlvr_sim.cost.memory import SamplerMemoryPlan, TrainerMemory, sampler_memory_plan, trainer_memory

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario


@dataclass(frozen=True)
class MemoryFit:
    """The sampler's memory plan and the trainer's (None for an inference-only run)."""

    sampler: SamplerMemoryPlan
    trainer: TrainerMemory | None

    @property
    def fits(self) -> bool:
        return self.sampler.fits and (self.trainer is None or self.trainer.fits)

    def problems(self) -> list[str]:
        """One line per pool that does not fit: `sampler: <reason>` / `trainer: <reason>`."""
        out = [] if self.sampler.fits else [f"sampler: {self.sampler.reason}"]
        if self.trainer is not None and not self.trainer.fits:
            out.append(f"trainer: {self.trainer.reason}")
        return out


def memory_fit(sc: "Scenario") -> MemoryFit:
    """Plan both pools' memory for `sc` (the trainer's only when the run trains)."""
    hbm = sc.hardware_profile.datasheet.hbm_bytes
    s, t = sc.sampler, sc.trainer
    ctx = sc.max_context_tokens
    plan = sampler_memory_plan(
        sc.model, hbm, tp=s.tp, pp=s.pp, gpu_memory_utilization=s.gpu_memory_utilization,
        weight_dtype=s.weight_dtype, kv_dtype=s.kv_dtype, block_tokens=s.block_tokens,
        max_num_seqs=s.max_concurrent_sequences, prefix_caching=s.prefix_caching,
        min_context_tokens=ctx)
    if sc.orchestration.inference_only:
        return MemoryFit(sampler=plan, trainer=None)
    mem = trainer_memory(sc.model, hbm, gpus=t.gpus, tp=t.tp, pp=t.pp, fsdp=t.fsdp, seq_tokens=ctx,
                         reference_model=t.reference_model,
                         recompute_activations=t.recompute_activations, cp=t.cp, ep=t.ep,
                         fsdp_shard_size=t.fsdp_shard_size, offload_optimizer=t.offload_optimizer,
                         offload_params=t.offload_params)
    return MemoryFit(sampler=plan, trainer=mem)
