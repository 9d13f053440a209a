"""Verifier pool: N workers (CPU sandboxes or judge replicas) serving finished samples FIFO.

Latencies and failures are drawn with the batch (rlvr_sim.sim.source) and capped at the timeout
there; the pool only queues. It is a G/G/N first-come-first-served queue solved exactly with a
heap of worker free times, one heap operation per sample, so verification overlaps generation
as traces finish without a SimPy event per sample. Arrivals come in time order, ties served in
the order given (callers sort by (time, replica, sample)); an arrival earlier than one already
served (none in the shipped orchestrators) is served as if it arrived with it.

`serve_columns` serves one step's samples given as columns (the whole-batch sync path): when no
arrival waits for a worker, which it checks exactly, the schedule is computed with numpy in the
heap's own worker order (`_unqueued`); otherwise the same heap loop runs.

`rpc_s` is a round trip that does not occupy a worker (handing the trace over and returning the
reward: network to a sandbox fleet, IPC to a local process pool): a sample's reward is known
`rpc_s` after its service ends, so its `end_s` (and its trace span) includes it while the worker
is already free; `busy_s` counts service only.
"""

from __future__ import annotations

import heapq
from operator import itemgetter
from typing import NamedTuple

import numpy as np

from rlvr_sim.sim.columns import FinishedColumns, VerifiedColumns
from rlvr_sim.sim.sampler import Finished
from rlvr_sim.sim.source import Batch


class Verified(NamedTuple):
    sample: int
    step: int
    worker: int
    start_s: float
    end_s: float
    timed_out: bool
    failed: bool


