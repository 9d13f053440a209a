"""`plan` search: the fastest allocation for each GPU type and GPU total, found without brute force.

With a bound (`Evaluator.bound`, rlvr_sim.sweep.bound: a lower bound of each plan's simulated
hours from the cost model alone), `search` is a branch and bound that equals the exhaustive sweep
whenever the bound holds: every allocation of the space gets its bound (cheap), each (GPU type,
total) simulates its plans in increasing bound order and stops as soon as the next bound exceeds
the best hours simulated in that group (no later plan can beat it). It streams: as many plans as
the pool has workers run at once, and when one finishes the next plan is chosen with its result
known (no rounds: a long plan never holds the other workers idle; `branch_and_bound`).
`SearchResult.bounded` counts the plans skipped that way. Without a bound (toy evaluators in
tests) the local search below is used.

Why per (GPU type, total): with both fixed, a run's dollars are hours x GPUs x price, so "fastest"
and "cheapest" agree and one scalar objective (hours) suffices. The hours-vs-dollars frontier then
comes from comparing the optima across totals and GPU types (plus every plan seen on the way).

Search, per (GPU type, total), all searches advancing together so each round is one parallel batch:
1. seeds: colocated at the base TP, and a disaggregated even split (sync);
2. balance: from the even split's simulated busy time of each pool (GPU-seconds of sampling and
   of training per step) set the sampler share that makes both pools equally busy, rounded to
   whole TP groups, for each staleness option;
3. local search: move to the best neighbour (`space.neighbours`: split +-1/2 replicas, TP, staleness,
   mini-batches, placement) while it lowers hours; stop at a local optimum. With
   `Evaluator.prune_bound` (the `plan` default) a neighbour whose lower bound of hours is above
   the plan it would replace is not simulated: it cannot be the move, the group's optimum or on
   the frontier, so those stay the same (`_prune_moves`; tests/test_plan_real.py).
The search can miss a global optimum that no improving path reaches; `exhaustive` evaluates the
whole space for comparison (the tests check both agree on small spaces, and that the search visits
the exhaustive frontier of a 128-GPU space).

Each plan is simulated until its step time is steady (`Evaluator.steady`, rlvr_sim.sim.steady;
the table's `steps_simulated` / `warmup_steps` say how many steps each needed), unless a fixed
`steps` is given. Results are read through the typed `PlanMetrics`, never by column name.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
from tqdm import tqdm

from rlvr_sim.sim.steady import Rule
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.jobs import STATUS_ERROR, STATUS_INVALID, STATUS_OK, PlanMetrics, PlanOutcome, make_jobs
from rlvr_sim.sweep.pools import Pool, Streaming, streaming
from rlvr_sim.sweep.runner import evaluate_all
from rlvr_sim.sweep.store import outcome_row
from rlvr_sim.sweep.space import COLOCATED, DISAGGREGATED, Allocation, SearchSpace, enumerate_space, neighbours, round_split

if TYPE_CHECKING:
    from rlvr_sim.sweep.robust import Perturbation


@dataclass
class Evaluator:
    """Simulates allocations on a pool, once each (a cache keyed by allocation)."""

    scenario: str | Path | dict[str, Any]
    pool: Pool
    steps: int | None
    seed: int | None
    progress: bool = False
    fixed: Plan = Plan(())   # overrides applied to every plan first (`plan --set key=value`)
    steady: Rule | None = None   # with steps None: each plan simulated until its step time is steady
    perturb: "Perturbation | None" = None   # a robustness draw applied to every plan
    bound: Callable[[Allocation], float] | None = None   # lower bound of a plan's simulated hours
    quick_bound: Callable[[Allocation], float] | None = None   # a cheaper bound <= `bound`
    # local search only: skip a neighbour whose lower bound of hours is above the hours of the
    # plan it would replace (it cannot be an improving move; `local_search`)
    prune_bound: Callable[[Allocation], float] | None = None
    # race a candidate against the plan it is compared with: stop simulating it once it certainly
    # takes longer (rlvr_sim.sim.steady.slower_than; only for runs until steady)
    race: bool = False
    seen: dict[Allocation, PlanOutcome] = field(default_factory=dict)
    _stream: Streaming | None = field(default=None, repr=False)
    _flying: dict[str, list[Allocation]] = field(default_factory=dict, repr=False)   # plan_id -> allocations

    def evaluate(self, allocations: list[Allocation], desc: str = "plan",
                 above: dict[Allocation, float] | None = None) -> None:
        """Simulate the allocations not seen yet as one parallel batch (waits for all). With
        `race`, an allocation in `above` stops once it certainly takes longer than its hours
        there (it cannot beat the plan it is compared with; `PlanJob.raced`)."""
        new = list(dict.fromkeys(a for a in allocations if a not in self.seen))
        if not new:
            return
        plans = [Plan(self.fixed.settings + a.plan().settings) for a in new]
        jobs = make_jobs(self.scenario, plans, self.steps, self.seed, self.steady, self.perturb)
        if self.race and above:
            jobs = [job.raced(above.get(a)) for a, job in zip(new, jobs)]
        for allocation, outcome in zip(new, evaluate_all(self.pool, jobs, self.progress, desc)):
            self.seen[allocation] = outcome

    # ------------------------------------------------------------------ streaming
    @property
    def in_flight(self) -> int:
        """Allocations submitted and not yet handed back by `next_done`."""
        return sum(len(group) for group in self._flying.values())

    def submit(self, a: Allocation, above: float | None = None, again: bool = False) -> bool:
        """Start simulating `a` on the pool (rlvr_sim.sweep.pools.Streaming); False (nothing
        started) when it was simulated already or is in flight: a plan is never simulated twice,
        except with `again` when its result is not `settled` for `above`. With `race` and
        `above`, it stops once it certainly takes longer than `above` hours."""
        if any(a in group for group in self._flying.values()):
            return False
        if a in self.seen and not (again and not self.settled(a, -math.inf if above is None else above)):
            return False
        if self._stream is None:
            self._stream = streaming(self.pool)
        plan = Plan(self.fixed.settings + a.plan().settings)
        job = make_jobs(self.scenario, [plan], self.steps, self.seed, self.steady, self.perturb)[0]
        job = replace(job, index=len(self.seen) + self.in_flight)
        if self.race:
            job = job.raced(above)
        self._flying.setdefault(job.plan_id, []).append(a)
        if len(self._flying[job.plan_id]) == 1:      # two allocations with one plan: one simulation
            self._stream.submit(job)
        return True

    def next_done(self) -> list[Allocation]:
        """Wait for the next submitted plan to finish; the allocations it answers (usually one),
        now in `seen`."""
        assert self._stream is not None and self._flying, "next_done: nothing submitted"
        outcome = self._stream.next_done()
        done = self._flying.pop(outcome.plan_id)
        for a in done:
            self.seen[a] = outcome
        return done

    def settled(self, a: Allocation, above: float) -> bool:
        """Whether `a`'s result is known well enough to compare it with a plan of `above` hours:
        simulated to the end, or stopped as certainly slower than at least `above` (a plan it
        raced against that was as fast or faster)."""
        m = self.metrics(a)
        if a not in self.seen:
            return False
        return m is None or m.stopped_above_hours is None or m.stopped_above_hours >= above

    def metrics(self, a: Allocation) -> PlanMetrics | None:
        """The plan's typed results; None when not simulated, invalid or failed."""
        outcome = self.seen.get(a)
        return None if outcome is None else outcome.metrics

    def hours(self, a: Allocation) -> float:
        """Simulated hours to finish, infinite for a plan that is invalid or failed."""
        m = self.metrics(a)
        return math.inf if m is None else m.hours_total

    def key(self, a: Allocation) -> tuple[float, float, Allocation]:
        """Order of preference: fewer hours, then fewer dollars, then a fixed tie-break."""
        m = self.metrics(a)
        return (math.inf, math.inf, a) if m is None else (m.hours_total, m.usd_total, a)

    def table(self) -> pd.DataFrame:
        """Every evaluated allocation as a sweep row plus `label` and `total_gpus`."""
        rows = []
        for allocation, outcome in self.seen.items():
            row = outcome_row(outcome)
            row.update(label=allocation.label(), total_gpus=allocation.total_gpus)
            rows.append(row)
        return pd.DataFrame(rows)


