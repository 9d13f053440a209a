"""Robust least squares over positive parameters, with the diagnostics a calibration reports.

Positive efficiency terms (fractions of peak, seconds of overhead, seconds per parameter) are
fitted in log space, so the optimiser never proposes a negative overhead and one step size suits
terms that differ by ten orders of magnitude. Residuals are relative (log of predicted over
measured), so a 1 ms kernel and a 10 s training step weigh the same; a robust loss (`soft_l1` or
`huber`) keeps a few runs disturbed by other load on the machine from dragging the fit.

Limits: uncertainties come from the Jacobian at the optimum (a local, Gaussian approximation);
they say nothing about a cost-model formula that is wrong in shape, which shows up instead as
structured residuals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares


@dataclass(frozen=True)
class ParamSpec:
    """One fitted, strictly positive parameter: its start value and bounds (same units)."""

    name: str
    initial: float
    lower: float
    upper: float

    @classmethod
    def inside(cls, name: str, current: float, lower: float, upper: float) -> "ParamSpec":
        """A parameter starting at `current` moved just inside its bounds (a start on a bound
        stalls the trust-region solver)."""
        return cls(name, float(min(max(current, lower * 1.01), upper * 0.99)), lower, upper)

    def __post_init__(self) -> None:
        if not (0 < self.lower <= self.initial <= self.upper):
            raise ValueError(f"parameter {self.name}: need 0 < lower <= initial <= upper, "
                             f"got {self.lower}, {self.initial}, {self.upper}")


@dataclass
class FitResult:
    """Fitted values with their 1-sigma uncertainty and goodness of fit."""

    values: dict[str, float]
    stderr: dict[str, float]              # 1-sigma, same units as the value
    rel_stderr: dict[str, float]          # stderr / value
    residuals_log: np.ndarray             # log(predicted / measured) per measurement
    predicted: np.ndarray
    measured: np.ndarray
    r2_log: float                         # R^2 of log(seconds)
    r2: float                             # R^2 of seconds
    rms_rel_error: float                  # sqrt(mean((pred/meas - 1)^2))
    median_abs_rel_error: float
    cost: float
    success: bool
    message: str
    n_evaluations: int
    at_bound: list[str] = field(default_factory=list)


def r_squared(measured: np.ndarray, predicted: np.ndarray) -> float:
    """1 - SS_res / SS_tot; nan when the measurements do not vary."""
    ss_tot = float(np.sum((measured - measured.mean()) ** 2))
    if ss_tot == 0:
        return float("nan")
    return 1.0 - float(np.sum((measured - predicted) ** 2)) / ss_tot


def fit_positive(
    specs: Sequence[ParamSpec],
    predict_s: Callable[[dict[str, float]], np.ndarray],
    measured_s: np.ndarray,
    loss: str = "soft_l1",
    f_scale: float = 0.1,
    weights: np.ndarray | None = None,
) -> FitResult:
    """Fit `specs` so that `predict_s(values)` matches `measured_s` in relative terms.

    `predict_s` maps a {name: value} dict to predicted seconds, one per measurement. `f_scale`
    is the relative error (log units) beyond which the robust loss stops growing quadratically.
    `weights` (optional, one per measurement) scale each residual.
    """
    measured_s = np.asarray(measured_s, dtype=float)
    if np.any(measured_s <= 0):
        raise ValueError("every measured time must be positive")
    if len(measured_s) < len(specs):
        raise ValueError(f"{len(measured_s)} measurements cannot determine {len(specs)} parameters")
    names = [s.name for s in specs]
    lo = np.log([s.lower for s in specs])
    hi = np.log([s.upper for s in specs])
    x0 = np.clip(np.log([s.initial for s in specs]), lo + 1e-9, hi - 1e-9)
    w = np.ones_like(measured_s) if weights is None else np.asarray(weights, dtype=float)
    log_meas = np.log(measured_s)

    def values_of(x: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(names, np.exp(x))}

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = np.asarray(predict_s(values_of(x)), dtype=float)
        return w * (np.log(np.maximum(pred, 1e-300)) - log_meas)

    sol = least_squares(residuals, x0, bounds=(lo, hi), loss=loss, f_scale=f_scale,
                        x_scale=1.0, diff_step=1e-4, max_nfev=400 * (len(specs) + 1))
    values = values_of(sol.x)
    pred = np.asarray(predict_s(values), dtype=float)
    res = np.log(pred) - log_meas
    stderr_log = _log_stderr(sol.jac, res * w, len(specs))
    stderr = {n: values[n] * s for n, s in zip(names, stderr_log)}
    span = hi - lo
    at_bound = [n for n, x, a, b, d in zip(names, sol.x, lo, hi, span)
                if min(x - a, b - x) < 1e-3 * max(d, 1.0)]
    rel = pred / measured_s - 1.0
    return FitResult(
        values=values, stderr=stderr,
        rel_stderr={n: float(s) for n, s in zip(names, stderr_log)},
        residuals_log=res, predicted=pred, measured=measured_s,
        r2_log=r_squared(log_meas, np.log(pred)), r2=r_squared(measured_s, pred),
        rms_rel_error=float(np.sqrt(np.mean(rel ** 2))),
        median_abs_rel_error=float(np.median(np.abs(rel))),
        cost=float(sol.cost), success=bool(sol.success), message=str(sol.message),
        n_evaluations=int(sol.nfev), at_bound=at_bound,
    )


def _log_stderr(jac: np.ndarray, res: np.ndarray, n_params: int) -> np.ndarray:
    """1-sigma of each log-parameter from J^T J at the optimum (inf where not identifiable)."""
    dof = max(len(res) - n_params, 1)
    s2 = float(np.sum(res ** 2)) / dof
    jtj = jac.T @ jac
    cov = np.linalg.pinv(jtj) * s2
    diag = np.diag(cov).copy()
    # a direction with no curvature is unidentifiable: report inf, not a pinv artefact of 0
    _, sing, _ = np.linalg.svd(jtj)
    if sing.size and sing[-1] < 1e-12 * max(sing[0], 1e-300):
        null = np.abs(np.linalg.svd(jtj)[2][-1]) > 0.1
        diag[null] = np.inf
    return np.sqrt(np.maximum(diag, 0.0))
