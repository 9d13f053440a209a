"""The app's door to `rlvr_sim`: cached calls of the typed API (`rlvr_sim.api`) and file lists.

Every page goes through these functions, so the numbers on screen are the library's numbers
(the app holds no prices, specs or defaults). `st.cache_data` keys each call on its text
arguments (scenario text, override strings, settings, steps): a plan seen before is answered
from the cache. Plain imports: a module missing from the checkout is an ImportError at start.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from rlvr_sim import api
from rlvr_sim.scenario import Scenario
from rlvr_sim.sim.metrics import Summary
from rlvr_sim.sim.perfetto import write_perfetto
from rlvr_sim.trace import write_trace

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = REPO_ROOT / "scenarios"
# Hardware profiles and validation reports (`rlvr-sim calibrate --out profiles/X.yaml`); the
# environment variable RLVR_SIM_PROFILES points the app at another folder.
PROFILE_DIR = Path(os.environ.get("RLVR_SIM_PROFILES") or REPO_ROOT / "profiles")
CACHE_ENTRIES = 128

ScenarioSource = api.ScenarioSource


def scenario_files() -> list[Path]:
    """Scenario YAML files shipped in scenarios/, sorted by name."""
    return sorted(p for p in SCENARIO_DIR.glob("*.y*ml") if p.is_file())


def source_from_file(path: Path) -> ScenarioSource:
    return ScenarioSource(label=path.name, text=path.read_text(), path=str(path))


def source_from_upload(name: str, data: bytes | str) -> ScenarioSource:
    text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
    return ScenarioSource(label=name, text=text)


def model_names() -> list[str]:
    return api.model_names()


def gpu_names() -> list[str]:
    return list(api.gpu_names())


def quick_steps() -> int | None:
    """Default steps per interactive simulation: the `plan` command's steps per plan."""
    return api.default_plan_steps()


@st.cache_data(show_spinner=False, max_entries=8)
def _profiles(folder: str, stamp: tuple[tuple[str, float], ...]) -> list[api.ProfileInfo]:
    return api.list_profiles(Path(folder))


def profiles() -> list[api.ProfileInfo]:
    """`api.list_profiles` of PROFILE_DIR, re-read when a file there is added or changed."""
    files = sorted(PROFILE_DIR.rglob("*.y*ml")) if PROFILE_DIR.is_dir() else []
    return _profiles(str(PROFILE_DIR), tuple((str(p), p.stat().st_mtime) for p in files))


@st.cache_data(show_spinner=False, max_entries=CACHE_ENTRIES)
def _load(label: str, text: str, path: str | None, overrides: tuple[str, ...], check_fit: bool) -> Scenario:
    return api.load(ScenarioSource(label, text, path), overrides, check_fit=check_fit)


def load(source: ScenarioSource, overrides: tuple[str, ...] = (), check_fit: bool = True) -> Scenario:
    """The validated Scenario of `source` with `overrides`; raises ScenarioError (cached)."""
    return _load(source.label, source.text, source.path, tuple(overrides), check_fit)


def resolved_dict(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario as a plain nested mapping (widget defaults, diffs)."""
    return yaml.safe_load(scenario.resolved_yaml()) or {}


@st.cache_data(show_spinner=False, max_entries=CACHE_ENTRIES)
def _base_dict(label: str, text: str, path: str | None) -> dict[str, Any]:
    return resolved_dict(api.load(ScenarioSource(label, text, path), check_fit=False))


def base_dict(source: ScenarioSource) -> dict[str, Any]:
    """The base scenario's resolved mapping (memory fit not checked; cached)."""
    return _base_dict(source.label, source.text, source.path)


@st.cache_data(show_spinner=False, max_entries=CACHE_ENTRIES)
def _simulate(label: str, text: str, path: str | None, overrides: tuple[str, ...], settings: tuple[Any, ...],
              steps: int | None, seed: int | None) -> api.SimulateResult:
    request = api.SimulateRequest(ScenarioSource(label, text, path), overrides, api.RunSettings(*settings), steps, seed)
    return api.simulate(request)


def simulate(request: api.SimulateRequest) -> api.SimulateResult:
    """`api.simulate`, cached on the request's text fields."""
    s, src = request.settings, request.source
    return _simulate(src.label, src.text, src.path, tuple(request.overrides),
                     (s.run_steps, s.usd_per_gpu_hour, s.profile), request.sim_steps, request.seed)


def summary_json(summary: Summary) -> str:
    return json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=False)


def trace_parquet_bytes(trace: pd.DataFrame) -> bytes:
    """The trace as Parquet, written by the shared `rlvr_sim.trace.write_trace`."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_trace(trace, Path(tmp) / "trace.parquet").read_bytes()


def perfetto_json_bytes(trace: pd.DataFrame) -> bytes:
    """The Chrome/Perfetto timeline JSON, written by `rlvr_sim.sim.perfetto.write_perfetto`."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_perfetto(trace, Path(tmp) / "timeline.json").read_bytes()


def relative(text: str) -> str:
    """A message with the server's absolute paths made relative: to the repository (or the
    profiles/ and scenarios/ folders' parent), and temporary copies (the planner's) cut to
    their file name."""
    out = text
    for root in (REPO_ROOT, PROFILE_DIR.parent, SCENARIO_DIR.parent):
        out = out.replace(str(root) + os.sep, "")
    tmp = tempfile.gettempdir().rstrip(os.sep) + os.sep
    return re.sub(re.escape(tmp) + r"(?:[^\s'\"/]+/)+", "", out)
