"""Collects what a simulation did: per-step records and trace rows, aggregated for long runs.

Trace rows follow rlvr_sim.trace (one schema with the executor). To keep memory flat on long
runs, generation is one row per (step, replica) and verification one row per (step, worker),
not one per sample; per-sample staleness goes in the `extra` of the generate rows as
`{"staleness": [...]}` (docs/contracts.md).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from rlvr_sim.sim.sampler import Finished, StepCounters
from rlvr_sim.sim.verifier import Verified
from rlvr_sim.trace import TRACE_COLUMNS, TraceEvent, to_frame


@dataclass
class StepRecord:
    """Times of one RL step (seconds from the run's start)."""

    step: int
    start_s: float = 0.0           # previous step's end: trainer ready for this step
    gen_start_s: float = float("inf")
    gen_end_s: float = 0.0
    verify_end_s: float = 0.0
    train_start_s: float = 0.0
    train_end_s: float = 0.0
    end_s: float = 0.0             # trainer done with weight sync (and switch back)
    switch_s: float = 0.0          # colocated: both switches of this step
    weight_sync_s: float = 0.0
    sequences: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    train_parts_s: dict[str, float] = field(default_factory=dict)

    @property
    def time_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class _GenAgg:
    start_s: float
    end_s: float
    sequences: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    staleness: list[int] = field(default_factory=list)
    multi_version: int = 0


@dataclass
class _VerAgg:
    start_s: float
    end_s: float
    sequences: int = 0
    busy_s: float = 0.0
    timeouts: int = 0
    failures: int = 0


class Recorder:
    """Sink for the orchestrators; `frame()` returns the trace, `steps` the step records."""

    def __init__(self, run_id: str, steps: int, log: bool = False):
        self.run_id = run_id
        # (what, step or sample, time_s...) in the order things happened, for exact-log tests
        self.log: list[tuple] | None = [] if log else None
        self.steps = [StepRecord(j) for j in range(steps)]
        self.staleness = Counter()
        self._gen: dict[tuple[int, int], _GenAgg] = {}
        self._ver: dict[tuple[int, int], _VerAgg] = {}
        self._events: list[TraceEvent] = []
        self.samples_generated = Counter()   # per step
        self.samples_verified = Counter()    # per step

    def generated(self, finished: list[Finished]) -> None:
        for f in finished:
            key = (f.step, f.replica)
            agg = self._gen.get(key)
            if agg is None:
                agg = self._gen[key] = _GenAgg(f.start_s, f.end_s)
            agg.start_s = min(agg.start_s, f.start_s)
            agg.end_s = max(agg.end_s, f.end_s)
            agg.sequences += 1
            agg.prompt_tokens += f.prompt_tokens
            agg.output_tokens += f.output_tokens
            agg.staleness.append(f.step - f.version)
            agg.multi_version += f.versions_spanned > 1
            self.staleness[f.step - f.version] += 1
            rec = self.steps[f.step]
            rec.gen_start_s = min(rec.gen_start_s, f.start_s)
            rec.gen_end_s = max(rec.gen_end_s, f.end_s)
            rec.sequences += 1
            rec.prompt_tokens += f.prompt_tokens
            rec.output_tokens += f.output_tokens
            self.samples_generated[f.step] += 1
            if self.log is not None:
                self.log.append(("generated", f.sample, f.end_s))

    def verified(self, results: list[Verified]) -> None:
        for v in results:
            key = (v.step, v.worker)
            agg = self._ver.get(key)
            if agg is None:
                agg = self._ver[key] = _VerAgg(v.start_s, v.end_s)
            agg.start_s = min(agg.start_s, v.start_s)
            agg.end_s = max(agg.end_s, v.end_s)
            agg.sequences += 1
            agg.busy_s += v.end_s - v.start_s
            agg.timeouts += v.timed_out
            agg.failures += v.failed
            rec = self.steps[v.step]
            rec.verify_end_s = max(rec.verify_end_s, v.end_s)
            self.samples_verified[v.step] += 1
            if self.log is not None:
                self.log.append(("verified", v.sample, v.end_s))

    def event(self, pool: str, worker: int, phase: str, step: int, version: int, start_s: float,
              end_s: float, sequences: int = 0, prompt_tokens: int = 0, output_tokens: int = 0,
              **extra) -> None:
        if self.log is not None:
            self.log.append((f"{pool}{worker} {phase}", step, start_s, end_s))
        self._events.append(TraceEvent(self.run_id, step, version, pool, worker, phase, start_s,
                                       end_s, sequences, prompt_tokens, output_tokens, extra))

    def frame(self, counters: dict[int, dict[int, StepCounters]]) -> pd.DataFrame:
        """The trace; `counters[replica][step]` adds preemption/recompute counts to generate rows."""
        rows = [e.row() for e in self._events]
        for (step, replica), a in self._gen.items():
            extra = {"staleness": a.staleness}
            c = counters.get(replica, {}).get(step)
            if c is not None:
                extra.update(preemptions=c.preemptions, interruptions=c.interruptions,
                             recompute_tokens=c.recompute_tokens)
            if a.multi_version:
                extra["multi_version_samples"] = a.multi_version
            version = step - max(a.staleness)
            rows.append(self._row(step, version, "sampler", replica, "generate", a.start_s,
                                  a.end_s, a.sequences, a.prompt_tokens, a.output_tokens, extra))
        for (step, worker), a in self._ver.items():
            rows.append(self._row(step, step, "verifier", worker, "verify", a.start_s, a.end_s,
                                  a.sequences, 0, 0, {"busy_s": a.busy_s, "timeouts": a.timeouts,
                                                      "failures": a.failures}))
        rows.sort(key=lambda r: (r["start_s"], r["worker_pool"], r["worker_id"], r["phase"]))
        if not rows:
            return to_frame([])
        return pd.DataFrame(rows, columns=TRACE_COLUMNS).astype(to_frame([]).dtypes.to_dict())

    def _row(self, step: int, version: int, pool: str, worker: int, phase: str, start_s: float,
             end_s: float, sequences: int, prompt_tokens: int, output_tokens: int,
             extra: dict) -> dict:
        return {"run_id": self.run_id, "step": step, "policy_version": version,
                "worker_pool": pool, "worker_id": worker, "phase": phase, "start_s": start_s,
                "end_s": end_s, "sequences": sequences, "prompt_tokens": prompt_tokens,
                "output_tokens": output_tokens, "extra": json.dumps(extra, sort_keys=True)}
