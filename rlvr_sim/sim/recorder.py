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
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import fields
from itertools import repeat
from typing import cast

import numpy as np
import pandas as pd

from rlvr_sim.sim.columns import FinishedColumns, VerifiedColumns
from rlvr_sim.sim.sampler import Finished, StepCounters
from rlvr_sim.sim.steps import StepLog as StepLog  # re-exported (older import path)
from rlvr_sim.sim.steps import StepRecord as StepRecord
from rlvr_sim.sim.steps import StepSamples
from rlvr_sim.sim.steps import StepTotals as StepTotals
from rlvr_sim.sim.steps import critical_path as critical_path
from rlvr_sim.sim.steps import phase_spans as phase_spans
from rlvr_sim.sim.verifier import Verified
from rlvr_sim.trace import TRACE_COLUMNS, to_frame


_EMPTY_TRACE: pd.DataFrame | None = None
_JSON = json.JSONEncoder(sort_keys=True)     # json.dumps(x, sort_keys=True) without a new encoder per row
_COUNTER_FIELDS = tuple(f.name for f in fields(StepCounters))

# One trace row, in TRACE_COLUMNS order: run_id, step, policy_version, worker_pool, worker_id,
# phase, start_s, end_s, sequences, prompt_tokens, output_tokens, extra (JSON text)
TraceRow = tuple[str, int, int, str, int, str, float, float, int, int, int, str]
# A record of numbers (Finished, Verified: named tuples of int/bool/float fields)
NumberRecord = tuple[float, ...]
# An exact-log entry: (what, step or sample, time_s...)
LogEntry = tuple[str | int | float, ...]


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stable order by key, distinct keys, start index of each key in that order). Keys are
    replica or worker ids: small non-negative integers sort as uint16 (numpy's radix sort)."""
    if len(keys) and 0 <= keys.min() and keys.max() < 2**16 and (keys == np.floor(keys)).all():
        order = np.argsort(keys.astype(np.uint16), kind="stable")
    else:
        order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.flatnonzero(np.append(len(keys) > 0, ordered[1:] != ordered[:-1]))
    return order, ordered[first], first


def _columns(records: Sequence[NumberRecord | FinishedColumns | VerifiedColumns],
             fields: tuple[int, ...], blocks: bool = True) -> dict[int, np.ndarray]:
    """Records (named tuples of numbers, or column blocks of them from the whole-batch path, when
    `blocks`) -> field index -> float array of that field, in record order (only the fields asked
    for: the conversion costs ~0.1 us per value)."""
    if not blocks:     # the caller knows there is no column block among them
        return _tuple_columns(cast("Sequence[NumberRecord]", records), fields)
    parts: list[dict[int, np.ndarray]] = []
    run: list[NumberRecord] = []
    for rec in records:
        if isinstance(rec, (FinishedColumns, VerifiedColumns)):
            if run:
                parts.append(_tuple_columns(run, fields))
                run = []
            parts.append(rec.fields())
        else:
            run.append(rec)
    if run:
        parts.append(_tuple_columns(run, fields))
    if len(parts) == 1:
        return parts[0]
    return {i: np.concatenate([p[i] for p in parts]) for i in fields}


def _tuple_columns(records: Sequence[NumberRecord], fields: tuple[int, ...]) -> dict[int, np.ndarray]:
    cols = list(zip(*records))
    return {i: np.fromiter(cols[i], dtype=float, count=len(records)) for i in fields}


def _verify_extra(busy_s: float, timeouts: int, checker_errors: int) -> str:
    """The `extra` of a verify row: json.dumps of {busy_s, checker_errors, timeouts} with sorted
    keys (formatted directly: a per-worker row per step is the recorder's hottest JSON). The
    executor's keys (rlvr_sim.trace.VerifyExtra); `checker_errors` are the verifier model's
    failures; no `wrong_answers`: the simulator grades no answers (VerifyExtra reads None)."""
    if not math.isfinite(busy_s):
        return _JSON.encode({"busy_s": busy_s, "checker_errors": checker_errors,
                             "timeouts": timeouts})
    return f'{{"busy_s": {busy_s!r}, "checker_errors": {checker_errors}, "timeouts": {timeouts}}}'


class Recorder:
    """Sink for the orchestrators; `frame()` returns the trace, `counter_totals` the replicas'
    counters summed over closed steps, `staleness` the histogram of sample staleness."""

    def __init__(self, run_id: str, log: bool = False, trace: bool = True):
        self.run_id = run_id
        self.trace = trace
        self.counter_totals = StepCounters()
        self.staleness: Counter[int] = Counter()
        # (what, step or sample, time_s...) in the order things happened, for exact-log tests
        self.log: list[LogEntry] | None = [] if log else None
        self._gen: dict[int, list[Finished | FinishedColumns]] = defaultdict(list)
        self._ver: dict[int, list[Verified | VerifiedColumns]] = defaultdict(list)
        self._rows: list[TraceRow] = []
        self._block_steps: set[int] = set()        # steps with column blocks among their records

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

    def generated_columns(self, block: FinishedColumns) -> None:
        """`generated` for one step's samples as columns (the whole-batch sync path)."""
        self._gen[block.step].append(block)
        self._block_steps.add(block.step)
        if self.log is not None:
            self.log.extend(zip(repeat("generated"), block.sample.tolist(), block.end_s.tolist()))

    def verified_columns(self, block: VerifiedColumns) -> None:
        """`verified` for one step's rewards as columns (the whole-batch sync path)."""
        self._ver[block.step].append(block)
        self._block_steps.add(block.step)
        if self.log is not None:
            self.log.extend(zip(repeat("verified"), block.sample.tolist(), block.end_s.tolist()))

    def close_step(self, step: int, step_counters: dict[int, StepCounters]) -> StepSamples:
        """All of `step`'s samples are generated and verified: reduce them (and the replicas'
        counters of the step, by replica) to trace rows; what the samples say about the step."""
        trace = self.trace
        blocks = step in self._block_steps
        self._block_steps.discard(step)
        g = _columns(self._gen.pop(step), (2, 3, 4, 5, 6, 7, 8) if trace else (3, 4, 5, 7, 8), blocks)
        prompt, output = g[3], g[4]
        stale = (step - g[5]).astype(np.int64)
        start, end = g[7], g[8]
        totals = self.counter_totals
        for c in step_counters.values():
            for name in _COUNTER_FIELDS:
                setattr(totals, name, getattr(totals, name) + getattr(c, name))
        if len(stale) and stale.min() >= 0:
            n = np.bincount(stale)
            values = np.flatnonzero(n)
            self.staleness.update(dict(zip(values.tolist(), n[values].tolist())))
        else:
            values, n = np.unique(stale, return_counts=True)
            self.staleness.update(dict(zip(values.tolist(), n.tolist())))
        gen_start_s, gen_end_s = float(start.min()), float(end.max())
        sequences, prompt_tokens, output_tokens = len(start), int(prompt.sum()), int(output.sum())
        if not self.trace:
            return StepSamples(gen_start_s, gen_end_s,
                               float(_columns(self._ver.pop(step), (4,), blocks)[4].max()),  # Verified.end_s
                               sequences, prompt_tokens, output_tokens)
        replica = g[2]
        order, uniq, first = _groups(replica)
        starts = np.minimum.reduceat(start[order], first)
        ends = np.maximum.reduceat(end[order], first)
        counts = np.diff(np.append(first, len(order)))
        p_sum = np.add.reduceat(prompt[order], first)
        o_sum = np.add.reduceat(output[order], first)
        multi = np.add.reduceat((g[6] > 1)[order].astype(np.int64), first)
        oldest = np.maximum.reduceat(stale[order], first)
        stale_lists = np.split(stale[order], first[1:])
        for rep, st, m, old, t0, t1, k, p, o in zip(
                uniq.astype(np.int64).tolist(), stale_lists, multi.tolist(), oldest.tolist(),
                starts.tolist(), ends.tolist(), counts.tolist(), p_sum.astype(np.int64).tolist(),
                o_sum.astype(np.int64).tolist()):
            extra = {"staleness": st.tolist()}
            if m:
                extra["multi_version_samples"] = m
            counter = step_counters.get(rep)
            if counter is not None:
                extra.update({name: getattr(counter, name) for name in _COUNTER_FIELDS})   # asdict
            self._rows.append(self._row(step, step - old, "sampler", rep, "generate", t0, t1, k, p,
                                        o, extra))

        v = _columns(self._ver.pop(step), (2, 3, 4, 5, 6), blocks)      # Verified fields, in order
        order, uniq, first = _groups(v[2])
        v_start, v_end = v[3][order], v[4][order]
        busy = np.add.reduceat(v_end - v_start, first)
        timeouts = np.add.reduceat(v[5][order], first)
        checker_errors = np.add.reduceat(v[6][order], first)       # Verified.failed
        starts = np.minimum.reduceat(v_start, first)
        ends = np.maximum.reduceat(v_end, first)
        counts = np.diff(np.append(first, len(order)))
        for worker, t0, t1, k, b, t, f in zip(
                uniq.astype(np.int64).tolist(), starts.tolist(), ends.tolist(), counts.tolist(),
                busy.tolist(), timeouts.astype(np.int64).tolist(),
                checker_errors.astype(np.int64).tolist()):
            self._rows.append((self.run_id, step, step, "verifier", worker, "verify", t0, t1, k, 0, 0,
                               _verify_extra(b, t, f)))
        return StepSamples(gen_start_s, gen_end_s, float(v[4].max()), sequences, prompt_tokens,
                           output_tokens)

    def event(self, pool: str, worker: int, phase: str, step: int, version: int, start_s: float,
              end_s: float, sequences: int = 0, prompt_tokens: int = 0, output_tokens: int = 0,
              **extra: object) -> None:
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
             extra: dict[str, object]) -> TraceRow:
        return (self.run_id, step, version, pool, worker, phase, start_s, end_s, sequences,
                prompt_tokens, output_tokens, _JSON.encode(extra) if extra else "{}")
