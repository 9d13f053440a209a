"""Local search over the plan space: seeds, a balanced split, then best-improvement walks
streamed on the pool (`local_search`; rlvr_sim.sweep.planner explains the steps)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from tqdm import tqdm

from rlvr_sim.sweep.evaluator import Evaluator, SearchResult, best_per_group, search_result
from rlvr_sim.sweep.jobs import PlanMetrics
from rlvr_sim.sweep.space import COLOCATED, DISAGGREGATED, Allocation, SearchSpace, neighbours, round_split


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


def local_search(space: SearchSpace, base: Allocation, ev: Evaluator, max_rounds: int = 30) -> SearchResult:
    """Seeds, balance, then best-improvement local search (module docstring; `_Walk`)."""
    seeds = _seeds(space, base, ev)
    starts = _balanced_starts(space, ev, seeds)
    walk = _Walk(space, ev, max_rounds)
    walk.run(sorted(set(seeds + starts)))     # the balanced starts are simulated in the stream
    return search_result(ev, best_per_group(ev), walk.rounds, space, bounded=len(walk.skipped - ev.seen.keys()))


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
        self.starting: set[Allocation] = set()        # starts still to simulate

    def _start(self, a: Allocation) -> None:
        if self.ev.hours(a) < math.inf:
            self._open(a, 0)

    def run(self, starts: list[Allocation]) -> None:
        """Walk from every start that simulates (hours < inf); starts not simulated yet are
        simulated first, in the same stream (a walk from one opens when it arrives)."""
        ev = self.ev
        self.taken |= set(starts)
        for a in starts:
            if a in ev.seen:
                self._start(a)
            else:
                self.starting.add(a)
                self.queue[a] = math.inf          # a start races against nothing
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
        if m in self.starting:
            self.starting.discard(m)
            self._start(m)
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
