"""The recommendation lists the plans the simulation cannot tell apart from it (rlvr_sim.sweep.ties):
same GPU type and total, simulated to the end, hours within 2 combined standard errors. On an
analytic stand-in whose hours and standard errors are set per plan, margins computed by hand."""

from __future__ import annotations

from rlvr_sim.sweep.jobs import PlanJob, PlanOutcome
from rlvr_sim.sweep.planner import Evaluator, exhaustive
from rlvr_sim.sweep.pools import InlinePool
from rlvr_sim.sweep.recommend import Constraints, recommend
from rlvr_sim.sweep.space import Allocation, enumerate_space
from rlvr_sim.sweep.ties import ties, ties_sentence
from test_plan_search import Toy, space_of

BEST_HOURS = 100.0


class Staged:
    """`Toy`, except the plans in `set_to`: (hours, relative standard error, raced)."""

    def __init__(self, set_to: dict[Allocation, tuple[float, float | None, bool]]):
        self.toy = Toy()
        self.set_to = {a.plan().settings: v for a, v in set_to.items()}

    def __call__(self, job: PlanJob) -> PlanOutcome:
        outcome = self.toy(job)
        s = outcome.summary
        assert s is not None
        hours, se, raced = self.set_to.get(job.plan.settings, (s.hours_total * 10, 0.01, False))
        outcome.summary = s.model_copy(update={
            "hours_total": hours, "cost": s.cost.model_copy(update={"usd_total": hours * 32.0}),
            "steady_rel_stderr": se, "stopped_above_hours": hours if raced else None})
        return outcome


def _plans():
    space = space_of(16, sizes=(16, 8), staleness=(0, 1))
    plans = [a for a in enumerate_space(space) if a.total_gpus == 16]
    other = next(a for a in enumerate_space(space) if a.total_gpus == 8)
    return space, plans, other


def test_ties_are_the_plans_within_two_combined_standard_errors():
    """Margin 2 x hypot(1 % x 100 h, 1 % x h): 2.868 h at h = 102.8 (tied), 2.870 h at h = 102.9
    (not: 2.9 > 2.87); a plan with no standard error ties through the best's alone (2 h); a raced
    plan or one of another total never ties."""
    space, plans, other = _plans()
    best, inside, outside, no_se, raced, far = plans[:6]
    toy = Staged({best: (BEST_HOURS, 0.01, False), inside: (102.8, 0.01, False), outside: (102.9, 0.01, False),
                  no_se: (101.9, None, False), raced: (100.5, 0.01, True), far: (110.0, 0.01, False),
                  other: (BEST_HOURS, 0.01, False)})
    ev = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    exhaustive(space, ev)
    found = ties(ev, best)
    assert [t.label for t in found] == [no_se.label(), inside.label()]
    assert [t.hours_total for t in found] == [101.9, 102.8]
    assert found[0].rel_stderr is None and found[1].rel_stderr == 0.01
    # what each differs in, read off the plan settings
    mine = dict(best.plan().settings)
    assert found[1].differs_in == tuple(k for k, v in inside.plan().settings if mine[k] != v)
    assert found[1].differs_in
    short = ties_sentence(found, best, shown=1)
    assert "2 other simulated plan(s) of 16x h100-sxm, 101.9-102.8 h" in short and short.count(" h (changes ") == 1
    assert "; and 1 more." in short
    # symmetric: the best is tied with `inside` from its side too; a zero margin ties nothing
    assert best.label() in [t.label for t in ties(ev, inside)]
    assert ties(ev, best, z=0.0) == []
    # a plan never simulated has no ties
    unsimulated = Allocation(best.gpu, 16, best.placement, best.sampler_gpus, best.sampler_tp, best.trainer_gpus,
                             best.trainer_tp, best.max_staleness, 999)
    assert ties(ev, unsimulated) == []


def test_the_recommendation_names_its_ties_and_what_they_differ_in():
    space, plans, other = _plans()
    best, inside = plans[:2]
    toy = Staged({best: (BEST_HOURS, 0.01, False), inside: (101.0, 0.01, False)})
    ev = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    result = exhaustive(space, ev)
    rec = recommend(result, ev, Constraints(), with_marginals=False)
    assert rec.allocation == best
    assert [t.label for t in rec.ties] == [inside.label()]
    sentence = ties_sentence(rec.ties, best)
    assert sentence in rec.reason
    assert "1 other simulated plan(s) of 16x h100-sxm, 101.0 h; closest: " in sentence
    assert f"{inside.label()}, 101.0 h (changes {', '.join(rec.ties[0].differs_in)})" in sentence
    # a clear winner: no sentence, no ties
    toy2 = Staged({best: (BEST_HOURS, 0.01, False), inside: (110.0, 0.01, False)})
    ev2 = Evaluator({"name": "toy"}, InlinePool(toy2), 4, 0)
    rec2 = recommend(exhaustive(space, ev2), ev2, Constraints(), with_marginals=False)
    assert rec2.ties == [] and "noise" not in rec2.reason


def test_ties_that_break_the_deadline_or_budget_are_not_offered():
    """Under --deadline-hours the pick is the cheapest plan in time; a tie 0.5 h past the
    deadline is not listed (choosing it would break the constraint), one within it is."""
    space, plans, other = _plans()
    best, inside, late = plans[:3]
    toy = Staged({best: (BEST_HOURS, 0.01, False), inside: (100.4, 0.01, False), late: (101.0, 0.01, False)})
    ev = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    result = exhaustive(space, ev)
    assert {t.label for t in ties(ev, best)} == {inside.label(), late.label()}
    rec = recommend(result, ev, Constraints(deadline_hours=100.5), with_marginals=False)
    assert rec.allocation == best and [t.label for t in rec.ties] == [inside.label()]
    rec = recommend(result, ev, Constraints(budget_usd=100.4 * 32.0), with_marginals=False)
    assert [t.label for t in rec.ties] == [inside.label()]
