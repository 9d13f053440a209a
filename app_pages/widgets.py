"""Widgets shared by the pages: the working-scenario panel, errors, downloads, the page runner.

The knob editor is `app_pages.knobs` (its names are re-exported here for the pages).
"""

from __future__ import annotations

import hashlib
import re
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from app_pages import session, state
from app_pages.knobs import KNOBS, Knob, KnobEdit, get_path, knob_editor
from rlvr_sim import api
from rlvr_sim.errors import UserError

__all__ = ["KNOBS", "Context", "Knob", "KnobEdit", "PROFILE_KINDS", "download_name", "download_row",
           "error_box", "finish_panel", "get_path", "knob_editor", "profile_selector", "run_page",
           "run_settings", "show_field_error", "split_message", "working_panel"]


# --- errors -----------------------------------------------------------------------------------
SHORT_CHARS = 160


def split_message(message: str) -> tuple[str, str]:
    """(first line, details): the message with relative paths; details empty when it is short."""
    text = state.relative(str(message)).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "", ""
    first = lines[0].strip().removeprefix("error: ").removesuffix(":")
    covered = 1
    if len(lines) > 1 and first.endswith("is invalid"):
        first = f"{first}: {lines[1].strip().lstrip('- ')}"
        covered = 2
    if len(first) > SHORT_CHARS:
        first = first[:SHORT_CHARS].rsplit(" ", 1)[0] + " ..."
        covered = 0
    return first, ("" if covered >= len(lines) else text)


def error_box(message: str, prefix: str = "") -> None:
    """An error as one short line, the whole message (YAML caret included, in monospace) folded
    under "details"."""
    first, details = split_message(message)
    st.error(f"{prefix}{first}", icon="⚠️")
    if details:
        with st.expander("details"):
            st.code(details, language=None)


def show_field_error(edit: KnobEdit, message: str) -> str | None:
    """Put `message` (short, details folded) under the knob whose dotted field it names first;
    return that field (or None)."""
    hits = [(message.find(f), -len(f), f) for f in edit.slots if f in message]
    if hits:
        _, _, name = min(hits)
        with edit.slots[name].container():
            error_box(message)
        return name
    if edit.general_slot is not None:
        with edit.general_slot.container():
            error_box(message)
    return None


# --- the working-scenario panel ---------------------------------------------------------------
@dataclass
class Context:
    """What a page works on: the base, the base's resolved mapping and the working object."""

    source: api.ScenarioSource
    base: dict[str, Any]
    work: session.Working


def _base_picker(work: session.Working) -> None:
    files = [p.name for p in state.scenario_files()]
    options = ([work.upload.label + " (uploaded)"] if work.upload is not None else []) + files
    current = options[0] if work.upload is not None else work.file
    session.seed("run:file", current if current in options else (options[0] if options else None))
    picked = st.selectbox("Scenario", options, key="run:file")
    if work.upload is None and picked != work.file or work.upload is not None and picked in files:
        session.use_base(file=picked)
        st.rerun()
    upload = st.file_uploader("or upload a scenario YAML", type=["yaml", "yml"], key="extra:upload")
    if upload is not None and (work.upload is None or work.upload.text != upload.getvalue().decode(errors="replace")):
        session.use_base(upload=state.source_from_upload(upload.name, upload.getvalue()))
        st.session_state["extra:upload-done"] = True
        st.rerun()


def working_panel(page: str) -> Context | None:
    """Sidebar block of every planning page: the base scenario, "Reset to file" and the shared
    run settings. Returns None (after saying why) when there is no loadable base."""
    work = session.working()
    with st.sidebar:
        st.subheader("Working scenario")
        _base_picker(work)
        source = work.source()
        if source is None:
            st.warning(f"No scenario files in {state.SCENARIO_DIR.name}/ — add one or upload a YAML.")
            return None
        # filled after the page ran (`finish_panel`), when this run's edits are in `work`
        st.session_state["_panel"] = (st.empty(), source.label, page)
    try:
        base = state.base_dict(source)
    except UserError as exc:
        error_box(str(exc), prefix=f"{source.label} does not load: ")
        return None
    with st.sidebar:
        run_settings(work, source, base)
    return Context(source, base, work)


def finish_panel() -> None:
    """The working scenario's change count and "Reset to file", drawn once the page has run."""
    panel = st.session_state.pop("_panel", None)
    if panel is None:
        return
    slot, label, page = panel
    changes = session.working().describe()
    with slot.container():
        st.caption(f"{len(changes)} change(s) from {label}; shared by Plan, Compare and Sweep."
                   if changes else f"As in {label}.")
        st.button("Reset to file", key=f"reset:{page}", on_click=session.reset_to_file, disabled=not changes,
                  help="drop every knob, override, run length, price and profile change")


def _effective_price(source: api.ScenarioSource, work: session.Working) -> float | None:
    """$ per GPU-hour the plan would use without a price override (GPU knob and profile applied)."""
    overrides = work.knob_overrides() + api.RunSettings(profile=work.settings().profile).overrides()
    try:
        return float(state.load(source, overrides, check_fit=False).hardware_profile.datasheet.usd_per_gpu_hour)
    except UserError:
        return None


