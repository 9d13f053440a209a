"""The planner's confirmation stage (rlvr_sim.sweep.confirm): the closest contenders of each GPU
total are simulated again under a stricter rule and those hours replace the search's, so a plan
whose first estimate came out low (the winner's curse) or that was not steady at the cap is not
recommended on that estimate; a confirmed best that came out slower un-skips plans of the branch
and bound. On an analytic stand-in whose first estimates carry a known error per plan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep.confirm import confirm, confirm_rule, contenders
from rlvr_sim.sweep.jobs import PlanJob, PlanOutcome, make_jobs
from rlvr_sim.sweep.planner import Evaluator, best_per_group, exhaustive, search
from rlvr_sim.sweep.pools import InlinePool
from rlvr_sim.sweep.space import Allocation, enumerate_space
from test_plan_search import Toy, base_of, space_of

SMALL = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"

LONG = confirm_rule(PLANNER_RULE)


class NoisyToy:
    """`Toy`'s hours are the truth; a run under the planner rule reports them times (1 + error of
    its plan) with a 1 % standard error, a run under the confirmation rule the truth itself."""

    def __init__(self, errors: dict[object, float], first_steady: bool = True):
        self.toy = Toy()
        self.errors = errors
        self.first_steady = first_steady
        self.rules: list[float] = []          # rel_tol of every job run, in order

    def __call__(self, job: PlanJob) -> PlanOutcome:
        assert job.steady is not None
        self.rules.append(job.steady.rel_tol)
        outcome = self.toy(job)
        s = outcome.summary
        assert s is not None
        long = job.steady == LONG
        factor = 1.0 if long else 1.0 + self.errors.get(_label(job), 0.0)
        outcome.summary = s.model_copy(update={
            "hours_total": s.hours_total * factor,
            "cost": s.cost.model_copy(update={"usd_total": s.cost.usd_total * factor}),
            "steady_rel_stderr": 0.005 if long else 0.01,
            "steady_state": long or self.first_steady,
            "steps_simulated": 40 if long else 10})
        return outcome


def _label(job: PlanJob) -> object:
    return job.plan.settings


def truth(a: Allocation) -> float:
    outcome = Toy()(make_jobs({"name": "toy"}, [a.plan()], None, 0, PLANNER_RULE)[0])
    assert outcome.summary is not None
    return outcome.summary.hours_total


def _evaluator(toy: NoisyToy, bound=None) -> Evaluator:
    return Evaluator({"name": "toy"}, InlinePool(toy), None, 0, steady=PLANNER_RULE, bound=bound)


def _ranked(space) -> list[Allocation]:
    return sorted(enumerate_space(space), key=truth)


def test_the_rule_is_stricter():
    assert LONG.rel_tol == PLANNER_RULE.rel_tol / 2
    assert LONG.max_steps == 2 * PLANNER_RULE.max_steps
    assert LONG.steady_needed(None) == 2 * PLANNER_RULE.steady_needed(None)


def test_a_runner_up_whose_estimate_came_out_low_is_not_recommended():
    """The truth's second plan is estimated 3 % low, below the best: the search picks it; after
    confirmation the truth's best is the group's best, with its true hours."""
    space = space_of(16)
    best, second = _ranked(space)[:2]
    assert truth(second) * 0.97 < truth(best) < truth(second)
    toy = NoisyToy({second.plan().settings: -0.03})
    ev = _evaluator(toy)
    result = exhaustive(space, ev)
    assert result.optima == [second]                       # the winner's curse
    report = confirm(ev, PLANNER_RULE)
    assert best_per_group(ev) == [best]
    assert ev.hours(best) == truth(best) and ev.hours(second) == truth(second)
    assert set(report.first) >= {best, second} and report.rounds == 1
    assert report.first[second].hours_total == pytest.approx(truth(second) * 0.97)
    assert ev.seen[best].confirmed and ev.seen[second].confirmed
    table = ev.table()
    assert table["confirmed"].sum() == len(report.first)
    assert report.steps == 40 * len(report.first)
    searched = report.as_searched(ev)                      # the search's own estimates back
    assert searched.hours(second) == pytest.approx(truth(second) * 0.97) and ev.hours(second) == truth(second)
    assert not searched.seen[second].confirmed and searched.seen is not ev.seen
    assert "+0.0% from the search's 10-step estimate" in report.sentence(best, ev)
    assert "+3.1% from" in report.sentence(second, ev)          # 1 / 0.97


def test_contenders_are_within_the_combined_error_of_the_best():
    """Within 2 x hypot(1 %, 1 %) = 2.83 % of the group's best (first estimates), at most three,
    the best always; plans stopped by a race never."""
    space = space_of(16)
    toy = NoisyToy({})
    ev = _evaluator(toy)
    exhaustive(space, ev)
    ranked = sorted((a for a in ev.seen if ev.metrics(a) is not None), key=ev.key)
    best = ranked[0]
    expect = [a for a in ranked[:3] if ev.hours(a) <= ev.hours(best) * (1 + 2 * math.hypot(0.01, 0.01))]
    assert contenders(ev, set()) == expect
    assert contenders(ev, set(expect)) == []
    # a wide margin admits three; a zero one (floor 0) only the best
    assert len(contenders(ev, set(), z=100.0)) == 3
    assert contenders(ev, set(), z=0.0, floor=0.0) == [best]


def test_a_confirmed_best_that_is_slower_unskips_plans_of_the_branch_and_bound():
    """The truth's 5th plan is estimated 10 % low and its bound is 0.85 x its truth (below that
    estimate), every other plan's 0.999 x its truth: it is simulated first and its estimate
    prunes every other plan, the truth's best too. Once it is confirmed slower, the resumed
    search simulates the plans it had skipped, and the truth's best is recommended. Without
    `resume` it is not."""
    space = space_of(16)
    ranked = _ranked(space)
    low = ranked[4]
    assert truth(low) * 0.85 < truth(low) * 0.9 < truth(ranked[0]) * 0.999

    def bound(a: Allocation) -> float:
        return truth(a) * (0.85 if a == low else 0.999)

    def run(with_resume: bool) -> tuple[Evaluator, NoisyToy]:
        toy = NoisyToy({low.plan().settings: -0.10})
        ev = _evaluator(toy, bound=bound)
        searched = search(space, base_of(space), ev)
        assert searched.optima == [low]
        assert list(ev.seen) == [low]                        # every other plan pruned by it
        confirm(ev, PLANNER_RULE, (lambda: search(space, base_of(space), ev)) if with_resume else None)
        return ev, toy

    ev, toy = run(True)
    assert best_per_group(ev) == [ranked[0]] and ev.hours(ranked[0]) == truth(ranked[0])
    assert ev.seen[ranked[0]].confirmed
    assert toy.rules.count(LONG.rel_tol) >= 2
    without, _ = run(False)
    assert best_per_group(without) != [ranked[0]]


class RacingToy(NoisyToy):
    """NoisyToy whose runs honour a race: a run whose reported hours are above the job's
    `stop_above_hours` comes back stopped at that level, or with `certain` (as the simulator
    does, rlvr_sim.sim.steady.certainly_above) at the level it is certainly above: here 0.999 x
    its reported hours, at least the threshold."""

    def __init__(self, errors: dict[object, float], first_steady: bool = True,
                 certain: bool = False):
        super().__init__(errors, first_steady)
        self.certain = certain
        self.runs: list[object] = []          # the plan of every job run, in order

    def __call__(self, job: PlanJob) -> PlanOutcome:
        self.runs.append(_label(job))
        outcome = super().__call__(job)
        s = outcome.summary
        assert s is not None
        above = job.stop_above_hours
        if above is not None and s.hours_total > above:
            level = max(above, 0.999 * s.hours_total) if self.certain else above
            outcome.summary = s.model_copy(update={"stopped_above_hours": level,
                                                   "steady_state": False, "steps_simulated": 4})
        return outcome


def test_a_raced_plan_certainly_above_the_new_best_is_not_simulated_again():
    """As below, with a third plan `x` (the truth's next after the 2nd) whose bound lets it be
    simulated in the first search, where it is raced out against the 2nd plan's low estimate.
    The 2nd plan's confirmation raises the best to its truth, above that threshold. Stopped at
    the threshold, `x` must be simulated again; stopped at the level it is certainly above
    (0.999 x its hours, above the new best), it is not, and the answer is the same."""
    space = space_of(16)
    ranked = _ranked(space)
    best, low = ranked[0], ranked[1]
    x = next(a for a in ranked[2:] if 0.999 * truth(a) > truth(low))
    assert 0.85 * truth(x) < 0.9 * truth(low) < truth(best)

    def bound(a: Allocation) -> float:
        return truth(a) * {low: 0.5, best: 0.85, x: 0.85}.get(a, 0.999)

    def run(certain: bool) -> tuple[Evaluator, RacingToy]:
        toy = RacingToy({low.plan().settings: -0.10}, certain=certain)
        ev = Evaluator({"name": "toy"}, InlinePool(toy), None, 0, steady=PLANNER_RULE, bound=bound,
                       race=True)
        search(space, base_of(space), ev)
        m = ev.metrics(x)
        assert m is not None and m.stopped_above_hours is not None         # raced out
        confirm(ev, PLANNER_RULE, lambda: search(space, base_of(space), ev))
        assert best_per_group(ev) == [best] and ev.hours(best) == pytest.approx(truth(best))
        return ev, toy

    _, threshold = run(False)
    _, certain = run(True)
    label = x.plan().settings
    assert threshold.runs.count(label) == 2
    assert certain.runs.count(label) == 1
    assert len(certain.runs) < len(threshold.runs)


def test_a_plan_raced_out_by_a_low_estimate_is_simulated_again_once_it_is_confirmed():
    """The truth's 2nd plan is estimated 10 % low and simulated first (smallest bound); the
    truth's best, next, is raced out against that low estimate (it is slower than the estimate,
    faster than the truth). Once the 2nd plan is confirmed slower, the resumed search must run
    the raced plan again (its stop level is below the new best): it is the truth's best, and it
    is recommended confirmed and complete, with an exact gap."""
    space = space_of(16)
    ranked = _ranked(space)
    best, low = ranked[0], ranked[1]
    assert 0.9 * truth(low) < truth(best) < truth(low)

    def bound(a: Allocation) -> float:
        return truth(a) * {low: 0.5, best: 0.85}.get(a, 0.999)

    toy = RacingToy({low.plan().settings: -0.10})
    ev = Evaluator({"name": "toy"}, InlinePool(toy), None, 0, steady=PLANNER_RULE, bound=bound, race=True)
    first = search(space, base_of(space), ev)
    m = ev.metrics(best)
    assert m is not None and m.stopped_above_hours == pytest.approx(0.9 * truth(low))   # raced out
    assert first.optima == [low]                  # a raced plan's partial estimate is never the best
    results = []
    confirm(ev, PLANNER_RULE, lambda: results.append(search(space, base_of(space), ev)))
    assert best_per_group(ev) == [best]
    m = ev.metrics(best)
    assert m is not None and m.stopped_above_hours is None and ev.seen[best].confirmed
    assert ev.hours(best) == pytest.approx(truth(best))
    assert all(g.gap == 0.0 and g.stopped == "exact" for g in results[-1].gaps)


def test_a_best_found_after_the_last_round_is_said_to_be_unconfirmed():
    """The setup above with one round only: the resumed search's new best (the truth's best, its
    first estimate) is a contender nobody confirmed; it is listed as such and the sentence on it
    says NOT confirmed. With the default rounds it is confirmed."""
    space = space_of(16)
    ranked = _ranked(space)
    low = ranked[4]

    def bound(a: Allocation) -> float:
        return truth(a) * (0.85 if a == low else 0.999)

    toy = NoisyToy({low.plan().settings: -0.10})
    ev = _evaluator(toy, bound=bound)
    search(space, base_of(space), ev)
    report = confirm(ev, PLANNER_RULE, lambda: search(space, base_of(space), ev), rounds=1)
    (best,) = best_per_group(ev)
    assert not ev.seen[best].confirmed and best.label() in report.unconfirmed
    assert report.sentence(best, ev).startswith("NOT confirmed: the confirmation stage stopped after 1 round(s)")
    assert report.report(ev).unconfirmed == list(report.unconfirmed)
    ev = _evaluator(NoisyToy({low.plan().settings: -0.10}), bound=bound)
    search(space, base_of(space), ev)
    report = confirm(ev, PLANNER_RULE, lambda: search(space, base_of(space), ev))
    (best,) = best_per_group(ev)
    assert ev.seen[best].confirmed and report.unconfirmed == ()
    assert report.sentence(best, ev).startswith("Confirmed by a longer run")


def test_a_plan_not_steady_at_the_cap_is_confirmed_even_when_alone():
    """A group whose best is not steady gets it confirmed, whatever the margin."""
    space = space_of(16)
    toy = NoisyToy({}, first_steady=False)
    ev = _evaluator(toy)
    exhaustive(space, ev)
    (best,) = best_per_group(ev)
    assert best in contenders(ev, set(), z=0.0, floor=0.0)
    confirm(ev, PLANNER_RULE, z=0.0, floor=0.0)
    assert ev.seen[best].confirmed and ev.metrics(best).steady_state      # type: ignore[union-attr]


def test_plan_confirms_with_the_real_simulator(capsys):
    """`plan` (default --confirm 3): the recommended plan is a confirmed one, its hours are the
    longer run's, which ran at least as many steps; --confirm 0 turns it off; -1 is refused."""
    from rlvr_sim.cli import main

    args = ["plan", str(SMALL), "--total-gpus", "4", "--sampler-tp", "1,2", "--trainer-tp", "1",
            "--staleness", "0,1", "--workers", "1", "--json", "--draws", "0"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    conf = out["confirmation"]
    assert conf["rel_tol"] == LONG.rel_tol and conf["rounds"] >= 1 and conf["plans"]
    by_label = {p["label"]: p for p in conf["plans"]}
    rec = out["recommended"]
    assert rec["label"] in by_label
    assert rec["hours_total"] == by_label[rec["label"]]["hours"]
    assert all(p["steps"] >= p["first_steps"] for p in conf["plans"])
    assert "Confirmed by a longer run" in rec["reason"]
    # what more GPUs buy is measured against the search's estimate (the marginal plans' own rule)
    first = by_label[rec["label"]]["first_hours"]
    assert any(m["hours_total"] is not None for m in rec["marginals"])
    for m in rec["marginals"]:
        if m["hours_total"] is not None:
            assert m["hours_saved_per_gpu"] == pytest.approx((first - m["hours_total"]) / m["extra_gpus"])
    assert main(args + ["--confirm", "0"]) == 0
    assert "confirmation" not in json.loads(capsys.readouterr().out)
    assert main(args + ["--confirm", "-1"]) != 0
    assert "--confirm -1" in capsys.readouterr().err


class CutToy(NoisyToy):
    """NoisyToy whose longer runs are still going at the time limit when they get a `stop_at`:
    they come back stopped by the clock after 3 steps (partial, certainly above nothing known)."""

    def __call__(self, job: PlanJob) -> PlanOutcome:
        outcome = super().__call__(job)
        if job.steady == LONG and job.stop_at is not None:
            assert outcome.summary is not None
            outcome.summary = outcome.summary.model_copy(update={
                "stopped_by_clock": True, "stopped_above_hours": 0.0, "steps_simulated": 3,
                "steady_state": False, "hours_total": outcome.summary.hours_total * 0.5})
        return outcome


def test_a_confirmation_cut_by_the_time_limit_keeps_the_search_estimate_and_says_so():
    """A round that starts before the deadline gives its longer runs the limit: the runs it cuts
    leave their plans with the search's estimates (not the partial run's, not marked confirmed),
    those plans are listed as unconfirmed, and a recommended one says why."""
    space = space_of(16)
    best, second = _ranked(space)[:2]
    toy = CutToy({second.plan().settings: -0.03})
    ev = _evaluator(toy)
    exhaustive(space, ev)
    before = {a: ev.hours(a) for a in ev.seen}
    reads = iter([0.0, 0.0])            # the round starts before the deadline, then time is past it
    report = confirm(ev, PLANNER_RULE, deadline=10.0, clock=lambda: next(reads, 20.0))
    assert report.rounds == 1 and report.first == {} and report.steps == 0
    assert set(report.cut) >= {best.label(), second.label()}
    assert {a: ev.hours(a) for a in ev.seen} == before          # nothing replaced by a partial run
    assert not any(o.confirmed for o in ev.seen.values())
    assert second.label() in report.unconfirmed and best_per_group(ev) == [second]
    text = report.sentence(second, ev)
    assert text.startswith("NOT confirmed: its longer run was stopped by the time limit")
    # without a deadline the same round confirms them
    ev2 = _evaluator(CutToy({second.plan().settings: -0.03}))
    exhaustive(space, ev2)
    assert best_per_group(ev2) == [second]
    confirm(ev2, PLANNER_RULE)
    assert best_per_group(ev2) == [best] and ev2.seen[best].confirmed
