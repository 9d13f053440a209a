"""Robust recommendation: draws of the efficiency terms and lengths, a plan that wins by a hair is
reported as not robust, a clear winner as robust; and the typed seam between Summary and planner."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim.metrics import Summary
from rlvr_sim.sim.run import simulate
from rlvr_sim.sweep.jobs import STATUS_OK, PlanJob, PlanMetrics, PlanOutcome
from rlvr_sim.sweep.planner import Evaluator
from rlvr_sim.sweep.pools import InlinePool
from rlvr_sim.sweep.robust import (DEFAULT_REL_SPREAD, ROBUST_SHARE, Perturbation, assess, draw_perturbations,
                                   pick, spreads)
from rlvr_sim.sweep.space import DISAGGREGATED, Allocation
from summaries import toy_summary

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = ROOT / "scenarios" / "minimal.yaml"


def toy_outcome(job: PlanJob, hours: float) -> PlanOutcome:
    """A valid plan of `hours` on 16 GPUs at $2 per GPU-hour."""
    return PlanOutcome(job.index, job.plan_id, job.plan.columns(), STATUS_OK, None,
                       toy_summary(hours, hours * 16 * 2.0, hours, 0.5, 0.5, "sampler"), "toy")


def plan_a(sampler: int) -> Allocation:
    return Allocation("h100-sxm", 16, DISAGGREGATED, sampler, 1, 16 - sampler, 1, 0, 4)


class TwoPlans:
    """Hours of the plan with 8 sampler GPUs scale with the decode bandwidth draw, of the plan with
    12 with the training MFU draw; `margin` is how much slower the second is at the nominal point."""

    def __init__(self, margin: float):
        self.margin = margin

    def __call__(self, job: PlanJob) -> PlanOutcome:
        c = job.plan.columns()
        f = dict(job.perturb.efficiency_factors) if job.perturb else {}
        if c["sampler.gpus"] == 8:
            hours = 10.0 / f.get("decode_bw_eff", 1.0)
        else:
            hours = 10.0 * (1 + self.margin) / f.get("train_mfu", 1.0)
        return toy_outcome(job, hours)


def _assess(margin: float, draws: int = 40):
    ev = Evaluator({"name": "toy"}, InlinePool(TwoPlans(margin)), 4, 0)
    a, b = plan_a(8), plan_a(12)
    ev.evaluate([a, b])
    assert ev.hours(a) < ev.hours(b)            # `a` is the nominal winner
    return assess(ev, a, [b], load_scenario(MINIMAL, overrides=["profile=datasheet"]), draws)


def test_a_win_by_a_hair_is_not_robust():
    r = _assess(margin=0.001)
    assert not r.robust and r.share_best < ROBUST_SHARE
    assert 0.2 < r.share_best < 0.8               # a coin toss between the two
    assert r.candidates == 2 and sum(r.winners.values()) == r.draws == 40
    assert "NOT robust" in r.sentence()


def test_regret_is_how_much_worse_the_recommended_plan_is_where_another_wins():
    """TwoPlans at a hair: in each draw `b` wins, `a` is (10 / decode) / (10.01 / train) - 1 worse;
    the report's max and median are those, computed here from the same draws; far beyond the
    2 % tolerance, so not near-equal."""
    r = _assess(margin=0.001)
    sp = spreads(load_scenario(MINIMAL, overrides=["profile=datasheet"]))
    expect = []
    for p in draw_perturbations(sp, 40, seed=0):
        f = dict(p.efficiency_factors)
        a, b = 10.0 / f["decode_bw_eff"], 10.0 * 1.001 / f["train_mfu"]
        if b < a:
            expect.append(a / b - 1)
    assert len(expect) == 40 - r.winners[plan_a(8).label()]
    assert r.regret_max == pytest.approx(max(expect))
    assert r.regret_p50 == pytest.approx(statistics.median(expect))
    assert r.regret_max > 0.02 and not r.near_equal
    # the recommended plan is still picked most often (25 of 40 with these draws): no rival named
    assert r.winners[plan_a(8).label()] > r.winners[plan_a(12).label()]
    assert r.rival is None and "picked most often instead" not in r.sentence()


def test_the_plan_picked_most_often_instead_is_named():
    from rlvr_sim.sweep.robust import Robustness

    def report(winners: dict[str, int]) -> Robustness:
        share = winners.get("mine", 0) / 12
        return Robustness(12, 3, share, share >= ROBUST_SHARE, 9.0, 10.0, 11.0, 1.0, 2.0, 3.0, winners, "toy",
                          regret_max=0.1, regret_p50=0.04, recommended_label="mine")

    r = report({"other": 8, "mine": 3, "third": 1})
    assert r.rival == "other" and "picked most often instead: other (8 of 12)" in r.sentence()
    assert report({"other": 4, "mine": 4, "third": 4}).rival is None        # a tie is no rival
    assert report({"mine": 11, "other": 1}).rival is None                   # robust: none named
    assert f"at most {r.regret_max:.1%} worse" in r.sentence()


class NearTie:
    """Both plans scale with the decode draw; the second also with train_mfu ** 0.05 (a 10 %
    draw moves it ~0.5 %): it wins about half the draws, never by more than ~1.5 %."""

    def __call__(self, job: PlanJob) -> PlanOutcome:
        c = job.plan.columns()
        f = dict(job.perturb.efficiency_factors) if job.perturb else {}
        hours = 10.0 / f.get("decode_bw_eff", 1.0)
        if c["sampler.gpus"] != 8:
            hours *= 1.001 / f.get("train_mfu", 1.0) ** 0.05
        return toy_outcome(job, hours)


def test_a_coin_toss_between_near_equal_plans_is_said_so():
    ev = Evaluator({"name": "toy"}, InlinePool(NearTie()), 4, 0)
    a, b = plan_a(8), plan_a(12)
    ev.evaluate([a, b])
    r = assess(ev, a, [b], load_scenario(MINIMAL, overrides=["profile=datasheet"]), 40)
    assert not r.robust and 0.2 < r.share_best < 0.8
    assert 0 < r.regret_p50 <= r.regret_max <= 0.02 and r.near_equal
    assert "NOT robust, near-equal plans" in r.sentence()


def test_a_clear_win_is_robust_with_its_spread():
    r = _assess(margin=1.0)
    assert r.robust and r.share_best == 1.0
    # hours = 10 / exp(0.1 z): p10 and p90 near 10 / exp(+-1.28 x 0.1)
    assert r.hours_p10 == pytest.approx(10 / math.exp(0.1 * 1.2816), rel=0.08)
    assert r.hours_p90 == pytest.approx(10 / math.exp(-0.1 * 1.2816), rel=0.08)
    assert r.usd_p50 == pytest.approx(r.hours_p50 * 32, rel=1e-9)
    assert "robust" in r.sentence() and "default 1-sigma 10%" in r.spread_source
    assert r.regret_max == 0.0 and not r.near_equal and "worse" not in r.sentence()
    assert r.rival is None


def test_spreads_default_without_calibration_and_draws_are_seeded():
    sc = load_scenario(MINIMAL, overrides=["profile=datasheet"])     # no calibration info
    sp = spreads(sc)
    assert sc.hardware_profile.calibration is None
    assert set(sp.defaulted) == {name for name, _ in sp.rel_sigma}
    assert all(sigma == DEFAULT_REL_SPREAD for _, sigma in sp.rel_sigma)
    assert draw_perturbations(sp, 3, seed=1) == draw_perturbations(sp, 3, seed=1)
    assert draw_perturbations(sp, 3, seed=1) != draw_perturbations(sp, 3, seed=2)


def test_perturbation_scales_the_profile_and_lengths_and_the_simulation():
    sc = load_scenario(MINIMAL)
    slow = Perturbation(0, (("decode_bw_eff", 0.5), ("train_mfu", 0.5), ("decode_mfu", 5.0)), 1.1)
    sc2, prof = slow.apply(sc)
    assert prof.efficiency.decode_bw_eff == pytest.approx(sc.hardware_profile.efficiency.decode_bw_eff * 0.5)
    assert prof.efficiency.decode_mfu == 1.0                              # a fraction stays <= 1
    assert sc2.workload.response_tokens.mean == pytest.approx(sc.workload.response_tokens.mean * 1.1)
    base = simulate(sc, steps=1, trace=False).summary.step_time_s.mean
    drawn = simulate(sc2, steps=1, trace=False, profile=prof).summary.step_time_s.mean
    assert drawn > 1.5 * base


def test_pick_follows_the_choice_rules():
    a, b = plan_a(8), plan_a(12)
    values = {a: (10.0, 500.0), b: (12.0, 300.0)}
    assert pick(values, None, None) == a                     # fastest
    assert pick(values, 13.0, None) == b                     # cheapest within the deadline
    assert pick(values, None, 400.0) == b                    # fastest within the budget
    assert pick(values, 5.0, None) is None


# ---------------------------------------------------------------------------- typed seam
def test_plan_metrics_read_real_summary_fields():
    """Every field the planner reads exists on Summary: renaming one (say `utilization`) makes
    `PlanMetrics.of` raise here, instead of a silently smaller search."""
    s = simulate(load_scenario(MINIMAL), steps=2, trace=False).summary
    m = PlanMetrics.of(s)
    assert m.hours_total == s.hours_total and m.usd_total == s.cost.usd_total
    assert m.step_time_s == s.step_time_s.mean
    assert m.utilization.as_dict() == s.utilization and m.idle_s.as_dict() == s.idle_s
    assert m.steps_simulated == 2 and m.bottleneck == s.bottleneck


def test_a_renamed_summary_field_fails_loudly():
    s = simulate(load_scenario(MINIMAL), steps=1, trace=False).summary
    data = s.model_dump()
    data["utilisation"] = data.pop("utilization")

    class Renamed(Summary):
        utilisation: dict[str, float]
        utilization: dict[str, float] | None = None

    renamed = Renamed(**data)
    with pytest.raises((KeyError, TypeError, AttributeError)):
        PlanMetrics.of(renamed)
    outcome = PlanOutcome(0, "x", {}, STATUS_OK, None, renamed)
    with pytest.raises((KeyError, TypeError, AttributeError)):
        outcome.metrics


class TwoPlanBounds:
    """Bounds of TwoPlans under one draw: `share` of each plan's true hours."""

    def __init__(self, pert: Perturbation, margin: float, share: float):
        self.f, self.margin, self.share = dict(pert.efficiency_factors), margin, share

    def hours(self, a: Allocation) -> float:
        true = 10.0 / self.f["decode_bw_eff"] if a.sampler_gpus == 8 else \
            10.0 * (1 + self.margin) / self.f["train_mfu"]
        return self.share * true

    def usd(self, a: Allocation) -> float:
        return self.hours(a) * 16 * 2.0


