"""Widgets shared by the pages: the working-scenario panel, the knob editor, errors, downloads.

Every widget is seeded from the session's working scenario (app_pages/session.py) and writes
its value back, so edits survive a change of page. The knob editor never invents a value: a
widget starts at the working value or the base scenario's resolved value, choices come from the
scenario schema (`Literal` fields) and the catalog, help text from the schema's
`Field(description=...)`, and only knobs that differ from the base become overrides.
"""

from __future__ import annotations

import hashlib
import re
import traceback
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from app_pages import fmt, session, state
from rlvr_sim import api
from rlvr_sim.distributions import LogNormal
from rlvr_sim.errors import UserError
from rlvr_sim.scenario import Scenario


@dataclass(frozen=True)
class Knob:
    """One widget bound to a dotted scenario field. kind: choice | number | bool | dist."""

    field: str
    label: str
    kind: str
    help: str = ""


# The main knobs of the Plan page: what a capacity planner moves first. A field this build's
# schema lacks is not shown (integration point: fields of the RL-mechanisms issue, e.g. expert
# parallelism or a streaming trainer, appear once they are in the schema; any field can also be
# set in "More fields").
KNOBS: tuple[Knob, ...] = (
    Knob("model", "Model", "choice", "catalog model name"),
    Knob("hardware.gpu", "GPU type", "choice"),
    Knob("orchestration.placement", "Placement", "choice", "colocated: sampler and trainer share GPUs"),
    Knob("orchestration.mode", "Mode", "choice"),
    Knob("orchestration.max_staleness", "Max staleness", "number"),
    Knob("sampler.gpus", "Sampler GPUs", "number"),
    Knob("trainer.gpus", "Trainer GPUs", "number", "colocated: must equal sampler GPUs"),
    Knob("sampler.tp", "Sampler TP", "number", "tensor-parallel degree of each sampler replica"),
    Knob("trainer.tp", "Trainer TP", "number"),
    Knob("sampler.ep", "Sampler EP", "number"),
    Knob("trainer.ep", "Trainer EP", "number"),
    Knob("trainer.streaming", "Streaming trainer", "bool"),
    Knob("workload.prompts_per_step", "Prompts per step", "number"),
    Knob("workload.samples_per_prompt", "Samples per prompt", "number"),
    Knob("workload.response_tokens", "Response length (tokens)", "dist"),
    Knob("verifier.workers", "Verifier workers", "number"),
    Knob("verifier.latency_s", "Verifier latency (s)", "dist"),
    Knob("sampler.speculative.method", "Speculative decoding", "choice"),
    Knob("sampler.speculative.draft_tokens", "Draft tokens", "number"),
    Knob("sampler.speculative.acceptance_rate", "Acceptance rate", "number"),
)
TOKEN_FIELDS = ("workload.response_tokens", "workload.prompt_tokens")


