"""`rlvr-sim calibrate --budget-s S`: benchmark inside a budget, fit, write a profile + evidence.

Files (all beside `--out NAME.yaml`; written progressively so a killed run leaves its rows):
  NAME.bench.parquet    every measured row so far (rewritten after each point)
  NAME.progress.jsonl   one line per point: status, seconds, estimate, error
  NAME.yaml             the profile (datasheet of the catalog GPU + fitted efficiency terms)
  NAME.fit.json         stages, terms, uncertainties, residuals, probes, provenance, budget use
  NAME.validation.json  held-out check: leave-one-shape-out MAPE per phase
`--bench NAME.bench.parquet` refits a table without measuring (e.g. after a killed run).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from calibration.budget import Budget, PointOutcome, run_points
from calibration.fit import finite
from calibration.gpu_bench import CPU_PLAN, CUDA_PLAN, GpuPlan, GpuRow, Session, build_points
from calibration.gpu_fit import GpuFit, fit_gpu_profile, measured_from_frame
from rlvr_sim.hardware import HardwareProfile


def process_age_s() -> float:
    """Seconds since this process started (interpreter and torch import count against the
    budget too); 0 when psutil is missing."""
    try:
        import psutil
        return max(time.time() - psutil.Process().create_time(), 0.0)
    except Exception:  # noqa: BLE001
        return 0.0


def plan_for(device: str, decode_model: str | None, train_model: str | None) -> GpuPlan:
    from dataclasses import replace

    plan = CUDA_PLAN if device.startswith("cuda") else CPU_PLAN
    if decode_model:
        plan = replace(plan, decode_model=decode_model)
    if train_model:
        plan = replace(plan, train_model=train_model)
    return plan


class Writer:
    """Partial results on disk after every point."""

    def __init__(self, out: Path):
        self.out = out
        self.bench = out.with_name(out.stem + ".bench.parquet")
        self.progress = out.with_name(out.stem + ".progress.jsonl")
        self.rows: list[GpuRow] = []
        out.parent.mkdir(parents=True, exist_ok=True)
        self.progress.write_text("")

    def __call__(self, rows: list, oc: PointOutcome) -> None:
        import pandas as pd

        self.rows.extend(r for r in rows if isinstance(r, GpuRow))
        with self.progress.open("a") as f:
            f.write(json.dumps(asdict(oc)) + "\n")
        if rows:
            pd.DataFrame([r.flat() for r in self.rows]).to_parquet(self.bench, index=False)

    def skipped(self, outcomes: list[PointOutcome]) -> None:
        with self.progress.open("a") as f:
            for oc in outcomes:
                if oc.status.startswith("skipped"):
                    f.write(json.dumps(asdict(oc)) + "\n")


def measure(device: str, plan: GpuPlan, budget: Budget, writer: Writer,
            clock: Callable[[], float] = time.monotonic) -> tuple[list[PointOutcome], dict]:
    """Run the plan's points inside `budget`, writing rows as they come."""
    session = Session(device=device, plan=plan)
    points = build_points(session, clock)
    outcomes = run_points(points, budget, on_rows=writer)
    writer.skipped(outcomes)
    session.decode = session.decode2 = session.train = None
    return outcomes, session.notes


def _probes(df) -> dict:
    out = {}
    for kind in ("peak_gemm", "peak_copy"):
        sub = df[df["kind"] == kind] if len(df) else df
        if len(sub):
            out[kind] = {"value": float(sub["value"].iloc[0]), "seconds": float(sub["seconds"].iloc[0]),
                         "note": str(sub["note"].iloc[0])}
    return out