@pytest.mark.parametrize("margin, deadline", [(0.001, None), (1.0, None), (0.001, 10.5), (1.0, 30.0)])
def test_screened_draws_give_the_same_report_with_fewer_simulations(margin, deadline):
    ev = Evaluator({"name": "toy"}, InlinePool(TwoPlans(margin)), 4, 0)
    a, b = plan_a(8), plan_a(12)
    ev.evaluate([a, b])
    sc = load_scenario(MINIMAL, overrides=["profile=datasheet"])
    full = assess(ev, a, [b], sc, 30, deadline_hours=deadline)
    screened = assess(ev, a, [b], sc, 30, deadline_hours=deadline,
                      bounds=lambda pert: TwoPlanBounds(pert, margin, 0.95))
    assert (screened.share_best, screened.winners, screened.hours_p10, screened.hours_p90, screened.usd_p50) == \
        (full.share_best, full.winners, full.hours_p10, full.hours_p90, full.usd_p50)
    assert full.simulated == 60 and screened.simulated <= full.simulated
    if margin == 1.0:      # the runner-up's bound rules it out in (almost) every draw
        assert screened.simulated < 40


class Fragile:
    """The nominal winner `a` (8 sampler GPUs) takes 10 h at the nominal point and 10 x (1 + 5 x
    ln(decode draw)^2) h in a draw: any move of the decode efficiency hurts it. `b` takes 10.1 h
    whatever is drawn. With the datasheet's 10 % spread, `a` is picked only when |z| < 0.45
    (about a third of the draws) and can be ~20 % slower than `b`; `b` is never more than 1 %
    slower than `a`."""

    def __call__(self, job: PlanJob) -> PlanOutcome:
        c = job.plan.columns()
        f = dict(job.perturb.efficiency_factors) if job.perturb else {}
        if c["sampler.gpus"] == 8:
            hours = 10.0 * (1 + 5 * math.log(f.get("decode_bw_eff", 1.0)) ** 2)
        else:
            hours = 10.1
        return toy_outcome(job, hours)


