"""The scenario file: one RLVR run to plan (docs/contracts.md, "Scenario").

`load_scenario(path_or_dict, overrides)` validates a YAML file (or mapping) plus `dotted.key=value`
overrides and returns a `Scenario`; any problem raises `ScenarioError` whose lines each name the
dotted field, the bad value and the fix. The sections are `rlvr_sim.scenario_schema` (re-exported
here), the messages `rlvr_sim.scenario_errors`. Cross-field rules (parallelism shapes, placement, modes) live
in `rlvr_sim.rules` (applied by `rlvr_sim.scenario_checks`); whether the scenario fits in memory is
the cost model's `rlvr_sim.cost.fit.memory_fit`, asked once after validation (`check_fit`).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rlvr_sim.errors import ScenarioError, UserError
from rlvr_sim.safe_read import MAX_DEPTH, check_depth, echo, load_user_yaml, read_user_text
from rlvr_sim.scenario_errors import MAX_ERROR_LINES, MAX_MESSAGE_CHARS, format_validation_error
from rlvr_sim.scenario_schema import (ACCEPTANCE_DEFAULTS, DATASHEET_PROFILE, DynamicSampling, Hardware,
                                      KvDtype, Orchestration, Sampler, Scenario, SpeculativeSpec,
                                      Trainer, Verifier, WeightDtype, WeightSyncSpec, Workload)

__all__ = ["ACCEPTANCE_DEFAULTS", "DATASHEET_PROFILE", "DynamicSampling", "Hardware", "KvDtype",
           "MAX_ERROR_LINES", "MAX_MESSAGE_CHARS", "Orchestration", "Sampler", "Scenario",
           "SpeculativeSpec", "Trainer", "Verifier", "WeightDtype", "WeightSyncSpec", "Workload",
           "apply_overrides", "format_validation_error", "load_scenario"]

# --- loading ----------------------------------------------------------------------------------
_DEFAULT_SECTIONS: dict[str, type[BaseModel]] = {
    "hardware": Hardware, "workload": Workload, "sampler": Sampler, "verifier": Verifier,
    "trainer": Trainer, "orchestration": Orchestration}


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of `data` with each `dotted.key=value` set (value parsed as YAML, under the
    limits of `rlvr_sim.safe_read`: duplicate keys, nesting, aliases; text that is not YAML stays
    a string)."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"override {echo(item)}: not `dotted.key=value` ; e.g. "
                                "--set sampler.tp=2")
        parts = key.split(".")
        if len(parts) > MAX_DEPTH or any(not p.strip() for p in parts):
            raise ScenarioError(f"override {echo(key)}: not a dotted field name (empty part, or "
                                f"more than {MAX_DEPTH} parts) ; e.g. --set workload.seed=3")
        try:
            value = load_user_yaml(raw, f"override {echo(key)}") if raw.strip() else None
        except UserError as exc:
            if "not valid YAML" not in str(exc):
                raise ScenarioError(str(exc)) from None
            value = raw
        value = _number(value)
        node = out
        for depth, part in enumerate(parts[:-1]):
            if part not in node or node[part] is None:
                section = _DEFAULT_SECTIONS.get(part) if depth == 0 else None
                node[part] = section.model_validate({}).model_dump() if section else {}
                if depth == 1:  # a defaulted nested mapping, e.g. workload.response_tokens
                    parent = _DEFAULT_SECTIONS.get(parts[0])
                    field = parent.model_fields.get(part) if parent else None
                    if field is not None and field.default_factory is not None:
                        node[part] = _dump(field.get_default(call_default_factory=True,
                                                             validated_data={}))
            elif not isinstance(node[part], dict):
                raise ScenarioError(f"override {echo(key)}: {'.'.join(parts[:depth + 1])} is "
                                    f"{echo(node[part])}, not a mapping ; set the whole value "
                                    "instead")
            node = node[part]
        node[parts[-1]] = value
    return out


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _number(v: Any) -> Any:
    """YAML 1.1 reads `1e9` as a string; an override value in that form becomes a number."""
    if isinstance(v, str) and _SCIENTIFIC.match(v.strip()):
        f = float(v)
        return int(f) if f.is_integer() else f
    return v


def _dump(v: Any) -> Any:
    return v.model_dump() if isinstance(v, BaseModel) else v


def load_scenario(source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                  check_fit: bool = True) -> Scenario:
    """Validate a scenario file (or mapping) with overrides; ScenarioError on any problem.

    `check_fit=False` skips the memory-fit rules (used by `describe`, which reports them)."""
    base_dir: Path | None = None
    label = "scenario"
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        label = str(path)
        try:
            text = read_user_text(path, "scenario file", "check the path (see scenarios/ for "
                                  "examples)")
            data = load_user_yaml(text, label)
        except UserError as exc:
            raise ScenarioError(str(exc)) from None
        base_dir = path.resolve().parent
    if not isinstance(data, dict):
        raise ScenarioError(f"{label}: must be a YAML mapping with at least `model:`, got "
                            f"{type(data).__name__} ; e.g. `model: llama-3.1-8b`")
    try:
        check_depth(data, label)
        data = apply_overrides(data, overrides)
        check_depth(data, label)
    except ScenarioError:
        raise
    except UserError as exc:
        raise ScenarioError(str(exc)) from None
    try:
        sc = Scenario.model_validate(data, context={"base_dir": base_dir})
        problems = _fit_problems(sc) if check_fit else []
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, label)) from None
    except UserError as exc:
        raise ScenarioError(f"{label}: {exc}") from None
    if problems:
        raise ScenarioError("\n".join([f"{label} is invalid:", *(f"  - {p}" for p in problems)]))
    return sc


def _fit_problems(sc: Scenario) -> list[str]:
    """The one seam where loading asks the cost model whether the scenario fits in memory."""
    from rlvr_sim.cost.fit import memory_fit

    return memory_fit(sc).problems()

