"""Verifier pool: N workers (CPU sandboxes or judge replicas) serving finished samples FIFO.

Latencies and failures are drawn with the batch (rlvr_sim.sim.source) and capped at the timeout
there; the pool only queues. It is a G/G/N first-come-first-served queue solved exactly with a
heap of worker free times, one heap operation per sample, so verification overlaps generation
as traces finish without a SimPy event per sample. Arrivals come in time order, ties served in
the order given (callers sort by (time, replica, sample)); an arrival earlier than one already
served (none in the shipped orchestrators) is served as if it arrived with it.

`rpc_s` is a round trip that does not occupy a worker (handing the trace over and returning the
reward: network to a sandbox fleet, IPC to a local process pool): a sample's reward is known
`rpc_s` after its service ends, so its `end_s` (and its trace span) includes it while the worker
is already free; `busy_s` counts service only.
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


def arrival_order(finished: list[Finished]) -> list[Finished]:
    """The order the pool serves simultaneous arrivals in: (time, replica, sample)."""
    out = sorted(finished, key=_SAMPLE)     # stable sorts, least significant key first: the
    out.sort(key=_REPLICA)                  # order of key (end_s, replica, sample), with
    out.sort(key=_END)                      # cheaper keys (one field each)
    return out


_SAMPLE, _REPLICA, _END = itemgetter(0), itemgetter(2), itemgetter(8)   # Finished fields