def test_the_robust_choice_takes_the_rival_that_loses_least_in_its_worst_draw():
    from rlvr_sim.sweep.robust import NEAR_EQUAL, prefer_rival

    ev = Evaluator({"name": "toy"}, InlinePool(Fragile()), 4, 0)
    a, b = plan_a(8), plan_a(12)
    ev.evaluate([a, b])
    assert ev.hours(a) < ev.hours(b)
    sc = load_scenario(MINIMAL, overrides=["profile=datasheet"])
    mine = assess(ev, a, [b], sc, 40)
    theirs = assess(ev, b, [a], sc, 40)
    assert not mine.robust and mine.rival == b.label() and not mine.near_equal
    # the same draws pick the same winners whichever plan is the recommended one
    assert mine.winners == theirs.winners
    assert mine.regret_max > 0.1 and theirs.regret_max <= 0.0101
    assert prefer_rival(mine, theirs)
    # the other way round it does not switch back, and a near-equal or robust pick never switches
    assert not prefer_rival(theirs, mine)
    near = _assess(margin=0.001)
    assert not prefer_rival(replace(near, regret_max=NEAR_EQUAL), theirs)
    assert not prefer_rival(replace(mine, robust=True), theirs)
    # worst regrets within NEAR_EQUAL of each other: the nominal pick stays
    assert not prefer_rival(mine, replace(theirs, regret_max=mine.regret_max - NEAR_EQUAL / 2))
    with pytest.raises(ValueError, match="same draws"):
        prefer_rival(mine, replace(theirs, draws=12))


