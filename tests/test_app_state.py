"""The app's door to the library (app_pages/state.py): downloads round-trip through the library's
own readers, the cache answers a repeated plan, and a missing module becomes a sentence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import state  # noqa: E402
from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.trace import read_trace  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


@pytest.fixture(scope="module")
def run() -> state.PlanRun:
    return state.simulate(state.source_from_file(SCENARIO), ("sampler.tp=2",), steps=2)


def test_resolved_yaml_loads_back_to_the_same_scenario(run: state.PlanRun, tmp_path: Path) -> None:
    path = tmp_path / "resolved.yaml"
    path.write_text(run.scenario_yaml)
    assert load_scenario(path) == load_scenario(SCENARIO, overrides=["sampler.tp=2"])


def test_results_json_is_the_summary(run: state.PlanRun) -> None:
    data = json.loads(state.summary_json(run.summary))
    assert data == run.summary.model_dump(mode="json") and data["steps_simulated"] == 2


def test_trace_parquet_reads_back_with_the_shared_reader(run: state.PlanRun, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(state.trace_parquet_bytes(run.trace))
    back = read_trace(path)
    assert len(back) == len(run.trace) and back["end_s"].sum() == pytest.approx(run.trace["end_s"].sum())


def test_perfetto_json_has_one_event_per_trace_row(run: state.PlanRun) -> None:
    pytest.importorskip("rlvr_sim.sim.perfetto")
    data = json.loads(state.perfetto_json_bytes(run.trace))
    complete = [e for e in data["traceEvents"] if e.get("ph") == "X"]
    assert len(complete) == len(run.trace)


def test_repeated_plan_is_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlvr_sim.sim.run as run_mod

    calls: list[int | None] = []
    real = run_mod.simulate

    def counting(scenario, steps=None, seed=None, **kw):
        calls.append(steps)
        return real(scenario, steps=steps, seed=seed, **kw)

    monkeypatch.setattr(run_mod, "simulate", counting)
    state._simulate.clear()
    source = state.source_from_file(SCENARIO)
    first = state.simulate(source, ("verifier.workers=32",), steps=1)
    second = state.simulate(source, ("verifier.workers=32",), steps=1)
    assert calls == [1] and second.summary == first.summary
    state.simulate(source, ("verifier.workers=16",), steps=1)
    assert calls == [1, 1]


def test_uploaded_text_keys_the_cache_not_the_name() -> None:
    a = state.source_from_upload("x.yaml", SCENARIO.read_bytes())
    b = state.source_from_upload("x.yaml", SCENARIO.read_bytes().replace(b"prompts_per_step: 64", b"prompts_per_step: 32"))
    assert state.load(a).workload.prompts_per_step == 64 and state.load(b).workload.prompts_per_step == 32


def test_missing_module_is_a_sentence_naming_it() -> None:
    with pytest.raises(state.MissingPiece, match="`rlvr_sim.no_such_piece` is missing from this checkout. run it"):
        state.require("rlvr_sim.no_such_piece", "A piece", "run it")
