"""Fit the cost model's efficiency terms to micro-benchmark rows; write a hardware profile.

One joint robust fit: every row is predicted by the simulator's own cost functions
(`calibration.predict.predict_s`) under a candidate profile, and `calibration.lsq.fit_positive`
adjusts only the efficiency terms some row depends on (`predict.TERMS_BY_KIND`); the others keep
the base profile's values. Each kind of row gets the same total weight, so 40 decode rows do not
drown 6 weight-sync rows. Derived rates (effective FLOP/s and bytes/s) are reported next to the
fractions of the datasheet peaks the profile stores.

Verifier latency is not a hardware term: it is fitted separately (log-normal per task, from the
per-verification latencies) and kept in the profile's calibration notes and the fit report, for
scenarios to copy into `verifier.latency_s`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from calibration.harness import BenchKey
from calibration.lsq import FitResult, ParamSpec, fit_positive, r_squared
from calibration.predict import LSQ_KINDS, TERMS_BY_KIND, kind_of, predict_s, with_efficiency
from rlvr_sim.hardware import HardwareProfile

# term -> (initial, lower, upper); bounds respect rlvr_sim.hardware.Efficiency's validators.
TERM_BOUNDS: dict[str, tuple[float, float, float]] = {
    "decode_mfu": (0.2, 1e-4, 1.0),
    "decode_bw_eff": (0.3, 1e-4, 1.0),
    "kv_bw_eff": (0.3, 1e-4, 1.0),
    "decode_overhead_s": (2e-3, 1e-7, 2.0),
    "layer_overhead_s": (2e-4, 1e-8, 0.5),
    "decode_overlap": (0.5, 1e-3, 1.0),
    "skew_coef": (0.3, 1e-4, 0.999),
    "prefill_mfu": (0.3, 1e-4, 1.0),
    "prefill_overhead_s": (2e-3, 1e-7, 2.0),
    "train_mfu": (0.2, 1e-4, 1.0),
    "train_pass_overhead_s": (5e-3, 1e-7, 2.0),
    "optimizer_s_per_param": (1e-8, 1e-14, 1e-4),
    "train_overhead_s": (1e-2, 1e-7, 10.0),
    "bucket_latency_s": (1e-3, 1e-8, 2.0),
}


@dataclass
class KindSummary:
    """Goodness of fit of one kind of benchmark row."""

    kind: str
    rows: int
    r2: float
    median_abs_error_pct: float
    max_abs_error_pct: float


@dataclass
class ProfileFit:
    """A fitted profile and the evidence for it."""

    profile: HardwareProfile
    result: FitResult
    fitted_terms: list[str]
    kinds: list[KindSummary]
    derived: dict[str, float]
    keys: list[BenchKey] = field(repr=False, default_factory=list)

    def report(self) -> dict:
        """JSON-ready fit report: values, 1-sigma, R^2, residuals per kind, derived rates."""
        r = self.result
        return {
            "fitted": {t: {"value": r.values[t], "stderr": r.stderr[t],
                           "rel_stderr": r.rel_stderr[t]} for t in self.fitted_terms},
            "at_bound": r.at_bound,
            "r2": r.r2, "r2_log": r.r2_log, "rms_rel_error": r.rms_rel_error,
            "median_abs_rel_error": r.median_abs_rel_error, "success": r.success,
            "message": r.message, "evaluations": r.n_evaluations,
            "kinds": [asdict(k) for k in self.kinds],
            "derived": self.derived,
            "residuals": [{"kind": kind_of(k), "model": k.model, "sequences": k.sequences,
                           "tokens": k.prompt_tokens + k.output_tokens,
                           "context_tokens_max": k.context_tokens_max,
                           "measured_s": float(m), "predicted_s": float(p)}
                          for k, m, p in zip(self.keys, r.measured, r.predicted)],
        }


def _kind_weights(kinds: list[str]) -> np.ndarray:
    counts = Counter(kinds)
    n, k = len(kinds), len(counts)
    return np.array([math.sqrt(n / (k * counts[x])) for x in kinds])


def terms_for(kinds: list[str]) -> list[str]:
    """Efficiency terms informed by the given row kinds that the cost model has, in TERM_BOUNDS
    order."""
    from rlvr_sim.hardware import Efficiency

    wanted = {t for kd in set(kinds) for t in TERMS_BY_KIND.get(kd, ())}
    return [t for t in TERM_BOUNDS if t in wanted and t in Efficiency.model_fields]


def fit_profile(rows: list[tuple[BenchKey, float]], base: HardwareProfile, dtype: str = "fp32",
                loss: str = "soft_l1", f_scale: float = 0.1,
                initial: dict[str, float] | None = None) -> ProfileFit:
    """Fit the efficiency terms of `base` to measured (row, seconds) pairs of LSQ kinds.

    `initial` overrides start values (the synthetic-recovery test starts away from the truth).
    Raises ValueError when no row is fittable.
    """
    rows = [(k, s) for k, s in rows if k.kind in LSQ_KINDS and s > 0]
    if not rows:
        raise ValueError("no benchmark rows of a fittable kind " + str(LSQ_KINDS))
    keys = [k for k, _ in rows]
    measured = np.array([s for _, s in rows], dtype=float)
    kinds = [kind_of(k) for k in keys]
    terms = terms_for(kinds)
    start = dict(initial or {})
    specs = []
    for t in terms:
        init, lo, hi = TERM_BOUNDS[t]
        cur = start.get(t, getattr(base.efficiency, t, None) or init)
        specs.append(ParamSpec(t, float(min(max(cur, lo), hi)), lo, hi))

    def predict_all(values: dict[str, float]) -> np.ndarray:
        hw = with_efficiency(base, values)
        cache: dict = {}
        return np.array([predict_s(k, hw, dtype, cache) for k in keys])

    result = fit_positive(specs, predict_all, measured, loss=loss, f_scale=f_scale,
                          weights=_kind_weights(kinds))
    profile = HardwareProfile.model_validate(
        with_efficiency(base, result.values).model_dump(mode="json"))
    return ProfileFit(profile=profile, result=result, fitted_terms=terms,
                      kinds=_kind_summaries(kinds, measured, result.predicted),
                      derived=derived_rates(profile), keys=keys)


def _kind_summaries(kinds: list[str], measured: np.ndarray, predicted: np.ndarray) -> list[KindSummary]:
    out = []
    for kd in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kd]
        m, p = measured[idx], predicted[idx]
        err = np.abs(p / m - 1.0) * 100
        out.append(KindSummary(kd, len(idx), r_squared(m, p), float(np.median(err)),
                               float(err.max())))
    return out


def derived_rates(hw: HardwareProfile) -> dict[str, float]:
    """Effective rates implied by the fractions (what the machine actually delivers)."""
    ds, eff = hw.datasheet, hw.efficiency
    return {
        "decode_flop_per_s": ds.peak_bf16_flop_per_s * eff.decode_mfu,
        "decode_bytes_per_s": ds.hbm_bytes_per_s * eff.decode_bw_eff,
        "prefill_flop_per_s": ds.peak_bf16_flop_per_s * eff.prefill_mfu,
        "train_flop_per_s": ds.peak_bf16_flop_per_s * eff.train_mfu,
        "optimizer_params_per_s": 1.0 / hw.optimizer_s_per_param,
    }


@dataclass(frozen=True)
class LatencyFit:
    """Log-normal fit of one task's verification latencies (scenario `lognormal` convention:
    `mean` is the mean of the distribution, `sigma` the std of log latency)."""

    task: str
    samples: int
    mean_s: float
    sigma: float
    p50_s: float
    p95_s: float
    max_s: float

    def as_scenario(self) -> dict:
        return {"dist": "lognormal", "mean": self.mean_s, "sigma": self.sigma,
                "cap": max(self.max_s * 2, self.p95_s * 4)}


def fit_latency(task: str, latencies_s: list[float]) -> LatencyFit:
    """Maximum-likelihood log-normal (mu, sigma of log x) reported as (mean, sigma)."""
    x = np.asarray([v for v in latencies_s if v > 0], dtype=float)
    if x.size < 2:
        raise ValueError(f"task {task}: need at least 2 positive latencies, got {x.size}")
    logs = np.log(x)
    mu, sigma = float(logs.mean()), float(logs.std(ddof=1))
    return LatencyFit(task, int(x.size), float(math.exp(mu + sigma ** 2 / 2)), sigma,
                      float(np.median(x)), float(np.quantile(x, 0.95)), float(x.max()))


def calibration_info(fit: ProfileFit, provenance: dict, verifier_median_s: dict[str, float],
                     notes: str) -> dict:
    """The profile's `calibration:` block (rlvr_sim.hardware.CalibrationInfo fields)."""
    r = fit.result
    return {"device": f"{provenance['device']} {provenance['device_name']}",
            "date": provenance["date_utc"], "torch_version": provenance["torch_version"] or "",
            "vllm_version": provenance["vllm_version"], "threads": provenance["threads"],
            "rows": len(fit.keys),
            "r2": {k.kind: k.r2 for k in fit.kinds if math.isfinite(k.r2)},
            "rel_uncertainty": {t: r.rel_stderr[t] for t in fit.fitted_terms
                                if math.isfinite(r.rel_stderr[t])},
            "verifier_latency_s": verifier_median_s, "notes": notes}


