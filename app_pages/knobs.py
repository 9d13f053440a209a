"""The knob editor: widgets bound to dotted scenario fields (the Plan page's main knobs).

Every widget is seeded from the session's working scenario (app_pages/session.py) and writes
its value back, so edits survive a change of page. The editor never invents a value: a widget
starts at the working value or the base scenario's resolved value, choices come from the
scenario schema (`Literal` fields) and the catalog, help text from the schema's
`Field(description=...)`, and only knobs that differ from the base become overrides.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from app_pages import fmt, session, state
from rlvr_sim import api
from rlvr_sim.distributions import LogNormal
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
        new: Any        # the widget's value: a distribution's mapping, a choice, a number or a flag
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
    picked = st.selectbox(knob.label, kinds, key=f"{wkey}:dist", help=_help(knob)) or kind
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
        if value is None:         # every parameter but the cap is given (the schema's defaults)
            raise ValueError(f"{knob.field}: the {picked} distribution has no {name!r}")
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
