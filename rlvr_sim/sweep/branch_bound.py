"""Branch and bound over the plan space: the exhaustive sweep's optima without simulating plans
that cannot win (`branch_and_bound`; rlvr_sim.sweep.planner explains when it is used).

Two ways to stop early, for an answer in less time with a stated guarantee instead of the exact
one (as MIP solvers report their gap):
- `gap` (relative, e.g. 0.05): a plan is skipped once its bound x (1 + gap) is above its group's
  best, so the best found is at most (1 + gap) x the group's optimum;
- `deadline` (a `clock()` time): no plan is started after it, and a plan started in a group that
  already has a valid plan simulated to the end stops at its first step end past it (a partial
  result: certainly slower than its stop level, like a raced plan); a group of a total in
  `answer_totals` (default: every group) with no such plan yet runs one plan at a time to its end
  (and starts another if that one is invalid) whatever the deadline, so that it gets an answer:
  the limit can be passed by the time that plan takes; once those groups have an answer, the
  other groups without one get a plan started, one at a time (`_Queues.priority`), so a short
  limit does not leave the frontier unanswered, and they are stopped by the clock like the
  rest and may still end with no answer.
Either way each group's `GroupGap` says how far its best can be from the optimum of its group:
best / (the smallest bound of a plan not simulated, or of a raced-out or clock-stopped plan the
larger of its bound and its stop level) - 1,
0 when nothing left could beat it (the exact search's case). The guarantee is relative to the
simulator (the planner rule's estimates) and holds as long as the bound does.
"""

from __future__ import annotations

import functools
import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from tqdm import tqdm

from rlvr_sim.sweep.evaluator import Evaluator, GroupGap, SearchResult, best_per_group, search_result
from rlvr_sim.sweep.space import Allocation, SearchSpace, enumerate_space


Group = tuple[str, int]          # (GPU type, GPU total)

STOP_EXHAUSTED = "exact"          # nothing left in the group could beat its best
STOP_GAP = "gap"                  # stopped by the requested gap
STOP_TIME = "time limit"          # stopped by the deadline
STOP_OPEN = "open"                # none of these, yet a plan left could beat the best (a bug)


