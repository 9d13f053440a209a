"""`plan` through the real simulator on a small space: the search finds the exhaustive optimum,
the CLI prints a recommendation and a frontier, and a space where nothing fits is a clean error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr_sim.cli import main
from rlvr_sim.sweep.pareto import pareto_front
from rlvr_sim.sweep.planner import Evaluator, exhaustive, search
from rlvr_sim.sweep.pools import LocalPool
from rlvr_sim.sweep.space import COLOCATED, Allocation, SearchSpace, enumerate_space

SMALL = (Path(__file__).parent / "data" / "small-qwen1.5b.yaml").read_text()


@pytest.fixture()
def scenario_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_search_matches_exhaustive_on_a_small_space(scenario_file):
    space = SearchSpace(gpus=("h100-sxm", "h200"), sizes=(8, 4), sampler_tps=(1, 2), trainer_tps=(1, 2),
                        staleness=(0, 1), mini_batches=(2,), gpus_per_node=8)
    base = Allocation("h100-sxm", 8, COLOCATED, 8, 1, 8, 1, 0, 2)
    pool = LocalPool(2)
    try:
        searched = Evaluator(scenario_file, pool, 2, 0)
        found = search(space, base, searched)
        full = Evaluator(scenario_file, pool, 2, 0)
        brute = exhaustive(space, full)
    finally:
        pool.close()
    assert found.optima == brute.optima
    assert [searched.hours(a) for a in found.optima] == [full.hours(a) for a in brute.optima]
    assert len(found.optima) == 4
    assert found.counts()["evaluated"] < len(enumerate_space(space))
    # the frontier of the search contains the exhaustive frontier's fastest point
    assert pareto_front(found.table)["hours_total"].min() == pareto_front(brute.table)["hours_total"].min()


def test_plan_cli_json(scenario_file, capsys):
    code = main(["plan", str(scenario_file), "--total-gpus", "8", "--sampler-tp", "1,2", "--trainer-tp", "1,2",
                 "--steps", "2", "--workers", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rec = report["recommended"]
    assert rec["allocation"]["total_gpus"] <= 8
    front = report["frontier"]
    assert front and rec["hours_total"] == pytest.approx(min(p["hours_total"] for p in front))
    hours = [p["hours_total"] for p in front]
    dollars = [p["cost.usd_total"] for p in front]
    assert hours == sorted(hours) and dollars == sorted(dollars, reverse=True)
    assert rec["bottleneck"] in ("sampler", "trainer", "verifier", "weight_sync", "switch", None) or rec["bottleneck"]
    assert "Bottleneck" in rec["reason"] and rec["marginals"]


def test_plan_cli_budget_and_impossible_requests(scenario_file, capsys):
    args = ["plan", str(scenario_file), "--total-gpus", "4", "--sampler-tp", "1", "--trainer-tp", "1",
            "--steps", "2", "--workers", "1"]
    assert main(args + ["--budget-usd", "0.001"]) == 2
    assert "no plan meets --budget-usd" in capsys.readouterr().err
    assert main(args + ["--gpu", "not-a-gpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown gpu" in err and "not-a-gpu" in err


def test_plan_cli_nothing_fits(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text(SMALL.replace("qwen2.5-1.5b", "llama-3.1-405b"))
    code = main(["plan", str(big), "--total-gpus", "2", "--steps", "1", "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no valid plan" in err and "fit" in err


def test_plan_set_overrides_every_plan_and_out_table(scenario_file, tmp_path, capsys):
    out = tmp_path / "plans.csv"
    code = main(["plan", str(scenario_file), "--total-gpus", "4", "--sampler-tp", "1", "--trainer-tp", "1",
                 "--staleness", "0", "--set", "workload.prompts_per_step=8", "--steps", "2", "--workers", "1",
                 "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Recommended:" in text and "Pareto frontier" in text
    import pandas as pd

    table = pd.read_csv(out)
    assert (table["workload.prompts_per_step"] == 8).all()
    assert (table["total_gpus"] <= 4).all() and {"label", "hours_total", "scenario_yaml"} <= set(table.columns)


def test_pruned_local_search_moves_like_the_unpruned_one(scenario_file):
    """The default search skips a neighbour whose bound is above the plan it would replace: the
    same optima, hours and frontier as without pruning, from fewer simulations (real simulator)."""
    from rlvr_sim.sweep.bound import PlanBounds

    space = SearchSpace(gpus=("h100-sxm",), sizes=(8, 4), sampler_tps=(1, 2), trainer_tps=(1, 2),
                        staleness=(0, 1, 2), mini_batches=(2,), gpus_per_node=8)
    base = Allocation("h100-sxm", 8, COLOCATED, 8, 1, 8, 1, 0, 2)
    bounds = PlanBounds(scenario_file, max_steps=2, seed=0, steady=False)
    pool = LocalPool(2)
    try:
        plain = Evaluator(scenario_file, pool, 2, 0)
        unpruned = search(space, base, plain)
        cut = Evaluator(scenario_file, pool, 2, 0, prune_bound=bounds.hours)
        pruned = search(space, base, cut)
    finally:
        pool.close()
    assert pruned.optima == unpruned.optima
    assert [cut.hours(a) for a in pruned.optima] == [plain.hours(a) for a in unpruned.optima]
    assert pruned.rounds == unpruned.rounds
    front = pareto_front(pruned.table)[["label", "hours_total"]].reset_index(drop=True)
    assert front.equals(pareto_front(unpruned.table)[["label", "hours_total"]].reset_index(drop=True))
    # pruning skipped something; every plan it skipped that the unpruned search simulated is at
    # or above its bound (up to the float noise of span quadrature vs the bound's sums: a
    # colocated plan's generation bound came within 6e-7 of its simulated time, above it)
    assert pruned.counts()["bounded"] > 0
    assert set(cut.seen) < set(plain.seen)
    for a in set(plain.seen) - set(cut.seen):
        assert bounds.hours(a) <= plain.hours(a) * (1 + 1e-6)