def pool_busy_s(m: PlanMetrics) -> tuple[float, float]:
    """Sampler and trainer busy seconds per step of a plan (utilisation x step time)."""
    return m.utilization.sampler * m.step_time_s, m.utilization.trainer * m.step_time_s


def balanced_share(probe: Allocation, m: PlanMetrics) -> float | None:
    """Sampler share of the GPUs that equalises both pools' busy time, from one disaggregated probe.

    Work of a pool in GPU-seconds = busy seconds x its GPUs, assumed to scale as 1/GPUs when the
    pool grows or shrinks; equal busy time then needs GPUs in proportion to work.
    """
    busy = pool_busy_s(m)
    sampler_work = busy[0] * probe.sampler_gpus
    trainer_work = busy[1] * probe.trainer_gpus
    if sampler_work + trainer_work <= 0:
        return None
    return sampler_work / (sampler_work + trainer_work)


def _seed_pair(space: SearchSpace, base: Allocation, gpu: str, total: int) -> list[Allocation]:
    """Colocated and even-split disaggregated (sync) plans at `base`'s TP degrees."""
    seeds = [replace(base, gpu=gpu, total_gpus=total, placement=COLOCATED, sampler_gpus=total,
                     trainer_gpus=total, max_staleness=0)]
    split = round_split(0.5, total, base.sampler_unit, base.trainer_unit)
    if split is not None:
        seeds.append(replace(base, gpu=gpu, total_gpus=total, placement=DISAGGREGATED,
                             sampler_gpus=split, trainer_gpus=total - split, max_staleness=0))
    return [s for s in seeds if space.allows(s)]


