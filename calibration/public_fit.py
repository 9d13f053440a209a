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

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.lsq import FitResult, ParamSpec, fit_positive
from calibration.public_data import (KINDS, PUBLIC_DIR, DecodeRow, TrainingRow, load_rows,
                                     model_spec)
from calibration.public_predict import collective_in_fit, measured_s, predict_s
from rlvr_sim.hardware import CalibrationInfo, HardwareProfile

ROOT: Path = Path(__file__).resolve().parent.parent
PROFILES_DIR: Path = ROOT / "profiles"
PACKAGE_PROFILES_DIR: Path = ROOT / "rlvr_sim" / "catalog" / "profiles"

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



def main(argv: list[str] | None = None) -> int:
    """`python -m calibration.public_fit`: fit, write and report (calibration.public_report)."""
    from calibration.public_report import main as fit_write_report

    return fit_write_report(argv)


if __name__ == "__main__":
    raise SystemExit(main())
