"""Orchestration modes: who waits for whom between generate, verify, train and weight sync.

- `run_sync` (colocated or disaggregated): step j generates its whole batch with version j,
  verification overlaps the generation tail, training starts when the last sample is verified
  (colocated: and the GPUs are switched to the trainer), then weights are synced (colocated:
  switched back) before step j+1 starts.
- `AsyncRun` (disaggregated): replicas keep generating while the trainer trains. Admission is
  AReaL's rule capacity = (eta + v + 1) * B - (accepted + running) in samples, applied per prompt
  group: a group may start once its last sample index is below (published + 1 + eta) x B, with
  eta = max_staleness, or verl's fractional staleness_threshold (eta = 0.5: half of the next
  batch may start early). Integer eta reproduces the whole-batch rule v >= j - eta. What a
  replica does with running sequences when a new version arrives (`cfg.update_mode`):
  drain (finish them, then load), recompute (interrupt, load, re-prefill their tokens: partial
  rollout), keep_kv (pause at the next iteration boundary, load, continue on the same KV cache:
  an in-flight update). eta = 0 reproduces disaggregated sync (tested). With `cfg.streaming`
  the trainer fetches `stream_batches` mini-batches at a time (verl require_batches) as soon as
  their samples are verified (in reward order) and trains them, one optimizer step each, then
  publishes after the step's last mini-batch.
- `InferenceRun` (inference_only): no trainer, no weight sync. Step j's prompt groups arrive at
  once after step j-1 completes (closed-loop batch benchmark), or as a Poisson process at
  `arrival_qps` groups per second (serving); a step ends when its last sample finishes (and not
  before the previous one), so the mean step time is the served inter-completion time.

Prompt groups are dispatched to the least-loaded replica (running + waiting), ties to the lowest
id, when their step becomes admissible; a replica admits them at its next iteration boundary.
"""

from __future__ import annotations

import heapq
from functools import partial
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import simpy

from rlvr_sim.sim import rounds, trainer, weight_sync
from rlvr_sim.sim.config import SimConfig
from rlvr_sim.sim.protocols import CostModelLike, ProcessBody
from rlvr_sim.sim.recorder import Recorder
from rlvr_sim.sim.sampler import Finished, ReplicaEngine, StepCounters
from rlvr_sim.sim.source import Batch, Group, PromptSource
from rlvr_sim.sim.steps import StepLog
from rlvr_sim.sim.verifier import Verified, VerifierPool, arrival_order


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


class DispatchTarget(Protocol):
    """What `dispatch` reads and calls on a replica: a ReplicaEngine, or the whole-batch path's
    stand-in (rlvr_sim.sim.batch_sync._Queue)."""

    @property
    def replica(self) -> int: ...
    @property
    def load(self) -> int: ...

    def submit(self, group: Group) -> None: ...


# dispatch's signature, as the round helpers take it (groups, replicas indexed by replica id)
Dispatch = Callable[[tuple[Group, ...], Sequence[DispatchTarget]], object]


def dispatch(groups: tuple[Group, ...], engines: Sequence[DispatchTarget]) -> set[int]:
    """Send each group to the least-loaded replica (`engines[r].replica == r`); the replicas
    that received work."""
    heap = [(e.load, e.replica) for e in engines]
    heapq.heapify(heap)
    touched = set()
    for g in groups:
        load, r = heap[0]
        engines[r].submit(g)
        heapq.heapreplace(heap, (load + len(g.response_tokens), r))
        touched.add(r)
    return touched


def _succeed(event: simpy.Event, _trigger: simpy.Event) -> None:
    """A SimPy callback that triggers `event` (bound with functools.partial)."""
    event.succeed()


def _succeed_pending(event: simpy.Event, _trigger: simpy.Event) -> None:
    """As `_succeed`, unless `event` was triggered already (a first-of wait)."""
    if not event.triggered:
        event.succeed()


def step_counters(engines: list[ReplicaEngine], step: int) -> dict[int, StepCounters]:
    """Take the replicas' counters of `step` (by replica; those that did nothing for it are
    absent), for the recorder when the step is closed."""
    out = {}
    for e in engines:
        c = e.take_counters(step)
        if c is not None:
            out[e.replica] = c
    return out