@dataclass
class _Queues:
    """Each group's unsimulated plans as a heap of (bound, exact?, allocation), its best simulated
    hours, and its plans in flight. `quick` bounds order the heap; a plan's `full` bound is
    computed when it reaches the front (then it goes back in at that key). With `predict`, a
    group's next plan is its eligible plan (bound within the best) of least predicted hours
    instead of its front (taken plans are dropped from the heap lazily)."""

    full: Callable[[Allocation], float]
    heaps: dict[Group, list[tuple[float, bool, Allocation]]]
    best: dict[Group, float]
    running: dict[Group, int]
    predict: Callable[[Allocation], float] | None = None
    taken: set[Allocation] = field(default_factory=set)
    first: frozenset[int] = frozenset()      # GPU totals that must answer (a deadline's): `priority`

    def front(self, g: Group) -> float:
        """The smallest full bound of `g`'s queue (inf when empty), resolving quick bounds."""
        heap = self.heaps[g]
        while heap and (heap[0][2] in self.taken or not heap[0][1]):
            lb, _, a = heapq.heappop(heap)
            if a not in self.taken:
                heapq.heappush(heap, (max(lb, self.full(a)), True, a))
        return heap[0][0] if heap else math.inf

    def next_plan(self, speculate: bool, gap: float = 0.0, closed: frozenset[Group] = frozenset()
                  ) -> Allocation | None:
        """The next plan to simulate, or None. A group's front plan whose bound is <= its best
        (/ (1 + gap)) and that has no plan in flight is certainly simulated by the exhaustive-equal search
        (every later plan of its group has a bound >= it, so no result can prune it): those go
        first, lowest bound / best first. Otherwise (with `speculate`) the front of a group with
        plans in flight, fewest in flight first: a result still running may prune it. Groups in
        `closed` (past the deadline) start nothing; with `first` (a deadline's) groups go by
        `priority`. With `predict` the group is chosen the same way and its plan by `_predicted`."""
        options = []
        for g in self.heaps:
            if g in closed:
                continue
            lb = self.front(g)
            if not self.heaps[g] or lb * (1.0 + gap) > self.best[g]:
                continue
            ratio = lb / self.best[g] if 0 < self.best[g] < math.inf else 0.0
            options.append((self.priority(g), self.running[g] > 0, self.running[g], ratio, lb, g))
        options = [o for o in options if speculate or not o[1]]
        if not options:
            return None
        g = min(options, key=lambda o: o[:5])[5]
        if self.predict is None:
            return heapq.heappop(self.heaps[g])[2]
        return self._predicted(g, gap)

    def priority(self, g: Group) -> int:
        """With `first` (a deadline's totals that must answer): 0 for such a group with no answer
        yet; 1 for a group of another total with none, while no group of another total without
        an answer has a plan in flight (the asked total's groups, with plans to speculate on,
        keep the workers until they have an answer; then one worker at a time gets the other
        totals their first answer, so a short limit does not leave the frontier unanswered,
        while the others go on with the asked total); 2 for the rest of `first`; 3 for the
        others. Without `first`: 0 for all (the order of `next_plan` alone)."""
        if not self.first:
            return 0
        asked = g[1] in self.first
        if self.best[g] == math.inf:
            if asked:
                return 0
            if not any(self.running[h] for h in self.heaps
                       if h[1] not in self.first and self.best[h] == math.inf):
                return 1
        return 2 if asked else 3

    def _predicted(self, g: Group, gap: float) -> Allocation:
        """`g`'s eligible plan (full bound x (1 + gap) <= its best) of least predicted hours
        (ties: lower bound, then label); the front is always eligible, so there is one."""
        assert self.predict is not None
        limit = self.best[g] / (1.0 + gap)
        best_key: tuple[float, float, str] | None = None
        pick: Allocation | None = None
        for lb, _, a in self.heaps[g]:
            if lb > limit or a in self.taken:
                continue
            fb = self.full(a)
            if fb > limit:
                continue
            key = (self.predict(a), fb, a.label())
            if best_key is None or key < best_key:
                best_key, pick = key, a
        assert pick is not None, "the front plan is eligible"
        self.taken.add(pick)
        return pick


@dataclass
class Predictor:
    """Predicted hours of a plan, for the order of an early-stopping search (never for what it
    may skip): max(full bound, sampler-side bound x k), with k the least simulated hours /
    sampler bound among plans of the same sampler layout (placement, TP, PP), else among all
    (1 before any: bound order). Why: the full bound is tight where the trainer binds (1.00-1.08
    of the hours on the README's example) and the sampler side loose where a KV-thrashing
    sampler binds (~1.5x its bound there), and how loose is a property of the sampler layout,
    learned from the first plans simulated with it. (An earlier form also scaled the full bound
    by the least hours / full bound seen; after sampler-bound plans only, that scaled every
    trainer-bound plan by the sampler's looseness and kept the search on one sampler layout.)"""

    full: Callable[[Allocation], float]
    quick: Callable[[Allocation], float]
    k_sampler: dict[tuple[str, int, int], float] = field(default_factory=dict)

    @staticmethod
    def layout(a: Allocation) -> tuple[str, int, int]:
        return (a.placement, a.sampler_tp, a.sampler_pp)

    def learn(self, a: Allocation, hours: float) -> None:
        """Take in a plan simulated to the end."""
        if not math.isfinite(hours):
            return
        qb = self.quick(a)
        if qb > 0:
            key = self.layout(a)
            self.k_sampler[key] = min(self.k_sampler.get(key, math.inf), hours / qb)

    def __call__(self, a: Allocation) -> float:
        k_s = self.k_sampler.get(self.layout(a), min(self.k_sampler.values(), default=1.0))
        return max(self.full(a), self.quick(a) * k_s)