def test_the_robust_choice_sentence_and_the_rival_rule():
    from rlvr_sim.commands.plan_decision import challengers, robust_choice_sentence
    from rlvr_sim.sweep.recommend import Constraints, Recommendation

    ev = Evaluator({"name": "toy"}, InlinePool(Fragile()), 4, 0)
    a, b = plan_a(8), plan_a(12)
    ev.evaluate([a, b])
    sc = load_scenario(MINIMAL, overrides=["profile=datasheet"])
    mine, theirs = assess(ev, a, [b], sc, 40), assess(ev, b, [a], sc, 40)
    assert challengers(mine, [a, b], ev, Constraints()) == [b]
    assert challengers(mine, [a, b], ev, Constraints(deadline_hours=10.05)) == []     # b misses it as simulated
    assert challengers(mine, [a, b], ev, Constraints(budget_usd=10.05 * 32)) == []
    assert challengers(replace(mine, robust=True), [a, b], ev, Constraints()) == []
    # b's own report: b loses some draws to a, but by at most 1 %: near-equal, no challenger
    assert theirs.near_equal and challengers(theirs, [a, b], ev, Constraints()) == []
    nominal = Recommendation(a, a.label(), 10.0, 320.0, 10.0, "fastest plan", "sampler", robustness=mine)
    chosen = Recommendation(b, b.label(), 10.1, 323.2, 10.1, "most robust", "sampler", robustness=theirs)
    text = robust_choice_sentence(nominal, chosen)
    assert f"over the nominal pick (fastest plan) {a.label()} (10.00 h, $320" in text
    assert "this plan +1.0% hours, +1.0% dollars" in text
    assert f"up to {mine.regret_max:.1%} slower" in text and f"at most {theirs.regret_max:.1%} slower" in text
    assert f"picked in {mine.winners[a.label()]} and" in text


def test_decide_recommends_the_robust_plan_and_keeps_the_nominal_one(monkeypatch):
    """The `plan` decision end to end on the Fragile toy (every plan with 8 sampler GPUs is
    fragile, every other takes 10.1 h): the nominal pick is a fragile plan; with --choose robust
    the recommendation is the steady plan the draws pick, with the nominal pick and its report
    kept; --choose nominal keeps the nominal pick."""
    from rlvr_sim.cli import build_parser
    import rlvr_sim.commands.plan_decision as plan_decision
    import rlvr_sim.commands.plan_space as plan_space
    from rlvr_sim.sim.steady import PLANNER_RULE

    class OneFragile:
        """Fragile's plan `a` is one plan of the space (8 sampler GPUs at TP 1, trainer TP 1,
        staleness 1); every other plan takes 10.1 h."""

        def __call__(self, job: PlanJob) -> PlanOutcome:
            c = job.plan.columns()
            if (c["sampler.gpus"], c["sampler.tp"], c["trainer.tp"], c["orchestration.max_staleness"]) == (8, 1, 1, 1):
                return Fragile()(job)
            return toy_outcome(job, 10.1)

    def toy_evaluator(args, pool, rule, progress=False):
        return Evaluator({"name": "toy"}, InlinePool(OneFragile()), 4, 0, fixed=plan_space.fixed_plan(args)), None

    monkeypatch.setattr(plan_decision, "make_evaluator", toy_evaluator)
    decisions = {}
    for choose in ("robust", "nominal"):
        args = build_parser().parse_args(["plan", str(MINIMAL), "--total-gpus", "16", "--sizes", "16", "--exhaustive",
                                          "--draws", "12", "--confirm", "0", "--set", "profile=datasheet",
                                          "--choose", choose])
        space, base = plan_space.build_space(args)
        decisions[choose] = plan_decision.decide(args, space, base, InlinePool(OneFragile()), PLANNER_RULE,
                                                 plan_space.base_scenario(args))
    nominal, robust = decisions["nominal"].rec, decisions["robust"].rec
    a = nominal.allocation
    assert (a.sampler_gpus, a.sampler_tp, a.trainer_tp, a.max_staleness) == (8, 1, 1, 1)
    assert nominal.hours_total == 10.0 and nominal.nominal is None
    assert not nominal.robustness.robust and nominal.robustness.regret_max > 0.02
    assert robust.allocation != a and robust.hours_total == pytest.approx(10.1)
    assert robust.nominal == nominal.label and robust.nominal_robustness == nominal.robustness
    assert robust.robustness.regret_max <= 0.0101 < nominal.robustness.regret_max
    assert robust.reason.startswith(f"Chosen for robustness over the nominal pick (fastest plan) {nominal.label}")
    assert robust.rule.startswith("most robust plan")
