"""Fit per-GPU efficiency profiles to the public-measurement dataset, with leave-one-source-out CV.

    python -m calibration.public_fit [--json] [--no-write] [--gpu NAME ...]

For each catalog GPU with rows in calibration/public/, three groups of terms are fitted in order,
each with `calibration.lsq.fit_positive` (log residuals, soft-L1) on the rows that inform it,
every earlier group's values held fixed:
    collectives  link_eff, collective_latency_s            (intra-node all-reduce rows)
    inference    decode_bw_eff, decode_mfu, prefill_mfu,   (GEMM operator rows and offline
                 decode_overhead_s                          decode throughput rows)
    training     train_mfu, train_mfu_half_tokens,         (pre-training throughput rows;
                 grouped_gemm_eff                           MoE rows for the grouped-GEMM term)
A term is fitted only when some row of the fold depends on it (decode_overhead_s needs decode
rows; train_mfu_half_tokens needs two or more distinct tokens-per-GPU values of dense rows;
grouped_gemm_eff needs MoE rows and the training group needs dense rows, else MoE rows alone would
confound the two); the others keep the datasheet default. Every source gets the same total weight inside a group.

Leave-one-source-out: for each group with rows from two or more sources, each source is held out
in turn, the group is refitted on the others, and the held-out rows are predicted; the report
gives per term the value of every fold and per held-out source the median / max absolute error.
A group fitted from one source has no cross-validation error (reported as None, never 0).

Writes profiles/<gpu>.public.yaml and profiles/<gpu>.public.fit.json (CV table, residuals) and
copies the YAML to rlvr_sim/catalog/profiles/ (package data: `HardwareProfile.default_for`).
Limits: expert-parallel all-to-all is not in the cost model, so grouped_gemm_eff absorbs it; no
term depends on the decode batch other than through the cost model's roofline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.fit import finite
from calibration.lsq import FitResult, ParamSpec, fit_positive
from calibration.public_data import (KINDS, PUBLIC_DIR, DecodeRow, TrainingRow, load_rows,
                                     load_sources, model_spec)
from calibration.public_predict import collective_in_fit, measured_s, predict_s
from rlvr_sim.hardware import CalibrationInfo, HardwareProfile

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "profiles"
PACKAGE_PROFILES_DIR = ROOT / "rlvr_sim" / "catalog" / "profiles"

# term -> (initial, lower, upper); within rlvr_sim.hardware.Efficiency's validators
BOUNDS: dict[str, tuple[float, float, float]] = {
    "link_eff": (0.5, 1e-3, 1.0),
    "collective_latency_s": (2e-5, 1e-7, 1e-2),
    "decode_bw_eff": (0.7, 0.02, 1.0),
    "decode_mfu": (0.5, 0.01, 1.0),
    "prefill_mfu": (0.6, 0.01, 1.0),
    "decode_overhead_s": (3e-3, 1e-6, 0.1),
    "train_mfu": (0.45, 0.02, 1.0),
    "train_mfu_half_tokens": (500.0, 1.0, 1e6),
    "grouped_gemm_eff": (0.5, 0.01, 1.0),
}


@dataclass(frozen=True)
class Group:
    name: str
    kinds: tuple[str, ...]
    terms: tuple[str, ...]


# a term that ends at its lower bound here means "no such effect in the data": the profile keeps
# None (the contract's flat MFU) rather than a bound value
UNSHIPPED_AT_LOWER_BOUND = ("train_mfu_half_tokens",)

GROUPS = (
    Group("collectives", ("collectives",), ("link_eff", "collective_latency_s")),
    Group("inference", ("gemm", "decode"),
          ("decode_bw_eff", "decode_mfu", "prefill_mfu", "decode_overhead_s")),
    Group("training", ("training",), ("train_mfu", "train_mfu_half_tokens", "grouped_gemm_eff")),
)


def fit_rows(kind: str, rows: list) -> list:
    """Rows of a kind that enter a fit (collectives: intra-node all-reduce only; training: BF16)."""
    if kind == "collectives":
        return [r for r in rows if collective_in_fit(r)]
    if kind == "training":
        return [r for r in rows if r.dtype == "bf16"]
    return list(rows)


def informed_terms(group: Group, rows: list) -> list[str]:
    """Terms of `group` that some row depends on."""
    has_decode = any(isinstance(r, DecodeRow) for r in rows)
    training = [r for r in rows if isinstance(r, TrainingRow)]
    dense = [r for r in training if not model_spec(r.model).num_experts]
    moe = [r for r in training if model_spec(r.model).num_experts]
    if training and not dense:  # MoE rows alone cannot separate train_mfu from grouped_gemm_eff
        return []
    out = []
    for t in group.terms:
        if t == "decode_overhead_s" and not has_decode:
            continue
        if t == "train_mfu_half_tokens" and len({r.tokens_per_gpu_micro_batch for r in dense}) < 2:
            continue
        if t == "grouped_gemm_eff" and not moe:
            continue
        out.append(t)
    return out if rows else []


def with_values(hw: HardwareProfile, values: Mapping[str, float | None]) -> HardwareProfile:
    """`hw` with these efficiency terms set (None: the contract's "not measured")."""
    eff = hw.efficiency.model_copy(update=values)
    return hw.model_copy(update={"efficiency": eff})


def source_weights(rows: list) -> np.ndarray:
    counts = Counter(r.source for r in rows)
    n, k = len(rows), len(counts)
    return np.array([math.sqrt(n / (k * counts[r.source])) for r in rows])


def fit_terms(rows: list, base: HardwareProfile, terms: list[str],
              initial: dict[str, float] | None = None) -> tuple[FitResult, HardwareProfile]:
    """Robust fit of `terms` so that the cost model reproduces `rows`; other terms from `base`."""
    start = dict(initial or {})
    specs = []
    for t in terms:
        init, lo, hi = BOUNDS[t]
        v = start.get(t, getattr(base.efficiency, t, None) or init)
        specs.append(ParamSpec(t, float(min(max(v, lo), hi)), lo, hi))
    measured = np.array([measured_s(r) for r in rows])

    def predict_all(values: dict[str, float]) -> np.ndarray:
        hw = with_values(base, values)
        return np.array([predict_s(r, hw) for r in rows])

    res = fit_positive(specs, predict_all, measured, weights=source_weights(rows))
    return res, with_values(base, res.values)


def _abs_err_pct(rows: list, hw: HardwareProfile) -> np.ndarray:
    return np.array([abs(measured_s(r) / predict_s(r, hw) - 1.0) * 100 for r in rows])


@dataclass
class GroupFit:
    """One group's fit on one GPU and its leave-one-source-out folds."""

    group: str
    sources: dict[str, int]                    # rows per source
    terms: list[str]
    values: dict[str, float]
    stderr: dict[str, float]
    median_abs_err_pct: float
    max_abs_err_pct: float
    folds: list[dict] = field(default_factory=list)
    at_bound: list[str] = field(default_factory=list)
    unidentified: list[str] = field(default_factory=list)

    def cv(self) -> dict:
        """Per term: value, 1-sigma, value per fold, median held-out error over folds."""
        out = {}
        for t in self.terms:
            out[t] = {
                "value": self.values[t], "stderr": self.stderr.get(t),
                "at_bound": t in self.at_bound, "shipped": t not in self.unidentified,
                "fold_values": {f["held_out"]: f["values"].get(t) for f in self.folds},
                "loso_median_abs_err_pct": (
                    float(np.median([f["median_abs_err_pct"] for f in self.folds]))
                    if self.folds else None),
            }
        return out


def physically_saturated(values: dict[str, float], at_bound: list[str]) -> list[str]:
    """Fraction-of-peak terms (upper bound 1.0) that the fit pushed to 100%: the data ask for
    more than the datasheet allows, so the group's values are compensation, not measurement."""
    return [t for t in at_bound if BOUNDS[t][2] == 1.0 and values[t] >= 0.99]


def fit_group(group: Group, rows: list, base: HardwareProfile) -> tuple[GroupFit | None, HardwareProfile]:
    terms = informed_terms(group, rows)
    if not terms:
        return None, base
    res, hw = fit_terms(rows, base, terms)
    unidentified = [t for t in res.at_bound if t in UNSHIPPED_AT_LOWER_BOUND
                    and res.values[t] <= BOUNDS[t][1] * 1.01]
    if unidentified:  # the data show no such effect: ship the contract's None (flat), not a bound
        hw = with_values(hw, {t: None for t in unidentified})
    if physically_saturated(res.values, res.at_bound):
        # an achieved fraction at 100% of peak is not a measurement of that fraction: the other
        # terms of the group then compensate for what the cost model lacks. Ship none of them.
        unidentified = list(terms)
        hw = base
    errs = _abs_err_pct(rows, hw)
    gf = GroupFit(group.name, dict(Counter(r.source for r in rows)), terms, dict(res.values),
                  {t: res.stderr[t] for t in terms}, float(np.median(errs)), float(errs.max()),
                  at_bound=list(res.at_bound), unidentified=unidentified)
    sources = sorted(gf.sources)
    if len(sources) >= 2:
        for s in sources:
            gf.folds.append(hold_out(group, rows, base, s))
    return gf, hw


def hold_out(group: Group, rows: list, base: HardwareProfile, source: str) -> dict:
    """Refit `group` without `source` and predict its rows (terms no other source informs keep
    `base`'s values)."""
    train = [r for r in rows if r.source != source]
    test = [r for r in rows if r.source == source]
    terms = informed_terms(group, train)
    hw = base
    values: dict[str, float] = {}
    if terms:
        res, hw = fit_terms(train, base, terms)
        values = dict(res.values)
    errs = _abs_err_pct(test, hw)
    return {"held_out": source, "rows": len(test), "fitted_on": sorted({r.source for r in train}),
            "values": values, "median_abs_err_pct": float(np.median(errs)),
            "max_abs_err_pct": float(errs.max()), "profile": hw}


@dataclass
class GpuFit:
    gpu: str
    profile: HardwareProfile
    groups: list[GroupFit]
    excluded: dict[str, int]

    @property
    def fitted_terms(self) -> list[str]:
        """Terms the profile carries from the fit (unidentified ones excluded)."""
        return [t for g in self.groups for t in g.terms if t not in g.unidentified]

    @property
    def sources(self) -> list[str]:
        return sorted({s for g in self.groups for s in g.sources})


def rows_for_gpu(gpu: str, public_dir: Path = PUBLIC_DIR) -> tuple[dict[str, list], dict[str, int]]:
    """Rows of each kind that enter the fit, and how many rows of each kind were left out."""
    used, excluded = {}, {}
    for kind in KINDS:
        rows = [r for r in load_rows(kind, public_dir) if r.gpu == gpu]
        keep = fit_rows(kind, rows)
        used[kind] = keep
        if len(rows) > len(keep):
            excluded[kind] = len(rows) - len(keep)
    return used, excluded


def fit_gpu(gpu: str, public_dir: Path = PUBLIC_DIR) -> GpuFit | None:
    """Fit the groups in order; None when the GPU has no usable row."""
    rows, excluded = rows_for_gpu(gpu, public_dir)
    hw = HardwareProfile.from_catalog(gpu)
    fits = []
    for group in GROUPS:
        grows = [r for k in group.kinds for r in rows[k]]
        gf, hw = fit_group(group, grows, hw)
        if gf is not None:
            fits.append(gf)
    if not fits:
        return None
    return GpuFit(gpu, hw, fits, excluded)


def public_profile(fit: GpuFit, date: str) -> HardwareProfile:
    """The shippable profile: fitted terms, datasheet defaults for the rest, provenance."""
    guessed = [t for t in BOUNDS if t not in fit.fitted_terms] + ["(all other terms)"]
    source = (f"public-fit {date}: {', '.join(fit.sources)} (fitted: {', '.join(fit.fitted_terms)}; "
              f"datasheet guesses: {', '.join(guessed)})")
    rel = {t: g.stderr[t] / g.values[t] for g in fit.groups for t in g.terms
           if g.stderr.get(t) is not None and math.isfinite(g.stderr[t]) and g.values[t] > 0}
    info = CalibrationInfo(
        device=f"public measurements ({fit.gpu})", date=date,
        rows=sum(sum(g.sources.values()) for g in fit.groups),
        r2={}, rel_uncertainty=rel,
        notes=(_cv_notes(fit) +
               "efficiencies fitted by `python -m calibration.public_fit` to calibration/public/ "
               f"(sources: {', '.join(fit.sources)}); terms not fitted keep the generic datasheet "
               "defaults of rlvr_sim.hardware.Efficiency; ""cross-validation table in profiles/" f"{fit.gpu}.public.fit.json"))
    return HardwareProfile(gpu=fit.gpu, source=source, citation=fit.profile.citation,
                           datasheet=fit.profile.datasheet, efficiency=fit.profile.efficiency,
                           calibration=info)


# the ISL/OSL points of /work/shared/reference/published.yaml `decoding:` (TensorRT-LLM
# Llama-3.1-8B FP8 on one H100), marked in the held-out table
TRTLLM_V1_PREFIX = "v1.0 document"   # rows of the TensorRT-LLM v1.0 tables (published.yaml's)
PUBLISHED_TRTLLM_POINTS = ("128/128", "128/2048", "1000/1000", "1000/2000", "2048/2048", "20000/2000")


def _cv_notes(fit: GpuFit) -> str:
    """One clause per group: its sources, its leave-one-source-out error or why there is none,
    and the terms that ended at a bound (compensating for something the cost model lacks)."""
    parts = []
    for g in fit.groups:
        if g.folds:
            cv = "LOSO median |err| " + ", ".join(
                f"w/o {f['held_out']} {f['median_abs_err_pct']:.0f}%" for f in g.folds)
        else:
            cv = "no cross-validation (one source)"
        bound = [t for t in g.at_bound if t not in g.unidentified]
        parts.append(f"{g.group}: {cv}" + (f"; at bound: {', '.join(bound)}" if bound else ""))
    return "; ".join(parts) + ". "


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


if __name__ == "__main__":
    raise SystemExit(main())
