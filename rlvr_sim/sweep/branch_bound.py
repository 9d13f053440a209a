"""Branch and bound over the plan space: the exhaustive sweep's optima without simulating plans
that cannot win (`branch_and_bound`; rlvr_sim.sweep.planner explains when it is used)."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm

from rlvr_sim.sweep.evaluator import Evaluator, SearchResult, best_per_group, search_result
from rlvr_sim.sweep.space import Allocation, SearchSpace, enumerate_space


Group = tuple[str, int]          # (GPU type, GPU total)


@dataclass
class _Queues:
    """Each group's unsimulated plans as a heap of (bound, exact?, allocation), its best simulated
    hours, and its plans in flight. `quick` bounds order the heap; a plan's `full` bound is
    computed when it reaches the front (then it goes back in at that key)."""

    full: Callable[[Allocation], float]
    heaps: dict[Group, list[tuple[float, bool, Allocation]]]
    best: dict[Group, float]
    running: dict[Group, int]

    def front(self, g: Group) -> float:
        """The smallest full bound of `g`'s queue (inf when empty), resolving quick bounds."""
        heap = self.heaps[g]
        while heap and not heap[0][1]:
            lb, _, a = heapq.heappop(heap)
            heapq.heappush(heap, (max(lb, self.full(a)), True, a))
        return heap[0][0] if heap else math.inf

    def next_plan(self, speculate: bool) -> Allocation | None:
        """The next plan to simulate, or None. A group's front plan whose bound is <= its best
        and that has no plan in flight is certainly simulated by the exhaustive-equal search
        (every later plan of its group has a bound >= it, so no result can prune it): those go
        first, lowest bound / best first. Otherwise (with `speculate`) the front of a group with
        plans in flight, fewest in flight first: a result still running may prune it."""
        options = []
        for g in self.heaps:
            lb = self.front(g)
            if not self.heaps[g] or lb > self.best[g]:
                continue
            ratio = lb / self.best[g] if 0 < self.best[g] < math.inf else 0.0
            options.append((self.running[g] > 0, self.running[g], ratio, lb, g))
        options = [o for o in options if speculate or not o[0]]
        if not options:
            return None
        g = min(options, key=lambda o: o[:4])[4]
        return heapq.heappop(self.heaps[g])[2]


def branch_and_bound(space: SearchSpace, ev: Evaluator, in_flight: int | None = None,
                     speculate: bool = True) -> SearchResult:
    """Simulate each (GPU, total)'s plans in increasing bound order until the next bound exceeds
    the group's best simulated hours (module docstring), streaming: `in_flight` plans (default:
    the pool's workers) run at once and, whenever one finishes, its group's best is updated and
    the next plan whose bound is still <= its group's best is submitted (`_Queues.next_plan`),
    so a long plan never holds the other workers idle. With `ev.quick_bound` (a cheaper bound,
    never above `ev.bound`) plans are queued by it and get their full bound only at the front of
    their queue. The optima equal the exhaustive sweep's whenever the bound holds, whatever the
    order results arrive in; which plans get simulated can vary with timing on a process pool
    (speculative plans: `speculate`), never on the serial pool. `rounds` counts the waits."""
    assert ev.bound is not None
    full = ev.bound
    quick = ev.quick_bound or full
    every = enumerate_space(space)
    heaps: dict[Group, list[tuple[float, bool, Allocation]]] = {}
    for a in every:
        lb = quick(a)
        if lb < math.inf:        # inf: structurally invalid for the scenario
            heaps.setdefault((a.gpu, a.total_gpus), []).append((lb, quick is full, a))
    for heap in heaps.values():
        heapq.heapify(heap)
    q = _Queues(full, heaps, {g: math.inf for g in heaps}, {g: 0 for g in heaps})
    for a in ev.seen:            # plans simulated before (a shared evaluator) count at once
        g = (a.gpu, a.total_gpus)
        if g in q.best:
            q.best[g] = min(q.best[g], ev.hours(a))
    width = max(in_flight or getattr(ev.pool, "workers", 1), 1)
    waits = 0
    with tqdm(desc="plan: branch and bound", unit="plan", disable=not ev.progress, leave=False) as bar:
        while True:
            while ev.in_flight < width:
                nxt = q.next_plan(speculate)
                if nxt is None:
                    break
                if ev.submit(nxt, above=q.best[(nxt.gpu, nxt.total_gpus)]):
                    q.running[(nxt.gpu, nxt.total_gpus)] += 1
            if ev.in_flight == 0:
                break
            waits += 1
            for a in ev.next_done():
                g = (a.gpu, a.total_gpus)
                q.running[g] -= 1
                q.best[g] = min(q.best[g], ev.hours(a))
                bar.update(1)
    bounded = sum(1 for a in every if a not in ev.seen)
    return search_result(ev, best_per_group(ev), waits, space, bounded, len(every))
