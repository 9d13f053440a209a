"""Stopping the branch and bound early (`plan --gap`, `--time-limit`): the answer it gives is
within the gap it reports of the exhaustive optimum, the gap it reports is never smaller than the
true one, and the exact search reports no gap.

Toys: `Toy` hours (tests/test_plan_search.py) with `toy_bound` (a valid bound 0.5-1x the hours,
varying per plan); `ClockPool` (tests/test_plan_stream.py) runs plans on a virtual clock, so a
deadline is a virtual time and the test is deterministic."""

from __future__ import annotations

import heapq
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.sweep.branch_bound import STOP_EXHAUSTED, STOP_GAP, STOP_TIME, branch_and_bound
from rlvr_sim.sweep.evaluator import GroupGap
from rlvr_sim.sweep.planner import Evaluator, exhaustive
from rlvr_sim.sweep.pools import InlinePool
from rlvr_sim.sweep.space import SearchSpace
from test_plan_bb import toy_bound
from test_plan_search import Toy
from test_plan_stream import ClockPool, group_best as optima

SPACE = SearchSpace(gpus=("h100-sxm", "h200"), sizes=(32, 16), sampler_tps=(1, 2, 4), trainer_tps=(1, 2, 4),
                    staleness=(0, 1, 2, 4), mini_batches=(2,), gpus_per_node=8)
SMALL = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"


def brute(gen: float, train: float) -> dict[tuple[str, int], float]:
    full = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0)
    exhaustive(SPACE, full)
    return optima(full)


def check_certified(gaps: tuple[GroupGap, ...], found: dict, true: dict) -> None:
    """Each group's best is the search's, within its reported gap of the true optimum, and the
    reported floor is below the true optimum (a certificate, not an estimate)."""
    assert {(g.gpu, g.total_gpus) for g in gaps} == set(true)
    for g in gaps:
        key = (g.gpu, g.total_gpus)
        assert g.best_hours == found[key]
        assert g.floor_hours <= true[key] + 1e-12
        assert g.best_hours <= true[key] * (1 + g.gap) * (1 + 1e-12)


def test_exact_search_reports_no_gap():
    gen, train = 400000.0, 150000.0
    ev = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
    result = branch_and_bound(SPACE, ev)
    assert all(g.stopped == STOP_EXHAUSTED and g.gap == 0.0 for g in result.gaps)
    assert {(g.gpu, g.total_gpus): g.best_hours for g in result.gaps} == brute(gen, train)


@settings(max_examples=15, deadline=None)
@given(gen=st.floats(20000, 800000), train=st.floats(20000, 800000), gap=st.sampled_from([0.02, 0.1, 0.3]))
def test_a_gap_search_is_within_its_gap_in_either_order(gen, train, gap):
    true = brute(gen, train)
    exact = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
    branch_and_bound(SPACE, exact)
    for order in ("bound", "predicted"):
        ev = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
        result = branch_and_bound(SPACE, ev, gap=gap, order=order)
        found = optima(ev)
        check_certified(result.gaps, found, true)
        for g in result.gaps:
            # the promise of --gap: within it of the optimum (and the reported gap may say less)
            assert g.best_hours <= true[(g.gpu, g.total_gpus)] * (1 + gap) * (1 + 1e-12)
            assert g.stopped in (STOP_EXHAUSTED, STOP_GAP)
            if g.stopped == STOP_GAP:
                assert 0 < g.gap
        if order == "bound":
            # never more plans than the exact search (same order, a stricter stop)
            assert set(ev.seen) <= set(exact.seen)


def test_the_predicted_order_gives_the_exact_answer_without_a_gap():
    """The order is only an order: with no gap and no deadline, the predicted order finds the
    exhaustive optima too."""
    for gen, train in ((400000.0, 150000.0), (100000.0, 300000.0), (800000.0, 40000.0)):
        ev = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
        result = branch_and_bound(SPACE, ev, order="predicted")
        assert {(g.gpu, g.total_gpus): g.best_hours for g in result.gaps} == brute(gen, train)
        assert all(g.stopped == STOP_EXHAUSTED for g in result.gaps)