def run_settings(work: session.Working, source: api.ScenarioSource, base: dict[str, Any]) -> None:
    """Run length, price, hardware profile and steps to simulate (shared by every page)."""
    st.subheader("Run")
    file_steps = int(get_path(base, "workload.steps"))
    session.seed("run:steps", work.run_steps or file_steps)
    steps = int(st.number_input("Run length (RL steps)", min_value=1, step=1, key="run:steps",
                                help="workload.steps: hours and $ are for this many steps"))
    work.run_steps = None if steps == file_steps else steps
    price = _effective_price(source, work)
    session.seed("run:price", work.usd_per_gpu_hour or price or 0.0)
    auto = st.session_state.get("_price_auto")   # the price last filled in for the user
    if work.usd_per_gpu_hour is None and price is not None and st.session_state["run:price"] == auto != price:
        st.session_state["run:price"] = price        # GPU or profile changed: the price follows
    st.session_state["_price_auto"] = price
    new_price = float(st.number_input("$ per GPU-hour", min_value=0.0, step=0.1, format="%.2f", key="run:price",
                                      help="hardware.usd_per_gpu_hour; starts at the GPU's catalog (or profile) "
                                           "price"))
    work.usd_per_gpu_hour = None if price is not None and abs(new_price - price) < 5e-3 else new_price
    profile_selector(work, base)
    session.seed("run:sim_steps", work.steps())
    sim = st.number_input("Steps to simulate", value=None, min_value=1, step=1, key="run:sim_steps",
                          placeholder="until steady",
                          help="RL steps the simulator runs; the steady-state mean of the steps after the "
                               "warm-up is extrapolated to the run length. Blank: simulate until the step "
                               "time is steady (as the planner does for every plan).")
    work.sim_steps = None if sim is None else int(sim)


PROFILE_KINDS = {"datasheet": "datasheet", "public": "public measurement", "calibrated": "calibrated"}
PROFILE_EXPLAIN = ("A profile sets the efficiency terms the cost model multiplies the datasheet by (achieved "
                   "fraction of peak FLOP/s and bandwidth, fixed overheads): it changes every simulated time, "
                   "so hours and $. Datasheet = the catalog's default efficiencies.")


def profile_selector(work: session.Working, base: dict[str, Any]) -> None:
    """Datasheet, or a profile file of profiles/ for the plan's GPU (public-measurement or
    calibrated); the file's own `profile:` is the start."""
    gpu = str(work.knobs.get("hardware.gpu", get_path(base, "hardware.gpu")))
    infos = state.profiles()
    usable = [i for i in infos if i.gpu == gpu]
    names = {api.DATASHEET: "datasheet (catalog efficiencies)"}
    for info in usable:
        rel = str(info.path.relative_to(state.PROFILE_DIR))
        names[rel] = f"{PROFILE_KINDS[info.kind]}: {rel}"
    file_profile = get_path(base, "profile")
    if file_profile:
        rel = state.relative(str(file_profile))
        names.setdefault(None, f"the file's: {rel}")   # type: ignore[arg-type]
    keys = list(names)
    start = work.profile if work.profile in keys else (None if None in keys else api.DATASHEET)
    session.seed("run:profile", start)
    if st.session_state["run:profile"] not in keys:
        st.session_state["run:profile"] = start
    picked = st.selectbox("Hardware profile", keys, key="run:profile", format_func=lambda k: names[k],
                          help=PROFILE_EXPLAIN)
    work.profile = None if picked is None or (picked == api.DATASHEET and not file_profile) else picked
    others = sorted({i.gpu for i in infos if i.gpu != gpu})
    st.caption(PROFILE_EXPLAIN + (f" Profiles of other devices ({', '.join(others)}) are not offered for {gpu}."
                                  if others else ""))


# --- downloads and page runner ----------------------------------------------------------------
def download_name(source_label: str, changes: list[str]) -> str:
    """File stem of a download: the scenario's name, plus its changes (short) when it has any."""
    stem = source_label.rsplit(".", 1)[0] or "plan"
    if not changes:
        return stem
    parts = "_".join(re.sub(r"[^A-Za-z0-9.=-]+", "", c) for c in changes)
    tag = hashlib.sha1("\n".join(changes).encode()).hexdigest()[:6]
    return f"{stem}+{parts[:60]}-{tag}"


def download_row(items: list[tuple[str, Callable[[], bytes | str] | bytes | str, str, str]], key: str) -> None:
    """Download buttons side by side: (label, data or callable, file name, mime)."""
    cols = st.columns(len(items))
    for col, (label, data, name, mime) in zip(cols, items):
        col.download_button(label, data, file_name=name, mime=mime, key=f"{key}:{label}", on_click="ignore")


def run_page(render: Callable[[], None], page: str) -> None:
    """Run a page: a library failure on valid input becomes a plain error naming the exception,
    its traceback folded under "details" (user mistakes are UserErrors, shown by the pages)."""
    session.enter(page)
    try:
        render()
        finish_panel()
    except UserError as exc:
        error_box(str(exc))
    except Exception as exc:  # noqa: BLE001 - anything not a UserError is a bug to report, not a crash
        st.error(f"rlvr-sim failed: {type(exc).__name__}: {state.relative(str(exc))[:300]}. This is a bug in the "
                 "library or the app, not a problem with the scenario; please report it with the details below.",
                 icon="🐞")
        with st.expander("details"):
            st.code(state.relative(traceback.format_exc()))
