"""Plan search on an analytic stand-in workload: it must find the exhaustive optimum, recommend by
the stated rules, and fail cleanly when nothing fits. (The real simulator: test_plan_real.py.)"""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.jobs import STATUS_INVALID, STATUS_OK, PlanJob, PlanMetrics, PlanOutcome
from rlvr_sim.sweep.planner import Evaluator, balanced_share, exhaustive, search
from rlvr_sim.sweep.pools import InlinePool
from rlvr_sim.sweep.recommend import Constraints, choose, recommend
from summaries import toy_summary
from rlvr_sim.sweep.space import (COLOCATED, DISAGGREGATED, Allocation, SearchSpace, default_sizes,
                                  enumerate_space, neighbours, round_split)

PRICE = {"h100-sxm": 2.0, "h200": 3.0}
SPEED = {"h100-sxm": 1.0, "h200": 1.4}


def toy_outcome(job: PlanJob, gen_work: float, train_work: float, min_trainer_group: int) -> PlanOutcome:
    """Sampling and training GPU-seconds split over their pools, TP/PP costing efficiency but cutting
    latency; async overlaps the pools. A trainer group (tp x pp) below `min_trainer_group` does not fit."""
    c = job.plan.columns()
    speed = SPEED[c["hardware.gpu"]]
    if c["trainer.tp"] * c["trainer.pp"] < min_trainer_group:
        return PlanOutcome(job.index, job.plan_id, c, STATUS_INVALID, "trainer.tp too small: weights do not fit")
    gen = gen_work / (speed * c["sampler.gpus"]) * (1 + 0.1 * (c["sampler.tp"] - 1)) + 30.0 / c["sampler.tp"]
    train = (train_work / (speed * c["trainer.gpus"]) * (1 + 0.05 * (c["trainer.tp"] - 1) + 0.08 * (c["trainer.pp"] - 1))
             + 2.0 * c["trainer.mini_batches"])
    if c["orchestration.placement"] == COLOCATED:
        step = gen + train + 5.0
        total = c["sampler.gpus"]
    elif c["orchestration.max_staleness"] > 0:
        step = max(gen, train) + 2.0 + 0.5 * c["orchestration.max_staleness"]
        total = c["sampler.gpus"] + c["trainer.gpus"]
    else:
        step = gen + train + 2.0
        total = c["sampler.gpus"] + c["trainer.gpus"]
    hours = step * 100 / 3600
    summary = toy_summary(hours, hours * total * PRICE[c["hardware.gpu"]], step, gen / step, train / step,
                          "sampler" if gen >= train else "trainer")
    return PlanOutcome(job.index, job.plan_id, c, STATUS_OK, None, summary, "toy")


class Toy:
    def __init__(self, gen_work=40000.0, train_work=15000.0, min_trainer_group=1):
        self.args = (gen_work, train_work, min_trainer_group)
        self.calls = 0

    def __call__(self, job: PlanJob) -> PlanOutcome:
        self.calls += 1
        return toy_outcome(job, *self.args)


def space_of(total=16, gpus=("h100-sxm",), staleness=(0, 1), mini=(4,), sizes=None, trainer_pps=(1,)):
    return SearchSpace(gpus=gpus, sizes=sizes or (total,), sampler_tps=(1, 2, 4), trainer_tps=(1, 2, 4),
                       staleness=staleness, mini_batches=mini, gpus_per_node=8, trainer_pps=trainer_pps)


def base_of(space):
    t = space.sizes[0]
    return Allocation(space.gpus[0], t, COLOCATED, t, 1, t, 1, 0, space.mini_batches[0])


def run_both(space, toy):
    searched = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    result = search(space, base_of(space), searched)
    full = Evaluator({"name": "toy"}, InlinePool(Toy(*toy.args)), 4, 0)
    return result, searched, exhaustive(space, full), full


@settings(max_examples=25, deadline=None)
@given(gen=st.floats(2000, 200000), train=st.floats(2000, 200000), min_group=st.sampled_from([1, 2, 8]),
       total=st.sampled_from([8, 16, 24]), trainer_pps=st.sampled_from([(1,), (1, 2)]))
def test_search_finds_the_exhaustive_optimum(gen, train, min_group, total, trainer_pps):
    space = space_of(total, trainer_pps=trainer_pps)
    toy = Toy(gen, train, min_group)
    result, searched, brute, full = run_both(space, toy)
    assert [searched.hours(a) for a in result.optima] == pytest.approx([full.hours(a) for a in brute.optima])
    assert result.counts()["evaluated"] <= len(enumerate_space(space))


def test_search_is_cheaper_than_brute_force_on_a_larger_space():
    space = space_of(64, gpus=("h100-sxm", "h200"), sizes=(64, 32), staleness=(0, 1, 2), mini=(2, 4))
    toy = Toy()
    result, searched, brute, full = run_both(space, toy)
    assert [searched.hours(a) for a in result.optima] == pytest.approx([full.hours(a) for a in brute.optima])
    assert toy.calls < 0.5 * len(enumerate_space(space))


def test_balanced_share_equalises_pool_busy_time():
    probe = Allocation("h100-sxm", 16, DISAGGREGATED, 8, 1, 8, 1, 0, 4)
    # sampler busy 30 s on 8 GPUs (240 GPU-s), trainer 10 s on 8 GPUs (80 GPU-s): 3/4 to the sampler
    share = balanced_share(probe, PlanMetrics.of(toy_summary(1.0, 1.0, 40.0, 0.75, 0.25, "sampler")))
    assert share == pytest.approx(0.75)
    assert round_split(share, 16, 2, 1) == 12
    assert round_split(0.99, 16, 4, 4) == 12   # both pools keep whole TP groups


