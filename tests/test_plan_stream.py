"""Streaming branch and bound and robustness draws: every worker stays busy while a plan waits, the
answer equals the exhaustive sweep's in whatever order results arrive, and no plan runs twice.

`ClockPool` is a pool on a virtual clock: each job takes `duration(job)` virtual seconds on one of
`workers` workers, and `next_done` hands back the job that finishes first, so arrival order is not
submission order (as on a process pool), deterministically."""

from __future__ import annotations

import heapq
import importlib.util
import math

import pytest

from rlvr_sim.sweep.jobs import STATUS_OK, PlanJob, PlanOutcome
from rlvr_sim.sweep.planner import Evaluator, branch_and_bound, exhaustive, search
from rlvr_sim.sweep.pools import BatchStream, InlinePool, streaming
from rlvr_sim.sweep.robust import Perturbation, assess
from rlvr_sim.sweep.space import COLOCATED, DISAGGREGATED, Allocation, SearchSpace, enumerate_space
from summaries import toy_summary
from test_plan_bb import toy_bound
from test_plan_search import Toy, base_of

SPACE = SearchSpace(gpus=("h100-sxm", "h200"), sizes=(32, 16), sampler_tps=(1, 2, 4), trainer_tps=(1, 2, 4),
                    staleness=(0, 1, 2), mini_batches=(2,), gpus_per_node=8)


def async_is_slow(job: PlanJob) -> float:
    """Virtual seconds a plan takes: async plans 100x a sync one (as KV-bound async plans do)."""
    return 100.0 if job.plan.columns()["orchestration.max_staleness"] > 0 else 1.0


class ClockPool:
    """`workers` workers on a virtual clock (module docstring); logs (event, label, time)."""

    def __init__(self, evaluate, workers: int, duration=async_is_slow):
        self.evaluate, self.workers, self.duration = evaluate, workers, duration
        self.now = 0.0
        self.running: list[tuple[float, int, PlanJob]] = []
        self.log: list[tuple[str, int, float]] = []     # (event, in flight after it, time)
        self.count = 0

    def submit(self, job: PlanJob) -> None:
        assert len(self.running) < self.workers, "more jobs submitted than workers"
        self.count += 1
        heapq.heappush(self.running, (self.now + self.duration(job), self.count, job))
        self.log.append(("submit", len(self.running), self.now))

    def next_done(self) -> PlanOutcome:
        self.log.append(("wait", len(self.running), self.now))
        self.now, _, job = heapq.heappop(self.running)
        return self.evaluate(job)

    def run(self, jobs):
        for job in jobs:
            yield self.evaluate(job)

    def close(self) -> None:
        """Nothing to release: jobs run in this process (the pool protocol's close)."""


def group_best(ev: Evaluator) -> dict[tuple[str, int], float]:
    best: dict[tuple[str, int], float] = {}
    for a in ev.seen:
        g = (a.gpu, a.total_gpus)
        best[g] = min(best.get(g, math.inf), ev.hours(a))
    return best


def test_streaming_keeps_every_worker_busy_and_equals_exhaustive():
    gen, train = 400000.0, 150000.0
    pool = ClockPool(Toy(gen, train), workers=3)
    searched = Evaluator({"name": "toy"}, pool, 4, 0, bound=toy_bound(gen, train))
    found = search(space=SPACE, base=base_of(SPACE), ev=searched)
    full = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0)
    brute = exhaustive(SPACE, full)
    assert found.optima == brute.optima
    # every wait before the last submission found all workers busy: no worker idles while a plan
    # that the search will simulate is waiting
    last_submit = max(i for i, e in enumerate(pool.log) if e[0] == "submit")
    waits = [e for e in pool.log[:last_submit] if e[0] == "wait"]
    assert waits and all(in_flight == pool.workers for _, in_flight, _ in waits)
    # exhaustive-equal: every plan whose bound is below its group's best was simulated
    best, bound = group_best(searched), toy_bound(gen, train)
    for a in enumerate_space(SPACE):
        if bound(a) < best.get((a.gpu, a.total_gpus), math.inf):
            assert a in searched.seen, a.label()
    counts = found.counts()
    assert counts["evaluated"] + counts["bounded"] + counts["rejected"] == counts["space"] and counts["bounded"] > 0


