"""Reports of the public-measurement fit: held-out tables, diagnostics, the written files, the CLI.

`report(fit)` is the JSON report of one GPU's fit (CV table, held-out TensorRT-LLM points, GEMM
roofline, width diagnostic); `write` writes profiles/<gpu>.public.yaml (+ the package copy) and
the .fit.json evidence; `main` is `python -m calibration.public_fit` (see that module).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from calibration.fit import finite
from calibration.lsq import ParamSpec, fit_positive
from calibration.public_data import KINDS, PUBLIC_DIR, load_rows, load_sources, model_spec
from calibration.public_fit import (PACKAGE_PROFILES_DIR, PROFILES_DIR, GpuFit, fit_gpu,
                                    public_profile)
from calibration.public_predict import measured_s, predict_s
from rlvr_sim.hardware import HardwareProfile


# the ISL/OSL points of /work/shared/reference/published.yaml `decoding:` (TensorRT-LLM
# Llama-3.1-8B FP8 on one H100), marked in the held-out table
TRTLLM_V1_PREFIX = "v1.0 document"   # rows of the TensorRT-LLM v1.0 tables (published.yaml's)
PUBLISHED_TRTLLM_POINTS = ("128/128", "128/2048", "1000/1000", "1000/2000", "2048/2048", "20000/2000")


def trtllm_holdout(fit: GpuFit) -> list[dict]:
    """The TensorRT-LLM v1.0 Llama-3.1-8B FP8 rows predicted by the inference fit that held the
    whole TensorRT-LLM document (every version) out (empty when the GPU has no such fold)."""
    inf = next((g for g in fit.groups if g.group == "inference"), None)
    fold = next((f for f in (inf.folds if inf else []) if f["held_out"] == "trtllm-perf-overview"), None)
    if fold is None:
        return []
    rows = [r for r in load_rows("decode") if r.gpu == fit.gpu and r.source == "trtllm-perf-overview"
            and r.model == "llama-3.1-8b" and r.setup.startswith(TRTLLM_V1_PREFIX)]
    out = []
    datasheet = HardwareProfile.from_catalog(fit.gpu)
    for r in rows:
        pred = 1.0 / predict_s(r, fold["profile"])
        guess = 1.0 / predict_s(r, datasheet)
        full = 1.0 / predict_s(r, fit.profile)
        io = f"{r.input_tokens}/{r.output_tokens}"
        out.append({"isl_osl": io, "in_published_yaml": io in PUBLISHED_TRTLLM_POINTS,
                    "measured_tok_s": r.value,
                    "predicted_tok_s": pred, "error_pct": (pred / r.value - 1.0) * 100,
                    "datasheet_guess_error_pct": (guess / r.value - 1.0) * 100,
                    "full_fit_error_pct": (full / r.value - 1.0) * 100})
    return out


def gemm_roofline_table(gpu: str) -> list[dict]:
    """Achieved fractions of the datasheet HBM bandwidth and BF16 peak of the GEMM operator rows
    per token count (median and range over models / TP): shows whether bandwidth efficiency
    depends on the batch (it would if the memory-bound fractions moved below the knee)."""
    hw = HardwareProfile.from_catalog(gpu)
    by: dict[int, list[tuple[float, float]]] = {}
    for r in load_rows("gemm"):
        if r.gpu == gpu:
            by.setdefault(r.tokens, []).append(
                (r.weight_bytes / r.value / hw.datasheet.hbm_bytes_per_s,
                 r.flop / r.value / hw.datasheet.peak_bf16_flop_per_s))
    out = []
    for n in sorted(by):
        bw, fl = np.array([x[0] for x in by[n]]), np.array([x[1] for x in by[n]])
        out.append({"tokens": n, "rows": len(bw), "hbm_fraction_median": float(np.median(bw)),
                    "hbm_fraction_min": float(bw.min()), "hbm_fraction_max": float(bw.max()),
                    "peak_fraction_median": float(np.median(fl)),
                    "peak_fraction_min": float(fl.min()), "peak_fraction_max": float(fl.max())})
    return out


def width_diagnostic(fit: GpuFit) -> dict | None:
    """Training residuals of the fitted profile by model width, and the curve
    MFU = a x d / (d + d_half) fitted to the MFU each dense row implies (d = hidden size).
    A diagnostic for the cost-model contract, NOT shipped: the contract's MFU depends on tokens
    per GPU only. None when the GPU has fewer than two widths of dense training rows."""
    rows = [r for r in load_rows("training") if r.gpu == fit.gpu and r.dtype == "bf16"
            and not model_spec(r.model).num_experts]
    widths = sorted({model_spec(r.model).hidden_size for r in rows})
    if len(widths) < 2:
        return None
    hw = fit.profile
    ratio = np.array([predict_s(r, hw) / measured_s(r) for r in rows])  # > 1: model too slow
    implied = hw.efficiency.train_mfu * ratio                         # MFU each row implies
    d = np.array([float(model_spec(r.model).hidden_size) for r in rows])
    specs = [ParamSpec("a", 0.5, 0.01, 1.0), ParamSpec("d_half", 500.0, 1.0, 1e6)]
    res = fit_positive(specs, lambda v: (d + v["d_half"]) / (v["a"] * d), 1.0 / implied)
    by_width = {}
    for w in widths:
        sel = d == w
        by_width[str(w)] = {"rows": int(sel.sum()),
                            "median_pred_over_meas_time_pct": float(np.median(ratio[sel] - 1) * 100),
                            "implied_mfu_median": float(np.median(implied[sel]))}
    flat = np.abs(ratio - 1.0)
    return {"by_hidden_size": by_width, "curve": {"a": res.values["a"], "d_half": res.values["d_half"],
                                                   "stderr": res.stderr},
            "median_abs_err_pct_flat": float(np.median(flat) * 100),
            "median_abs_err_pct_width_curve": res.median_abs_rel_error * 100,
            "note": "diagnostic only: the cost-model contract has no width term"}


def report(fit: GpuFit) -> dict:
    groups = []
    for g in fit.groups:
        groups.append({"group": g.group, "sources": g.sources, "terms": g.terms,
                       "median_abs_err_pct": g.median_abs_err_pct,
                       "max_abs_err_pct": g.max_abs_err_pct, "cv": g.cv(),
                       "folds": [{k: v for k, v in f.items() if k != "profile"} for f in g.folds]})
    return {"gpu": fit.gpu, "sources": fit.sources, "fitted_terms": fit.fitted_terms,
            "rows_excluded": fit.excluded, "groups": groups,
            "trtllm_llama8b_held_out": trtllm_holdout(fit),
            "gemm_roofline_by_tokens": gemm_roofline_table(fit.gpu),
            "training_mfu_vs_width": width_diagnostic(fit)}


def write(fit: GpuFit, date: str, profiles_dir: Path = PROFILES_DIR,
          package_dir: Path = PACKAGE_PROFILES_DIR) -> Path:
    prof = public_profile(fit, date)
    path = prof.save(profiles_dir / f"{fit.gpu}.public.yaml")
    path.write_text(f"# Public-measurement profile written by `python -m calibration.public_fit`.\n"
                    f"# Cross-validation table: {fit.gpu}.public.fit.json\n" + path.read_text())
    side = profiles_dir / f"{fit.gpu}.public.fit.json"
    side.write_text(json.dumps(finite(report(fit)), indent=1) + "\n")
    package_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, package_dir / path.name)
    return path


def dataset_counts(public_dir: Path = PUBLIC_DIR) -> dict[str, dict[str, dict[str, int]]]:
    """Rows per table, per GPU, per source."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for kind in KINDS:
        c: dict[str, dict[str, int]] = {}
        for r in load_rows(kind, public_dir):
            c.setdefault(r.gpu, {}).setdefault(r.source, 0)
            c[r.gpu][r.source] += 1
        out[kind] = c
    return out