def fit_and_write(df, base: HardwareProfile, out: Path, provenance: dict, budget_notes: dict,
                  held_out: bool = True, deadline: float = math.inf) -> tuple[GpuFit, Path]:
    """Fit the table, write NAME.yaml, NAME.fit.json and NAME.validation.json; held-out refits
    stop at `deadline` (time.monotonic)."""
    from calibration.machine import Provenance

    rows = measured_from_frame(df)
    fit = fit_gpu_profile(rows, base, held_out=held_out, deadline=deadline)
    prov = Provenance(**provenance)
    stages = {s.name: s for s in fit.stages}
    kept = sorted(set(type(base.efficiency).model_fields) - set(fit.fitted_terms())
                  - {"decode_overlap", "switch_fixed_s", "train_overhead_s", "bucket_latency_s"})
    info = {"device": f"{prov.device} {prov.device_name}", "date": prov.date_utc,
            "torch_version": prov.torch_version or "", "vllm_version": prov.vllm_version,
            "threads": prov.threads, "rows": len(rows),
            "r2": {}, "rel_uncertainty": {t: v for s in fit.stages for t, v in s.rel_stderr.items()
                                          if math.isfinite(v)},
            "verifier_latency_s": {},
            "notes": (f"budgeted calibration ({budget_notes.get('budget_s')} s budget, "
                      f"{budget_notes.get('used_s', 0):.0f} s used); held-out MAPE per phase: "
                      + ", ".join(f"{s.name} {s.mape_held_out_pct:.1f}%" for s in fit.stages
                                  if s.mape_held_out_pct is not None)
                      + f"; details in {out.stem}.fit.json")}
    source = prov.source_line(base.gpu) + " budgeted"
    prof = HardwareProfile.model_validate(dict(fit.profile.model_dump(mode="json"),
                                               source=source, calibration=info))
    prof.save(out)
    out.write_text(f"# Hardware profile written by `rlvr-sim calibrate --budget-s` ({source}).\n"
                   f"# Fit, probes and provenance: {out.stem}.fit.json; held-out check: "
                   f"{out.stem}.validation.json\n" + out.read_text())
    side = out.with_name(out.stem + ".fit.json")
    payload = {"source": source, "provenance": provenance, "budget": budget_notes,
               "probes": _probes(df), "stages": [asdict(s) for s in fit.stages],
               "extras": fit.extras, "kept_from_datasheet": kept,
               "fixed": {"decode_overlap": "fitted when >= 8 decode rows, else 1 (roofline max)",
                         "switch_fixed_s": "0: not measured here (no engine sleep/wake)",
                         "train_overhead_s": "0: a bare fused AdamW step (framework extras "
                                             "not measured)"},
               "layer_overhead_note": "layer_overhead_s is the eager-minus-CUDA-graph launch cost "
                                      "per layer; the cost model charges it in decode too, which a "
                                      "CUDA-graph engine (vLLM) does not pay"}
    side.write_text(json.dumps(finite(payload), indent=1, default=str) + "\n")
    val = out.with_name(out.stem + ".validation.json")
    val.write_text(json.dumps(finite({
        "method": "leave-one-shape-out per phase: refit the phase's terms without one measured "
                  "shape, predict it; MAPE over the held-out shapes",
        "mape_held_out_pct": {n: s.mape_held_out_pct for n, s in stages.items()},
        "mape_in_sample_pct": {n: s.mape_in_sample_pct for n, s in stages.items()},
        "rows": {n: s.rows for n, s in stages.items()},
        "held_out_rows": {n: s.held_out_rows for n, s in stages.items()},
        "train_mfu_curve": fit.extras.get("train_mfu_curve", {})}), indent=1) + "\n")
    return fit, side


