"""Widgets shared by the pages: scenario picker, the main-knob editor, field errors, downloads.

The knob editor never invents a value: every widget starts at the base scenario's resolved
value, choices come from the scenario schema (`Literal` fields) and the catalog, and only the
widgets the user moved become `dotted.key=value` overrides for `load_scenario`. A ScenarioError
is shown under the widget whose dotted field its message names (or above the knobs when it
names none of them).
"""

from __future__ import annotations

import traceback
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st
import yaml

from app_pages import state


@dataclass(frozen=True)
class Knob:
    """One widget bound to a dotted scenario field. kind: choice | int | float | bool | dist."""

    field: str
    label: str
    kind: str
    help: str = ""


# The main knobs of the Plan page (issue 8): what a capacity planner moves first.
KNOBS: tuple[Knob, ...] = (
    Knob("model", "Model", "choice", "catalog model name"),
    Knob("hardware.gpu", "GPU type", "choice", "catalog GPU name"),
    Knob("orchestration.placement", "Placement", "choice", "colocated: sampler and trainer share GPUs"),
    Knob("sampler.gpus", "Sampler GPUs", "int"),
    Knob("trainer.gpus", "Trainer GPUs", "int", "colocated: must equal sampler GPUs"),
    Knob("sampler.tp", "Sampler TP", "int", "tensor-parallel degree of each sampler replica"),
    Knob("trainer.tp", "Trainer TP", "int"),
    Knob("workload.prompts_per_step", "Prompts per step", "int"),
    Knob("workload.samples_per_prompt", "Samples per prompt", "int"),
    Knob("workload.response_tokens", "Response length (tokens)", "dist"),
    Knob("verifier.workers", "Verifier workers", "int"),
    Knob("verifier.latency_s", "Verifier latency (s)", "dist"),
    Knob("orchestration.mode", "Mode", "choice"),
    Knob("orchestration.max_staleness", "Max staleness", "int", "async only; 0 == sync"),
    Knob("sampler.speculative.method", "Speculative decoding", "choice"),
    Knob("sampler.speculative.draft_tokens", "Draft tokens", "int"),
    Knob("sampler.speculative.acceptance_rate", "Acceptance rate", "float"),
)


