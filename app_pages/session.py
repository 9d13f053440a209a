"""The working scenario: one per browser session, shared by Plan, Compare and Sweep.

Streamlit forgets a widget's value when its page is left, so the values live here, in a plain
`Working` object under `st.session_state["working"]`, and each widget is re-seeded from it when
its page is shown again (`seed`). "Reset to file" (`reset_to_file`) drops every edit.

What it holds: the base (a file under scenarios/, or YAML text from an upload or the guided
question), the knobs moved on Plan (`dotted.field -> value`), free override lines, the shared
run settings (run length, $ per GPU-hour, hardware profile, steps to simulate) and the extra
plans of Compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st
import yaml

from app_pages import state
from rlvr_sim import api

KEY = "working"
UNSET = "unset"   # sim_steps not chosen yet: the planner's default
# Widget-key prefixes of everything the working scenario seeds (cleared by a reset).
PREFIXES = ("knob:", "run:", "compare:", "extra:")


@dataclass
class Working:
    file: str | None = None
    upload: api.ScenarioSource | None = None
    knobs: dict[str, Any] = field(default_factory=dict)
    extra: tuple[str, ...] = ()                 # free `dotted.key=value` lines (any field, new ones too)
    run_steps: int | None = None
    usd_per_gpu_hour: float | None = None
    profile: str | None = None                  # None: the file's own; "datasheet"; a path under profiles/
    sim_steps: int | None | str = UNSET
    compare: dict[str, str] = field(default_factory=dict)   # plan letter -> its override lines
    compare_count: int = 2

    def source(self) -> api.ScenarioSource | None:
        if self.upload is not None:
            return self.upload
        files = {p.name: p for p in state.scenario_files()}
        if self.file in files:
            return state.source_from_file(files[self.file])
        return None

    def knob_overrides(self) -> tuple[str, ...]:
        return tuple(f"{k}={value_text(v)}" for k, v in self.knobs.items()) + tuple(self.extra)

    def settings(self) -> api.RunSettings:
        profile = self.profile
        if profile not in (None, api.DATASHEET):
            profile = str((state.PROFILE_DIR / profile).resolve())
        return api.RunSettings(self.run_steps, self.usd_per_gpu_hour, profile)

    def steps(self) -> int | None:
        return state.quick_steps() if self.sim_steps == UNSET else self.sim_steps  # type: ignore[return-value]

    def request(self, extra: tuple[str, ...] = ()) -> api.SimulateRequest:
        source = self.source()
        assert source is not None
        return api.SimulateRequest(source, self.knob_overrides() + tuple(extra), self.settings(), self.steps())

    def describe(self) -> list[str]:
        """Every change from the base file, as `field=value` text (relative profile path)."""
        shown = list(self.knob_overrides())
        if self.run_steps is not None:
            shown.append(f"workload.steps={self.run_steps}")
        if self.usd_per_gpu_hour is not None:
            shown.append(f"hardware.usd_per_gpu_hour={self.usd_per_gpu_hour:g}")
        if self.profile is not None:
            shown.append(f"profile={self.profile}")
        return shown


def value_text(value: Any) -> str:
    """Override text of a value (YAML flow style: `true`, `null`, `{dist: fixed, value: 8}`)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def working() -> Working:
    """This session's working scenario (created on first use: the `?scenario=` file, else the first)."""
    if KEY not in st.session_state:
        names = [p.name for p in state.scenario_files()]
        wanted = st.query_params.get("scenario")
        st.session_state[KEY] = Working(file=wanted if wanted in names else (names[0] if names else None))
    return st.session_state[KEY]


def clear_widgets(prefixes: tuple[str, ...] = PREFIXES) -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefixes)]:
        del st.session_state[key]


def reset_to_file() -> None:
    """Drop every edit: knobs, extra lines, run settings and Compare's plans."""
    w = working()
    st.session_state[KEY] = Working(file=w.file, upload=w.upload)
    clear_widgets()


def use_base(file: str | None = None, upload: api.ScenarioSource | None = None,
             knobs: dict[str, Any] | None = None, extra: tuple[str, ...] = (), **settings: Any) -> None:
    """Start a new working scenario on another base (edits of the old base do not carry over)."""
    st.session_state[KEY] = Working(file=file, upload=upload, knobs=dict(knobs or {}), extra=extra, **settings)
    clear_widgets()


def enter(page: str) -> None:
    """Note which page this script run draws: the first run of a page after another one
    re-seeds every widget from the working scenario (`seed`)."""
    st.session_state["_fresh_page"] = st.session_state.get("_page") != page
    st.session_state["_page"] = page


def seed(key: str, value: Any) -> None:
    """Give a widget its working value when its page is (re)shown (Streamlit does not carry a
    widget's value from one page to another, even under the same key)."""
    if key not in st.session_state or st.session_state.get("_fresh_page", False):
        st.session_state[key] = value


def profile_path(name: str) -> Path:
    return state.PROFILE_DIR / name