def branch_and_bound(space: SearchSpace, ev: Evaluator, in_flight: int | None = None,
                     speculate: bool = True, gap: float = 0.0, deadline: float | None = None,
                     clock: Callable[[], float] = time.monotonic, order: str = "auto",
                     answer_totals: frozenset[int] | None = None,
                     wall: Callable[[], float] = time.time) -> SearchResult:
    """Simulate each (GPU, total)'s plans in increasing bound order until the next bound exceeds
    the group's best simulated hours (module docstring), streaming: `in_flight` plans (default:
    the pool's workers) run at once and, whenever one finishes, its group's best is updated and
    the next plan whose bound is still <= its group's best is submitted (`_Queues.next_plan`),
    so a long plan never holds the other workers idle. With `ev.quick_bound` (a cheaper bound,
    never above `ev.bound`) plans are queued by it and get their full bound only at the front of
    their queue. The optima equal the exhaustive sweep's whenever the bound holds, whatever the
    order results arrive in; which plans get simulated can vary with timing on a process pool
    (speculative plans: `speculate`), never on the serial pool. `rounds` counts the waits.
    `gap` and `deadline` stop earlier (module docstring); the result's `gaps` say by how much.
    `order`: "bound" (each group's plans in bound order), "predicted" (`Predictor`: the plan
    likeliest to be fast first, so an early stop holds a good plan), "auto" (predicted when
    stopping early, else bound). The order never changes what the exact search may skip.
    `answer_totals`: the GPU totals whose groups finish a plan whatever the deadline (None: all).
    A plan's stop instant is given to its worker on the `wall` clock (`time.time`, one clock for
    every process): wall() + deadline - clock() at submission."""
    if not gap >= 0:
        raise ValueError(f"gap {gap}: must be >= 0")
    assert ev.bound is not None
    full = functools.cache(ev.bound)        # bounds are pure; the predicted order asks them often
    quick = functools.cache(ev.quick_bound) if ev.quick_bound is not None else full
    every = enumerate_space(space)
    heaps: dict[Group, list[tuple[float, bool, Allocation]]] = {}
    rejected: list[Allocation] = []
    for a in every:
        lb = quick(a)
        if lb == math.inf:       # loading would reject it: a broken rule or no memory fit
            rejected.append(a)
            continue
        if a in ev.seen:         # a shared evaluator (a resumed search): what is left to learn
            m = ev.metrics(a)
            if m is None or m.stopped_above_hours is None:
                continue         # invalid, or simulated to the end
            # raced out: certainly slower than its stop level, which a confirmed best that came
            # out slower can now be above; it is queued at that level and simulated again
            lb = max(lb, m.stopped_above_hours)
        heaps.setdefault((a.gpu, a.total_gpus), []).append((lb, quick is full, a))
    for heap in heaps.values():
        heapq.heapify(heap)
    if order not in ("auto", "bound", "predicted"):
        raise ValueError(f"order {order!r}: auto, bound or predicted")
    predicted = order == "predicted" or (order == "auto" and (gap > 0 or deadline is not None))
    predictor = Predictor(full, quick) if predicted else None
    # with a deadline, the totals that must answer are served first (the rest may get no time)
    first = answer_totals if deadline is not None and answer_totals is not None else frozenset()
    q = _Queues(full, heaps, {g: math.inf for g in heaps}, {g: 0 for g in heaps}, predictor, first=first)
    for a in ev.seen:            # plans simulated before (a shared evaluator) count at once
        g = (a.gpu, a.total_gpus)
        if g in q.best:
            q.best[g] = min(q.best[g], ev.final_hours(a))
        _learn(predictor, ev, a)
    width = max(in_flight or getattr(ev.pool, "workers", 1), 1)
    waits = 0
    closed: frozenset[Group] = frozenset()
    # per group, its plan in flight that runs to its end past the deadline (one at a time)
    exempt: dict[Group, Allocation] = {}

    def answers(g: Group) -> bool:
        """`g` must still finish a plan (past the deadline too) and has none running to its end."""
        return q.best[g] == math.inf and (answer_totals is None or g[1] in answer_totals) and g not in exempt
    with tqdm(desc="plan: branch and bound", unit="plan", disable=not ev.progress, leave=False) as bar:
        while True:
            if deadline is not None and clock() >= deadline:
                # all but the groups that must answer and have no plan running to its end for it
                closed = frozenset(g for g in q.heaps if not answers(g))
            while ev.in_flight < width:
                nxt = q.next_plan(speculate, gap, closed)
                if nxt is None:
                    break
                g = (nxt.gpu, nxt.total_gpus)
                best = q.best[g]
                # one plan at a time runs to its end for a group that must answer; the rest stop
                to_end = deadline is None or answers(g)
                stop_at = None if deadline is None or to_end else wall() + deadline - clock()
                if ev.submit(nxt, above=best, again=True, stop_at=stop_at):
                    q.running[g] += 1
                    if deadline is not None and to_end:
                        exempt[g] = nxt
            if ev.in_flight == 0:
                break
            waits += 1
            for a in ev.next_done():
                g = (a.gpu, a.total_gpus)
                q.running[g] -= 1
                if exempt.get(g) == a:
                    del exempt[g]
                q.best[g] = min(q.best[g], ev.final_hours(a))
                _learn(predictor, ev, a)
                bar.update(1)
                if ev.progress:
                    bar.set_postfix_str(_progress_text(q))
    if rejected and all(b == math.inf for b in q.best.values()):
        _explain_rejections(ev, rejected)
    unsimulated = sum(1 for a in rejected if a not in ev.seen)
    bounded = sum(1 for a in every if a not in ev.seen) - unsimulated
    gaps = tuple(_group_gap(q, ev, g, gap, g in closed) for g in sorted(q.heaps))
    return search_result(ev, best_per_group(ev), waits, space, bounded, len(every), gaps, unsimulated)


