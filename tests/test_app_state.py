"""The app's door to the library (app_pages/state.py over rlvr_sim.api): downloads round-trip
through the library's own readers, the cache answers a repeated plan, run settings become
overrides, and error texts carry relative paths."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import state, widgets  # noqa: E402
from rlvr_sim import api  # noqa: E402
from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.trace import read_trace  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


def request(overrides: tuple[str, ...], steps: int, settings: api.RunSettings = api.RunSettings()) -> api.SimulateRequest:
    return api.SimulateRequest(state.source_from_file(SCENARIO), overrides, settings, steps)


@pytest.fixture(scope="module")
def run() -> api.SimulateResult:
    return state.simulate(request(("sampler.tp=2",), 2))


def test_resolved_yaml_loads_back_to_the_same_scenario(run: api.SimulateResult, tmp_path: Path) -> None:
    path = tmp_path / "resolved.yaml"
    path.write_text(run.scenario_yaml)
    assert load_scenario(path) == load_scenario(SCENARIO, overrides=["sampler.tp=2"])


def test_results_json_is_the_summary(run: api.SimulateResult) -> None:
    data = json.loads(state.summary_json(run.summary))
    assert data == run.summary.model_dump(mode="json") and data["steps_simulated"] == 2


def test_trace_parquet_reads_back_with_the_shared_reader(run: api.SimulateResult, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(state.trace_parquet_bytes(run.trace))
    back = read_trace(path)
    assert len(back) == len(run.trace) and back["end_s"].sum() == pytest.approx(run.trace["end_s"].sum())


def test_perfetto_json_has_one_event_per_trace_row(run: api.SimulateResult) -> None:
    pytest.importorskip("rlvr_sim.sim.perfetto")
    data = json.loads(state.perfetto_json_bytes(run.trace))
    complete = [e for e in data["traceEvents"] if e.get("ph") == "X"]
    assert len(complete) == len(run.trace)


def test_repeated_plan_is_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int | None] = []
    real = api.run_simulation

    def counting(scenario, steps=None, seed=None, **kw):
        calls.append(steps)
        return real(scenario, steps=steps, seed=seed, **kw)

    monkeypatch.setattr(api, "run_simulation", counting)
    state._simulate.clear()
    source = state.source_from_file(SCENARIO)
    first = state.simulate(api.SimulateRequest(source, ("verifier.workers=32",), sim_steps=1))
    second = state.simulate(api.SimulateRequest(source, ("verifier.workers=32",), sim_steps=1))
    assert calls == [1] and second.summary == first.summary
    state.simulate(api.SimulateRequest(source, ("verifier.workers=16",), sim_steps=1))
    state.simulate(api.SimulateRequest(source, ("verifier.workers=32",), api.RunSettings(run_steps=7), sim_steps=1))
    assert calls == [1, 1, 1]


def test_uploaded_text_keys_the_cache_not_the_name() -> None:
    a = state.source_from_upload("x.yaml", SCENARIO.read_bytes())
    b = state.source_from_upload("x.yaml", SCENARIO.read_bytes().replace(b"prompts_per_step: 64", b"prompts_per_step: 32"))
    assert state.load(a).workload.prompts_per_step == 64 and state.load(b).workload.prompts_per_step == 32


def test_run_settings_set_the_run_length_price_and_profile_that_results_report() -> None:
    profile = next(p for p in state.profiles()).path if state.profiles() else None
    settings = api.RunSettings(run_steps=300, usd_per_gpu_hour=3.0)
    result = state.simulate(request((), 2, settings))
    s = result.summary
    assert s.workload_steps == 300 and s.steps_simulated == 2 and result.extrapolated
    assert s.cost.usd_per_gpu_hour == 3.0 == result.usd_per_gpu_hour
    hand = (sum(s.warmup_step_time_s) + s.step_time_s.mean * (300 - s.warmup_steps)) / 3600
    assert s.hours_total == pytest.approx(hand) and s.cost.usd_total == pytest.approx(hand * s.gpus * 3.0)
    assert api.RunSettings(profile="datasheet").overrides() == ("profile=datasheet",)
    if profile is not None:
        assert api.RunSettings(profile=str(profile)).overrides() == (f"profile={profile}",)


def test_error_text_has_relative_paths_and_a_short_first_line() -> None:
    long = f"{state.REPO_ROOT}/scenarios/x.yaml is invalid:\n  - sampler.tp: 3 does not divide 8; fix it\n  - more"
    first, details = widgets.split_message(long)
    assert first == "scenarios/x.yaml is invalid: sampler.tp: 3 does not divide 8; fix it"
    assert str(state.REPO_ROOT) not in details and "  - more" in details
    assert widgets.split_message("short") == ("short", "")


def test_yaml_syntax_error_keeps_its_caret() -> None:
    bad = state.source_from_upload("bad.yaml", b"model: qwen3-8b\nworkload: {prompts_per_step: 4\n")
    with pytest.raises(api.UserError) as err:
        state.load(bad)
    first, details = widgets.split_message(str(err.value))
    assert first.startswith("bad.yaml is not valid YAML") and "^" in details


def test_download_names_follow_the_scenario_and_its_changes() -> None:
    assert widgets.download_name("minimal.yaml", []) == "minimal"
    name = widgets.download_name("minimal.yaml", ["sampler.tp=2", "workload.steps=300"])
    assert name.startswith("minimal+sampler.tp=2_workload.steps=300-") and name != widgets.download_name("minimal.yaml", ["sampler.tp=4"])