def _shapes(tps: tuple[int, ...], pps: tuple[int, ...]) -> list[tuple[int, int]]:
    """Every (tp, pp) option, smallest model-parallel group first (then less PP)."""
    return sorted(((t, p) for t in tps for p in pps), key=lambda pair: (pair[0] * pair[1], pair[1]))


def _seeds(space: SearchSpace, base: Allocation, ev: Evaluator) -> list[Allocation]:
    """Seed plans of every (GPU, total): the scenario's own TP/PP shapes, and the smallest shapes,
    which grow a level (both pools together) while none of a group's seeds fits. Plans that do
    not fit are rejected by the scenario validator without simulating, so escalating is cheap."""
    sampler = _shapes(space.sampler_tps, space.sampler_pps)
    trainer = _shapes(space.trainer_tps, space.trainer_pps)
    groups = [(gpu, total) for gpu in space.gpus for total in space.sizes]
    seeds = [s for gpu, total in groups for s in _seed_pair(space, base, gpu, total)]
    for level in range(max(len(sampler), len(trainer))):
        (tp_s, pp_s), (tp_t, pp_t) = sampler[min(level, len(sampler) - 1)], trainer[min(level, len(trainer) - 1)]
        level_base = replace(base, sampler_tp=tp_s, sampler_pp=pp_s, trainer_tp=tp_t, trainer_pp=pp_t)
        seeds += [s for gpu, total in groups for s in _seed_pair(space, level_base, gpu, total)]
        ev.evaluate(seeds, f"plan: seeds (level {level})")
        fitted = {(s.gpu, s.total_gpus) for s in seeds if ev.hours(s) < math.inf}
        groups = [group for group in groups if group not in fitted]
        if not groups:
            break
    return list(dict.fromkeys(seeds))


def _balanced_starts(space: SearchSpace, ev: Evaluator, probes: list[Allocation]) -> list[Allocation]:
    starts = []
    for probe in probes:
        m = ev.metrics(probe)
        if probe.placement != DISAGGREGATED or m is None:
            continue
        share = balanced_share(probe, m)
        split = None if share is None else round_split(share, probe.total_gpus, probe.sampler_unit, probe.trainer_unit)
        if split is None:
            continue
        for stale in space.staleness:
            starts.append(replace(probe, sampler_gpus=split, trainer_gpus=probe.total_gpus - split, max_staleness=stale))
    return [s for s in starts if space.allows(s)]


