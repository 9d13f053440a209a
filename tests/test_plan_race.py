"""Racing: a plan stops simulating once it certainly takes longer than the plan it is compared
with (rlvr_sim.sim.steady.slower_than, certainly_above), and the planner's answer does not
change."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim import simulate
from rlvr_sim.sim.steady import PLANNER_RULE, Rule, certainly_above, slower_than
from rlvr_sim.sweep.bound import PlanBounds
from rlvr_sim.sweep.jobs import make_jobs
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.pareto import pareto_front
from rlvr_sim.sweep.planner import Evaluator, search
from rlvr_sim.sweep.pools import InlinePool, LocalPool
from rlvr_sim.sweep.space import COLOCATED, Allocation, SearchSpace, enumerate_space
from test_plan_search import Toy, base_of
from test_plan_stream import SPACE, ClockPool

SMALL = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"
RULE = Rule(rel_tol=0.02, min_steady=4, max_steps=32)


def test_slower_than_by_hand():
    """Eight steps of 100 s, 100 steps in all: 100 x 100 / 3600 = 2.78 h, known exactly (no
    spread), so it is slower than 2.7 h and not slower than 2.8 h."""
    times = [100.0] * 8
    assert slower_than(times, 2.7, 100, rule=RULE, max_warmup=0)
    assert not slower_than(times, 2.8, 100, rule=RULE, max_warmup=0)
    # before the steady test could pass (async, 2 warm-up steps + 4): no decision
    assert not slower_than(times[:5], 2.7, 100, min_warmup=2, rule=RULE)
    # the whole run simulated: nothing left to save
    assert not slower_than(times, 0.1, 8, rule=RULE, max_warmup=0)
    assert not slower_than(times, float("inf"), 100, rule=RULE, max_warmup=0)


def test_slower_than_waits_for_a_run_that_speeds_up():
    """Mean 150 s (4.2 h), but the latest half runs at 100 s (2.8 h): not stopped at 3 h. The
    standard error (batch means of 1 step: 53.5 / sqrt(8) = 18.9 s, 12.6 % of 150 s) lowers the
    100 s to 62.2 s (1.73 h): stopped at 1.5 h, not at 2 h."""
    times = [200.0] * 4 + [100.0] * 4
    assert not slower_than(times, 3.0, 100, rule=RULE, max_warmup=0)
    assert not slower_than(times, 2.0, 100, rule=RULE, max_warmup=0)
    assert slower_than(times, 1.5, 100, rule=RULE, max_warmup=0)


def test_slower_than_keeps_a_margin_of_three_standard_errors():
    """Mean 100 s (2.78 h for 100 steps). Standard error from batch means of 2 steps (102, 98,
    100, 100: sqrt((8 / 3) / 4) = 0.816 s, below the 1.69 s of single steps): 3 of them lower the
    mean to 97.55 s, 2.710 h. So 2.72 h, below the plain estimate, is not crossed; 2.70 h is."""
    times = [100.0, 104.0, 96.0, 100.0, 108.0, 92.0, 100.0, 100.0]
    assert not slower_than(times, 2.72, 100, rule=RULE, max_warmup=0)
    assert slower_than(times, 2.70, 100, rule=RULE, max_warmup=0)


def test_certainly_above_by_hand():
    """The times above, no warm-up: every one of the 100 steps at the steady mean lowered by 3
    standard errors of 0.816 s, 97.55 s: 100 x 97.551 / 3600 = 2.7097 h. A mark below it is
    crossed, one above it is not; before the steady test could pass, or on a complete run,
    nothing is certain (-inf)."""
    times = [100.0, 104.0, 96.0, 100.0, 108.0, 92.0, 100.0, 100.0]
    se = math.sqrt((8 / 3) / 4)
    want = 100 * 100 * (1 - 3 * se / 100) / 3600
    assert certainly_above(times, 100, rule=RULE, max_warmup=0) == pytest.approx(want, rel=1e-9)
    assert slower_than(times, want - 1e-6, 100, rule=RULE, max_warmup=0)
    assert not slower_than(times, want + 1e-6, 100, rule=RULE, max_warmup=0)
    assert certainly_above(times[:3], 100, rule=RULE, max_warmup=0) == -math.inf
    assert certainly_above(times, 8, rule=RULE, max_warmup=0) == -math.inf


def test_simulate_stops_a_run_above_its_mark_and_says_so():
    sc = load_scenario(SMALL, overrides=["orchestration.mode=async", "orchestration.max_staleness=1",
                                         "orchestration.placement=disaggregated"])
    full = simulate(sc, seed=0, trace=False, until_steady=PLANNER_RULE).summary
    low = simulate(sc, seed=0, trace=False, until_steady=PLANNER_RULE,
                   stop_above_hours=full.hours_total * 0.5).summary
    # stopped at the level it is certainly above, over the mark, below its partial estimate
    assert full.hours_total * 0.5 < low.stopped_above_hours < low.hours_total
    assert not low.steady_state and "certainly slower" in low.steady_note
    # decided once a warm-up (>= the staleness bound, 1) and 4 steady steps are simulated
    assert 1 + PLANNER_RULE.min_steady <= low.steps_simulated < full.steps_simulated
    assert low.hours_total > full.hours_total * 0.5
    high = simulate(sc, seed=0, trace=False, until_steady=PLANNER_RULE,
                    stop_above_hours=full.hours_total * 2).summary
    assert high.stopped_above_hours is None
    assert high.model_dump() == full.model_dump()


def test_a_raced_job_is_a_different_result():
    [job] = make_jobs(str(SMALL), [Plan(())], None, 0, PLANNER_RULE)
    raced = job.raced(3.0)
    assert raced.stop_above_hours == 3.0 and raced.plan_id != job.plan_id
    assert job.raced(None) is job and job.raced(float("inf")) is job
    [fixed] = make_jobs(str(SMALL), [Plan(())], 5, 0)         # a fixed number of steps: no race
    assert fixed.raced(3.0) is fixed


def test_raced_search_finds_the_same_answer(tmp_path):
    """Local search until steady with and without racing (real simulator): the same optima, hours
    and frontier, with fewer steps simulated; every stopped plan is slower than a plan of its group."""
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL.read_text())
    space = SearchSpace(gpus=("h100-sxm",), sizes=(8, 4), sampler_tps=(1, 2), trainer_tps=(1, 2),
                        staleness=(0, 1, 2, 4), mini_batches=(2,), gpus_per_node=8)
    base = Allocation("h100-sxm", 8, COLOCATED, 8, 1, 8, 1, 0, 2)
    bounds = PlanBounds(scenario, max_steps=PLANNER_RULE.max_steps, seed=0, steady=True,
                        rule=PLANNER_RULE)
    pool = LocalPool(2)
    try:
        plain = Evaluator(scenario, pool, None, 0, steady=PLANNER_RULE, prune_bound=bounds.hours)
        full = search(space, base, plain)
        racer = Evaluator(scenario, pool, None, 0, steady=PLANNER_RULE, prune_bound=bounds.hours, race=True)
        raced = search(space, base, racer)
    finally:
        pool.close()
    assert raced.optima == full.optima
    assert [racer.hours(a) for a in raced.optima] == [plain.hours(a) for a in full.optima]
    front = pareto_front(raced.table)[["label", "hours_total"]].reset_index(drop=True)
    assert front.equals(pareto_front(full.table)[["label", "hours_total"]].reset_index(drop=True))
    stopped = [a for a, o in racer.seen.items() if o.metrics is not None and o.metrics.stopped_above_hours]
    assert stopped, "racing stopped nothing on this space"
    assert raced.table["steps_simulated"].sum() < full.table["steps_simulated"].sum()
    for a in stopped:
        m = racer.metrics(a)
        assert m is not None and m.stopped_above_hours is not None
        assert plain.hours(a) > m.stopped_above_hours         # simulated to the end it is slower too
        group_best = min(racer.hours(b) for b in racer.seen if (b.gpu, b.total_gpus) == (a.gpu, a.total_gpus))
        assert group_best < racer.hours(a)


class RacingToy:
    """The toy planner model (test_plan_search.Toy) run until steady: a job raced against a mark
    below its hours comes back stopped, with an inexact estimate (halfway between the mark and
    its true hours: above the mark, as `slower_than` guarantees, but not the true value)."""

    def __init__(self, gen: float, train: float):
        self.toy = Toy(gen, train)
        self.raced = 0

    def __call__(self, job):
        outcome = self.toy(job)
        mark = job.stop_above_hours
        s = outcome.summary
        if mark is not None and s is not None and s.hours_total > mark:
            self.raced += 1
            estimate = (mark + s.hours_total) / 2
            outcome.summary = s.model_copy(update={"hours_total": estimate, "stopped_above_hours": mark,
                                                   "steady_state": False})
        return outcome


@settings(max_examples=20, deadline=None)
@given(gen=st.floats(5000, 400000), train=st.floats(5000, 400000))
def test_raced_walks_move_as_unraced_ones_in_any_arrival_order(gen, train):
    """With racing (stopped plans carry inexact hours) and results arriving out of order, the
    local search reaches the same optima with the same hours as the unraced serial search: no
    move is decided on a stopped estimate."""
    steady = Rule(rel_tol=0.02, min_steady=4, max_steps=32)
    serial = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), None, 0, steady=steady)
    expected = search(SPACE, base_of(SPACE), serial)
    racing = RacingToy(gen, train)
    ev = Evaluator({"name": "toy"}, ClockPool(racing, workers=3), None, 0, steady=steady, race=True)
    found = search(SPACE, base_of(SPACE), ev)
    assert found.optima == expected.optima
    assert [ev.hours(a) for a in found.optima] == [serial.hours(a) for a in expected.optima]
    assert set(ev.seen) == set(serial.seen)
    assert racing.raced > 0


def test_a_plan_stopped_below_another_walks_plan_is_simulated_again_for_it(monkeypatch):
    """Walk A (10 h, simulated) and walk B (20 h, simulated in the stream) both look at M (15 h).
    M races against A first and stops (its estimate, 12.5 h, is only known to be above 10 h);
    B compares M with 20 h, which a stop at 10 h does not settle, so M is simulated again
    against 20 h, runs to the end and B moves to it with its true 15 h."""
    import rlvr_sim.sweep.local_search as ls
    from rlvr_sim.sweep.jobs import STATUS_OK, PlanOutcome
    from summaries import toy_summary

    a, b, m = sorted(enumerate_space(SPACE))[:3]
    hours = {a: 10.0, b: 20.0, m: 15.0}
    graph = {a: [m], b: [m], m: [a, b]}
    by_plan = {tuple(x.plan().overrides()): x for x in hours}
    monkeypatch.setattr(ls, "neighbours", lambda x, space: graph[x])
    submitted: list[tuple[str, float | None]] = []

    def evaluate(job):
        x = by_plan[tuple(job.plan.overrides())]
        submitted.append((x.label(), job.stop_above_hours))
        h = hours[x]
        s = toy_summary(h, h, h, 0.5, 0.5, "sampler")
        if job.stop_above_hours is not None and h > job.stop_above_hours:
            s = s.model_copy(update={"hours_total": (h + job.stop_above_hours) / 2,
                                     "stopped_above_hours": job.stop_above_hours, "steady_state": False})
        return PlanOutcome(job.index, job.plan_id, job.plan.columns(), STATUS_OK, None, s, "toy")

    ev = Evaluator({"name": "toy"}, ClockPool(evaluate, workers=1), None, 0, steady=RULE, race=True)
    ev.evaluate([a])
    walk = ls._Walk(SPACE, ev, max_rounds=5)
    walk.run([a, b])
    assert submitted[1:] == [(m.label(), 10.0), (b.label(), None), (m.label(), 20.0)]
    assert ev.hours(m) == 15.0 and ev.metrics(m).stopped_above_hours is None
    assert ev.settled(m, 100.0) and walk.rounds == 2           # B moved to M, M looked once more


def _clock_after(calls: int):
    """A clock that reads 0 for its first `calls` reads, then far in the future."""
    reads = iter(range(10**9))
    return lambda: 0.0 if next(reads) < calls else 1e18


@pytest.mark.parametrize("ends_before", [0, 5, 9])
def test_a_clock_stop_ends_the_run_at_a_step_end_with_what_is_certain(monkeypatch, ends_before):
    """`simulate(stop_at=...)` (the planner's hard time limit) stops at the first step end past the
    instant, whatever the steady test says: the steps run are those of the unstopped run, and the
    summary is partial, certainly slower than `certainly_above` of them (0 when not known yet)."""
    import rlvr_sim.sim.run as run

    sc = load_scenario(SMALL, overrides=["orchestration.mode=async", "orchestration.max_staleness=1",
                                         "orchestration.placement=disaggregated"])
    full = simulate(sc, trace=False, until_steady=PLANNER_RULE)
    assert full.summary.steps_simulated > 10 and full.summary.stopped_above_hours is None
    monkeypatch.setattr(run.time, "time", _clock_after(ends_before))
    r = simulate(sc, trace=False, until_steady=PLANNER_RULE, stop_at=1.0)
    n = ends_before + 1
    s = r.summary
    assert s.steps_simulated == n and s.stopped_by_clock and not s.steady_state
    assert [x.time_s for x in r.steps] == [x.time_s for x in full.steps[:n]]
    cfg = r.config
    level = certainly_above([x.time_s for x in r.steps], cfg.workload_steps or cfg.steps, cfg.staleness_bound,
                            PLANNER_RULE, run.max_warmup(cfg), ready_s=[max(x.verify_end_s, x.gen_end_s) for x in r.steps])
    assert s.stopped_above_hours == max(level, 0.0)
    assert (s.stopped_above_hours > 0) == (ends_before == 9)      # known once the steady test could pass
    assert s.stopped_above_hours <= full.summary.hours_total
    assert "time limit" in s.steady_note
