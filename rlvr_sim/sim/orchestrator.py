"""Orchestration modes: who waits for whom between generate, verify, train and weight sync.

- `run_sync` (colocated or disaggregated): step j generates its whole batch with version j,
  verification overlaps the generation tail, training starts when the last sample is verified
  (colocated: and the GPUs are switched to the trainer), then weights are synced (colocated:
  switched back) before step j+1 starts.
- `AsyncRun` (disaggregated): replicas keep generating while the trainer trains. A sample of
  step j may start only under a version v >= j - max_staleness, which is AReaL's admission rule
  capacity = (eta + v + 1) * B - (accepted + running) applied per prompt group (the
  max_concurrent - running part is each replica's concurrency limit). A new version makes each
  replica drain its running sequences and then load the weights; with partial rollouts it
  interrupts them instead and they continue under the new weights after a KV recompute.
  max_staleness = 0 reproduces disaggregated sync (tested).

Prompt groups are dispatched to the least-loaded replica (running + waiting), ties to the lowest
id, when their step becomes admissible; a replica admits them at its next iteration boundary.
"""

from __future__ import annotations

import heapq
from typing import Generator, Protocol

import simpy

from rlvr_sim.sim import rounds, trainer, weight_sync
from rlvr_sim.sim.config import SimConfig
from rlvr_sim.sim.protocols import CostModelLike
from rlvr_sim.sim.recorder import Recorder
from rlvr_sim.sim.sampler import Finished, ReplicaEngine
from rlvr_sim.sim.source import Batch, Group, PromptSource
from rlvr_sim.sim.verifier import VerifierPool, arrival_order


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


def dispatch(groups: tuple[Group, ...], engines: list[ReplicaEngine]) -> set[int]:
    """Send each group to the least-loaded replica; the replicas that received work."""
    heap = [(e.load, e.replica) for e in engines]
    heapq.heapify(heap)
    touched = set()
    for g in groups:
        load, r = heap[0]
        engines[r].submit(g)
        heapq.heapreplace(heap, (load + len(g.response_tokens), r))
        touched.add(r)
    return touched


def run_sync(env: simpy.Environment, cfg: SimConfig, cm: CostModelLike, source: PromptSource,
             engines: list[ReplicaEngine], verifier: VerifierPool, rec: Recorder,
             progress: Progress | None = None) -> Generator:
    """Colocated or disaggregated synchronous RL steps; SimPy process body."""
    colocated = cfg.placement == "colocated"
    for j in range(cfg.steps):
        r = rec.steps[j]
        r.start_s = env.now
        yield from rounds.earlier_rounds(env, source, engines, verifier, rec, j, dispatch)
        batch = source.rounds(j)[-1]        # the step's batch (its last round: dynamic sampling)
        for e in engines:
            e.wake(env.now)
            e.version = j
        dispatch(batch.groups, engines)
        finished: list[Finished] = []
        for e in engines:
            finished.extend(e.run_to_idle())
        finished = arrival_order(finished)
        rec.generated(finished)
        rec.verified(verifier.serve(finished, {j: batch}))
        rec.close_step(j)
        if source.cfg.rewards is not None:
            rounds.train_on_kept(r, source.trained(j))
        yield env.timeout(r.gen_end_s - env.now)
        if colocated:
            yield from weight_sync.switch(env, cm, rec, j, "to_train")
        yield env.timeout(max(0.0, r.verify_end_s - env.now))
        yield from trainer.train(env, cm, rec, j)
        weight_sync.record_replica_loads(rec, len(engines), j + 1, env.now, cm.weight_sync_s)
        yield from weight_sync.trainer_side(env, cm, rec, j)
        if colocated:
            yield from weight_sync.switch(env, cm, rec, j, "to_generate")
        r.end_s = env.now
        if progress is not None:
            progress.update(1)