def test_without_speculation_no_plan_runs_that_a_result_in_flight_could_prune():
    """speculate=False submits only plans the search needs whatever the results in flight: the
    simulated set is then exactly what the serial search simulates."""
    gen, train = 400000.0, 150000.0
    serial = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
    branch_and_bound(SPACE, serial)
    pool = ClockPool(Toy(gen, train), workers=4)
    parallel = Evaluator({"name": "toy"}, pool, 4, 0, bound=toy_bound(gen, train))
    branch_and_bound(SPACE, parallel, speculate=False)
    assert set(parallel.seen) == set(serial.seen)


def test_the_serial_search_is_deterministic_and_a_run_only_pool_streams_in_batches():
    gen, train = 100000.0, 300000.0
    runs = []
    for _ in range(2):
        ev = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
        runs.append((branch_and_bound(SPACE, ev).optima, list(ev.seen)))
    assert runs[0] == runs[1]

    class RunOnly:                      # a wrapper pool (like a progress counter): run + close
        workers = 2

        def __init__(self):
            self.inner = InlinePool(Toy(gen, train))
            self.batches: list[int] = []

        def run(self, jobs):
            self.batches.append(len(jobs))
            return self.inner.run(jobs)

        def close(self):
            """The inner pool is closed by the test that owns it."""

    wrapper = RunOnly()
    assert isinstance(streaming(wrapper), BatchStream)
    ev = Evaluator({"name": "toy"}, wrapper, 4, 0, bound=toy_bound(gen, train))
    assert branch_and_bound(SPACE, ev).optima == runs[0][0]
    assert max(wrapper.batches) <= 2 and sum(wrapper.batches) == len(ev.seen)


def test_a_group_with_no_valid_plan_ends_cleanly():
    """Trainer groups below 4 GPUs do not fit: the 16-GPU groups keep valid plans, and a space of
    trainer TP 1-2 only has none at all (every plan simulated, every one invalid)."""
    toy = Toy(min_trainer_group=4)
    ev = Evaluator({"name": "toy"}, ClockPool(toy, workers=2), 4, 0, bound=lambda a: 0.0)
    tiny = SearchSpace(gpus=("h100-sxm",), sizes=(4,), sampler_tps=(1, 2), trainer_tps=(1, 2), staleness=(0,),
                       mini_batches=(2,), gpus_per_node=8)
    result = branch_and_bound(tiny, ev)
    assert result.optima == [] and len(ev.seen) == len(enumerate_space(tiny)) == toy.calls


def test_evaluator_submits_a_plan_once():
    toy = Toy()
    ev = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    a = base_of(SPACE)
    assert ev.submit(a) and not ev.submit(a)          # in flight: not again
    assert ev.in_flight == 1 and ev.next_done() == [a] and ev.in_flight == 0
    assert not ev.submit(a)                            # simulated: not again
    ev.evaluate([a])
    assert toy.calls == 1


def plan(sampler: int) -> Allocation:
    return Allocation("h100-sxm", 16, DISAGGREGATED, sampler, 1, 16 - sampler, 1, 0, 4)


