"""Steady-state detection: hand-computed MSER cuts, the steady test, runs that stop once steady,
the `simulate` report, and a step log whose memory does not grow with the number of steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rlvr_sim.cli import main
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim.config import Constant, SimConfig
from rlvr_sim.sim.fake_cost import FakeCostModel
from rlvr_sim.sim.recorder import StepLog
from rlvr_sim.sim.run import simulate, simulate_config
from rlvr_sim.sim.steady import Rule, detect, warmup_cut

ROOT = Path(__file__).resolve().parents[1]
ASYNC = ROOT / "scenarios" / "nemo-rl-llama3.1-8b-1step-offpolicy.yaml"


def test_mser_cut_by_hand():
    # [10, 4, 4, 4]: d=0 -> sse 27 / 16 = 1.69; d=1 -> 0 / 9 = 0; d=2 = n//2 -> 0 / 4 = 0 (not lower)
    assert warmup_cut([10, 4, 4, 4], 0) == 1
    # at least min_warmup, even when the data would not cut
    assert warmup_cut([4, 4, 4, 4], 1) == 1
    # at most max_warmup (sync runs: 0)
    assert warmup_cut([10, 4, 4, 4], 0, max_warmup=0) == 0
    # shorter than the minimum warm-up: nothing can be cut
    assert warmup_cut([10], 1) == 0


def test_steady_needs_enough_flat_steps():
    # overlapping steps (async, staleness > 0: max_warmup None) need 6 steady steps
    state = detect([20.0] + [10.0] * 6, min_warmup=1)
    assert (state.warmup_steps, state.steady_steps, state.reached) == (1, 6, True)
    assert state.mean_s == 10.0 and state.rel_stderr == 0.0
    four = detect([20.0] + [10.0] * 4, min_warmup=1)
    assert not four.reached and "at least 6 steady steps are needed (7 in all)" in four.reason
    # steps that start from an empty pipeline (sync, staleness 0) need 4
    sync = detect([10.0] * 4, min_warmup=0, max_warmup=0)
    assert (sync.steady_steps, sync.reached) == (4, True)
    short = detect([10.0] * 3, min_warmup=0, max_warmup=0)
    assert not short.reached and "at least 4 steady steps" in short.reason
    # a pipeline still filling: the second half is 20 % slower than the first
    drifting = detect([10.0, 10.0, 10.0, 12.0, 12.0, 12.0], min_warmup=0, max_warmup=0)
    assert not drifting.reached and "drifting" in drifting.reason
    one = detect([5.0], min_warmup=1)
    assert not one.reached and "1 step(s) simulated" in one.reason


def _async_config(**kw) -> SimConfig:
    base = dict(prompts_per_step=1, samples_per_prompt=1, steps=40, prompt_tokens=Constant(8),
                response_tokens=Constant(2), sampler_gpus=1, trainer_gpus=1,
                verifier_latency_s=Constant(0.0), mode="async", max_staleness=1)
    base.update(kw)
    return SimConfig(**base)


def test_run_stops_once_steady():
    # hand-computed in test_sim_exact: step times 13.5, 11, 11, ... (eta 1): steady after 1 + 6 steps
    cfg = _async_config()
    full = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0))
    stopped = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0), until_steady=Rule())
    assert full.summary.steps_simulated == 40
    assert stopped.summary.steps_simulated == 7
    assert stopped.summary.steady_state and stopped.summary.warmup_steps == 1
    assert stopped.summary.warmup_step_time_s == [13.5]
    assert stopped.summary.step_time_s.mean == pytest.approx(11.0)
    assert full.summary.step_time_s.mean == pytest.approx(11.0)


def test_step_log_keeps_a_bounded_window():
    log = StepLog(keep=3)
    for j in range(10):
        r = log[j]
        r.start_s, r.end_s = float(j), float(j + 1)
        log.finish(j)
    assert len(log.kept) == 3 and log.tail.steps == 7 and log.finished == 10
    assert log.totals(1).time_s == pytest.approx(9.0)
    with pytest.raises(IndexError):
        log[5]


def test_long_run_without_trace_keeps_no_rows():
    cfg = _async_config(steps=200)
    res = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0), trace=False)
    assert res.trace.empty and res.summary.steps_simulated == 200
    assert res.summary.step_time_s.mean == pytest.approx(11.0)


def test_async_scenario_until_steady_is_slower_than_three_steps():
    sc = load_scenario(ASYNC)
    three = simulate(sc, steps=3, trace=False).summary
    steady = simulate(sc, until_steady=Rule(), trace=False).summary
    assert not three.steady_state
    assert steady.steady_state and steady.steps_simulated >= 5
    # the 3-step run counts a step the pipeline is still filling as steady
    assert steady.warmup_steps >= three.warmup_steps


def test_simulate_one_async_step_warns(capsys):
    assert main(["simulate", str(ASYNC), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: not at steady state" in out and "needs at least 7" in out
    assert main(["simulate", str(ASYNC), "--steps", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: not at steady state" in captured.err


def test_batch_means_error_leaves_no_step_out():
    """Batches of 2 over 9 steps: aligned to the last step they leave out the first (the 20 s
    step right after the cut), whose pairs are all 200 s (error 0, so the mean of 180 s looked
    known exactly); aligned to the first they hold it. Hand-computed: single steps, mean 180,
    squared deviations 25,600 + 4 x 100 + 4 x 900 = 29,600 over 8 -> 3,700, error
    sqrt(3,700 / 9); pairs from the first: 105, 200, 200, 200, error 23.75; the larger of the
    two alignments (23.75) for pairs, then the smaller over batch sizes."""
    from rlvr_sim.sim.steady import batch_means_stderr

    values = [20.0] + [190.0, 210.0] * 4
    assert batch_means_stderr(values) == pytest.approx(math.sqrt(3700 / 9))
    state = detect(values, min_warmup=0, rule=Rule(rel_tol=0.02), max_warmup=0)
    assert not state.reached and "mean known to" in state.reason


# step times of the README's 64-GPU pick (qwen2.5-32b, 64 H100s, S24(tp4) T40(tp2pp2) async2 mb16),
# simulated for 40 steps (rounded to 1 s): long steps and short ones in no fixed order
README_PICK_STEPS = [5178, 1891, 2287, 1871, 1905, 1891, 1876, 2344, 1941, 2160, 2013, 1895, 2047, 2091,
                     1989, 1906, 2183, 2062, 2084, 2047, 2163, 1892, 1882, 1866, 2052, 2099, 2086, 1881,
                     1894, 1869, 2180, 2113, 2029, 2096, 2092, 1903, 1868, 2300, 1945, 1884]


def test_a_streak_of_short_steps_after_the_cut_is_not_steady():
    """The planner's rule, fed these steps one by one (eta 2), used to stop at step 7 on four
    short steps after MSER cut the long one before them (mean 1,886 s, 6 % below the 40-step
    mean); it now needs 6 steady steps in overlapping runs and stops within 2 % of it."""
    from rlvr_sim.sim.steady import PLANNER_RULE

    times = [float(t) for t in README_PICK_STEPS]
    long_run = detect(times, 2, Rule(max_steps=100))
    assert long_run.reached
    first = next(n for n in range(3, len(times) + 1) if detect(times[:n], 2, PLANNER_RULE).reached)
    state = detect(times[:first], 2, PLANNER_RULE)
    assert first > 7
    assert state.mean_s == pytest.approx(long_run.mean_s, rel=0.02)


def test_a_trainer_using_up_batches_made_ahead_is_not_steady():
    """Steps of 100 s while batches are ready every 300 s: the trainer is using up a buffer, so
    the run is not steady and the long-run pace is 300 s (hours extrapolate it). Batches ready
    every 100 s: steady at 100 s."""
    from rlvr_sim.sim.steady import hours_estimate

    rule = Rule(rel_tol=0.02, min_steady=4, max_steps=32)
    times = [100.0] * 8
    slow = [300.0 * j for j in range(8)]
    state = detect(times, 0, rule, max_warmup=0, ready_s=slow)
    assert not state.reached and state.draining and "made ahead" in state.reason
    assert state.production_interval_s == pytest.approx(300.0) and state.long_run_mean_s == pytest.approx(300.0)
    assert hours_estimate(times, state, 100) == pytest.approx(100 * 300 / 3600)
    paced = detect(times, 0, rule, max_warmup=0, ready_s=[100.0 * j for j in range(8)])
    assert paced.reached and not paced.draining and paced.long_run_mean_s == pytest.approx(100.0)
    # too few steps to judge a pace: no verdict on it
    assert not detect(times[:3], 0, rule, max_warmup=0, ready_s=slow[:3]).draining


def test_verifier_bound_async_plan_runs_until_the_buffer_is_used_up():
    """Code RL, verifier-bound (16 workers, ~180 s of checks per batch), eta = 8: the first step
    fills 9 batches, then the trainer (59 s a step) uses them up. The run must go on until the
    steps settle to the verifiers' pace, so its hours are above the verifier work bound (the
    planner's cost-model bound, which it was 2.4x below when this was judged steady at 59 s)."""
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim import simulate
    from rlvr_sim.sim.steady import PLANNER_RULE
    from rlvr_sim.sweep.bound import PlanBounds
    from rlvr_sim.sweep.space import DISAGGREGATED, Allocation

    path = Path(__file__).resolve().parent.parent / "scenarios" / "code-rl-verifier-bound.yaml"
    a = Allocation("h100-sxm", 16, DISAGGREGATED, 12, 1, 4, 4, 8, 4)
    s = simulate(load_scenario(path, overrides=a.plan().overrides()), trace=False, until_steady=PLANNER_RULE).summary
    bound = PlanBounds(path, max_steps=PLANNER_RULE.max_steps).hours(a)
    assert 0 < bound <= s.hours_total
    assert s.step_time_s.mean > 150            # the verifiers' pace, not the trainer's 59 s