def run_sync(env: simpy.Environment, cfg: SimConfig, cm: CostModelLike, source: PromptSource,
             engines: list[ReplicaEngine], verifier: VerifierPool, rec: Recorder, steps: StepLog,
             progress: Progress | None = None) -> ProcessBody:
    """Colocated or disaggregated synchronous RL steps, recorded in `steps`; SimPy process body."""
    colocated = cfg.placement == "colocated"
    for j in range(cfg.steps):
        r = steps[j]
        r.start_s = env.now
        yield from rounds.earlier_rounds(env, source, engines, verifier, rec, j, dispatch)
        batch = source.rounds(j)[-1]        # the step's batch (its last round: dynamic sampling)
        rounds.generate_and_verify(env, engines, verifier, rec, j, batch, dispatch)
        r.take(rec.close_step(j, step_counters(engines, j)))
        if source.cfg.rewards is not None:
            rounds.train_on_kept(r, source.trained(j))
        yield env.timeout(r.gen_end_s - env.now)
        if colocated:
            yield from weight_sync.switch(env, cm, rec, r, "to_train")
        yield env.timeout(max(0.0, r.verify_end_s - env.now))
        yield from trainer.train(env, cm, rec, r)
        weight_sync.record_replica_loads(rec, len(engines), j + 1, env.now, cm.weight_sync_s)
        yield from weight_sync.trainer_side(env, cm, rec, r)
        if colocated:
            yield from weight_sync.switch(env, cm, rec, r, "to_generate")
        r.end_s = env.now
        if progress is not None:
            progress.update(1)


