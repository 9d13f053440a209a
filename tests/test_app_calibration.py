"""Calibration page (AppTest): a profile from profiles/ and its validation report, MAPE and the
error table computed by calibration.report, and plain notices when either file is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import state  # noqa: E402
from calibration.report import Comparison, ValidationReport  # noqa: E402
from rlvr_sim.hardware import HardwareProfile  # noqa: E402


@pytest.fixture()
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty profiles/ folder the page reads instead of the repository's."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    monkeypatch.setattr(state, "PROFILE_DIR", folder)
    return folder


def write_profile(folder: Path, name: str = "test-device", gpu: str = "h100-sxm") -> HardwareProfile:
    profile = HardwareProfile.from_catalog(gpu)
    profile = profile.model_copy(update={
        "source": "calibrated 2026-11-22 test-device",
        "efficiency": profile.efficiency.model_copy(update={"decode_bw_eff": 0.5, "train_mfu": 0.25})})
    profile.save(folder / f"{name}.yaml")
    return profile


def write_report(folder: Path, name: str = "test-device") -> Path:
    # step_time errors +10% and -10% -> MAPE 10.0 %; train errors -10% and +30% -> MAPE 20.0 %
    rows = [Comparison("cfg-a", "step_time", 2.0, 2.2), Comparison("cfg-b", "step_time", 4.0, 3.6),
            Comparison("cfg-a", "train", 1.0, 0.9), Comparison("cfg-b", "train", 1.0, 1.3)]
    path = folder / f"{name}.validation.json"
    configs = [{"name": "cfg-a", "description": "human name of a"}]
    path.write_text(json.dumps(ValidationReport("profiles/test-device.yaml", rows, configs).to_dict()))
    return path


def calibration_app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/calibration.py").run()
    assert not at.exception
    return at


def test_without_profile_or_report_the_page_says_which_command_to_run(profiles: Path) -> None:
    at = calibration_app()
    warnings = [w.value for w in at.warning]
    assert "No hardware profile found in profiles/ — run `rlvr-sim calibrate`" in warnings[0]
    assert "run `rlvr-sim validate --json`" in warnings[1]
    assert not at.get("plotly_chart")


def test_profile_and_report_show_mape_scatter_and_error_table(profiles: Path) -> None:
    write_profile(profiles)
    write_report(profiles)
    at = calibration_app()
    assert not at.error and not at.warning
    assert any("calibrated 2026-11-22 test-device" in m.value for m in at.markdown)
    efficiency = at.dataframe[0].value
    assert efficiency.loc["decode_bw_eff", "this profile"] == "50%" and efficiency.loc["train_mfu", "this profile"] == "25%"
    assert efficiency.loc["decode_bw_eff", "catalog default"] != "50%"
    assert efficiency.loc["decode_bw_eff", "meaning"] == "achieved HBM fraction in decode"   # the schema's description
    assert {m.label: m.value for m in at.metric} == {"MAPE step time": "10.0%", "MAPE train": "20.0%"}
    table = at.dataframe[1].value
    assert table.loc["human name of a (cfg-a)", "train: error"] == "-10.0%"
    assert table.loc["cfg-b (cfg-b)", "train: error"] == "+30.0%"
    assert any("**MAPE** (mean absolute percentage error)" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 1


def test_broken_files_show_an_error_not_a_traceback(profiles: Path) -> None:
    (profiles / "broken.yaml").write_text("gpu: h100-sxm\nsource: x\n")            # no datasheet
    (profiles / "broken.validation.json").write_text(json.dumps({"rows": [{"measured_s": 1.0, "simulated_s": 2.0}]}))
    at = calibration_app()
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert at.selectbox(key="calibration:profile").value == "unreadable: broken.yaml"
    assert "broken.yaml" in errors[0] and "invalid" in errors[0] and str(ROOT) not in errors[0]
    assert "is not a validation report" in errors[1]


def test_each_profile_opens_its_own_report_and_unusable_rows_are_explained(profiles: Path) -> None:
    write_profile(profiles, "a-device")
    write_profile(profiles, "b-device", gpu="h200")
    write_report(profiles, "a-device")
    (profiles / "b-device.validation.json").write_text(json.dumps(
        {"profile": "b-device.yaml", "rows": [{"config": "c", "quantity": "step_time", "measured_s": None,
                                               "simulated_s": 1.0}],
         "configs": [{"name": "c", "skipped": "out of memory"}]}))
    at = calibration_app()
    assert at.selectbox(key="calibration:profile").value == "calibrated: a-device.yaml"
    assert at.selectbox(key="calibration:report:a-device.validation.json").value == "a-device.validation.json"
    assert {m.label for m in at.metric} == {"MAPE step time", "MAPE train"}
    at.selectbox(key="calibration:profile").set_value("calibrated: b-device.yaml").run()
    assert at.selectbox(key="calibration:report:b-device.validation.json").value == "b-device.validation.json"
    assert not at.metric
    assert any("no configuration with both a measured and a simulated time" in w.value for w in at.warning)
    assert [c.value for c in at.caption] == ["skipped c: out of memory"]
    assert not at.exception and not at.error
