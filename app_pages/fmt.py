"""The app's one formatting module: human labels for fields, units, and number text.

Rules (issue 18): fractions are shown as % everywhere; seconds, hours and dollars carry their
unit; numbers have about 3 significant digits, thousands separated, never in exponent form
(1640, not 1.64e+3) and never with 4+ meaningless decimals; a missing value is "n/a", never 0.
`D3` is the matching Plotly/d3 format for hover and cell text.
"""

from __future__ import annotations

import math
from typing import Any

# d3 format of chart numbers: 3 significant digits, decimal notation, trailing zeros trimmed.
D3 = ",.3~r"
MISSING = "n/a"

# Summary.flat() / sweep-table / scenario fields -> label with unit.
LABELS: dict[str, str] = {
    "step_time_s.mean": "Step time, mean (s)",
    "step_time_s.p50": "Step time, median (s)",
    "step_time_s.p95": "Step time, p95 (s)",
    "tokens_per_s_per_gpu": "Tokens/s per GPU",
    "output_tokens_per_s_per_gpu": "Generated tokens/s per GPU",
    "tokens_per_s": "Tokens/s",
    "tokens_per_step": "Tokens per step",
    "cost.usd_per_step": "$ per step",
    "cost.usd_total": "$ for the run",
    "cost.usd_per_gpu_hour": "$ per GPU-hour",
    "cost.gpu_hours_total": "GPU-hours for the run",
    "hours_total": "Hours for the run",
    "gpus": "GPUs",
    "bottleneck": "Critical-path bottleneck",
    "utilization.sampler": "Sampler busy",
    "utilization.verifier": "Verifier busy",
    "utilization.trainer": "Trainer busy",
    "staleness.mean": "Mean staleness (policy versions)",
    "steps_simulated": "Steps simulated",
    "workload_steps": "Run length (steps)",
    "label": "Plan",
    "status": "Status",
    "error": "Why invalid",
    "plan_index": "#",
    "total_gpus": "GPUs",
    "model": "Model",
    "model.name": "Model",
    "hardware.gpu": "GPU type",
    "hardware.usd_per_gpu_hour": "$ per GPU-hour",
    "orchestration.placement": "Placement",
    "orchestration.mode": "Mode",
    "orchestration.max_staleness": "Max staleness",
    "sampler.gpus": "Sampler GPUs",
    "sampler.tp": "Sampler TP",
    "sampler.pp": "Sampler PP",
    "trainer.gpus": "Trainer GPUs",
    "trainer.tp": "Trainer TP",
    "trainer.pp": "Trainer PP",
    "trainer.mini_batches": "Mini-batches per step",
    "verifier.workers": "Verifier workers",
    "workload.prompts_per_step": "Prompts per step",
    "workload.samples_per_prompt": "Samples per prompt",
    "workload.steps": "Run length (steps)",
    "workload.response_tokens": "Response length (tokens)",
    "profile": "Hardware profile",
}

PHASE_LABELS = {"generate": "generate", "verify": "verify", "switch": "switch (colocated)", "train": "train",
                "weight_sync": "weight sync", "verify_after_generate": "verify after generate"}
POOL_LABELS = {"sampler": "samplers", "verifier": "verifier workers", "trainer": "trainer",
               "weight_sync": "weight sync", "switch": "phase switch"}


def label(field: str) -> str:
    """Human label of a dotted field (a generated one for fields not in LABELS)."""
    if field in LABELS:
        return LABELS[field]
    name = field.replace("utilization.", "busy ").replace("idle_s.", "idle ").replace(".", " ").replace("_", " ")
    return name[:1].upper() + name[1:]


def is_fraction(field: str) -> bool:
    return field.startswith("utilization.") or field.endswith("_fraction") or field.endswith("share_best")


def number(value: float, digits: int = 3) -> str:
    """About `digits` significant digits, thousands separated, never in exponent form."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else MISSING
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def exact(value: float) -> str:
    """A user-entered number as entered: 16384 stays 16384, 0.1 stays 0.1 (no rounding)."""
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


def duration(value: float | None) -> str:
    """Seconds with an SI prefix for short times: 0.000396 -> "396 µs", 2.97e-9 -> "2.97 ns"."""
    if _missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if abs(v) >= scale or unit == "ns":
            return f"{number(v / scale)} {unit}" if v else "0 s"
    return f"{number(v)} s"


def pct(fraction: float | None) -> str:
    return MISSING if _missing(fraction) else f"{100 * float(fraction):.0f}%"  # type: ignore[arg-type]


def seconds(value: float | None) -> str:
    if _missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    if abs(v) >= 120:
        return f"{number(v)} s ({number(v / 60)} min)"
    return f"{number(v)} s"


def hours(value: float | None) -> str:
    return MISSING if _missing(value) else f"{number(float(value))} h"  # type: ignore[arg-type]


def usd(value: float | None) -> str:
    if _missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"


def value(field: str, v: Any) -> str:
    """Table / tooltip text of a field's value, with the field's unit."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING if field != "error" else ""
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if "seed" not in field and "index" not in field else str(v)
    if isinstance(v, float):
        if is_fraction(field):
            return pct(v)
        if "usd" in field:
            return usd(v)
        if field.startswith("hours") or field.endswith("hours"):
            return hours(v)
        if field.endswith("_s") or "_s." in field or field.endswith("latency_s"):
            return f"{number(v)} s"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return number(v)
    return str(v)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))