class AsyncRun:
    """Disaggregated asynchronous RL with bounded staleness; call `start()` then run the env."""

    def __init__(self, env: simpy.Environment, cfg: SimConfig, cm: CostModelLike,
                 source: PromptSource, engines: list[ReplicaEngine], verifier: VerifierPool,
                 rec: Recorder, progress: Progress | None = None):
        self.env, self.cfg, self.cm, self.source = env, cfg, cm, source
        self.engines, self.verifier, self.rec, self.progress = engines, verifier, rec, progress
        self.published = 0
        self.next_batch = 0
        self.batches: dict[int, Batch] = {}
        self.remaining: dict[int, int] = {}
        self.done: dict[int, simpy.Event] = {}
        self.pending_version = [0] * len(engines)
        self.wakeups = [env.event() for _ in engines]
        self._to_verify: list[Finished] = []
        self._flush_at: float | None = None

    def start(self) -> simpy.Process:
        for e in self.engines:
            self.env.process(self._replica(e))
        self._dispatch()
        return self.env.process(self._trainer())

    # ------------------------------------------------------------ dispatcher + verifier
    def _dispatch(self) -> None:
        cfg = self.cfg
        while self.next_batch < cfg.steps and self.next_batch <= self.published + cfg.max_staleness:
            j = self.next_batch
            batch = self.batches[j] = self.source.batch(j)
            self.remaining[j] = batch.size
            self.done[j] = self.env.event()
            for r in dispatch(batch.groups, self.engines):
                self._wake(r)
            self.next_batch += 1

    def _wake(self, r: int) -> None:
        if not self.wakeups[r].triggered:
            self.wakeups[r].succeed()

    def _collect(self, finished: list[Finished]) -> None:
        if not finished:
            return
        self.rec.generated(finished)
        self._to_verify.extend(finished)
        if self._flush_at is None:
            self._flush_at = self.env.now
            self.env.timeout(0).callbacks.append(self._flush)

    def _flush(self, _event: simpy.Event) -> None:
        """Serve this instant's arrivals in (time, replica, sample) order."""
        self._flush_at = None
        finished, self._to_verify = arrival_order(self._to_verify), []
        self.rec.verified(self.verifier.serve(finished, self.batches))
        for f in finished:
            self.remaining[f.step] -= 1
            if self.remaining[f.step] == 0:
                delay = max(0.0, self.rec.close_step(f.step).verify_end_s - self.env.now)
                if self.cfg.rewards is not None:
                    rounds.train_on_kept(self.rec.steps[f.step], self.source.trained(f.step))
                done = self.done[f.step]
                self.env.timeout(delay).callbacks.append(lambda _e, d=done: d.succeed())
                del self.batches[f.step]

    # ------------------------------------------------------------ processes
    def _trainer(self) -> Generator:
        env, rec = self.env, self.rec
        for j in range(self.cfg.steps):
            rec.steps[j].start_s = env.now
            yield self.done[j]
            yield from trainer.train(env, self.cm, rec, j)
            self.published = j + 1
            for r in range(len(self.engines)):
                self.pending_version[r] = j + 1
                self._wake(r)
            self._dispatch()
            yield from weight_sync.trainer_side(env, self.cm, rec, j)
            rec.steps[j].end_s = env.now
            if self.progress is not None:
                self.progress.update(1)

    def _replica(self, e: ReplicaEngine) -> Generator:
        env, r = self.env, e.replica
        while True:
            if self.wakeups[r].triggered:
                self.wakeups[r] = env.event()
            if self.pending_version[r] > e.version:
                if self.cfg.partial_rollout and e.running:
                    if e.seg is not None:
                        self._collect(e.cut(env.now))
                    if e.clock > env.now:
                        yield env.timeout(e.clock - env.now)
                    e.interrupt_all()
                if e.running:
                    e.admit_enabled = False          # drain, then load
                else:
                    e.seg = None
                    yield env.timeout(max(0.0, e.clock - env.now))
                    version = self.pending_version[r]
                    yield from weight_sync.replica_side(env, self.cm, self.rec, r, version)
                    e.version, e.clock, e.admit_enabled = version, env.now, True
                    continue
            t_next = e.plan()
            if t_next is None:
                yield self.wakeups[r]
                e.wake(env.now)
                continue
            yield env.timeout(max(0.0, t_next - env.now)) | self.wakeups[r]
            if env.now >= t_next:
                self._collect(e.finish())
            elif (self.pending_version[r] > e.version and self.cfg.partial_rollout) or e.could_admit():
                self._collect(e.cut(env.now))