def write_profile(fit: ProfileFit, path: str | Path, source: str, notes: dict | None = None,
                  calibration: dict | None = None) -> tuple[Path, Path]:
    """Write the profile YAML (loadable by `HardwareProfile.load`; `calibration` fills its
    provenance block when the installed HardwareProfile has one) and `NAME.fit.json` beside it
    (full fit report, provenance, verifier latencies). Returns both paths."""
    path = Path(path)
    update: dict[str, object] = {"source": source}
    if calibration is not None and "calibration" in type(fit.profile).model_fields:
        update["calibration"] = calibration
    prof = HardwareProfile.model_validate(dict(fit.profile.model_dump(mode="json"), **update))
    prof.save(path)
    text = path.read_text()
    header = (f"# Hardware profile written by `rlvr-sim calibrate` ({source}).\n"
              f"# Fit diagnostics, provenance and verifier latencies: {path.stem}.fit.json\n")
    path.write_text(header + text)
    sidecar = path.with_name(path.stem + ".fit.json")
    payload = {"source": source, **(notes or {}), "fit": fit.report()}
    sidecar.write_text(json.dumps(finite(payload), indent=1, default=_json_default) + "\n")
    return path, sidecar


def finite(obj):
    """Replace non-finite floats (unidentified uncertainties) by None so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    return str(o)


def load_fit_notes(profile_path: str | Path) -> dict:
    """The sidecar of a profile (empty dict when absent)."""
    p = Path(profile_path)
    side = p.with_name(p.stem + ".fit.json")
    return json.loads(side.read_text()) if side.exists() else {}


def profile_yaml(fit: ProfileFit) -> str:
    return yaml.safe_dump(fit.profile.model_dump(mode="json"), sort_keys=False)