class ThreePlans:
    """Plan 8 (the recommended one): 10 h x the decode-bandwidth draw; plan 12: 5 h; plan 4: 8 h."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def hours(self, sampler: int, pert: Perturbation | None) -> float:
        f = dict(pert.efficiency_factors) if pert else {}
        return {8: 10.0 / f.get("decode_bw_eff", 1.0), 12: 5.0, 4: 8.0}[sampler]

    def __call__(self, job: PlanJob) -> PlanOutcome:
        c = job.plan.columns()
        self.calls.append((job.perturb.draw if job.perturb else -1, c["sampler.gpus"]))
        h = self.hours(c["sampler.gpus"], job.perturb)
        return PlanOutcome(job.index, job.plan_id, c, STATUS_OK, None,
                           toy_summary(h, h * 16 * 2.0, h, 0.5, 0.5, "sampler"), "toy")


class ExactBounds:
    def __init__(self, toy: ThreePlans, pert: Perturbation):
        self.toy, self.pert = toy, pert

    def hours(self, a: Allocation) -> float:
        return self.toy.hours(a.sampler_gpus, self.pert)

    def usd(self, a: Allocation) -> float:
        return self.hours(a) * 16 * 2.0


def test_draws_screen_against_the_draws_best_so_far_not_only_the_recommended_plan():
    """Plan 4 (8 h) is below the recommended plan (10 h or so) in every draw but above plan 12
    (5 h), whose smaller bound puts it first: serially, plan 4 is never simulated under a draw; on
    2 workers at most one plan 4 runs, speculatively, at the very end (a worker that would idle)."""
    from rlvr_sim.scenario import load_scenario
    from test_plan_robust import MINIMAL

    sc = load_scenario(MINIMAL, overrides=["profile=datasheet"])
    rec, others = plan(8), [plan(4), plan(12)]
    full = assess(Evaluator({"name": "toy"}, InlinePool(ThreePlans()), 4, 0), rec, others, sc, 10)
    assert full.simulated == 30
    needed = sorted([(d, 8) for d in range(10)] + [(d, 12) for d in range(10)])
    for pool_of, spare in ((InlinePool, 0), (lambda toy: ClockPool(toy, workers=2, duration=lambda job: 1.0), 1)):
        toy = ThreePlans()
        ev = Evaluator({"name": "toy"}, pool_of(toy), 4, 0)
        r = assess(ev, rec, others, sc, 10, bounds=lambda pert, toy=toy: ExactBounds(toy, pert))
        assert r.winners == {plan(12).label(): 10} and r.share_best == 0.0
        assert (full.winners, full.hours_p10, full.hours_p90) == (r.winners, r.hours_p10, r.hours_p90)
        assert set(needed) <= set(toy.calls) and len(toy.calls) == r.simulated <= 20 + spare
        assert all(sampler == 4 for _, sampler in set(toy.calls) - set(needed))


def test_colocated_marginal_already_in_the_search_is_not_simulated_again():
    from rlvr_sim.sweep.recommend import marginals

    toy = Toy()
    ev = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    small = Allocation("h100-sxm", 8, COLOCATED, 8, 1, 8, 1, 0, 4)
    bigger = Allocation("h100-sxm", 9, COLOCATED, 9, 1, 9, 1, 0, 4)     # one more colocated GPU
    ev.evaluate([small, bigger])
    calls = toy.calls
    found = marginals(ev, small)
    assert toy.calls == calls and [m.hours_total for m in found] == [ev.hours(bigger)]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (the sweep extra)")
def test_ray_pool_streams_the_branch_and_bound_to_the_serial_answer():
    from pathlib import Path

    from rlvr_sim.sweep.bound import PlanBounds
    from rlvr_sim.sweep.pools import RayPool

    small = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"
    space = SearchSpace(gpus=("h100-sxm",), sizes=(4,), sampler_tps=(1, 2), trainer_tps=(1,), staleness=(0, 1),
                        mini_batches=(2,), gpus_per_node=8)
    bounds = PlanBounds(small, max_steps=2, seed=0, steady=False)
    serial = Evaluator(small, InlinePool(), 2, 0, bound=bounds.hours)
    expected = branch_and_bound(space, serial).optima
    pool = RayPool(2)
    try:
        ev = Evaluator(small, pool, 2, 0, bound=bounds.hours)
        assert branch_and_bound(space, ev).optima == expected and expected
        assert [ev.hours(a) for a in expected] == [serial.hours(a) for a in expected]
    finally:
        pool.close()


def test_the_apps_counting_pool_streams_and_reports_each_plan_once():
    from rlvr_sim.api import _CountingPool

    gen, train = 400000.0, 150000.0
    toy, reported = Toy(gen, train), []
    pool = _CountingPool(InlinePool(toy), reported.append)
    assert streaming(pool) is pool
    ev = Evaluator({"name": "toy"}, pool, 4, 0, bound=toy_bound(gen, train))
    branch_and_bound(SPACE, ev)
    assert len(reported) == toy.calls == len(ev.seen) > 0


def test_local_search_walks_move_the_same_whatever_order_results_arrive_in():
    """The local search streams (each walk moves once its own neighbours are simulated): on a
    pool where async plans take 100x longer, so results arrive out of submission order, it
    simulates the same plans and finds the same optima in the same number of moves as serially."""
    gen, train = 100000.0, 300000.0
    serial = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0)
    expected = search(space=SPACE, base=base_of(SPACE), ev=serial)
    pool = ClockPool(Toy(gen, train), workers=3)
    streamed = Evaluator({"name": "toy"}, pool, 4, 0)
    found = search(space=SPACE, base=base_of(SPACE), ev=streamed)
    assert found.optima == expected.optima and found.rounds == expected.rounds
    assert set(streamed.seen) == set(serial.seen)
    assert pool.count > 0 and any(e[0] == "wait" and e[1] == pool.workers for e in pool.log)
