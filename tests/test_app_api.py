"""The typed API the app calls (rlvr_sim/api.py): it composes the library and adds no numbers.

- `api.plan` gives the `rlvr-sim plan` command's own recommendation for the same input;
- a question becomes the scenario it describes (hand-checked mapping);
- run settings become ordinary overrides; profiles are classified by their source;
- field help is the schema's `Field(description=...)`;
- the app reaches the library only through plain imports (no importlib, no argparse).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest

from rlvr_sim import api
from rlvr_sim.commands import plan as plan_command
from rlvr_sim.distributions import LogNormal
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "minimal.yaml"


def test_api_plan_is_the_plan_commands_recommendation() -> None:
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    args = parser.parse_args([str(SCENARIO), "--total-gpus", "4", "--steps", "1", "--workers", "1", "--json"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        plan_command.run(args)
    cli = json.loads(out.getvalue())
    source = api.ScenarioSource(SCENARIO.name, SCENARIO.read_text(), str(SCENARIO))
    result = api.plan(api.PlanRequest(source, total_gpus=4, sim_steps=1))
    rec = result.recommendation
    assert rec.label == cli["recommended"]["label"]
    assert rec.hours_total == pytest.approx(cli["recommended"]["hours_total"])
    assert rec.usd_total == pytest.approx(cli["recommended"]["usd_total"])
    assert result.evaluated == cli["counts"]["evaluated"] and result.steps_per_plan == 1


def test_question_is_the_scenario_it_describes() -> None:
    q = api.Question(gpus=32, gpu="h100-sxm", model="qwen3-8b", prompts_per_step=64, samples_per_prompt=16,
                     typical_response_tokens=4096, max_response_tokens=16384, steps=300, usd_per_gpu_hour=2.0)
    mapping = api.question_scenario(q)
    scenario = load_scenario(mapping)
    assert scenario.model.name == "qwen3-8b" and scenario.hardware.gpu == "h100-sxm"
    assert scenario.total_gpus == 32 and scenario.workload.steps == 300
    assert scenario.workload.sequences_per_step == 64 * 16
    response = scenario.workload.response_tokens
    assert isinstance(response, LogNormal) and response.mean == 4096 and response.cap == 16384
    assert response.sigma == api.default_response_sigma()
    assert scenario.hardware_profile.datasheet.usd_per_gpu_hour == 2.0
    request = api.question_plan_request(q)
    assert request.total_gpus == 32 and request.source.label == "question.yaml"
    with pytest.raises(api.UserError, match="below the typical length"):
        api.question_scenario(api.Question(8, "h100-sxm", "qwen3-8b", 4, 4, 4096, 1024, 10))


def test_run_settings_are_plain_overrides() -> None:
    assert api.RunSettings().overrides() == ()
    assert api.RunSettings(300, 2.25, "datasheet").overrides() == (
        "workload.steps=300", "hardware.usd_per_gpu_hour=2.25", "profile=datasheet")
    source = api.ScenarioSource(SCENARIO.name, SCENARIO.read_text(), str(SCENARIO))
    every = api.simulate(api.SimulateRequest(source, settings=api.RunSettings(run_steps=7), sim_steps=7))
    assert every.summary.steps_simulated == every.summary.workload_steps == 7 and not every.extrapolated
    # no step count: until steady by the planner's rule (a sync run is steady after its minimum)
    steady = api.simulate(api.SimulateRequest(source, settings=api.RunSettings(run_steps=7), sim_steps=None))
    assert steady.summary.steady_state and steady.summary.workload_steps == 7
    assert steady.summary.steps_simulated <= 7


def test_profiles_are_classified_by_their_source(tmp_path: Path) -> None:
    base = HardwareProfile.from_catalog("h100-sxm")
    base.save(tmp_path / "h100-sxm.yaml")
    base.save(tmp_path / "h100-sxm.public.yaml")
    base.model_copy(update={"source": "calibrated 2026-11-30 box"}).save(tmp_path / "box.yaml")
    (tmp_path / "broken.yaml").write_text("gpu: x\n")
    kinds = {p.path.name: p.kind for p in api.list_profiles(tmp_path)}
    assert kinds == {"h100-sxm.yaml": "datasheet", "h100-sxm.public.yaml": "public", "box.yaml": "calibrated"}


def test_field_help_is_the_schemas_description() -> None:
    assert api.field_help("orchestration.max_staleness") == "async only; 0 behaves as sync"
    assert api.field_help("hardware.usd_per_gpu_hour") == "override the catalog price"
    assert api.field_help("no.such.field") == ""


def test_the_app_uses_plain_imports_and_typed_requests() -> None:
    files = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]
    for path in files:
        text = path.read_text()
        for banned in ("importlib", "argparse", "MissingPiece", "require("):
            assert banned not in text, f"{path.name} uses {banned}"


def test_a_scheduled_workload_gets_its_whole_run_trend() -> None:
    """A workload whose lengths grow over the run: the result carries the whole-run estimate the
    Plan page plots (rlvr_sim.schedule.whole_run), and hours integrate over the schedule."""
    source = api.ScenarioSource(SCENARIO.name, SCENARIO.read_text(), str(SCENARIO))
    grow = ("workload.response_schedule={kind: piecewise, points: [{step: 0, tokens: {dist: fixed, value: 200}}, "
            "{step: 5, tokens: {dist: fixed, value: 400}}]}")
    result = api.simulate(api.SimulateRequest(source, overrides=(grow,), settings=api.RunSettings(run_steps=10),
                                              sim_steps=2))
    est = result.run_estimate
    assert est is not None and est.steps == 10
    trend = est.trend()
    assert [p.step for p in trend] == sorted(p.step for p in trend) and len(trend) >= 2
    early = [p.step_time_s for p in trend if p.step < 5]
    late = [p.step_time_s for p in trend if p.step >= 5]
    assert early and late and min(late) > max(early)          # longer responses, longer steps
    plain = api.simulate(api.SimulateRequest(source, settings=api.RunSettings(run_steps=10), sim_steps=2))
    assert plain.run_estimate is None
