"""Branch and bound (`search` with a bound) equals the exhaustive sweep: on a small space with the
real simulator and the real bound, and on a 128-GPU toy space where the bound is the toy's own
formula scaled down."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep.bound import PlanBounds
from rlvr_sim.sweep.pareto import pareto_front
from rlvr_sim.sweep.planner import Evaluator, exhaustive, search
from rlvr_sim.sweep.pools import InlinePool, LocalPool
from rlvr_sim.sweep.space import COLOCATED, Allocation, SearchSpace, enumerate_space

SMALL = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"


def _same(found, brute, searched, full):
    assert found.optima == brute.optima
    assert [searched.hours(a) for a in found.optima] == [full.hours(a) for a in brute.optima]
    front, brute_front = pareto_front(found.table), pareto_front(brute.table)
    # the same frontier points (plans tied on both hours and dollars may stand in for each other)
    assert front["hours_total"].tolist() == brute_front["hours_total"].tolist()
    assert front["cost.usd_total"].tolist() == brute_front["cost.usd_total"].tolist()


@pytest.mark.parametrize("steps, rule", [(2, None), (None, PLANNER_RULE)])
def test_branch_and_bound_equals_exhaustive_with_the_real_simulator(steps, rule):
    space = SearchSpace(gpus=("h100-sxm", "h200"), sizes=(8, 4), sampler_tps=(1, 2), trainer_tps=(1, 2),
                        staleness=(0, 2), mini_batches=(2,), gpus_per_node=8)
    base = Allocation("h100-sxm", 8, COLOCATED, 8, 1, 8, 1, 0, 2)
    pool = LocalPool(2)
    try:
        bounds = PlanBounds(SMALL, max_steps=steps or PLANNER_RULE.max_steps, seed=0, steady=steps is None)
        searched = Evaluator(SMALL, pool, steps, 0, steady=rule, bound=bounds.hours, quick_bound=bounds.quick_hours)
        found = search(space, base, searched)
        full = Evaluator(SMALL, pool, steps, 0, steady=rule)
        brute = exhaustive(space, full)
    finally:
        pool.close()
    _same(found, brute, searched, full)
    counts = found.counts()
    assert counts["evaluated"] + counts["bounded"] + counts["rejected"] == counts["space"] == len(enumerate_space(space))
    assert counts["evaluated"] < counts["space"]
    # every simulated plan's bound is below its simulated hours (the premise of the pruning)
    assert all(bounds.hours(a) <= searched.hours(a) for a in searched.seen if searched.metrics(a) is not None)


def toy_bound(gen: float, train: float):
    """The toy's own hours times a factor in [0.5, 1] that varies per plan (a loose, valid bound)."""
    import hashlib

    from rlvr_sim.sweep.jobs import make_jobs
    from test_plan_search import toy_outcome

    def bound(a: Allocation) -> float:
        outcome = toy_outcome(make_jobs({"name": "toy"}, [a.plan()], 4, 0)[0], gen, train, 1)
        factor = 0.5 + int(hashlib.sha1(a.label().encode()).hexdigest()[:4], 16) / 0xFFFF / 2
        return outcome.summary.hours_total * factor

    return bound


@pytest.mark.parametrize("gen, train", [(400000.0, 150000.0),
                                        pytest.param(100000.0, 300000.0, marks=pytest.mark.slow),
                                        pytest.param(800000.0, 40000.0, marks=pytest.mark.slow)])
def test_branch_and_bound_finds_the_exhaustive_frontier_on_128_gpus(gen, train):
    from test_plan_search import Toy, base_of

    space = SearchSpace(gpus=("h100-sxm", "h200"), sizes=(128, 64, 32, 16), sampler_tps=(1, 2, 4, 8),
                        trainer_tps=(1, 2, 4, 8), staleness=(0, 1, 2, 4, 8), mini_batches=(2, 4), gpus_per_node=8)
    toy = Toy(gen, train)
    searched = Evaluator({"name": "toy"}, InlinePool(toy), 4, 0, bound=toy_bound(gen, train))
    found = search(space, base_of(space), searched)
    full = Evaluator({"name": "toy"}, InlinePool(Toy(gen, train)), 4, 0)
    brute = exhaustive(space, full)
    _same(found, brute, searched, full)
    frontier = {brute.allocations[pid] for pid in pareto_front(brute.table)["plan_id"]}
    assert frontier <= set(searched.seen)
    assert toy.calls < 0.2 * len(enumerate_space(space))


def test_plan_cli_exact_matches_exhaustive(tmp_path, capsys):
    import json

    from rlvr_sim.cli import main

    args = ["plan", str(SMALL), "--total-gpus", "4", "--sampler-tp", "1,2", "--trainer-tp", "1", "--staleness", "0,1",
            "--steps", "2", "--workers", "1", "--json", "--draws", "2"]
    assert main(args + ["--exact"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert main(args + ["--exhaustive"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert exact["method"] == "branch and bound" and full["method"] == "exhaustive"
    c = exact["counts"]
    assert c["evaluated"] + c["bounded"] + c["rejected"] == c["space"] == full["counts"]["evaluated"]
    assert exact["plan_steps"] < full["plan_steps"]
    assert exact["recommended"]["label"] == full["recommended"]["label"]
    assert exact["recommended"]["hours_total"] == full["recommended"]["hours_total"]
    assert [p["hours_total"] for p in exact["frontier"]] == [p["hours_total"] for p in full["frontier"]]
    assert exact["recommended"]["robustness"]["share_best"] == full["recommended"]["robustness"]["share_best"]