def test_space_rules_and_neighbours():
    space = space_of(16)
    every = enumerate_space(space)
    assert all(space.allows(a) for a in every)
    assert all(a.sampler_gpus % a.sampler_tp == 0 and a.trainer_gpus % a.trainer_tp == 0 for a in every)
    assert not any(a.placement == COLOCATED and a.max_staleness for a in every)
    a = Allocation("h100-sxm", 16, DISAGGREGATED, 8, 2, 8, 1, 1, 4)
    moves = neighbours(a, space)
    assert Allocation("h100-sxm", 16, DISAGGREGATED, 10, 2, 6, 1, 1, 4) in moves
    assert Allocation("h100-sxm", 16, COLOCATED, 16, 2, 16, 1, 0, 4) in moves
    assert all(space.allows(m) and m.total_gpus == 16 for m in moves) and a not in moves
    piped = SearchSpace(gpus=("h100-sxm",), sizes=(16,), sampler_tps=(1, 2), trainer_tps=(1, 2), staleness=(0,),
                        mini_batches=(4,), gpus_per_node=8, trainer_pps=(1, 2))
    assert all(a.trainer_gpus % (a.trainer_pp * a.trainer_tp) == 0 for a in enumerate_space(piped))
    assert any(a.trainer_gpus == 2 and a.trainer_pp == 2 for a in enumerate_space(piped))
    assert not any(a.trainer_gpus == 3 and a.trainer_pp == 2 for a in enumerate_space(piped))
    piped_move = Allocation("h100-sxm", 16, DISAGGREGATED, 13, 1, 3, 1, 0, 4)
    assert Allocation("h100-sxm", 16, DISAGGREGATED, 14, 1, 2, 1, 0, 4, 1, 2) in neighbours(piped_move, piped)
    assert default_sizes(64, 8) == (64, 32, 16, 8)
    assert default_sizes(12, 8) == (12, 6, 3, 1)


def test_recommendation_rules_and_marginals():
    space = space_of(32, gpus=("h100-sxm", "h200"), sizes=(32, 16))
    ev = Evaluator({"name": "toy"}, InlinePool(Toy()), 4, 0)
    result = search(space, base_of(space), ev)
    table = result.table[result.table["status"] == STATUS_OK]
    fastest = recommend(result, ev, Constraints())
    assert fastest.hours_total == pytest.approx(table["hours_total"].min())
    assert "Bottleneck" in fastest.reason and len(fastest.marginals) >= 1
    assert all(m.hours_total is not None for m in fastest.marginals)
    deadline = float(table["hours_total"].quantile(0.5))
    cheap = recommend(result, ev, Constraints(deadline_hours=deadline))
    meeting = table[table["hours_total"] <= deadline]
    assert cheap.usd_total == pytest.approx(meeting["cost.usd_total"].min())
    budget = float(table["cost.usd_total"].median())
    capped = recommend(result, ev, Constraints(budget_usd=budget))
    assert capped.usd_total <= budget
    assert capped.hours_total == pytest.approx(table[table["cost.usd_total"] <= budget]["hours_total"].min())
    # marginal plans exceed the GPU limit and stay out of the search table
    assert result.table["total_gpus"].max() <= 32


def test_nothing_fits_and_impossible_constraints_are_clean_errors():
    space = space_of(8)
    ev = Evaluator({"name": "toy"}, InlinePool(Toy(min_trainer_group=64)), 4, 0)
    result = search(space, base_of(space), ev)
    assert result.counts()["ok"] == 0 and result.counts()["invalid"] > 0
    with pytest.raises(UserError, match="no valid plan.*weights do not fit"):
        choose(result, Constraints())
    ev = Evaluator({"name": "toy"}, InlinePool(Toy()), 4, 0)
    result = search(space, base_of(space), ev)
    with pytest.raises(UserError, match="cheapest plan costs"):
        choose(result, Constraints(budget_usd=0.01))


@pytest.mark.parametrize("gen, train", [(400000.0, 150000.0),
                                        pytest.param(100000.0, 300000.0, marks=pytest.mark.slow),
                                        pytest.param(800000.0, 40000.0, marks=pytest.mark.slow)])
def test_search_visits_the_exhaustive_frontier_on_128_gpus(gen, train):
    """A 128-GPU space (4 totals, TP 1-8 both pools, staleness 0-8, two GPU types): every plan on
    the hours-vs-dollars frontier of the exhaustive sweep is simulated by the search too."""
    from rlvr_sim.sweep.pareto import pareto_front

    space = SearchSpace(gpus=("h100-sxm", "h200"), sizes=(128, 64, 32, 16), sampler_tps=(1, 2, 4, 8),
                        trainer_tps=(1, 2, 4, 8), staleness=(0, 1, 2, 4, 8), mini_batches=(4,), gpus_per_node=8)
    toy = Toy(gen, train)
    searched = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0)
    result = search(space, base_of(space), searched)
    full = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0)
    brute = exhaustive(space, full)
    front = pareto_front(brute.table)
    frontier = {brute.allocations[pid] for pid in front["plan_id"]}
    assert frontier and frontier <= set(searched.seen)
    found = pareto_front(result.table)
    assert found["hours_total"].tolist() == pytest.approx(front["hours_total"].tolist())
    assert toy.calls < 0.2 * len(enumerate_space(space))