def _table(fit: GpuFit) -> str:
    lines = [f"== {fit.gpu}: sources {', '.join(fit.sources)}"]
    for g in fit.groups:
        lines.append(f"  [{g.group}] rows {g.sources}; in-sample median |err| "
                     f"{g.median_abs_err_pct:.1f}% (max {g.max_abs_err_pct:.1f}%)")
        for t, c in g.cv().items():
            se = c["stderr"]
            se_s = f"{se:.3g}" if se is not None and math.isfinite(se) else "n/a"
            loso = c["loso_median_abs_err_pct"]
            folds = ", ".join(f"w/o {k}: {v:.3g}" if v is not None else f"w/o {k}: (not fitted)"
                              for k, v in c["fold_values"].items())
            flag = " (at bound; not shipped)" if not c["shipped"] else (" (at bound)" if c["at_bound"] else "")
            lines.append(f"    {t:24s} {c['value']:.4g}{flag} +- {se_s:8s} LOSO median |err| "
                         f"{'%.1f%%' % loso if loso is not None else 'n/a (one source)'}  {folds}")
        for f in g.folds:
            lines.append(f"      held out {f['held_out']} ({f['rows']} rows): median |err| "
                         f"{f['median_abs_err_pct']:.1f}%, max {f['max_abs_err_pct']:.1f}%")
    wd = width_diagnostic(fit)
    if wd:
        c = wd["curve"]
        lines.append("  training residual by hidden size (predicted/measured time - 1): " + ", ".join(
            f"{w}: {v['median_pred_over_meas_time_pct']:+.0f}%" for w, v in wd["by_hidden_size"].items()))
        lines.append(f"    width curve MFU = {c['a']:.3f} x d / (d + {c['d_half']:.0f}) (diagnostic, not "
                     f"shipped): median |err| {wd['median_abs_err_pct_flat']:.1f}% -> "
                     f"{wd['median_abs_err_pct_width_curve']:.1f}%")
    ho = trtllm_holdout(fit)
    if ho:
        lines.append("  TensorRT-LLM v1.0 Llama-3.1-8B FP8 rows, predicted with trtllm-perf-overview "
                     "(all versions) held out:")
        six = [abs(r["error_pct"]) for r in ho if r["in_published_yaml"]]
        six_guess = [abs(r["datasheet_guess_error_pct"]) for r in ho if r["in_published_yaml"]]
        for r in ho:
            lines.append(f"  {'*' if r['in_published_yaml'] else ' '} {r['isl_osl']:>10s}  measured {r['measured_tok_s']:8.0f}  predicted "
                         f"{r['predicted_tok_s']:8.0f}  error {r['error_pct']:+6.1f}%   (datasheet "
                         f"guesses {r['datasheet_guess_error_pct']:+6.1f}%, full fit "
                         f"{r['full_fit_error_pct']:+6.1f}%)")
        if six:
            lines.append(f"    * = published.yaml rows: median |err| {np.median(six):.1f}%, "
                         f"max {max(six):.1f}% (datasheet guesses: median "
                         f"{np.median(six_guess):.1f}%, max {max(six_guess):.1f}%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fit public-measurement GPU profiles")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    ap.add_argument("--no-write", action="store_true", help="do not write profiles")
    ap.add_argument("--gpu", action="append", help="only these catalog GPUs")
    args = ap.parse_args(argv)
    load_sources()  # fail early on a broken sources.yaml
    gpus = args.gpu or sorted({g for c in dataset_counts().values() for g in c})
    date = dt.date.today().isoformat()
    reports = {}
    for gpu in gpus:
        fit = fit_gpu(gpu)
        if fit is None:
            print(f"{gpu}: no usable rows; keeps datasheet guesses", file=sys.stderr)
            continue
        if not fit.fitted_terms:
            print(f"{gpu}: every fitted group saturated a fraction of peak (see its table); no "
                  "profile shipped, it keeps datasheet guesses", file=sys.stderr)
            if not args.no_write:
                for stale in (PROFILES_DIR / f"{gpu}.public.yaml",
                              PACKAGE_PROFILES_DIR / f"{gpu}.public.yaml"):
                    stale.unlink(missing_ok=True)
            reports[gpu] = report(fit)
            if not args.json:
                print(_table(fit))
            continue
        if not args.no_write:
            write(fit, date)
        reports[gpu] = report(fit)
        if not args.json:
            print(_table(fit))
    if args.json:
        print(json.dumps(finite({"dataset": dataset_counts(), "gpus": reports}), indent=1))
    else:
        print("\nrows per table / gpu / source:")
        for kind, c in dataset_counts().items():
            for gpu, by in sorted(c.items()):
                print(f"  {kind:12s} {gpu:10s} {by}")
    return 0
