"""The on-disk result cache (rlvr_sim.sweep.result_cache): a plan asked again is read, not
simulated; anything the result depends on (scenario, profile draw, steps, seed, rule, code)
gives another key; races are answered by full runs and by runs stopped above a threshold at least
theirs; a damaged entry is recomputed; off means nothing is read or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep import result_cache
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.jobs import STATUS_OK, evaluate_plan, make_jobs
from rlvr_sim.sweep.robust import Perturbation

SMALL = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"
PLAN = Plan((("sampler.gpus", "2"), ("trainer.gpus", "2"), ("orchestration.placement", "disaggregated"),
             ("orchestration.mode", "async"),
             ("orchestration.max_staleness", "1")))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(result_cache.ENV, str(folder))
    return folder


def _job(steps=2, seed=0, steady=None, perturb=None):
    return make_jobs(SMALL, [PLAN], steps, seed, steady=steady, perturb=perturb)[0]


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json")) if folder.exists() else []


def test_a_plan_asked_again_is_read_not_simulated(cache):
    first = evaluate_plan(_job())
    assert first.status == STATUS_OK and not first.cached and len(_entries(cache)) == 1
    again = evaluate_plan(_job())
    assert again.cached and again.status == STATUS_OK
    assert again.summary is not None and first.summary is not None
    assert again.summary.model_dump_json() == first.summary.model_dump_json()
    assert again.row()["cached"] is True and first.row()["cached"] is False


def test_every_input_the_result_depends_on_changes_the_key(cache, monkeypatch):
    evaluate_plan(_job())
    slow = Perturbation(0, (("decode_bw_eff", 0.5),), 1.0)
    others = [_job(steps=3), _job(seed=1), _job(steps=None, steady=PLANNER_RULE), _job(perturb=slow)]
    for job in others:
        assert not evaluate_plan(job).cached, job
    assert len(_entries(cache)) == 1 + len(others)
    # the same inputs under other code: a new key
    monkeypatch.setattr(result_cache, "code_version", lambda: "other code")
    assert not evaluate_plan(_job()).cached


def test_the_code_hash_covers_the_simulator_not_the_planner(tmp_path):
    """Editing a file a Summary comes from (the engine, the cost model, the catalog) gives a new
    hash; editing the planner's own files (which plans it asks) does not."""
    import shutil

    root = Path(result_cache.__file__).resolve().parents[1]
    copy = tmp_path / "rlvr_sim"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = result_cache.tree_hash(copy)
    assert before == result_cache.code_version()
    for planner_file in ("sweep/branch_bound.py", "commands/plan.py", "cli.py"):
        (copy / planner_file).write_text((copy / planner_file).read_text() + "\n# planner edit\n")
        assert result_cache.tree_hash(copy) == before, planner_file
    for simulator_file in ("sim/sampler.py", "cost/sampler.py", "scenario.py"):
        edited = copy / simulator_file
        original = edited.read_text()
        edited.write_text(original + "\n# engine edit\n")
        assert result_cache.tree_hash(copy) != before, simulator_file
        edited.write_text(original)
    assert result_cache.tree_hash(copy) == before


def test_races_are_answered_by_runs_that_decide_them(cache):
    """A run stopped above H (the level it is certainly above, over the threshold it was given)
    answers races at thresholds <= H (certainly above those too), not above H; a higher stop
    replaces it; a run simulated to its end answers every race."""
    steady = _job(steps=None, steady=PLANNER_RULE)

    def run(threshold=None):
        outcome = evaluate_plan(steady.raced(threshold) if threshold is not None else steady)
        assert outcome.status == STATUS_OK and outcome.summary is not None
        return outcome.cached, outcome.summary.stopped_above_hours

    cached, level = run(1e-3)                      # simulated, stopped once it is certain,
    assert not cached and level > 1e-3             # at the level it is certainly above
    assert run(5e-4) == (True, level)
    assert run(level) == (True, level)             # any threshold up to that level
    cached, higher = run(level * 1.005)            # above the stored stop: simulated again,
    assert not cached and higher > level * 1.005   # stopped later and higher
    assert run(level * 1.003) == (True, higher)    # the higher stop replaced the lower one
    assert run() == (False, None)                  # not raced: a stopped run does not answer it
    assert run() == (True, None)
    assert run(1e9) == (True, None)                # the full run answers any race
    assert run(1e-4) == (True, None)


def test_a_damaged_entry_is_recomputed_and_replaced(cache):
    first = evaluate_plan(_job())
    (entry,) = _entries(cache)
    entry.write_text('{"status": "ok", "summ')
    again = evaluate_plan(_job())
    assert not again.cached and again.summary is not None and first.summary is not None
    assert again.summary.model_dump_json() == first.summary.model_dump_json()
    assert json.loads(entry.read_text())["status"] == "ok"
    assert evaluate_plan(_job()).cached


def test_off_reads_and_writes_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(result_cache.ENV, str(folder))
    evaluate_plan(_job())
    with result_cache.turned_off():
        assert not evaluate_plan(_job()).cached
        assert result_cache.cache_dir() is None
    assert result_cache.cache_dir() == folder
    monkeypatch.setenv(result_cache.ENV, "off")
    assert not evaluate_plan(_job(seed=7)).cached and not evaluate_plan(_job(seed=7)).cached
    assert len(_entries(folder)) == 1


def test_plan_twice_reads_every_plan_back_and_answers_the_same(cache, capsys):
    from rlvr_sim.cli import main

    args = ["plan", str(SMALL), "--total-gpus", "4", "--sampler-tp", "1,2", "--trainer-tp", "1",
            "--staleness", "0,1", "--workers", "1", "--json", "--draws", "2"]
    assert main(args) == 0
    cold = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    warm = json.loads(capsys.readouterr().out)
    assert cold["counts"]["cached"] == 0 and cold["plan_steps"] > 0
    assert warm["counts"]["cached"] == warm["counts"]["ok"] > 0 and warm["plan_steps"] == 0
    for key in ("recommended", "frontier"):
        assert warm[key] == cold[key]
    assert main(args + ["--no-cache"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert off["counts"]["cached"] == 0 and off["plan_steps"] == cold["plan_steps"]
    assert off["recommended"] == cold["recommended"]