def test_a_gap_saves_plans_on_a_known_case():
    gen, train = 400000.0, 150000.0
    exact = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
    branch_and_bound(SPACE, exact)
    loose = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
    result = branch_and_bound(SPACE, loose, gap=0.3)
    assert len(loose.seen) < len(exact.seen)
    assert any(g.stopped == STOP_GAP for g in result.gaps)


def test_the_gap_is_the_pruning_rule_not_a_looser_one():
    """A crafted bound: the group's runner-up b has the smallest bound (simulated first), the
    optimum a* a bound equal to its hours H*, every other plan its own hours. With gap = half of
    b's excess over H*, a* passes (H* (1 + gap) <= H_b) and must be simulated: a search that
    pruned more loosely than its gap would answer b, which is outside the gap."""
    gen, train = 400000.0, 150000.0
    full = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0)
    exhaustive(SPACE, full)
    group = [a for a in full.seen if (a.gpu, a.total_gpus) == ("h100-sxm", 32)]
    ranked = sorted(group, key=full.hours)
    star, b = ranked[0], next(a for a in ranked if full.hours(a) > full.hours(ranked[0]) * 1.02)
    h_star, h_b = full.hours(star), full.hours(b)
    gap = (h_b / h_star - 1) / 2

    def bound(a):
        return 1e-6 if a == b else full.hours(a)

    ev = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=bound)
    result = branch_and_bound(SPACE, ev, gap=gap)
    mine = next(g for g in result.gaps if (g.gpu, g.total_gpus) == ("h100-sxm", 32))
    assert star in ev.seen and mine.best_hours == h_star


@pytest.mark.parametrize("deadline", [0.0, 150.0, 450.0])
def test_a_deadline_stops_starting_plans_and_reports_a_valid_gap(deadline):
    """Async plans take 100 virtual seconds, sync ones 1 (ClockPool's default). After the
    deadline a plan starts only in a group with no valid plan yet; every group has an answer,
    and each answer is within the gap reported."""
    gen, train = 400000.0, 150000.0
    true = brute(gen, train)
    pool = ClockPool(Toy(gen, train), workers=2)
    ev = Evaluator({"name": "toy"}, pool, 4, 0, bound=toy_bound(gen, train))
    result = branch_and_bound(SPACE, ev, deadline=deadline, clock=lambda: pool.now)
    found = optima(ev)
    check_certified(result.gaps, found, true)
    assert all(found[g] < math.inf for g in true)          # every group answered
    late = [t for event, _, t in pool.log if event == "submit" and t > deadline]
    # what starts after the deadline is a group's first answer: at most one submission per group
    # per worker slot (a group with an invalid first plan may need a second)
    assert len(late) <= 2 * len(true)
    if deadline == 0.0:
        exact = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0, bound=toy_bound(gen, train))
        branch_and_bound(SPACE, exact)
        assert len(ev.seen) < len(exact.seen)
        assert any(g.stopped == STOP_TIME for g in result.gaps)


def test_gap_sentence_says_how_far_and_why():
    from rlvr_sim.commands.plan_decision import gap_sentence
    from rlvr_sim.sweep.space import COLOCATED, Allocation

    a = Allocation("h100-sxm", 64, COLOCATED, 64, 4, 64, 2, 0, 16)
    gaps = (GroupGap("h100-sxm", 64, 556.0, 520.0, STOP_TIME), GroupGap("h100-sxm", 32, 1080.0, 1080.0, STOP_EXHAUSTED),
            GroupGap("h100-sxm", 16, 2130.0, 0.0, STOP_GAP))
    text = gap_sentence(gaps, a)
    assert "within 6.9%" in text and "time limit" in text and "520.0 h" in text
    assert "unknown" in text and "16x h100-sxm" in text and "32x" not in text
    lost = GroupGap("h100-sxm", 8, math.inf, 900.0, STOP_TIME)
    assert gap_sentence(gaps + (lost,), a).endswith("no plan finished within the time limit for 8x h100-sxm.")
    assert gap_sentence((GroupGap("h100-sxm", 64, 556.0, 556.0, STOP_EXHAUSTED), lost), a) == \
        "No plan finished within the time limit for 8x h100-sxm."
    assert gap_sentence((GroupGap("h100-sxm", 64, 556.0, 556.0, STOP_EXHAUSTED),), a) == ""