def _explain_rejections(ev: Evaluator, rejected: list[Allocation], shown: int = 3) -> None:
    """No valid plan at all: simulate (the loader rejects them at once) the `shown` rejected plans
    that came closest, most GPUs and widest model parallelism first, so the answer says why."""
    closest = sorted(rejected, key=lambda a: (-a.total_gpus * a.sampler_tp * a.sampler_pp * a.trainer_tp
                                              * a.trainer_pp, a.label()))
    ev.evaluate(closest[:shown], "plan: why nothing fits")


def _learn(predictor: Predictor | None, ev: Evaluator, a: Allocation) -> None:
    """Show the predictor a plan simulated to the end (not a raced or invalid one)."""
    hours = ev.final_hours(a)
    if predictor is not None and hours < math.inf:
        predictor.learn(a, hours)


def _floor(q: _Queues, ev: Evaluator, g: Group) -> float:
    """The least hours a plan of `g` not simulated to the end can take: the smallest bound left
    in its queue, or a raced or clock-stopped plan's stop level or bound, whichever is higher
    (it is certainly slower than both)."""
    floor = q.front(g)
    for a in ev.seen:
        if (a.gpu, a.total_gpus) == g:
            m = ev.metrics(a)
            if m is not None and m.stopped_above_hours is not None:
                floor = min(floor, max(m.stopped_above_hours, q.full(a)))
    return floor


def _group_gap(q: _Queues, ev: Evaluator, g: Group, gap: float, timed_out: bool) -> GroupGap:
    """How far `g`'s best can be from its optimum, and why the search of `g` stopped."""
    best, floor = q.best[g], _floor(q, ev, g)
    if floor >= best:
        how = STOP_EXHAUSTED
    elif timed_out and floor * (1.0 + gap) <= best:
        how = STOP_TIME
    else:
        how = STOP_GAP if gap > 0 else STOP_OPEN
    return GroupGap(g[0], g[1], best, min(floor, best), how)


def _progress_text(q: _Queues) -> str:
    """The progress bar's note: the largest group's best so far and its certified gap."""
    g = max(q.best, key=lambda k: (k[1], k[0]))
    best = q.best[g]
    if best == math.inf:
        return f"{g[1]} GPUs: no valid plan yet"
    lb = min(q.front(g), best)
    return f"{g[1]} GPUs: best {best:,.1f} h, within {best / lb - 1:.1%} of the optimum" if lb > 0 else \
        f"{g[1]} GPUs: best {best:,.1f} h"
