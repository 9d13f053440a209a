"""Measured-vs-simulated comparison: errors, MAPE per phase, a table and a scatter plot.

Pure bookkeeping (no torch, no simulator): `validate.py` fills `Comparison` rows, this module
turns them into the numbers and files of a validation report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

STEP = "step_time"


@dataclass(frozen=True)
class Comparison:
    """One quantity (the step time or one phase's time per step) of one held-out config."""

    config: str
    quantity: str               # "step_time" or a phase name (generate, verify, train, ...)
    measured_s: float
    simulated_s: float

    @property
    def error(self) -> float:
        """Signed relative error of the simulation, (sim - measured) / measured."""
        return (self.simulated_s - self.measured_s) / self.measured_s


@dataclass
class ValidationReport:
    """Everything `rlvr-sim validate --json` prints and the report file keeps."""

    profile: str
    rows: list[Comparison]
    configs: list[dict] = field(default_factory=list)   # name, description, settings, load
    cpu_equivalent: "ValidationReport | None" = None     # measured x the run's CPU share

    def mape(self, quantity: str) -> float:
        """Mean absolute percentage error over configs for one quantity (nan if absent)."""
        errs = [abs(r.error) for r in self.rows if r.quantity == quantity]
        return 100.0 * sum(errs) / len(errs) if errs else math.nan

    def phases(self) -> list[str]:
        return sorted({r.quantity for r in self.rows if r.quantity != STEP})

    def worst_phase(self) -> str | None:
        scored = [(self.mape(p), p) for p in self.phases()]
        scored = [s for s in scored if not math.isnan(s[0])]
        return max(scored)[1] if scored else None

    def to_dict(self) -> dict:
        return {
            "profile": self.profile,
            "configs": self.configs,
            "n_configs": len({r.config for r in self.rows}),
            "mape_step_time": self.mape(STEP),
            "mape_phase": {p: self.mape(p) for p in self.phases()},
            "max_abs_error_step_time": max((abs(r.error) * 100 for r in self.rows
                                            if r.quantity == STEP), default=math.nan),
            "worst_phase": self.worst_phase(),
            "rows": [dict(asdict(r), error_pct=100 * r.error) for r in self.rows],
            **({"cpu_equivalent": {
                "note": "measured times x the run's CPU share (CPU s / wall s): what each run "
                        "would have taken with its core on this shared machine",
                "mape_step_time": self.cpu_equivalent.mape(STEP),
                "mape_phase": {p: self.cpu_equivalent.mape(p) for p in self.cpu_equivalent.phases()},
                "rows": [dict(asdict(r), error_pct=100 * r.error) for r in self.cpu_equivalent.rows]}}
               if self.cpu_equivalent is not None and self.cpu_equivalent.rows else {}),
        }

    def table(self) -> pd.DataFrame:
        """Wide table: one row per config, measured/simulated/error per quantity."""
        df = pd.DataFrame([dict(asdict(r), error_pct=100 * r.error) for r in self.rows])
        if df.empty:
            return df
        wide = df.pivot(index="config", columns="quantity",
                        values=["measured_s", "simulated_s", "error_pct"])
        wide.columns = [f"{q}.{v}" for v, q in wide.columns]
        return wide[sorted(wide.columns)]

    def text(self) -> str:
        """Human-readable table plus the MAPE lines."""
        lines = []
        for cfg in dict.fromkeys(r.config for r in self.rows):
            for r in (r for r in self.rows if r.config == cfg):
                lines.append(f"{cfg:<28} {r.quantity:<12} measured {r.measured_s:9.3f} s  "
                             f"simulated {r.simulated_s:9.3f} s  error {100 * r.error:+7.1f}%")
        lines.append(f"MAPE step_time: {self.mape(STEP):.1f}%")
        for p in self.phases():
            lines.append(f"MAPE {p}: {self.mape(p):.1f}%")
        return "\n".join(lines)


FLOOR_S = 1e-4   # plotted values below 0.1 ms sit on the floor (a simulated verify tail of ~0)


def report_from_dict(data: dict) -> ValidationReport:
    """Rebuild a report from its `to_dict()` JSON (for re-plotting, the app's calibration page)."""
    def rows(items):
        return [Comparison(r["config"], r["quantity"], r["measured_s"], r["simulated_s"])
                for r in items]
    rep = ValidationReport(profile=data["profile"], rows=rows(data["rows"]),
                           configs=data.get("configs", []))
    if data.get("cpu_equivalent"):
        rep.cpu_equivalent = ValidationReport(profile=data["profile"],
                                              rows=rows(data["cpu_equivalent"]["rows"]))
    return rep


def _panel(ax, report: ValidationReport, title: str) -> None:
    quantities = [STEP] + report.phases()
    all_vals = [max(v, FLOOR_S) for r in report.rows for v in (r.measured_s, r.simulated_s)]
    for q in quantities:
        rows = [r for r in report.rows if r.quantity == q]
        if rows:
            ax.scatter([max(r.measured_s, FLOOR_S) for r in rows],
                       [max(r.simulated_s, FLOOR_S) for r in rows],
                       label=f"{q} (MAPE {report.mape(q):.1f}%)", s=28,
                       marker="D" if q == STEP else "o", alpha=0.85)
    if all_vals:
        lo, hi = min(all_vals) / 1.5, max(all_vals) * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1],
                        color="grey", alpha=0.15, label="±10%")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured seconds per step (executor)")
    ax.set_ylabel("simulated seconds per step (rlvr-sim + profile)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)


def plot_scatter(report: ValidationReport, path: str | Path) -> Path:
    """Log-log scatter of simulated vs measured seconds, one colour per quantity, y=x line; a
    second panel for the CPU-equivalent view when the report has one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ce = report.cpu_equivalent
    extra = ce is not None and bool(ce.rows)
    fig, axes = plt.subplots(1, 2 if extra else 1, figsize=(12.4 if extra else 6.4, 5.6), dpi=110,
                             squeeze=False)
    _panel(axes[0][0], report, f"{Path(report.profile).name}: wall time as measured")
    if ce is not None and extra:
        _panel(axes[0][1], ce, "CPU-equivalent (measured x CPU share)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