@dataclass
class SearchResult:
    """All simulated plans (`table`), the per-(GPU, total) optima, and how much work it took."""

    table: pd.DataFrame
    optima: list[Allocation]
    allocations: dict[str, Allocation]   # plan_id -> allocation
    rounds: int
    space: SearchSpace
    bounded: int = 0           # plans skipped because their bound exceeded their group's best
    space_size: int = 0        # allocations in the space (0: not enumerated)

    def counts(self) -> dict[str, int]:
        status = self.table["status"].value_counts() if not self.table.empty else {}
        return {"evaluated": len(self.table), **{k: int(status.get(k, 0)) for k in (STATUS_OK, STATUS_INVALID, STATUS_ERROR)},
                "bounded": self.bounded, "space": self.space_size}


def _result(ev: Evaluator, optima: list[Allocation], rounds: int, space: SearchSpace,
            bounded: int = 0, space_size: int = 0) -> SearchResult:
    return SearchResult(ev.table(), optima, {o.plan_id: a for a, o in ev.seen.items()}, rounds, space,
                        bounded, space_size)


def search(space: SearchSpace, base: Allocation, ev: Evaluator, max_rounds: int = 30) -> SearchResult:
    """Branch and bound when `ev.bound` is set, else seeds, balance and best-improvement local
    search (module docstring)."""
    if ev.bound is not None:
        return branch_and_bound(space, ev)
    return local_search(space, base, ev, max_rounds)


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
    return _result(ev, best_per_group(ev), waits, space, bounded, len(every))


def local_search(space: SearchSpace, base: Allocation, ev: Evaluator, max_rounds: int = 30) -> SearchResult:
    """Seeds, balance, then best-improvement local search (module docstring; `_Walk`)."""
    seeds = _seeds(space, base, ev)
    starts = _balanced_starts(space, ev, seeds)
    ev.evaluate(starts, "plan: balanced")
    groups: dict[tuple[str, int], list[Allocation]] = {}
    for a in seeds + starts:
        if ev.hours(a) < math.inf:
            groups.setdefault((a.gpu, a.total_gpus), []).append(a)
    walk = _Walk(space, ev, max_rounds)
    walk.run(sorted({a for members in groups.values() for a in members}))
    return _result(ev, best_per_group(ev), walk.rounds, space, bounded=len(walk.skipped - ev.seen.keys()))


@dataclass
class _Chain:
    """One walk of the local search: at `plan` (after `depth` moves), waiting for `pending`
    of its `moves` (the neighbours kept after pruning) to be simulated."""

    plan: Allocation
    depth: int
    moves: list[Allocation]
    pending: set[Allocation]


