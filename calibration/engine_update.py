"""A weight update in the middle of generation: the simulator's replay of a run that had one.

vLLM side (calibration.vllm_engine, `EngineWorkload.weight_update_after_step`): after N engine
steps the engine stops stepping, reloads new weights, and either continues on its KV cache
(`keep_kv`, an in-flight update) or preempts every running request, which recomputes prompt +
generated tokens under the new weights (`recompute`, a partial rollout). The run records when the
update began and how long the reload took (`WeightUpdateRecord`), on every clock.

Simulator side: the same `ReplicaEngine` replay as `engine_validate.simulate_run`, stopped at the
first iteration boundary at or after the measured update instant (`ReplicaEngine.cut`), then
exactly what the async orchestrator does when a new version arrives with sequences running
(`rlvr_sim.sim.orchestrator.AsyncRun._replica`): the load (its measured duration: an input here,
like the arrival time, since the sync cost is validated separately), then `continue_in_flight()`
(keep_kv) or `interrupt_all()` (recompute), and the replay continues. Step clock: the update
happens after iteration N and costs no time.

Limits: one update per run; the trigger is the measured instant (an RL trainer publishes at a
wall time, not at an engine step), so on the seconds clocks a sim that runs slower has done fewer
iterations when the update arrives, as it would in a real run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from calibration.engine_records import EngineRun, WeightUpdateRecord
from calibration.engine_validate import (EngineComparison, EngineCostModel, SimulatedRun, compare,
                                         measured_quantities, quantities, replay_engine, spec_of,
                                         step_clock_cost)
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec
from rlvr_sim.sim.protocols import CostModelLike
from rlvr_sim.sim.sampler import Finished, ReplicaEngine


@dataclass(frozen=True)
class UpdateReplay:
    """The simulator's account of a run with a weight update."""

    sim: SimulatedRun
    update_at_s: float        # when the simulated engine stopped for the update (its clock)
    load_s: float             # the load's duration charged
    interrupted: int          # sequences sent back to recompute (0 for keep_kv)
    running_at_update: int    # sequences running when the update began


def update_instant(u: WeightUpdateRecord, clock: str) -> tuple[float, float]:
    """(when the update began, how long it took) on `clock`: step = (steps done, 0)."""
    if clock == "step":
        return float(u.after_step), 0.0
    if clock == "wall":
        return u.start_s, u.duration_s
    if u.start_cpu_s is None or u.duration_cpu_s is None:
        raise ValueError("the run has no CPU-clock record of its weight update")
    return u.start_cpu_s, u.duration_cpu_s


def _engine(run: EngineRun, cm: CostModelLike) -> ReplicaEngine:
    """A replica configured as the run's engine, with its requests submitted (all at t = 0)."""
    return replay_engine(run, cm)


def simulate_with_update(run: EngineRun, hw: HardwareProfile | None, clock: str = "cpu",
                         cost_model: CostModelLike | None = None) -> UpdateReplay:
    """Replay `run` (which has one weight update) through the simulator's engine, applying the
    update at its measured instant on `clock` (see the module docstring)."""
    if len(run.weight_updates) != 1:
        raise ValueError(f"{run.workload.name}: {len(run.weight_updates)} weight updates "
                         "recorded; this replay handles exactly one")
    u = run.weight_updates[0]
    cm: CostModelLike
    if cost_model is not None:
        cm = cost_model
    elif clock == "step":
        cm = cast(CostModelLike, step_clock_cost(run))
    elif hw is None:
        raise ValueError("simulate_with_update: give a hardware profile or a cost model")
    else:
        cm = cast(CostModelLike,
                  EngineCostModel(ModelSpec.from_hf_config_dict(run.model), hw, spec_of(run)))
    t_update, load_s = update_instant(u, clock)
    eng = _engine(run, cm)
    finished: list[Finished] = []
    peak, done_update = 0, False
    at_s, interrupted, running_then = float("nan"), 0, 0
    while True:
        t_end = eng.plan()
        if t_end is None:
            break
        peak = max(peak, len(eng.running))
        if not done_update and t_end > t_update:
            finished.extend(eng.cut(t_update))      # the iteration boundary at or after it
            at_s, running_then = eng.clock, len(eng.running)
            eng.clock += load_s
            eng.version += 1
            before = eng.counters[0].interruptions if 0 in eng.counters else 0
            if u.mode == "recompute":
                eng.interrupt_all()
            else:
                eng.continue_in_flight()
            interrupted = (eng.counters[0].interruptions if 0 in eng.counters else 0) - before
            done_update = True
            continue
        finished.extend(eng.finish())
    done = sorted(finished, key=lambda f: f.sample)
    c = eng.counters.get(0)
    sim = SimulatedRun(finish_s=tuple(f.end_s for f in done),
                       start_s=tuple(f.start_s for f in done),
                       preemptions=c.preemptions if c else 0, prefill_s=eng.prefill_s,
                       decode_iterations=c.decode_iterations if c else 0, peak_running=peak)
    return UpdateReplay(sim=sim, update_at_s=at_s, load_s=load_s, interrupted=interrupted,
                        running_at_update=running_then)


def compare_any(run: EngineRun, hw: HardwareProfile, held_in: bool = False,
                clock: str = "cpu") -> EngineComparison:
    """`engine_validate.compare` for every run, with the weight-update replay where the run had
    an update."""
    if not run.weight_updates:
        return compare(run, hw, held_in, clock)
    rep = simulate_with_update(run, hw, clock)
    tokens = sum(r.target_tokens for r in run.requests)
    return EngineComparison(workload=run.workload.name, held_in=held_in,
                            measured=measured_quantities(run, clock),
                            simulated=quantities(list(rep.sim.finish_s), tokens,
                                                 float(rep.sim.preemptions),
                                                 float(rep.sim.peak_running)),
                            load_avg=0.5 * (run.load_avg_before + run.load_avg_after),
                            repeat=run.repeat)