def get_path(mapping: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """Value at `a.b.c` in nested mappings, or `default`."""
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def schema_choices(dotted: str) -> list[str]:
    """Allowed values of a `Literal` scenario field, read from the pydantic schema ([] if not one)."""
    model: Any = Scenario
    annotation: Any = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        model = next((a for a in (annotation, *typing.get_args(annotation)) if hasattr(a, "model_fields")), None)
    return [str(v) for v in _literal_args(annotation)]


def _literal_args(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    out: list[Any] = []
    for arg in typing.get_args(annotation):
        out.extend(_literal_args(arg))
    return out


def _choices(knob: Knob, current: Any) -> list[str]:
    if knob.field == "model":
        options = state.model_names()
    elif knob.field == "hardware.gpu":
        options = state.gpu_names()
    else:
        options = schema_choices(knob.field)
    if current is not None and str(current) not in options:
        options = [str(current), *options]
    return options


def _help(knob: Knob) -> str | None:
    return " — ".join(t for t in (api.field_help(knob.field), knob.help) if t) or None


@dataclass
class KnobEdit:
    """What the knob editor leaves: one error slot per field shown, and one for the rest."""

    slots: dict[str, Any] = field(default_factory=dict)
    general_slot: Any = None


def base_value(base: dict[str, Any], dotted: str) -> Any:
    value = get_path(base, dotted)
    if dotted == "model" and isinstance(value, dict):  # resolved: an inline spec with its name
        value = value.get("name")
    return value


def knob_editor(base: dict[str, Any]) -> KnobEdit:
    """One widget per KNOBS entry present in `base`, seeded from the working scenario; moved
    knobs are written to `working.knobs` (and removed when set back to the base value)."""
    work = session.working()
    edit = KnobEdit(general_slot=st.empty())
    for knob in KNOBS:
        start = base_value(base, knob.field)
        if start is None and knob.kind != "choice":
            continue
        current = work.knobs.get(knob.field, start)
        wkey = f"knob:{knob.field}"
        if knob.kind == "dist":
            new = _dist_editor(knob, current, wkey)
        elif knob.kind == "choice":
            options = _choices(knob, current)
            if not options:
                continue
            session.seed(wkey, str(current) if current is not None else options[0])
            if st.session_state[wkey] not in options:
                st.session_state[wkey] = options[0]
            new = st.selectbox(knob.label, options, key=wkey, help=_help(knob))
            new = start if start is not None and str(start) == new else new
        elif knob.kind == "number":
            is_int = isinstance(start, int) and not isinstance(start, bool)
            session.seed(wkey, int(current) if is_int else float(current))
            new = st.number_input(knob.label, step=1 if is_int else None, key=wkey, help=_help(knob),
                                  format="%d" if is_int else "%g")
        else:
            session.seed(wkey, bool(current))
            new = st.checkbox(knob.label, key=wkey, help=_help(knob))
        edit.slots[knob.field] = st.empty()
        if new != start:
            work.knobs[knob.field] = new
        else:
            work.knobs.pop(knob.field, None)
    return edit


# Parameters of each distribution kind, as the schema (rlvr_sim/distributions.py) names them.
_DIST_PARAMS = {"fixed": ("value",), "uniform": ("low", "high"), "lognormal": ("mean", "sigma", "cap")}


def _dist_editor(knob: Knob, current: dict[str, Any], wkey: str) -> dict[str, Any]:
    """Pick the distribution kind and its parameters, shown exactly (a cap of 16384 is 16384);
    a new kind starts at the current mean. Log-normal: says that `mean` is the uncapped mean
    and gives the capped mean the simulator draws (`LogNormal.mean_value`)."""
    kind = current.get("dist", "fixed")
    if kind not in _DIST_PARAMS:  # empirical: shown, not edited here
        st.caption(f"{knob.label}: {kind} distribution from the scenario (edit the YAML to change)")
        return current
    kinds = list(_DIST_PARAMS)
    session.seed(f"{wkey}:dist", kind)
    picked = st.selectbox(knob.label, kinds, key=f"{wkey}:dist", help=_help(knob))
    start = current if picked == kind else _restart(current, picked)
    params = _DIST_PARAMS[picked]
    cols = st.columns(len(params))
    tokens = knob.field in TOKEN_FIELDS
    out: dict[str, Any] = {"dist": picked}
    for col, name in zip(cols, params):
        value = start.get(name)
        key = f"{wkey}:{picked}:{name}"
        if name == "cap":
            session.seed(key, "" if value is None else fmt.exact(value))
            text = col.text_input("cap", key=key, placeholder="none", help="values above are clipped to cap")
            out[name] = _number(text)
            continue
        whole = tokens and name != "sigma"
        session.seed(key, int(round(float(value))) if whole else float(value))
        out[name] = col.number_input(name, key=key, format="%d" if whole else "%g", step=1 if whole else None,
                                     help="mean of the uncapped distribution" if name == "mean" else None)
    if picked == "lognormal" and out.get("mean", 0) > 0 and out.get("sigma") is not None:
        dist = LogNormal(mean=float(out["mean"]), sigma=float(out["sigma"]),
                         cap=None if out.get("cap") is None else float(out["cap"]))
        unit = "tokens" if tokens else "s"
        note = (f"`mean` is the mean before the cap; with cap {fmt.exact(dist.cap)} the mean drawn is "
                f"{fmt.number(dist.mean_value())} {unit}") if dist.cap is not None else \
            f"no cap: the mean drawn is {fmt.number(dist.mean_value())} {unit}"
        st.caption(note)
    if picked == kind and all(_same(out.get(p), current.get(p)) for p in params):
        return current
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return float(a) == float(b)


def _restart(current: dict[str, Any], picked: str) -> dict[str, Any]:
    """Parameters of a newly picked kind, centred on the current distribution's mean."""
    mean = float(current.get("mean", current.get("value", (current.get("low", 0) + current.get("high", 0)) / 2)))
    return {"value": mean, "low": mean, "high": mean, "mean": mean, "sigma": 0.0, "cap": current.get("cap")}


def _number(text: str) -> float | int | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


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