class _Walk:
    """Best-improvement local search from several plans at once, streamed on the pool: each walk
    moves to its best neighbour as soon as its own neighbours are simulated (no round waits for
    the slowest plan of another walk), so every worker stays busy while any walk has a plan to
    simulate. The moves are those of the round-by-round search: a walk's next plan depends only
    on its neighbours' results; walks that meet go on as one (the plan is taken once); a walk
    stops after `max_rounds` moves (`rounds`: the most moves any walk made, plus its last look).
    With `Evaluator.race`, a neighbour races against the plan of the walk that needs it; a plan
    stopped below the hours another walk compares it with is simulated again for that walk
    (`Evaluator.settled`), so no move is decided on a stopped estimate. A neighbour stopped that
    way is slower than the plan it would replace, so it is not the move; it is slower than a
    simulated plan of its group (the same GPUs, so also dearer), so it is not the group's
    optimum or on the frontier either."""

    def __init__(self, space: SearchSpace, ev: Evaluator, max_rounds: int):
        self.space, self.ev, self.max_rounds = space, ev, max_rounds
        self.rounds = 0
        self.skipped: set[Allocation] = set()
        self.taken: set[Allocation] = set()
        self.waiting: dict[Allocation, list[_Chain]] = {}
        self.queue: dict[Allocation, float] = {}      # to submit, with the hours it races against
        self.flying: set[Allocation] = set()

    def run(self, starts: list[Allocation]) -> None:
        ev = self.ev
        self.taken |= set(starts)
        for a in starts:
            self._open(a, 0)
        width = max(getattr(ev.pool, "workers", 1), 1)
        with tqdm(desc="plan: local search", unit="plan", disable=not ev.progress, leave=False) as bar:
            while self.queue or self.flying:
                while self.queue and len(self.flying) < width:
                    a = next(iter(self.queue))
                    above = self.queue.pop(a)
                    if ev.submit(a, above=above, again=True):
                        self.flying.add(a)
                    else:                   # settled meanwhile: nothing to wait for
                        self._arrived(a)
                if not self.flying:
                    continue
                for a in ev.next_done():
                    self.flying.discard(a)
                    bar.update(1)
                    self._arrived(a)

    def _need(self, chain: _Chain, m: Allocation) -> None:
        chain.pending.add(m)
        self.waiting.setdefault(m, []).append(chain)
        if m not in self.flying:
            self.queue[m] = max(self.queue.get(m, -math.inf), self.ev.hours(chain.plan))

    def _open(self, a: Allocation, depth: int) -> None:
        if depth >= self.max_rounds:
            return
        self.rounds = max(self.rounds, depth + 1)
        ms = neighbours(a, self.space)
        if self.ev.prune_bound is not None:
            kept, cut = _prune_moves({a: ms}, self.ev, self.ev.prune_bound)
            ms = kept[a]
            self.skipped |= cut
        chain = _Chain(a, depth, ms, set())
        hours = self.ev.hours(a)
        for m in ms:
            if not self.ev.settled(m, hours):
                self._need(chain, m)
        if not chain.pending:
            self._move(chain)

    def _arrived(self, m: Allocation) -> None:
        for chain in self.waiting.pop(m, []):
            if self.ev.settled(m, self.ev.hours(chain.plan)):
                chain.pending.discard(m)
                if not chain.pending:
                    self._move(chain)
            else:                       # stopped below this walk's plan: simulate it again
                self._need(chain, m)

    def _move(self, chain: _Chain) -> None:
        ev, a = self.ev, chain.plan
        best = min(chain.moves, key=ev.key, default=None)
        if best is not None and ev.key(best) < ev.key(a) and ev.hours(best) < ev.hours(a) \
                and best not in self.taken:
            self.taken.add(best)
            self._open(best, chain.depth + 1)


def _prune_moves(moves: dict[Allocation, list[Allocation]], ev: Evaluator, bound: Callable[[Allocation], float]
                 ) -> tuple[dict[Allocation, list[Allocation]], set[Allocation]]:
    """Each plan's neighbours less those whose lower bound of hours exceeds the plan's simulated
    hours, and the set left out. A left-out neighbour's hours are >= its bound > the plan's, so
    it is never the improving move, and it cannot be its group's optimum or on the frontier (the
    plan it would replace is faster and, at the same GPU total, cheaper): the search's moves,
    optima and frontier are the same as without pruning while the bound holds. What changes is
    which slower plans are simulated (the table, the runners-up the robustness draws compare)."""
    kept: dict[Allocation, list[Allocation]] = {}
    cut: set[Allocation] = set()
    for a, ms in moves.items():
        hours = ev.hours(a)
        keep = []
        for m in ms:
            if m in ev.seen or bound(m) <= hours:
                keep.append(m)
            else:
                cut.add(m)
        kept[a] = keep
    return kept, cut


def exhaustive(space: SearchSpace, ev: Evaluator) -> SearchResult:
    """Simulate every allocation of the space (the brute-force baseline)."""
    every = enumerate_space(space)
    ev.evaluate(every, "plan: exhaustive")
    return _result(ev, best_per_group(ev), 0, space, 0, len(every))


def best_per_group(ev: Evaluator) -> list[Allocation]:
    """The best simulated allocation of each (GPU type, GPU total) that has a valid plan."""
    groups: dict[tuple[str, int], Allocation] = {}
    for a in ev.seen:
        if ev.hours(a) == math.inf:
            continue
        key = (a.gpu, a.total_gpus)
        if key not in groups or ev.key(a) < ev.key(groups[key]):
            groups[key] = a
    return [groups[key] for key in sorted(groups)]
