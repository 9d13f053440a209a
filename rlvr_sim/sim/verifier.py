"""Verifier pool: N workers (CPU sandboxes or judge replicas) serving finished samples FIFO.

Latencies and failures are drawn with the batch (rlvr_sim.sim.source) and capped at the timeout
there; the pool only queues. It is a G/G/N first-come-first-served queue solved exactly with a
heap of worker free times, one heap operation per sample, so verification overlaps generation
as traces finish without a SimPy event per sample. Arrivals come in time order, ties served in
the order given (callers sort by (time, replica, sample)); an arrival earlier than one already
served (none in the shipped orchestrators) is served as if it arrived with it.
"""

from __future__ import annotations

import heapq
from operator import itemgetter
from typing import NamedTuple

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

    def __init__(self, workers: int):
        self.workers = workers
        self._free: list[tuple[float, int]] = [(0.0, w) for w in range(workers)]
        self._last_arrival_s = 0.0
        self.busy_s = 0.0
        self.timeouts = 0
        self.failures = 0

    def serve(self, finished: list[Finished], batches: dict[int, Batch]) -> list[Verified]:
        out: list[Verified] = []
        free = self._free
        replace = heapq.heapreplace
        for f in finished:
            arrival = f.end_s
            if arrival < self._last_arrival_s:       # see the module docstring
                arrival = self._last_arrival_s
            self._last_arrival_s = arrival
            batch = batches[f.step]
            i = f.sample - batch.groups[0].first_sample
            service = batch.verify_s[i]
            free_at, worker = free[0]
            start = arrival if arrival > free_at else free_at
            end = start + service
            replace(free, (end, worker))
            timed_out, failed = batch.timed_out[i], batch.failed[i]
            self.busy_s += service
            self.timeouts += timed_out
            self.failures += failed
            out.append(Verified(f.sample, f.step, worker, start, end, timed_out, failed))
        return out


def arrival_order(finished: list[Finished]) -> list[Finished]:
    """The order the pool serves simultaneous arrivals in: (time, replica, sample)."""
    return sorted(finished, key=_ARRIVAL_KEY)


_ARRIVAL_KEY = itemgetter(8, 2, 0)      # Finished.end_s, .replica, .sample