def test_plan_flags_with_the_real_simulator(capsys):
    """--time-limit on the real simulator: every GPU total answered, confirmation and draws
    skipped once past it, the gaps in the JSON; bad values and wrong methods refused by name."""
    from rlvr_sim.cli import main

    args = ["plan", str(SMALL), "--total-gpus", "4", "--sampler-tp", "1,2", "--trainer-tp", "1",
            "--staleness", "0,1", "--workers", "1", "--json", "--draws", "2", "--no-cache"]
    assert main(args + ["--time-limit", "0.001"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"] == ["confirmation", "the marginal-GPU plans", "robustness draws"]
    assert out["recommended"]["marginals"] == []       # not simulated past the limit
    assert "confirmation" not in out and out["recommended"]["robustness"] is None
    gaps = out["search_gaps"]
    assert 4 in {g["total_gpus"] for g in gaps}
    # the asked total answers; another total may have no plan finished in the time (best None)
    assert all(g["best_hours"] >= g["floor_hours"] and g["gap"] >= 0 for g in gaps if g["total_gpus"] == 4)
    assert all(g["best_hours"] is None or g["best_hours"] >= g["floor_hours"] for g in gaps)
    if any(g["best_hours"] is None for g in gaps):
        assert "no plan finished within the time limit for" in out["recommended"]["reason"]
    assert "Skipped (past the 0.001 s time limit)" in out["recommended"]["reason"]
    assert main(args + ["--gap", "0.05", "--confirm", "0", "--draws", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(g["gap"] <= 0.05 + 1e-12 or g["stopped"] == "exact" for g in out["search_gaps"])
    for bad, needle in ((["--gap", "-0.1"], "--gap -0.1"), (["--gap", "1.5"], "--gap 1.5"),
                        (["--time-limit", "0"], "--time-limit 0"),
                        (["--gap", "0.1", "--exhaustive"], "--exhaustive"),
                        (["--time-limit", "5", "--local"], "--local"),
                        (["--order", "predicted", "--exhaustive"], "--order predicted")):
        assert main(args + bad) != 0
        assert needle in capsys.readouterr().err


def test_the_predictor_learns_how_loose_each_sampler_layout_bound_is():
    """Predicted hours = max(full bound, sampler bound x least hours/sampler bound seen for that
    sampler layout, else for any; 1 before anything is seen)."""
    from rlvr_sim.sweep.branch_bound import Predictor
    from rlvr_sim.sweep.space import DISAGGREGATED, Allocation

    def plan(sampler_tp: int, sampler: int) -> Allocation:
        return Allocation("h100-sxm", 64, DISAGGREGATED, sampler, sampler_tp, 64 - sampler, 1, 2, 16)

    a, b, c = plan(4, 20), plan(4, 24), plan(8, 24)
    full = {a: 480.0, b: 520.0, c: 530.0}
    quick = {a: 470.0, b: 400.0, c: 390.0}
    p = Predictor(full.__getitem__, quick.__getitem__)
    assert p(b) == 520.0                                   # bound order before any result
    p.learn(a, 660.0)                                      # a thrashing sampler: 660 / 470 = 1.404
    assert p(b) == pytest.approx(400 * 660 / 470)          # b shares a's layout: 561.7 > its 520 bound
    assert p(a) == pytest.approx(660.0)
    p.learn(b, 556.0)                                      # 556 / 400 = 1.39 < 1.404
    assert p.k_sampler[Predictor.layout(b)] == pytest.approx(556 / 400)       # the least of the layout
    # an unseen layout borrows the least ratio of any layout; its full bound is a floor
    assert p(c) == pytest.approx(max(530, 390 * 556 / 400))
    p.learn(c, 600.0)
    assert p.k_sampler[Predictor.layout(c)] == pytest.approx(600 / 390)      # its own now
    assert p(c) == pytest.approx(600.0)
    # a trainer-bound plan (full bound above its sampler side x k) is predicted at its full bound,
    # whatever looseness sampler-bound plans taught
    d = plan(4, 28)
    full[d], quick[d] = 700.0, 300.0
    assert p(d) == 700.0


def test_the_order_flag_keeps_the_exact_answer_with_the_real_simulator(capsys):
    """`--order predicted` without a gap or a limit: the same recommendation and frontier as
    `--order bound` (the order changes the work only)."""
    from rlvr_sim.cli import main

    args = ["plan", str(SMALL), "--total-gpus", "4", "--sampler-tp", "1,2", "--trainer-tp", "1",
            "--staleness", "0,1", "--workers", "1", "--json", "--draws", "0", "--confirm", "0", "--no-cache"]
    answers = {}
    for order in ("bound", "predicted"):
        assert main(args + ["--order", order]) == 0
        out = json.loads(capsys.readouterr().out)
        answers[order] = (out["recommended"]["label"], out["recommended"]["hours_total"],
                          [(f["label"], f["hours_total"]) for f in out["frontier"]])
        assert all(g["stopped"] == "exact" for g in out["search_gaps"])
    assert answers["bound"] == answers["predicted"]


class StoppingClockPool(ClockPool):
    """ClockPool whose workers honour a job's `stop_at` (virtual time): a plan still running at
    it ends there, partial (`stopped_by_clock`, certainly slower than `level` x its hours)."""

    def __init__(self, evaluate, workers: int, level: float):
        super().__init__(evaluate, workers)
        self.level = level
        self.stopped: list[tuple[object, float]] = []      # (plan label, time it ended)
        self.to_end: list[tuple[tuple[str, int], float]] = []   # (group, end) of plans run to their end

    def submit(self, job) -> None:
        assert len(self.running) < self.workers, "more jobs submitted than workers"
        self.count += 1
        natural = end = self.now + self.duration(job)
        if job.stop_at is not None:
            end = min(end, max(job.stop_at, self.now))
        else:       # runs to its end: no other such plan of its group may be running
            c = job.plan.columns()
            group = (c["hardware.gpu"], c["sampler.gpus"] + (0 if c["orchestration.placement"] == "colocated"
                                                             else c["trainer.gpus"]))
            assert not any(g == group and e > self.now for g, e in self.to_end), group
            self.to_end.append((group, end))
        heapq.heappush(self.running, (end, self.count, job, end < natural))
        self.log.append(("submit", len(self.running), self.now))

    def next_done(self):
        self.log.append(("wait", len(self.running), self.now))
        end, _, job, cut = heapq.heappop(self.running)
        self.now = end
        outcome = self.evaluate(job)
        if cut and outcome.summary is not None:
            outcome.summary = outcome.summary.model_copy(update={
                "stopped_above_hours": self.level * outcome.summary.hours_total, "stopped_by_clock": True})
            self.stopped.append((job.plan.columns()["sampler.gpus"], end))
        return outcome


@pytest.mark.parametrize("level", [0.0, 0.9])
@pytest.mark.parametrize("deadline", [0.0, 150.0, 450.0])
def test_a_hard_deadline_stops_running_plans_and_still_certifies(deadline, level):
    """With a deadline and `answer_totals`, a plan started in a group that has an answer ends at
    the deadline, partial (certainly slower than `level` x its hours; level 0: nothing known);
    only the asked total must answer, so past the deadline nothing else runs; each group's floor
    is still below its true optimum, and a partial plan's floor is at least its bound (a level
    of 0 does not make the floor 0)."""
    gen, train = 400000.0, 150000.0
    true = brute(gen, train)
    pool = StoppingClockPool(Toy(gen, train), workers=2, level=level)
    bound = toy_bound(gen, train)
    ev = Evaluator({"name": "toy"}, pool, 4, 0, bound=bound)
    result = branch_and_bound(SPACE, ev, deadline=deadline, clock=lambda: pool.now, wall=lambda: pool.now,
                              answer_totals=frozenset({32}))
    found: dict[tuple[str, int], float] = {}          # the best plan simulated to its end
    for a in ev.seen:
        found[(a.gpu, a.total_gpus)] = min(found.get((a.gpu, a.total_gpus), math.inf), ev.final_hours(a))
    for g in result.gaps:
        key = (g.gpu, g.total_gpus)
        assert g.floor_hours <= true[key] + 1e-12
        assert g.floor_hours > 0                       # bounds are > 0: a level of 0 never wins
        if g.best_hours < math.inf:
            assert g.best_hours == found[key] and g.best_hours <= true[key] * (1 + g.gap) * (1 + 1e-12)
    assert all(found[g] < math.inf for g in true if g[1] == 32)       # the asked total answered
    # partial plans are nobody's answer, and they ended at the deadline
    partial = [a for a in ev.seen if ev.metrics(a) is not None and ev.metrics(a).stopped_above_hours is not None]
    assert all(ev.final_hours(a) == math.inf for a in partial)
    assert all(t == max(deadline, 0.0) or t <= deadline for _, t in pool.stopped)
    # after the deadline only a 32-GPU group without an answer starts plans
    late = [t for event, _, t in pool.log if event == "submit" and t > deadline]
    assert len(late) <= 2 * sum(1 for g in true if g[1] == 32)
    # one plan at a time of a group that must answer runs past the deadline: nothing else ends late
    assert all(t <= deadline for _, t in pool.stopped)
    if deadline == 150.0:
        assert pool.stopped, "the deadline falls while async plans (100 s each) run"


def test_a_deadline_serves_the_asked_total_then_every_unanswered_total():
    """With a deadline (`first`): the asked total's groups go first until they have an answer,
    then each other group without one, one plan in flight at a time (so a short limit does not
    leave the frontier unanswered), then the asked total again before the others."""
    from rlvr_sim.sweep.branch_bound import _Queues
    from rlvr_sim.sweep.space import COLOCATED, Allocation

    def plan(total: int, tp: int) -> Allocation:
        return Allocation("h100-sxm", total, COLOCATED, total, tp, total, 1, 0, 2)

    a32, b32, c32, a16, b16 = plan(32, 1), plan(32, 2), plan(32, 4), plan(16, 1), plan(16, 2)
    bounds = {a32: 1.0, b32: 1.5, c32: 1.6, a16: 0.5, b16: 0.6}
    heaps = {("h100-sxm", 32): [(bounds[a], True, a) for a in (a32, b32, c32)],
             ("h100-sxm", 16): [(bounds[a], True, a) for a in (a16, b16)]}
    for h in heaps.values():
        heapq.heapify(h)
    g32, g16 = ("h100-sxm", 32), ("h100-sxm", 16)
    q = _Queues(bounds.__getitem__, heaps, {g32: math.inf, g16: math.inf}, {g32: 0, g16: 0},
                first=frozenset({32}))
    assert q.next_plan(True) == a32              # the asked total first, whatever the bounds
    q.running[g32] = 1
    assert q.next_plan(True) == b32              # still unanswered: it keeps priority
    q.running[g32], q.best[g32] = 0, 10.0        # answered
    assert q.next_plan(True) == a16              # now the unanswered frontier total
    q.running[g16] = 1                           # one worker at a time on the frontier's answers:
    assert q.next_plan(True) == c32              # the next goes on with the asked total
    q.running[g16], q.best[g16] = 0, 20.0
    assert q.priority(g32) == 2 and q.priority(g16) == 3
    assert q.next_plan(True) == b16              # nothing of the asked total left: the others
    # without a deadline (no `first`): bound / best order alone (16's 0.6 / 20 beats nothing left)
    plain = _Queues(bounds.__getitem__, {g32: [(1.0, True, a32)], g16: [(0.5, True, a16)]},
                    {g32: math.inf, g16: math.inf}, {g32: 0, g16: 0})
    assert plain.priority(g32) == plain.priority(g16) == 0


def test_a_deadline_answers_the_frontier_once_the_asked_total_has_its_answer():
    """The toy space with answer_totals={32} and a deadline that leaves time after the asked
    total's answers: the 16-GPU groups get an answer too (before, the 32-GPU groups' search
    took every worker until the deadline)."""
    gen, train = 400000.0, 150000.0
    pool = StoppingClockPool(Toy(gen, train), workers=2, level=0.9)
    ev = Evaluator({"name": "toy"}, pool, 4, 0, bound=toy_bound(gen, train))
    result = branch_and_bound(SPACE, ev, deadline=450.0, clock=lambda: pool.now, wall=lambda: pool.now,
                              answer_totals=frozenset({32}))
    assert all(g.best_hours < math.inf for g in result.gaps), [(g.total_gpus, g.best_hours) for g in result.gaps]