class VerifierPool:
    """FIFO multi-server queue; `busy_s` accumulates service seconds over all workers."""

    def __init__(self, workers: int, rpc_s: float = 0.0):
        self.workers = workers
        self.rpc_s = rpc_s
        self._free: list[tuple[float, int]] = [(0.0, w) for w in range(workers)]
        self._last_arrival_s = 0.0
        self.busy_s = 0.0
        self.timeouts = 0
        self.failures = 0

    def serve(self, finished: list[Finished], batches: dict[int, Batch]) -> list[Verified]:
        out: list[Verified] = []
        append, new = out.append, tuple.__new__
        free = self._free
        replace = heapq.heapreplace
        rpc = self.rpc_s
        last, busy, timeouts, failures = self._last_arrival_s, self.busy_s, self.timeouts, self.failures
        step = None
        for f in finished:
            arrival = f[8]                           # end_s
            if arrival < last:                       # see the module docstring
                arrival = last
            last = arrival
            if f[1] != step:
                step = f[1]
                batch = batches[step]
                first, verify_s = batch.groups[0].first_sample, batch.verify_s
                timed_out_of, failed_of = batch.timed_out, batch.failed
            i = f[0] - first
            service = verify_s[i]
            free_at, worker = free[0]
            start = arrival if arrival > free_at else free_at
            end = start + service
            replace(free, (end, worker))
            timed_out, failed = timed_out_of[i], failed_of[i]
            busy += service
            timeouts += timed_out
            failures += failed
            append(new(Verified, (f[0], step, worker, start, end + rpc, timed_out, failed)))
        self._last_arrival_s, self.busy_s, self.timeouts, self.failures = last, busy, timeouts, failures
        return out

    def serve_columns(self, finished: FinishedColumns, batch: Batch) -> VerifiedColumns:
        """`serve` for one step's samples given as columns, in arrival order (the whole-batch sync
        path): the same starts, ends and workers. When no sample waits for a worker (every
        arrival finds one free: checked exactly) the schedule is computed with numpy (`_unqueued`);
        otherwise, or with zero service times, by the heap loop of `serve`."""
        step = finished.step
        index = finished.sample - batch.first_sample
        service = np.asarray(batch.verify_s, dtype=float)[index]
        timed_out = np.asarray(batch.timed_out, dtype=bool)[index]
        failed = np.asarray(batch.failed, dtype=bool)[index]
        arrival = np.maximum.accumulate(np.maximum(finished.end_s, self._last_arrival_s)) \
            if len(index) else finished.end_s
        fast = _unqueued(sorted(self._free), arrival, service)
        if fast is not None:
            worker, start, self._free = fast
        else:
            worker, start = self._heap_loop(arrival.tolist(), service.tolist())
        if len(index):
            self._last_arrival_s = float(arrival[-1])
            self.busy_s = float(np.cumsum(np.append(self.busy_s, service))[-1])   # in order, as serve
        self.timeouts += int(timed_out.sum())
        self.failures += int(failed.sum())
        return VerifiedColumns(step, finished.sample, worker, start, start + service + self.rpc_s,
                               timed_out, failed)

    def _heap_loop(self, arrival: list[float], service: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Workers and start times of arrivals (in order) on the heap of worker free times."""
        free, replace = self._free, heapq.heapreplace
        workers, starts = [], []
        for a, s in zip(arrival, service):
            free_at, w = free[0]
            start = a if a > free_at else free_at
            replace(free, (start + s, w))
            workers.append(w)
            starts.append(start)
        return np.array(workers, dtype=np.int64), np.array(starts, dtype=float)


def _unqueued(free: list[tuple[float, int]], arrival: np.ndarray, service: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[float, int]]] | None:
    """(workers, starts, new heap) of FIFO arrivals on W workers whose free times are `free`
    (sorted), when no arrival waits; None when one would (or a service time is 0).

    Without waiting, job k starts on arrival and ends at e_k = a_k + s_k, and the heap hands out
    workers in the order they became free: the releases R = [the W initial (free_at, worker)] +
    [(e_j, w_j) of the jobs, sorted], job k taking R[k]. No job waits iff R[k] is free by a_k for
    every k (with s > 0, R[k] is then a job j < k, so w_k = w_j is known: resolved by pointer
    jumping). Jobs ending at the same time are ordered by worker, which depends on the
    assignment: iterated to a fixed point (a few rounds; None if it does not settle)."""
    n, n_workers = len(arrival), len(free)
    if n == 0 or n_workers == 0 or not (service > 0).all() or free[-1][0] > arrival[0]:
        return None
    init_t = np.array([t for t, _ in free], dtype=float)
    init_w = np.array([w for _, w in free], dtype=np.int64)
    end = arrival + service
    order = np.argsort(end, kind="stable")
    jobs = n - n_workers                     # jobs served by a worker a previous job freed
    if jobs > 0 and (end[order[:jobs]] > arrival[n_workers:]).any():
        return None                          # someone waits: the heap loop decides
    ends_sorted = end[order]
    tied = jobs > 0 and bool((ends_sorted[1:] == ends_sorted[:-1]).any())
    worker = np.empty(n, dtype=np.int64)
    for _ in range(16 if tied else 1):
        ptr = np.arange(n)
        if jobs > 0:
            ptr[n_workers:] = order[:jobs]
            while (ptr >= n_workers).any():
                ptr = ptr[ptr]
        worker = init_w[ptr]
        if not tied:
            break
        new_order = np.lexsort((worker, end))
        if (new_order == order).all():
            break
        order = new_order
        if (end[order[:jobs]] > arrival[n_workers:]).any():
            return None
    else:
        return None
    # the heap after: the W releases not taken, R[n:] (sorted: a valid heap)
    if n < n_workers:
        left = list(zip(init_t[n:].tolist(), init_w[n:].tolist()))
        left += list(zip(end[order].tolist(), worker[order].tolist()))
    else:
        tail = order[jobs:]
        left = list(zip(end[tail].tolist(), worker[tail].tolist()))
    left.sort()
    return worker, arrival.copy(), left


def arrival_order(finished: list[Finished]) -> list[Finished]:
    """The order the pool serves simultaneous arrivals in: (time, replica, sample)."""
    out = sorted(finished, key=_SAMPLE)     # stable sorts, least significant key first: the
    out.sort(key=_REPLICA)                  # order of key (end_s, replica, sample), with
    out.sort(key=_END)                      # cheaper keys (one field each)
    return out


_SAMPLE, _REPLICA, _END = itemgetter(0), itemgetter(2), itemgetter(8)   # Finished fields