def summary(fit: GpuFit | None, outcomes: list[PointOutcome], probes: dict, used_s: float,
            budget_s: float) -> str:
    counts: dict[str, int] = {}
    for oc in outcomes:
        counts[oc.status] = counts.get(oc.status, 0) + 1
    lines = [f"budget {budget_s:.0f} s, used {used_s:.0f} s; points "
             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    for k, v in probes.items():
        unit = "GFLOP/s" if k == "peak_gemm" else "GB/s"
        lines.append(f"  {k:<10} {v['value'] / 1e9:12.1f} {unit}  ({v['note']})")
    errors = [oc for oc in outcomes if oc.status == "error"]
    for oc in errors[:6]:
        lines.append(f"  error {oc.name}: {oc.error[:160]}")
    if fit is None:
        lines.append("  no fit (no fittable rows)")
        return "\n".join(lines)
    lines.append(f"  {'phase':<10}{'term':<24}{'value':>12}{'+-%':>8}{'MAPE in':>9}{'held-out':>9}"
                 "   ((n/i): not identified by these rows)")
    for s in fit.stages:
        for i, t in enumerate(s.terms):
            rel = s.rel_stderr.get(t, math.inf)
            mi = f"{s.mape_in_sample_pct:8.1f}%" if i == 0 else ""
            ho = (f"{s.mape_held_out_pct:8.1f}%" if s.mape_held_out_pct is not None else "     n/a") \
                if i == 0 else ""
            pct = f"{100 * rel:8.0f}" if math.isfinite(rel) and rel < 100 else "   (n/i)"
            lines.append(f"  {s.name if i == 0 else '':<10}{t:<24}{s.values[t]:12.4g}"
                         f"{pct}{mi:>9}{ho:>9}")
    ws = fit.extras.get("weight_sync")
    if ws:
        lines.append(f"  {'sync':<10}{'bucket_latency_s':<24}{ws['bucket_latency_s']:12.4g}"
                     f"   (copy {ws['copy_bytes_per_s'] or float('nan'):.3g} B/s)")
    curve = fit.extras.get("train_mfu_curve") or {}
    if curve:
        lines.append(f"  curve     train_mfu {curve['train_mfu']:.3f} half_tokens "
                     f"{curve['train_mfu_half_tokens']:.0f}: MAPE in {curve['mape_in_sample_pct']:.1f}%"
                     f" held-out {curve['mape_held_out_pct']:.1f}% (alternative, not in profile)")
    return "\n".join(lines)


def run_budgeted(device: str, gpu: str, budget_s: float, out: Path, decode_model: str | None,
                 train_model: str | None, bench: list[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> int:
    """Measure (or read `bench` tables), fit, write, print the summary table last."""
    import pandas as pd

    from calibration.machine import provenance

    started = clock() - process_age_s()
    reserve = min(max(0.12 * budget_s, 8.0), 60.0)
    budget = Budget(budget_s, reserve_s=reserve, clock=clock, start=started)
    writer = Writer(out)
    outcomes: list[PointOutcome] = []
    notes: dict = {}
    if bench:
        df = pd.concat([pd.read_parquet(b) for b in bench], ignore_index=True)
        df.to_parquet(writer.bench, index=False)
    else:
        plan = plan_for(device, decode_model, train_model)
        print(f"calibrate: {device}, budget {budget_s:.0f} s (reserve {reserve:.0f} s for the fit), "
              f"decode model {plan.decode_model}, train model {plan.train_model}", flush=True)
        outcomes, notes = measure(device, plan, budget, writer, clock)
        df = pd.DataFrame([r.flat() for r in writer.rows])
        for oc in outcomes:
            if oc.status in ("ok", "error"):
                print(f"  {oc.status:<6}{oc.name:<34}{oc.seconds:7.1f} s (est {oc.scaled_est_s:6.1f})"
                      + (f"  {oc.error[:100]}" if oc.error else ""), flush=True)
    base = HardwareProfile.from_catalog(gpu)
    prov = provenance(device, 1).as_dict()
    measured_s = budget.elapsed_s()
    fit = None
    if len(df):
        # the held-out refits are skipped when the budget has no room left for them
        held_out = budget.budget_s - budget.elapsed_s() > 0.5 * reserve
        budget_notes = {"budget_s": budget_s, "measure_s": measured_s, "reserve_s": reserve,
                        "points": [asdict(o) for o in outcomes], **notes}
        try:
            budget_notes["used_s"] = budget.elapsed_s()
            # wall-clock deadline for the held-out refits: the budget's end less time to write
            deadline = time.monotonic() + budget.budget_s - budget.elapsed_s() - 5.0
            fit, side = fit_and_write(df, base, out, prov, budget_notes, held_out=held_out,
                                      deadline=deadline)
        except Exception as exc:  # noqa: BLE001 - the measured table is on disk: refit with --bench
            import traceback
            traceback.print_exc()
            print(f"fit failed: {type(exc).__name__}: {exc}; the rows are in {writer.bench} "
                  f"(refit: rlvr-sim calibrate --bench {writer.bench} --budget-s 120 --gpu "
                  f"{gpu} --out {out})")
            fit = None
    used = budget.elapsed_s()
    print(summary(fit, outcomes, _probes(df) if len(df) else {}, used, budget_s))
    if fit is not None:
        print(f"profile {out}")
    return 0 if fit is not None else 1
