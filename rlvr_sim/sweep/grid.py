"""Plans to simulate: the cross product of `--grid key=v1,v2` options and/or a list from a file.

A plan is an ordered tuple of `dotted.key=value` overrides applied on top of one base scenario
(`load_scenario(path, overrides=plan.overrides())`). This module only parses; it does not know
which keys exist (the scenario validator reports unknown keys, per plan).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlvr_sim.errors import UserError


MAX_GRID_PLANS = 100_000


@dataclass(frozen=True)
class Plan:
    """One point of a sweep: `(dotted_key, value_text)` pairs, in column order."""

    settings: tuple[tuple[str, str], ...]

    def overrides(self) -> list[str]:
        """The `key=value` strings `load_scenario(..., overrides=...)` takes."""
        return [f"{key}={value}" for key, value in self.settings]

    def columns(self) -> dict[str, Any]:
        """The plan's values as typed table cells (`"8"` -> 8, `"true"` -> True, `"h100-sxm"` stays)."""
        return {key: parse_value(value) for key, value in self.settings}


def parse_value(text: str) -> Any:
    """YAML scalar typing of one override value; non-scalars stay text."""
    from rlvr_sim.safe_read import load_user_yaml

    try:
        value = load_user_yaml(text, "value")       # bounded: deep or aliased text stays text
    except UserError:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def _value_text(value: Any) -> str:
    """Text for an override value read from YAML/CSV (booleans and None in YAML spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return str(yaml.safe_dump(value, default_flow_style=True)).strip()
    return str(value)


def parse_grid_option(spec: str) -> tuple[str, list[str]]:
    """`"sampler.tp=1,2,4"` -> `("sampler.tp", ["1", "2", "4"])`; empty values are an error."""
    key, sep, values_text = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--grid {spec!r}: expected dotted.key=v1,v2,... (e.g. --grid sampler.tp=1,2,4)")
    values = [v.strip() for v in values_text.split(",")]
    if not values or any(v == "" for v in values):
        raise UserError(f"--grid {spec!r}: empty value in the list; give comma-separated values such as {key}=1,2")
    if len(set(values)) != len(values):
        raise UserError(f"--grid {spec!r}: a value is repeated; list each value once")
    return key, values


def grid_plans(specs: list[str]) -> list[Plan]:
    """Cross product of `--grid` options, first option varying slowest. No options -> one empty plan."""
    axes = [parse_grid_option(spec) for spec in specs]
    count = math.prod(len(values) for _, values in axes)
    if count > MAX_GRID_PLANS:
        raise UserError(f"--grid: {count:,} plans in the cross product is over {MAX_GRID_PLANS:,} "
                        "; give fewer values, or use `rlvr-sim plan`, which searches instead")
    keys = [key for key, _ in axes]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise UserError(f"--grid key {repeated[0]!r} given twice; merge its values into one --grid option")
    return [Plan(tuple(zip(keys, combo))) for combo in itertools.product(*(values for _, values in axes))]


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings -> dotted keys; a list or scalar is a leaf value."""
    pairs: list[tuple[str, str]] = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            pairs.extend(_flatten(value, dotted + "."))
        else:
            pairs.append((dotted, _value_text(value)))
    return pairs


def load_plan_file(path: str | Path) -> list[Plan]:
    """Plans from a YAML list of mappings (dotted or nested keys) or a CSV with one column per key.

    YAML example: `- {sampler.gpus: 8, trainer.gpus: 8}`; CSV: header `sampler.gpus,trainer.gpus`.
    Empty CSV cells are skipped (that plan keeps the scenario's value).
    """
    from rlvr_sim.safe_read import load_user_yaml, read_user_text

    path = Path(path)
    text = read_user_text(path, "--plans", "give a .yaml/.yml or .csv list of plans")
    if path.suffix.lower() == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise UserError(f"--plans {str(path)!r}: not valid CSV ({exc}) ; give a header row of "
                            "dotted keys and one row per plan") from None
        if not rows:
            raise UserError(f"--plans {str(path)!r}: no rows under the header; give at least one plan")
        return [Plan(tuple((k.strip(), v.strip()) for k, v in row.items() if k and v and v.strip())) for row in rows]
    data = load_user_yaml(text, f"--plans {str(path)!r}")
    if isinstance(data, dict) and isinstance(data.get("plans"), list):
        data = data["plans"]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise UserError(f"--plans {str(path)!r}: expected a YAML list of mappings such as "
                        "'- {sampler.gpus: 8, trainer.gpus: 8}' (or a mapping with a 'plans' list)")
    if not data:
        raise UserError(f"--plans {str(path)!r}: the list is empty; give at least one plan")
    return [Plan(tuple(_flatten(item))) for item in data]


def combine(file_plans: list[Plan] | None, grid: list[Plan]) -> list[Plan]:
    """Every file plan crossed with every grid point (grid keys win on a clash)."""
    if not file_plans:
        return grid
    if len(file_plans) * len(grid) > MAX_GRID_PLANS:
        raise UserError(f"--plans x --grid: {len(file_plans) * len(grid):,} plans is over "
                        f"{MAX_GRID_PLANS:,} ; give fewer plans or grid values")
    combined = []
    for base in file_plans:
        for point in grid:
            grid_keys = {key for key, _ in point.settings}
            kept = tuple((k, v) for k, v in base.settings if k not in grid_keys)
            combined.append(Plan(kept + point.settings))
    return combined
