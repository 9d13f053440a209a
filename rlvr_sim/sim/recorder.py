"""Collects what a simulation did: per-step records and trace rows, aggregated for long runs.

Trace rows follow rlvr_sim.trace (one schema with the executor). To keep memory flat on long
runs, a step's per-sample records are held only until the step is complete (all its samples
generated and verified: `close_step`), then reduced with numpy to one `generate` row per
(step, replica) and one `verify` row per (step, worker); per-sample staleness goes in the
`extra` of the generate rows as `{"staleness": [...]}` (docs/contracts.md). With `trace=False`
no trace row is kept at all.

The recorder only listens: it holds no state the simulation reads. Step records
(rlvr_sim.sim.steps) belong to the orchestrators; the replicas' per-step counters are handed
over by the orchestrator when it closes a step (`close_step(step, counters)`), and `close_step`
returns the step's `StepSamples` for the orchestrator to apply to its own record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from collections import Counter, defaultdict
from dataclasses import asdict, fields

import numpy as np
import pandas as pd

from rlvr_sim.sim.sampler import Finished, StepCounters
from rlvr_sim.sim.steps import (StepLog, StepRecord, StepSamples, StepTotals,  # noqa: F401 (re-exported)
                                critical_path, phase_spans)
from rlvr_sim.sim.verifier import Verified
from rlvr_sim.trace import TRACE_COLUMNS, to_frame


_EMPTY_TRACE: pd.DataFrame | None = None
_COUNTER_FIELDS = tuple(f.name for f in fields(StepCounters))


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stable order by key, distinct keys, start index of each key in that order)."""
    order = np.argsort(keys, kind="stable")
    uniq, first = np.unique(keys[order], return_index=True)
    return order, uniq, first


