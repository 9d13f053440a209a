"""Runner mechanics with a deterministic stand-in for the simulator: pools agree, rows are kept
when interrupted, and a re-run resumes. (The real simulator is exercised in test_sweep_real.py.)"""

from __future__ import annotations

import pandas as pd
import pytest

from rlvr_sim.sweep.grid import grid_plans
from rlvr_sim.sweep.jobs import STATUS_INVALID, STATUS_OK, PlanJob, PlanOutcome, make_jobs
from rlvr_sim.sweep.pools import InlinePool, LocalPool, chunked, open_pool
from rlvr_sim.sweep.runner import run_sweep
from summaries import toy_summary

SCENARIO = {"name": "toy"}


def toy_evaluate(job: PlanJob) -> PlanOutcome:
    """hours = a + b, dollars = 12 / a; a == 3 "does not fit"."""
    cols = job.plan.columns()
    a, b = cols["a"], cols["b"]
    if a == 3:
        return PlanOutcome(job.index, job.plan_id, cols, STATUS_INVALID, "a=3 does not fit")
    return PlanOutcome(job.index, job.plan_id, cols, STATUS_OK, None,
                       toy_summary(float(a + b), 12.0 / a, 1.0, 0.5, 0.5, "sampler"),
                       scenario_yaml=f"a: {a}\nb: {b}\n")


class InterruptAfter:
    """Evaluates like `toy_evaluate` but raises Ctrl-C on the n-th call."""

    def __init__(self, n: int):
        self.n = n
        self.calls = 0

    def __call__(self, job: PlanJob) -> PlanOutcome:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return toy_evaluate(job)


PLANS = grid_plans(["a=1,2,3,4", "b=0,10,20"])


def test_rows_identical_inline_and_process_pool():
    inline = run_sweep(SCENARIO, PLANS, InlinePool(toy_evaluate), progress=False).table
    pool = LocalPool(2, toy_evaluate)
    try:
        parallel = run_sweep(SCENARIO, PLANS, pool, progress=False).table
    finally:
        pool.close()
    pd.testing.assert_frame_equal(inline, parallel)
    assert inline["plan_index"].tolist() == list(range(12))
    assert inline["status"].value_counts().to_dict() == {STATUS_OK: 9, STATUS_INVALID: 3}
    ok = inline[inline["status"] == STATUS_OK]
    assert (ok["hours_total"] == ok["a"] + ok["b"]).all()
    assert inline.loc[inline["a"] == 3, "error"].eq("a=3 does not fit").all()


def test_interrupted_sweep_keeps_rows_and_resumes(tmp_path):
    out = tmp_path / "results.parquet"
    first = run_sweep(SCENARIO, PLANS, InlinePool(InterruptAfter(6)), out=out, progress=False)
    assert first.interrupted
    assert len(first.table) == 5 and out.exists() and (tmp_path / "results.parquet.parts").is_dir()
    assert len(pd.read_parquet(out)) == 5
    counter = InterruptAfter(10**9)
    second = run_sweep(SCENARIO, PLANS, InlinePool(counter), out=out, progress=False)
    assert not second.interrupted and second.resumed == 5 and counter.calls == 7
    assert not (tmp_path / "results.parquet.parts").exists()
    complete = run_sweep(SCENARIO, PLANS, InlinePool(toy_evaluate), progress=False).table
    pd.testing.assert_frame_equal(pd.read_parquet(out), complete, check_dtype=False)


def test_csv_output_and_fresh_restart(tmp_path):
    out = tmp_path / "results.csv"
    run_sweep(SCENARIO, PLANS, InlinePool(InterruptAfter(3)), out=out, progress=False)
    counter = InterruptAfter(10**9)
    result = run_sweep(SCENARIO, PLANS, InlinePool(counter), out=out, fresh=True, progress=False)
    assert result.resumed == 0 and counter.calls == 12 and len(pd.read_csv(out)) == 12


def test_plan_ids_depend_on_scenario_steps_and_seed():
    plans = grid_plans(["a=1"])
    base = make_jobs(SCENARIO, plans, 3, 0)[0].plan_id
    assert make_jobs(SCENARIO, plans, 3, 0)[0].plan_id == base
    assert len({base, make_jobs(SCENARIO, plans, 4, 0)[0].plan_id, make_jobs(SCENARIO, plans, 3, 1)[0].plan_id,
                make_jobs({"name": "other"}, plans, 3, 0)[0].plan_id}) == 4


def test_chunks_cover_every_job_once():
    jobs = make_jobs(SCENARIO, grid_plans(["a=" + ",".join(map(str, range(1, 101)))]), None, None)
    chunks = chunked(jobs, workers=2)
    assert [j.index for c in chunks for j in c] == list(range(100))
    assert max(len(c) for c in chunks) <= 8


def test_open_pool_choices():
    assert isinstance(open_pool(1), InlinePool)
    with pytest.raises(Exception, match="at least 1"):
        open_pool(0)
