"""The app's only door to `rlvr_sim`: cached library calls, and plain words when a piece is missing.

Every page goes through these functions, so the numbers on screen are the library's numbers
(the app holds no prices, specs or defaults). `st.cache_data` keys each call on its text
arguments (scenario file text, override strings, steps, seed): changing a widget back to an
earlier value is answered from the cache. Library modules are imported lazily; a module that is
not in this checkout yet raises `MissingPiece`, which pages show as a sentence, not a traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import streamlit as st
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = REPO_ROOT / "scenarios"
# Hardware profiles and validation reports (`rlvr-sim calibrate --out profiles/X.yaml`); the
# environment variable RLVR_SIM_PROFILES points the Calibration page at another folder.
PROFILE_DIR = Path(os.environ.get("RLVR_SIM_PROFILES") or REPO_ROOT / "profiles")
CACHE_ENTRIES = 128


class MissingPiece(Exception):
    """A library module the page needs is not in this checkout (yet)."""


def require(module: str, what: str, fix: str = "") -> ModuleType:
    """Import `module`, or raise MissingPiece saying what is unavailable and how to get it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name) or exc.name == module:
            hint = f" {fix}" if fix else ""
            raise MissingPiece(f"{what} is not available: `{module}` is missing from this checkout.{hint}") from None
        raise


@dataclass(frozen=True)
class ScenarioSource:
    """A base scenario: a file under scenarios/ (path set) or an uploaded YAML (path None)."""

    label: str
    text: str
    path: str | None = None

    def base(self) -> str | dict[str, Any]:
        """What `load_scenario` takes: the file path (relative paths resolve next to it) or the mapping."""
        if self.path is not None:
            return self.path
        return parse_yaml_mapping(self.text, self.label)


def parse_yaml_mapping(text: str, label: str) -> dict[str, Any]:
    """YAML text -> mapping; ScenarioError naming the upload when it is not a YAML mapping."""
    errors = require("rlvr_sim.errors", "the error types")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.ScenarioError(f"{label}: not valid YAML ({exc}); fix the file and upload it again") from None
    if not isinstance(data, dict):
        raise errors.ScenarioError(f"{label}: a scenario is a YAML mapping (model:, hardware:, workload: ...), "
                                   f"got {type(data).__name__}")
    return data


def scenario_files() -> list[Path]:
    """Scenario YAML files shipped in scenarios/, sorted by name."""
    return sorted(p for p in SCENARIO_DIR.glob("*.y*ml") if p.is_file())


def source_from_file(path: Path) -> ScenarioSource:
    return ScenarioSource(label=path.name, text=path.read_text(), path=str(path))


def source_from_upload(name: str, data: bytes) -> ScenarioSource:
    return ScenarioSource(label=name, text=data.decode("utf-8", errors="replace"))


def model_names() -> list[str]:
    """Model names of the catalog (rlvr_sim/catalog/models.yaml)."""
    return list(require("rlvr_sim.model_spec", "the model catalog").catalog_names())


def gpu_names() -> list[str]:
    """GPU names of the catalog (rlvr_sim/catalog/gpus.yaml)."""
    return list(require("rlvr_sim.hardware", "the GPU catalog").gpu_names())


def quick_steps() -> int | None:
    """Steps per interactive simulation: `rlvr-sim plan`'s `--steps` default (the planner's own
    trade-off of speed vs extrapolation), or None (every step) when the planner is absent."""
    try:
        command = require("rlvr_sim.commands.plan", "The planner")
    except MissingPiece:
        return None
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    value = parser.get_default("steps")
    return int(value) if value else None


@st.cache_data(show_spinner=False, max_entries=CACHE_ENTRIES)
def _load(label: str, text: str, path: str | None, overrides: tuple[str, ...]) -> Any:
    scenario_mod = require("rlvr_sim.scenario", "Scenario loading (rlvr_sim/scenario.py)")
    source = ScenarioSource(label, text, path)
    return scenario_mod.load_scenario(source.base(), overrides=list(overrides))


def load(source: ScenarioSource, overrides: tuple[str, ...] = ()) -> Any:
    """The validated Scenario of `source` with `overrides`; raises ScenarioError (cached)."""
    return _load(source.label, source.text, source.path, tuple(overrides))


def resolved_yaml(scenario: Any) -> str:
    """The resolved scenario as YAML (what is saved next to every result)."""
    if hasattr(scenario, "resolved_yaml"):
        return scenario.resolved_yaml()
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def resolved_dict(scenario: Any) -> dict[str, Any]:
    """The resolved scenario as a plain nested mapping (widget defaults, diffs)."""
    return yaml.safe_load(resolved_yaml(scenario)) or {}


@dataclass
class PlanRun:
    """One simulated plan: the resolved scenario, its summary and its trace."""

    scenario_yaml: str
    summary: Any            # rlvr_sim Summary (pydantic)
    trace: pd.DataFrame     # rows in rlvr_sim.trace.TRACE_COLUMNS


@st.cache_data(show_spinner=False, max_entries=CACHE_ENTRIES)
def _simulate(label: str, text: str, path: str | None, overrides: tuple[str, ...],
              steps: int | None, seed: int | None) -> PlanRun:
    run_mod = require("rlvr_sim.sim.run", "The simulator (rlvr_sim/sim/run.py)")
    scenario = _load(label, text, path, overrides)
    result = run_mod.simulate(scenario, steps=steps, seed=seed)
    return PlanRun(resolved_yaml(scenario), result.summary, result.trace)


def simulate(source: ScenarioSource, overrides: tuple[str, ...] = (), steps: int | None = None,
             seed: int | None = None) -> PlanRun:
    """Load and simulate one plan (cached on the scenario text, overrides, steps and seed)."""
    return _simulate(source.label, source.text, source.path, tuple(overrides), steps, seed)


def flat_summary(summary: Any) -> dict[str, Any]:
    """`Summary.flat()`: one row of dotted metric names -> values."""
    return dict(summary.flat())


def summary_json(summary: Any) -> str:
    return json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=False)


def trace_parquet_bytes(trace: pd.DataFrame) -> bytes:
    """The trace as Parquet, written by the shared `rlvr_sim.trace.write_trace`."""
    trace_mod = require("rlvr_sim.trace", "The trace schema")
    with tempfile.TemporaryDirectory() as tmp:
        path = trace_mod.write_trace(trace, Path(tmp) / "trace.parquet")
        return path.read_bytes()


def perfetto_json_bytes(trace: pd.DataFrame) -> bytes:
    """The Chrome/Perfetto timeline JSON, written by `rlvr_sim.sim.perfetto.write_perfetto`."""
    perfetto = require("rlvr_sim.sim.perfetto", "The Perfetto export (rlvr_sim/sim/perfetto.py)")
    with tempfile.TemporaryDirectory() as tmp:
        return perfetto.write_perfetto(trace, Path(tmp) / "timeline.json").read_bytes()