def _columns(records: Sequence[tuple], fields: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Records (named tuples of numbers) -> field index -> float array of that field (only the
    fields asked for: the conversion costs ~0.1 us per value)."""
    cols = list(zip(*records))
    return {i: np.fromiter(cols[i], dtype=float, count=len(records)) for i in fields}


class Recorder:
    """Sink for the orchestrators; `frame()` returns the trace, `counter_totals` the replicas'
    counters summed over closed steps, `staleness` the histogram of sample staleness."""

    def __init__(self, run_id: str, log: bool = False, trace: bool = True):
        self.run_id = run_id
        self.trace = trace
        self.counter_totals = StepCounters()
        self.staleness: Counter = Counter()
        # (what, step or sample, time_s...) in the order things happened, for exact-log tests
        self.log: list[tuple] | None = [] if log else None
        self._gen: dict[int, list[Finished]] = defaultdict(list)
        self._ver: dict[int, list[Verified]] = defaultdict(list)
        self._rows: list[tuple] = []                           # TRACE_COLUMNS order

    def generated(self, finished: list[Finished]) -> None:
        gen = self._gen
        for f in finished:
            gen[f.step].append(f)
        if self.log is not None:
            self.log.extend(("generated", f.sample, f.end_s) for f in finished)

    def verified(self, results: list[Verified]) -> None:
        ver = self._ver
        for v in results:
            ver[v.step].append(v)
        if self.log is not None:
            self.log.extend(("verified", v.sample, v.end_s) for v in results)

    def close_step(self, step: int, step_counters: dict[int, StepCounters]) -> StepSamples:
        """All of `step`'s samples are generated and verified: reduce them (and the replicas'
        counters of the step, by replica) to trace rows; what the samples say about the step."""
        trace = self.trace
        g = _columns(self._gen.pop(step), (2, 3, 4, 5, 6, 7, 8) if trace else (3, 4, 5, 7, 8))
        prompt, output = g[3], g[4]
        stale = (step - g[5]).astype(np.int64)
        start, end = g[7], g[8]
        totals = self.counter_totals
        for c in step_counters.values():
            for name in _COUNTER_FIELDS:
                setattr(totals, name, getattr(totals, name) + getattr(c, name))
        values, n = np.unique(stale, return_counts=True)
        self.staleness.update(dict(zip(values.tolist(), n.tolist())))
        gen_start_s, gen_end_s = float(start.min()), float(end.max())
        sequences, prompt_tokens, output_tokens = len(start), int(prompt.sum()), int(output.sum())
        if not self.trace:
            return StepSamples(gen_start_s, gen_end_s,
                               max(v[4] for v in self._ver.pop(step)),      # Verified.end_s
                               sequences, prompt_tokens, output_tokens)
        replica = g[2]
        order, uniq, first = _groups(replica)
        starts = np.minimum.reduceat(start[order], first)
        ends = np.maximum.reduceat(end[order], first)
        counts = np.diff(np.append(first, len(order)))
        p_sum = np.add.reduceat(prompt[order], first)
        o_sum = np.add.reduceat(output[order], first)
        multi = np.add.reduceat((g[6] > 1)[order].astype(np.int64), first)
        for i, (rep, st) in enumerate(zip(uniq.tolist(), np.split(stale[order], first[1:]))):
            extra = {"staleness": st.tolist()}
            if multi[i]:
                extra["multi_version_samples"] = int(multi[i])
            if int(rep) in step_counters:
                extra.update(asdict(step_counters[int(rep)]))
            self._rows.append(self._row(step, step - int(st.max()), "sampler", int(rep), "generate",
                                        float(starts[i]), float(ends[i]), int(counts[i]),
                                        int(p_sum[i]), int(o_sum[i]), extra))

        v = _columns(self._ver.pop(step), (2, 3, 4, 5, 6))      # Verified fields, in order
        order, uniq, first = _groups(v[2])
        v_start, v_end = v[3][order], v[4][order]
        busy = np.add.reduceat(v_end - v_start, first)
        timeouts = np.add.reduceat(v[5][order], first)
        failures = np.add.reduceat(v[6][order], first)
        starts = np.minimum.reduceat(v_start, first)
        ends = np.maximum.reduceat(v_end, first)
        counts = np.diff(np.append(first, len(order)))
        for i, worker in enumerate(uniq.tolist()):
            self._rows.append(self._row(step, step, "verifier", int(worker), "verify",
                                        float(starts[i]), float(ends[i]), int(counts[i]), 0, 0,
                                        {"busy_s": float(busy[i]), "timeouts": int(timeouts[i]),
                                         "failures": int(failures[i])}))
        return StepSamples(gen_start_s, gen_end_s, float(v[4].max()), sequences, prompt_tokens,
                           output_tokens)

    def event(self, pool: str, worker: int, phase: str, step: int, version: int, start_s: float,
              end_s: float, sequences: int = 0, prompt_tokens: int = 0, output_tokens: int = 0,
              **extra) -> None:
        if self.log is not None:
            self.log.append((f"{pool}{worker} {phase}", step, start_s, end_s))
        if self.trace:
            self._rows.append(self._row(step, version, pool, worker, phase, start_s, end_s,
                                        sequences, prompt_tokens, output_tokens, extra))

    def frame(self) -> pd.DataFrame:
        """The trace, rows ordered by (start, pool, worker, phase)."""
        global _EMPTY_TRACE
        if not self._rows:          # trace=False: building the typed empty frame costs ~0.1 s
            if _EMPTY_TRACE is None:
                _EMPTY_TRACE = to_frame([])
            return _EMPTY_TRACE.copy()
        rows = sorted(self._rows, key=lambda r: (r[6], r[3], r[4], r[5]))
        dtypes = to_frame([]).dtypes.to_dict()
        return pd.DataFrame(rows, columns=TRACE_COLUMNS).astype(dtypes)

    def _row(self, step: int, version: int, pool: str, worker: int, phase: str, start_s: float,
             end_s: float, sequences: int, prompt_tokens: int, output_tokens: int,
             extra: dict) -> tuple:
        return (self.run_id, step, version, pool, worker, phase, start_s, end_s, sequences,
                prompt_tokens, output_tokens, json.dumps(extra, sort_keys=True) if extra else "{}")
