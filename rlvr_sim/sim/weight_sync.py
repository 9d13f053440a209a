"""Weight sync (trainer -> sampler replicas) and the colocated switch between phases.

`cm.weight_sync_s` is the time to move the new policy to all replicas; the trainer is busy for
it and each replica is paused for it while it loads (they overlap when the replica is ready at
publish time, as in sync runs; a draining replica in async runs loads later). `cm.switch_s` is
one colocated transition (offload one engine, reload the other); a colocated step pays two.
"""

from __future__ import annotations

import simpy

from rlvr_sim.sim.protocols import CostModelLike, ProcessBody
from rlvr_sim.sim.recorder import Recorder
from rlvr_sim.sim.steps import StepRecord


def trainer_side(env: simpy.Environment, cm: CostModelLike, rec: Recorder,
                 r: StepRecord) -> ProcessBody:
    """The trainer sends version r.step + 1 (its time is added to `r`)."""
    step = r.step
    start = env.now
    yield env.timeout(cm.weight_sync_s)
    if env.now > start:
        rec.event("trainer", 0, "weight_sync", step, step + 1, start, env.now)
    r.weight_sync_s += env.now - start


def replica_side(env: simpy.Environment, cm: CostModelLike, rec: Recorder, replica: int,
                 version: int) -> ProcessBody:
    """A replica loads `version` (the step that produced it is version - 1)."""
    start = env.now
    yield env.timeout(cm.weight_sync_s)
    if env.now > start:
        rec.event("sampler", replica, "weight_sync", version - 1, version, start, env.now)


def record_replica_loads(rec: Recorder, replicas: int, version: int, start_s: float,
                         seconds: float) -> None:
    """Sync modes: every replica loads while the trainer sends (one interval, no events)."""
    if seconds <= 0:
        return
    for r in range(replicas):
        rec.event("sampler", r, "weight_sync", version - 1, version, start_s, start_s + seconds)


def switch(env: simpy.Environment, cm: CostModelLike, rec: Recorder, r: StepRecord,
           direction: str) -> ProcessBody:
    """Colocated: hand the GPUs from one engine to the other (`to_train` or `to_generate`)."""
    if cm.switch_s <= 0:
        return
    start = env.now
    yield env.timeout(cm.switch_s)
    rec.event("trainer", 0, "switch", r.step, r.step, start, env.now, direction=direction)
    r.switch_s += env.now - start
