"""Dynamic sampling in the simulator: extra generation rounds before a step's last one.

Small hooks the orchestrators call (rlvr_sim.sim.orchestrator), kept apart from them:
- `earlier_rounds` (sync): generates and verifies every round of step j but the last, one
  after another (verl's DAPO loop: generate a round, score it, filter, generate the next); the
  orchestrator then runs the last round as an ordinary batch. Without dynamic sampling a step
  has one round and this does nothing.
- `train_on_kept`: after a step is closed (all rounds generated and verified), its record's
  sequences and tokens become those of the groups it trains on (the trace's generate rows keep
  every generated sample, so the waste stays visible there).
Async runs dispatch a step's rounds together (`PromptSource.batch` merges them): a streaming
system keeps generating while it filters, so the rounds overlap; that is optimistic when the
rounds would really wait for each other's rewards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from rlvr_sim.dynamic_sampling import StepSampling
from rlvr_sim.sim import batch_sync
from rlvr_sim.sim.protocols import ProcessBody
from rlvr_sim.sim.recorder import Recorder
from rlvr_sim.sim.sampler import Finished, ReplicaEngine
from rlvr_sim.sim.source import Batch, PromptSource
from rlvr_sim.sim.steps import StepRecord
from rlvr_sim.sim.verifier import VerifierPool, arrival_order

if TYPE_CHECKING:
    from rlvr_sim.sim.orchestrator import Dispatch     # (orchestrator imports this module)


def generate_and_verify(env: simpy.Environment, engines: list[ReplicaEngine],
                        verifier: VerifierPool, rec: Recorder, step: int, batch: Batch,
                        dispatch: Dispatch
                        ) -> float:
    """One synchronous round: wake every replica at policy `step`, dispatch the batch, run the
    engines until idle, record the finished samples in arrival order and their rewards; the time
    the last reward is known. All replicas in one numpy pass when it applies
    (rlvr_sim.sim.batch_sync.sync_round), else replica by replica."""
    for e in engines:
        e.wake(env.now)
        e.version = step
    rewards_known_s = batch_sync.sync_round(engines, verifier, rec, step, batch, dispatch)
    if rewards_known_s is not None:
        return rewards_known_s
    dispatch(batch.groups, engines)
    finished: list[Finished] = []
    for e in engines:
        # one generate call per replica per round: its host cost (fan-out, output assembly,
        # log-probs; cost.sampler.sampler_call_s) comes before the engine's first step
        call_s = e.cm.sampler_call_s(e.load) if e.load else 0.0
        if call_s > 0:
            e.clock += call_s
        finished.extend(e.run_to_idle())
    finished = arrival_order(finished)
    rec.generated(finished)
    results = verifier.serve(finished, {step: batch})
    rec.verified(results)
    return max((v.end_s for v in results), default=env.now)


def earlier_rounds(env: simpy.Environment, source: PromptSource, engines: list[ReplicaEngine],
                   verifier: VerifierPool, rec: Recorder, step: int,
                   dispatch: Dispatch) -> ProcessBody:
    """Generate and verify step `step`'s rounds before its last; SimPy process body."""
    if not source.filtering:
        return
    for batch in source.rounds(step)[:-1]:
        rewards_known_s = generate_and_verify(env, engines, verifier, rec, step, batch, dispatch)
        yield env.timeout(max(0.0, rewards_known_s - env.now))


def train_on_kept(r: StepRecord, sampling: StepSampling) -> None:
    """Set the closed step's trained sequences/tokens to the kept groups' (`sampling`)."""
    r.sequences = sampling.trained_sequences
    r.prompt_tokens = sampling.trained_prompt_tokens
    r.output_tokens = sampling.trained_output_tokens


def counters(history: list[StepSampling]) -> dict[str, float]:
    """Per-step means for Summary.counters (empty when no step drew rewards)."""
    if not history:
        return {}
    n = len(history)
    return {"generation_rounds_per_step": sum(h.rounds for h in history) / n,
            "generated_groups_per_step": sum(h.generated_groups for h in history) / n,
            "signal_groups_per_step": sum(h.signal_groups for h in history) / n,
            "trained_groups_per_step": sum(h.trained_groups for h in history) / n,
            "wasted_output_tokens_per_step": sum(h.wasted_output_tokens for h in history) / n}