class AsyncRun:
    """Disaggregated asynchronous RL with bounded staleness; call `start()` then run the env."""

    def __init__(self, env: simpy.Environment, cfg: SimConfig, cm: CostModelLike,
                 source: PromptSource, engines: list[ReplicaEngine], verifier: VerifierPool,
                 rec: Recorder, steps: StepLog, progress: Progress | None = None):
        self.env, self.cfg, self.cm, self.source = env, cfg, cm, source
        self.engines, self.verifier, self.rec, self.progress = engines, verifier, rec, progress
        self.steps = steps                   # the step records: this run's state
        self.published = 0
        self.next_batch = 0
        self.next_group = 0                  # next undispatched group of batch next_batch
        self.batches: dict[int, Batch] = {}
        self.remaining: dict[int, int] = {}
        self.done: dict[int, simpy.Event] = {}
        self.pending_version = [0] * len(engines)
        # per replica: the event its process waits on during a span (set by the span's timeout or
        # by a wakeup, whichever comes first: `_span_wait`), None outside a span
        self._span_event: list[simpy.Event | None] = [None] * len(engines)
        self.wakeups = [self._wakeup_event(r) for r in range(len(engines))]
        self._to_verify: list[Finished] = []
        self._flush_at: float | None = None
        # streaming trainer: per step, (prompt, output) tokens of rewarded samples in reward order
        self._rewarded: dict[int, list[tuple[int, int]]] = {}
        self._want: dict[int, tuple[int, simpy.Event]] = {}

    def start(self) -> simpy.Process:
        for e in self.engines:
            self.env.process(self._replica(e))
        self._dispatch()
        return self.env.process(self._trainer())

    # ------------------------------------------------------------ dispatcher + verifier
    def _admission_limit(self) -> float:
        """Samples with global index below this may start: (published + 1 + eta) x B."""
        cfg = self.cfg
        return (self.published + 1 + cfg.staleness_batches) * cfg.samples_per_step + 1e-9

    def _dispatch(self) -> None:
        cfg = self.cfg
        limit = self._admission_limit()
        while self.next_batch < cfg.steps:
            j = self.next_batch
            batch = self.batches.get(j)
            if batch is None:
                if j * cfg.samples_per_step + cfg.samples_per_prompt > limit:
                    return
                batch = self.batches[j] = self.source.batch(j)
                self.remaining[j] = batch.size
                self.done[j] = self.env.event()
            groups = batch.groups
            first = self.next_group
            while (self.next_group < len(groups)
                   and groups[self.next_group].first_sample
                   + len(groups[self.next_group].response_tokens) <= limit):
                self.next_group += 1
            for r in dispatch(groups[first:self.next_group], self.engines):
                self._wake(r)
            if self.next_group < len(groups):
                return
            self.next_batch += 1
            self.next_group = 0

    def _wake(self, r: int) -> None:
        if not self.wakeups[r].triggered:
            self.wakeups[r].succeed()

    def _wakeup_event(self, r: int) -> simpy.Event:
        """A fresh wakeup event of replica `r`; when processed it also ends `r`'s span wait."""
        event = self.env.event()
        assert event.callbacks is not None
        event.callbacks.append(partial(self._end_span_wait, r))
        return event

    def _end_span_wait(self, r: int, _trigger: simpy.Event) -> None:
        span = self._span_event[r]
        if span is not None and not span.triggered:
            span.succeed()

    def _span_wait(self, r: int, delay_s: float) -> simpy.Event:
        """The event replica `r` waits on for a span: triggered by the span's end or by a wakeup,
        whichever is processed first. It is `env.timeout(delay_s) | wakeup` without the
        Condition object: the same events are scheduled in the same order (one trigger, one
        resume), so results are identical, at a fraction of the cost per span."""
        env = self.env
        timeout = env.timeout(delay_s)                 # scheduled first, as in `timeout | wakeup`
        span = self._span_event[r] = env.event()
        assert timeout.callbacks is not None
        timeout.callbacks.append(partial(_succeed_pending, span))
        if self.wakeups[r].callbacks is None:          # already processed: met at once
            span.succeed()
        return span

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
        results = self.verifier.serve(finished, self.batches)
        self.rec.verified(results)
        if self.cfg.streaming:
            self._stream(finished, results)
        for f in finished:
            self.remaining[f.step] -= 1
            if self.remaining[f.step] == 0:
                r = self.steps[f.step]
                r.take(self.rec.close_step(f.step, step_counters(self.engines, f.step)))
                delay = max(0.0, r.verify_end_s - self.env.now)
                if self.cfg.rewards is not None:
                    rounds.train_on_kept(r, self.source.trained(f.step))
                done = self.done[f.step]
                self.env.timeout(delay).callbacks.append(partial(_succeed, done))
                del self.batches[f.step]

    # ------------------------------------------------------------ streaming trainer input
    def _stream(self, finished: list[Finished], results: list[Verified]) -> None:
        """Each sample reaches the trainer when its reward is ready (its verify end)."""
        now = self.env.now
        for f, v in zip(finished, results):
            self.env.timeout(max(0.0, v.end_s - now)).callbacks.append(
                partial(self._rewarded_one, f))

    def _rewarded_one(self, f: Finished, _event: simpy.Event | None = None) -> None:
        got = self._rewarded.setdefault(f.step, [])
        got.append((f.prompt_tokens, f.output_tokens))
        want = self._want.get(f.step)
        if want is not None and len(got) >= want[0] and not want[1].triggered:
            want[1].succeed()

    def _train_streaming(self, j: int) -> ProcessBody:
        """Train step j's mini-batches in reward order, each as soon as it is complete."""
        cfg, env = self.cfg, self.env
        size, m, chunk = cfg.samples_per_step, cfg.mini_batches, cfg.stream_batches
        got = self._rewarded.setdefault(j, [])
        taken = 0
        for i in range(m):
            need = (i + 1) * size // m
            if need == taken:
                continue
            fetch = min(m, (i // chunk + 1) * chunk) * size // m   # verl require_batches
            if len(got) < fetch:
                self._want[j] = (fetch, env.event())
                yield self._want[j][1]
            part = got[taken:need]
            yield from trainer.train_minibatch(env, self.cm, self.rec, self.steps[j], i, len(part),
                                               sum(p for p, _ in part), sum(o for _, o in part),
                                               first=taken == 0)
            taken = need
        yield self.done[j]
        self._want.pop(j, None)
        del self._rewarded[j]

    # ------------------------------------------------------------ processes
    def _trainer(self) -> ProcessBody:
        env, rec = self.env, self.rec
        for j in range(self.cfg.steps):
            r = self.steps[j]
            r.start_s = env.now
            if self.cfg.streaming:
                yield from self._train_streaming(j)
            else:
                yield self.done[j]
                yield from trainer.train(env, self.cm, rec, r)
            self.published = j + 1
            for rep in range(len(self.engines)):
                self.pending_version[rep] = j + 1
                self._wake(rep)
            self._dispatch()
            yield from weight_sync.trainer_side(env, self.cm, rec, r)
            r.end_s = env.now
            if self.progress is not None:
                self.progress.update(1)

    def _replica(self, e: ReplicaEngine) -> ProcessBody:
        env, r = self.env, e.replica
        mode = self.cfg.update_mode
        while True:
            if self.wakeups[r].triggered:
                self.wakeups[r] = self._wakeup_event(r)
            if self.pending_version[r] > e.version:
                if mode != "drain" and e.running:
                    # stop at the iteration boundary in progress
                    if e.seg is not None:
                        self._collect(e.cut(env.now))
                    if e.clock > env.now:
                        yield env.timeout(e.clock - env.now)
                    if mode == "recompute":
                        e.interrupt_all()
                    elif e.running:                  # keep_kv: load, continue on the same KV
                        yield from self._load(e)
                        e.continue_in_flight()
                        continue
                if e.running:
                    e.admit_enabled = False          # drain, then load
                else:
                    yield from self._load(e)
                    continue
            t_next = e.plan()
            if t_next is None:
                yield self.wakeups[r]
                e.wake(env.now)
                continue
            yield self._span_wait(r, max(0.0, t_next - env.now))
            self._span_event[r] = None
            if env.now >= t_next:
                self._collect(e.finish())
            elif (self.pending_version[r] > e.version and mode != "drain") or e.could_admit():
                self._collect(e.cut(env.now))

    def _load(self, e: ReplicaEngine) -> ProcessBody:
        """Replica `e` (no span planned) loads the newest published version."""
        env = self.env
        e.seg = None
        yield env.timeout(max(0.0, e.clock - env.now))
        version = self.pending_version[e.replica]
        yield from weight_sync.replica_side(env, self.cm, self.rec, e.replica, version)
        e.version, e.clock, e.admit_enabled = version, env.now, True


class InferenceRun(AsyncRun):
    """Sampler pool alone (no trainer, no weight sync): closed batches or Poisson arrivals."""

    def start(self) -> simpy.Process:
        for e in self.engines:
            e.eta = self.cfg.steps           # no policy versions: every arrived group may start
            self.env.process(self._replica(e))
        self.env.process(self._arrivals())
        return self.env.process(self._steps())

    def _dispatch(self) -> None:            # arrivals drive dispatch
        return

    def _arrivals(self) -> ProcessBody:
        env, cfg = self.env, self.cfg
        t = 0.0
        for j in range(cfg.steps):
            batch = self.batches[j] = self.source.batch(j)
            self.remaining[j] = batch.size
            self.done[j] = env.event()
            if cfg.arrival_qps is None:
                if j > 0:
                    yield self.done[j - 1]
                touched = dispatch(batch.groups, self.engines)
                for r in touched:
                    self._wake(r)
                continue
            rng = np.random.default_rng([cfg.seed, 0xA77, j])
            for g, gap in zip(batch.groups, rng.exponential(1.0 / cfg.arrival_qps,
                                                            len(batch.groups)).tolist()):
                t += gap
                yield env.timeout(max(0.0, t - env.now))
                for r in dispatch((g,), self.engines):
                    self._wake(r)

    def _collect(self, finished: list[Finished]) -> None:
        """Policy staleness means nothing without a trainer: record every sample as fresh."""
        super()._collect([f._replace(version=f.step) for f in finished])

    def _flush(self, _event: simpy.Event) -> None:
        """No verifier: a finished sample is done (zero-time records keep the trace schema)."""
        self._flush_at = None
        finished, self._to_verify = arrival_order(self._to_verify), []
        self.rec.verified([Verified(f.sample, f.step, 0, f.end_s, f.end_s, False, False)
                           for f in finished])
        for f in finished:
            self.remaining[f.step] -= 1
            if self.remaining[f.step] == 0:
                self.steps[f.step].take(
                    self.rec.close_step(f.step, step_counters(self.engines, f.step)))
                self.done[f.step].succeed()
                del self.batches[f.step]

    def _steps(self) -> ProcessBody:
        env = self.env
        for j in range(self.cfg.steps):
            r = self.steps[j]
            r.start_s = env.now
            yield self.done[j]
            r.train_start_s = r.train_end_s = r.verify_end_s = r.end_s = env.now
            if self.progress is not None:
                self.progress.update(1)