def get_path(mapping: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """Value at `a.b.c` in nested mappings, or `default`."""
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def value_text(value: Any) -> str:
    """Override text of a value (YAML flow style: `true`, `null`, `{dist: fixed, value: 8}`)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def schema_choices(dotted: str) -> list[str]:
    """Allowed values of a `Literal` scenario field, read from the pydantic schema ([] if not one)."""
    try:
        model: Any = state.require("rlvr_sim.scenario", "Scenario schema").Scenario
    except (state.MissingPiece, AttributeError):
        return []
    annotation: Any = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        model = _unwrap_model(annotation)
    return [str(v) for v in _literal_args(annotation)]


def _unwrap_model(annotation: Any) -> Any:
    for arg in (annotation, *typing.get_args(annotation)):
        if hasattr(arg, "model_fields"):
            return arg
    return None


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


@dataclass
class KnobEdit:
    """What the knob editor returns: overrides of the moved widgets and one error slot per field."""

    overrides: list[str] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    general_slot: Any = None


def knob_editor(base: dict[str, Any], key: str) -> KnobEdit:
    """Render one widget per KNOBS entry present in `base`; return the overrides they imply."""
    edit = KnobEdit(general_slot=st.empty())
    for knob in KNOBS:
        current = get_path(base, knob.field)
        if knob.field == "model" and isinstance(current, dict):  # resolved: an inline spec with its name
            current = current.get("name")
        if current is None and knob.kind != "choice":
            continue
        wkey = f"{key}:{knob.field}"
        if knob.kind == "dist":
            new = _dist_editor(knob, current, wkey)
        elif knob.kind == "choice":
            options = _choices(knob, current)
            if not options:
                continue
            index = options.index(str(current)) if current is not None and str(current) in options else 0
            new = st.selectbox(knob.label, options, index=index, key=wkey, help=knob.help or None)
            new = current if current is not None and str(current) == new else new
        elif knob.kind == "int":
            new = int(st.number_input(knob.label, value=int(current), step=1, key=wkey, help=knob.help or None))
        elif knob.kind == "float":
            new = float(st.number_input(knob.label, value=float(current), key=wkey, format="%.3f",
                                        help=knob.help or None))
        else:
            new = st.checkbox(knob.label, value=bool(current), key=wkey, help=knob.help or None)
        edit.slots[knob.field] = st.empty()
        if new != current:
            edit.overrides.append(f"{knob.field}={value_text(new)}")
    return edit


# Parameters of each distribution kind, as the schema (rlvr_sim/distributions.py) names them.
_DIST_PARAMS = {"fixed": ("value",), "uniform": ("low", "high"), "lognormal": ("mean", "sigma", "cap")}


def _dist_editor(knob: Knob, current: dict[str, Any], wkey: str) -> dict[str, Any]:
    """Pick the distribution kind and its parameters; a new kind starts at the current mean."""
    kind = current.get("dist", "fixed")
    if kind not in _DIST_PARAMS:  # empirical: shown, not edited here
        st.caption(f"{knob.label}: {kind} distribution from the scenario (edit the YAML to change)")
        return current
    kinds = list(_DIST_PARAMS)
    picked = st.selectbox(knob.label, kinds, index=kinds.index(kind), key=f"{wkey}:dist")
    start = current if picked == kind else _restart(current, picked)
    params = _DIST_PARAMS[picked]
    cols = st.columns(len(params))
    out: dict[str, Any] = {"dist": picked}
    for col, name in zip(cols, params):
        value = start.get(name)
        if name == "cap" and value is None:
            text = col.text_input("cap", value="", key=f"{wkey}:{picked}:cap", placeholder="none")
            out[name] = float(text) if _is_number(text) else None
            continue
        out[name] = col.number_input(name, value=float(value), key=f"{wkey}:{picked}:{name}", format="%.4g")
    if picked == kind and all(out.get(p) == current.get(p) for p in params):
        return current
    return out


def _restart(current: dict[str, Any], picked: str) -> dict[str, Any]:
    """Parameters of a newly picked kind, centred on the current distribution's mean."""
    mean = float(current.get("mean", current.get("value", (current.get("low", 0) + current.get("high", 0)) / 2)))
    return {"value": mean, "low": mean, "high": mean, "mean": mean, "sigma": 0.0, "cap": current.get("cap")}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def show_field_error(edit: KnobEdit, message: str) -> str | None:
    """Put `message` under the knob whose dotted field it names first; return that field (or None)."""
    hits = [(message.find(f), -len(f), f) for f in edit.slots if f in message]
    if hits:
        _, _, name = min(hits)
        edit.slots[name].error(message, icon="⚠️")
        return name
    if edit.general_slot is not None:
        edit.general_slot.error(message, icon="⚠️")
    return None


def scenario_picker(key: str, label: str = "Scenario", allow_upload: bool = True) -> state.ScenarioSource | None:
    """Choose a scenario file from scenarios/ or upload one; None when there is nothing to pick."""
    files = state.scenario_files()
    names = [p.name for p in files]
    upload = None
    if allow_upload:
        upload = st.file_uploader(f"{label}: upload a YAML (optional)", type=["yaml", "yml"], key=f"{key}:upload")
    if upload is not None:
        return state.source_from_upload(upload.name, upload.getvalue())
    if not names:
        st.warning(f"No scenario files in {state.SCENARIO_DIR.name}/ — add one or upload a YAML.")
        return None
    wanted = st.query_params.get("scenario")          # shareable link: ?scenario=minimal.yaml
    picked = st.selectbox(label, names, index=names.index(wanted) if wanted in names else 0, key=f"{key}:file")
    return state.source_from_file(files[names.index(picked)])


def run_page(render: Callable[[], None]) -> None:
    """Run a page: a missing library module becomes a notice; a library failure on valid input
    becomes a plain error naming the exception, its traceback folded under "details"."""
    try:
        render()
    except state.MissingPiece as exc:
        st.info(str(exc))
    except Exception as exc:  # noqa: BLE001 - anything not a UserError is a bug to report, not a crash
        st.error(f"rlvr-sim failed: {type(exc).__name__}: {exc}. This is a bug in the library or the app, "
                 "not a problem with the scenario; please report it with the details below.", icon="🐞")
        with st.expander("details"):
            st.code(traceback.format_exc())


def download_row(items: list[tuple[str, Callable[[], bytes | str] | bytes | str, str, str]], key: str) -> None:
    """Download buttons side by side: (label, data or callable, file name, mime)."""
    cols = st.columns(len(items))
    for col, (label, data, name, mime) in zip(cols, items):
        col.download_button(label, data, file_name=name, mime=mime, key=f"{key}:{name}", on_click="ignore")
