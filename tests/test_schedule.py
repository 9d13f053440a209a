"""Workload schedules and whole-run integration: hand-computed sums, bisection, CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter

from rlvr_sim.cli import main as cli_main
from rlvr_sim.distributions import LogNormal
from rlvr_sim.step_schedules import LengthSchedule
from rlvr_sim.errors import ScenarioError
from rlvr_sim.scenario import load_scenario
from rlvr_sim.schedule import (StepMeasure, integrate_s, representative_step, segment_bounds,
                               simulated_measure, whole_run)
from rlvr_sim.sim.fake_cost import FakeCostModel

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "vocab_size": 64, "tie_word_embeddings": True, "max_position_embeddings": 128}


def tiny(**workload) -> dict:
    w = {"prompts_per_step": 1, "samples_per_prompt": 2, "steps": 10, "seed": 0,
         "prompt_tokens": {"dist": "fixed", "value": 4},
         "response_tokens": {"dist": "fixed", "value": 3}, **workload}
    return {"name": "tiny-sched", "model": TINY_MODEL,
            "hardware": {"gpu": "cpu-2core", "gpus_per_node": 1}, "workload": w,
            "sampler": {"gpus": 1, "weight_dtype": "fp32", "kv_dtype": "fp32"},
            "verifier": {"workers": 1, "latency_s": {"dist": "fixed", "value": 0}},
            "trainer": {"gpus": 1, "dtype": "fp32"},
            "orchestration": {"placement": "disaggregated", "mode": "sync"}}


PIECEWISE = {"kind": "piecewise", "points": [{"step": 0, "tokens": {"dist": "fixed", "value": 3}},
                                             {"step": 4, "tokens": {"dist": "fixed", "value": 7}}]}


@dataclass(frozen=True)
class PlannedFake(FakeCostModel):
    """The hand-computable cost model plus the one CostModel attribute config_from_scenario reads."""

    sampler_plan: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(kv_blocks=None))


# --- pure pieces ------------------------------------------------------------------------------
def test_segment_bounds_and_integral_by_hand():
    assert segment_bounds(10, [4], 1) == [(0, 4), (4, 10)]
    assert segment_bounds(10, [4], 2) == [(0, 4), (4, 5), (5, 10)]
    assert segment_bounds(10, [0, 10, 12], 1) == [(0, 10)]          # outside breakpoints ignored
    assert representative_step(0, 4) == 1 and representative_step(4, 10) == 6
    # 100 steps at 10 s + 150 at 20 s + 50 at 40 s = 1000 + 3000 + 2000
    assert integrate_s([(0, 100), (100, 250), (250, 300)], [10.0, 20.0, 40.0]) == 6000.0


def test_whole_run_with_a_given_measure_is_the_hand_sum():
    sc = load_scenario(tiny(steps=300, response_schedule={
        "kind": "piecewise", "points": [{"step": s, "tokens": {"dist": "fixed", "value": v}}
                                        for s, v in ((0, 1), (100, 2), (250, 4))]}))
    per_token = lambda step: StepMeasure(  # noqa: E731  step time = 10 s per mean response token
        step=step, step_time_s=10.0 * sc.workload.response_tokens_at(step).mean_value(),
        phase_time_s={"generate": 1.0}, bottleneck="sampler", response_tokens_mean=0.0)
    est = whole_run(sc, points=3, measure=per_token)
    assert est.hours_total * 3600 == pytest.approx(100 * 10 + 150 * 20 + 50 * 40)
    assert sum(s.steps for s in est.segments) == 300
    assert est.usd_total == pytest.approx(est.gpu_hours_total * est.usd_per_gpu_hour)


def test_whole_run_simulated_piecewise_exact():
    # FakeCostModel, 1 prompt x 2 samples of fixed length L, verifier instant, train 10 s:
    # step = prefill 0.5 + L decode iterations + train 10 = 10.5 + L.
    # L = 3 on steps 0-3, 7 on steps 4-9: 4 x 13.5 + 6 x 17.5 = 54 + 105 = 159 s.
    sc = load_scenario(tiny(response_schedule=PIECEWISE))
    measure = simulated_measure(sc, steps_per_point=2, cost_model=lambda _: PlannedFake())
    for points in (1, 2, 5):
        est = whole_run(sc, points=points, measure=measure)
        assert est.hours_total * 3600 == pytest.approx(159.0)
    trend = est.trend()
    assert [p.step_time_s for p in trend][:2] == pytest.approx([13.5, 13.5])
    assert trend[-1].step_time_s == pytest.approx(17.5)
    assert trend[-1].phase_share == pytest.approx({"generate": 7.5 / 17.5, "verify": 0.0,
                                                   "switch": 0.0, "train": 10 / 17.5,
                                                   "weight_sync": 0.0})
    # without the schedule: one distribution (response_tokens: L = 3) for every step
    plain = sc.model_copy(update={"workload": sc.workload.model_copy(
        update={"response_schedule": None})})
    flat = whole_run(plain, points=1, measure=simulated_measure(plain, cost_model=lambda _: PlannedFake()))
    assert flat.hours_total * 3600 == pytest.approx(10 * 13.5)


def test_bottleneck_shift_is_bisected_to_the_step():
    sc = load_scenario(tiny(steps=100))
    calls = []

    def measure(step: int) -> StepMeasure:
        calls.append(step)
        return StepMeasure(step=step, step_time_s=1.0, phase_time_s={"generate": 1.0},
                           bottleneck="trainer" if step >= 37 else "sampler",
                           response_tokens_mean=1.0)

    est = whole_run(sc, points=4, refine=10, measure=measure)
    assert [(s.before, s.after, s.step, s.resolution_steps) for s in est.shifts] == [
        ("sampler", "trainer", 37, 1)]
    assert len(calls) == len(set(calls))               # each step simulated once
    coarse = whole_run(sc, points=4, refine=0, measure=measure)
    assert coarse.shifts[0].step == 37 and coarse.shifts[0].resolution_steps == 25  # 12 -> 37


# --- schedules --------------------------------------------------------------------------------
def test_growth_schedule_by_hand():
    ta = TypeAdapter(LengthSchedule)
    g = ta.validate_python({"kind": "growth", "start_mean": 1000, "end_mean": 9000,
                            "start_step": 100, "end_step": 500, "sigma": 0.5,
                            "caps": [{"step": 0, "cap": 4096}, {"step": 300, "cap": 16384}]})
    assert g.at(0) == LogNormal(mean=1000, sigma=0.5, cap=4096)     # before the start: start
    assert g.at(300).mean == pytest.approx(5000) and g.at(300).cap == 16384
    assert g.at(299).cap == 4096 and g.at(900).mean == pytest.approx(9000)
    assert g.breakpoints() == [100, 300, 500] and g.max_value() == 16384
    e = ta.validate_python({"kind": "growth", "shape": "exponential", "start_mean": 1000,
                            "end_mean": 16000, "end_step": 400})
    assert e.at(100).mean == pytest.approx(2000) and e.at(200).mean == pytest.approx(4000)
    s = ta.validate_python({"kind": "growth", "shape": "logistic", "start_mean": 1000,
                            "end_mean": 3000, "end_step": 100})
    assert s.at(0).mean == pytest.approx(1000) and s.at(50).mean == pytest.approx(2000)
    assert s.at(100).mean == pytest.approx(3000) and s.at(10).mean < 1000 + 2000 * 0.1


def test_table_schedule_from_a_logged_csv(tmp_path):
    (tmp_path / "lengths.csv").write_text("step,response_length\n0,500\n10,800\n10,900\n20,2000\n")
    path = tmp_path / "s.yaml"
    import yaml
    path.write_text(yaml.safe_dump(tiny(steps=30, response_schedule={
        "kind": "table", "path": "lengths.csv", "sigma": 0.5, "cap": 4000})))
    w = load_scenario(path).workload
    assert w.response_tokens_at(5) == LogNormal(mean=500, sigma=0.5, cap=4000)   # a logged mean
    assert w.response_tokens_at(15).mean_value() == pytest.approx(850)           # a logged sample
    assert w.response_tokens_at(29).mean == 2000
    assert w.schedule_breakpoints() == [10, 20] and w.has_schedule


def test_pass_rate_schedule_and_frozen_workload():
    w = load_scenario(tiny(steps=100, response_schedule=PIECEWISE, pass_rate={
        "points": [{"step": 0, "rate": 0.2}, {"step": 50, "rate": 0.6}], "concentration": 3},
        dynamic_sampling={"oversample_factor": 1.5, "max_rounds": 4})).workload
    assert w.pass_rate_at(25) == pytest.approx(0.4) and w.pass_rate_at(99) == pytest.approx(0.6)
    frozen = w.at_step(25)
    assert frozen.response_schedule is None and frozen.response_tokens.value == 7
    assert frozen.pass_rate_at(0) == pytest.approx(0.4) and not frozen.has_schedule
    spec = w.reward_spec(25)
    assert (spec.pass_rate, spec.concentration, spec.filter_groups, spec.oversample_factor,
            spec.max_rounds) == (pytest.approx(0.4), 3, True, 1.5, 4)


@pytest.mark.parametrize("workload, field", [
    ({"dynamic_sampling": {"max_rounds": 3}}, "pass_rate"),
    ({"response_schedule": {"kind": "piecewise", "points": [
        {"step": 5, "tokens": {"dist": "fixed", "value": 3}},
        {"step": 2, "tokens": {"dist": "fixed", "value": 4}}]}}, "increasing"),
    ({"response_schedule": {"kind": "growth", "start_mean": 10, "end_mean": 20, "end_step": 0}},
     "end_step"),
    ({"pass_rate": {"points": [{"step": 0, "rate": 1.5}]}}, "rate"),
    ({"dynamic_sampling": {"oversample_factor": 0.5}}, "oversample_factor")])
def test_schedule_errors_name_the_field(workload, field):
    with pytest.raises(ScenarioError, match=field):
        load_scenario(tiny(**workload))


def test_simulate_cli_prints_the_whole_run(tmp_path, capsys):
    import yaml
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny(steps=40, response_schedule={
        "kind": "growth", "start_mean": 3, "end_mean": 12, "end_step": 40, "sigma": 0.3,
        "cap": 20})))
    assert cli_main(["simulate", str(path), "--steps", "2", "--json", "--points", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    est = out["whole_run"]
    assert [(s["start_step"], s["end_step"]) for s in est["segments"]] == [(0, 13), (13, 27), (27, 40)]
    assert est["hours_total"] == pytest.approx(sum(s["hours"] for s in est["segments"]))
    assert "step_time_s" in out                       # the stationary summary is still there
    assert cli_main(["simulate", str(path), "--steps", "1", "--no-whole-run"]) == 0
    assert "whole run" not in capsys.readouterr().out
    assert cli_main(["simulate", str(path), "--points", "0"]) == 2


def test_r1_zero_scenario_grows_and_costs_more_than_its_start():
    sc = load_scenario(ROOT / "scenarios" / "r1-zero-length-growth.yaml")
    w = sc.workload
    assert w.response_tokens_at(0).mean == 1000 and w.response_tokens_at(9000).mean == 10000
    assert w.response_tokens_at(9000).cap == 65536 and 8200 in w.schedule_breakpoints()
    est = whole_run(sc, points=4, steps_per_point=1, refine=0)
    times = [s.measure.step_time_s for s in est.segments]
    assert times[-1] > 2 * times[0]            # late steps cost several times early ones


def test_resplit_advice_by_hand():
    from rlvr_sim.schedule import resplit_advice

    sc = load_scenario(tiny(steps=100))

    def plan(times):
        def measure(step):
            t = times(step)
            return StepMeasure(step=step, step_time_s=t, phase_time_s={"generate": t},
                               bottleneck="sampler", response_tokens_mean=1.0)
        return whole_run(sc, points=2, refine=0, measure=measure)

    a = plan(lambda s: 10.0 if s < 50 else 30.0)        # fast early, slow late
    b = plan(lambda s: 20.0)
    adv = resplit_advice({"A": a, "B": b}, "A")
    assert adv.candidates == {"A": pytest.approx(2000 / 3600), "B": pytest.approx(2000 / 3600)}
    assert [(p.start_step, p.end_step, p.label) for p in adv.per_segment] == [(0, 50, "A"), (50, 100, "B")]
    assert adv.resplit_hours * 3600 == pytest.approx(50 * 10 + 50 * 20)
    assert adv.saving_hours * 3600 == pytest.approx(500)
    assert [(s.step, s.before, s.after) for s in adv.switches] == [(50, "A", "B")]
    same = resplit_advice({"A": a}, "A")
    assert same.switches == [] and same.saving_hours == 0


def test_plan_cli_reevaluates_the_recommendation_over_the_schedule(tmp_path, capsys):
    import yaml
    data = yaml.safe_load((ROOT / "tests" / "data" / "small-qwen1.5b.yaml").read_text())
    data["workload"]["steps"] = 50
    data["workload"]["response_schedule"] = {"kind": "piecewise", "points": [
        {"step": 0, "tokens": {"dist": "fixed", "value": 64}},
        {"step": 20, "tokens": {"dist": "fixed", "value": 256}}]}
    path = tmp_path / "grow.yaml"
    path.write_text(yaml.safe_dump(data))
    code = cli_main(["plan", str(path), "--total-gpus", "4", "--sizes", "4", "--sampler-tp", "1",
                     "--trainer-tp", "1", "--staleness", "0", "--steps", "1", "--workers", "1",
                     "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    adv = report["whole_run"]
    assert adv["recommended"] in adv["candidates"]
    est = adv["recommended_estimate"]
    assert [(s["start_step"], s["end_step"]) for s in est["segments"]][:3] == [(0, 6), (6, 12), (12, 19)]
    assert 20 in [s["start_step"] for s in est["segments"]]          # the schedule's jump
    late = [s["measure"]["step_time_s"] for s in est["segments"] if s["start_step"] >= 20]
    early = [s["measure"]["step_time_s"] for s in est["segments"] if s["end_step"] <= 20]
    assert min(late) > max(early)                                   # 4x longer responses
    assert adv["resplit_hours"] <= est["hours_total"] + 1e-9


def test_resolved_yaml_round_trips_every_schedule_kind(tmp_path):
    import yaml
    (tmp_path / "lengths.csv").write_text("step,len\n0,500\n10,800\n")
    for sched in (PIECEWISE, {"kind": "growth", "start_mean": 3, "end_mean": 9, "end_step": 8,
                              "caps": [{"step": 0, "cap": 16}, {"step": 5, "cap": 32}]},
                  {"kind": "table", "path": "lengths.csv", "cap": 64}):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(tiny(response_schedule=sched, pass_rate={
            "points": [{"step": 0, "rate": 0.3}, {"step": 9, "rate": 0.6}]},
            dynamic_sampling={"max_rounds": 2})))
        sc = load_scenario(path)
        again = load_scenario(yaml.safe_load(sc.resolved_yaml()))
        assert again.workload == sc.workload
