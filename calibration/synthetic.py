"""Synthetic-recovery check: measurements made by the cost model itself (plus noise), refitted.

`python -m calibration.synthetic [--noise 0.03] [--seed 0]` prints, per efficiency term, the true
value, the fitted value, its 1-sigma and the error; tests/test_calibration_fit.py asserts on it.
The datasheet is fixed here (not the catalog's), so catalog edits do not move the regime.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from calibration.fit import ProfileFit, fit_profile
from calibration.harness import BenchKey
from calibration.microbench import FULL, Grid, planned_keys
from calibration.predict import LSQ_KINDS, predict_s, with_efficiency
from rlvr_sim.hardware import Efficiency, HardwareProfile

BASE = HardwareProfile.from_catalog("cpu-2core").with_overrides(
    peak_bf16_flop_per_s=100e9, peak_fp8_flop_per_s=100e9, hbm_bytes_per_s=20e9)
TRUTH = {k: v for k, v in dict(
    decode_mfu=0.12, decode_bw_eff=0.25, decode_overhead_s=4e-3, skew_coef=0.5,
    prefill_mfu=0.3, prefill_overhead_s=1.5e-3, train_mfu=0.15, optimizer_s_per_param=3e-9,
    train_overhead_s=8e-3, bucket_latency_s=2e-4, decode_overlap=0.4, train_pass_overhead_s=4e-3,
    layer_overhead_s=3e-4, kv_bw_eff=0.12).items() if k in Efficiency.model_fields}


def synthetic(truth: dict, grid: Grid = FULL, noise: float = 0.03,
              seed: int = 0) -> list[tuple[BenchKey, float]]:
    """(key, seconds) the cost model predicts under `truth`, times log-normal noise of `noise`."""
    hw = with_efficiency(BASE, truth)
    rng = np.random.default_rng(seed)
    keys = [k for k in planned_keys(grid) if k.kind in LSQ_KINDS]
    return [(k, predict_s(k, hw) * float(np.exp(rng.normal(0.0, noise)))) for k in keys]


def recover(truth: dict = TRUTH, noise: float = 0.03, seed: int = 0, grid: Grid = FULL) -> ProfileFit:
    """Fit starting from the catalog's efficiencies (not the truth)."""
    return fit_profile(synthetic(truth, grid, noise, seed), BASE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    fit = recover(noise=a.noise, seed=a.seed)
    r = fit.result
    print(f"{len(r.measured)} synthetic rows, noise {a.noise:.0%}: R^2 {r.r2:.4f}, "
          f"rms error {r.rms_rel_error:.3f}")
    print(f"{'term':<24}{'true':>11}{'fitted':>11}{'1-sigma':>10}{'error':>9}")
    for t in fit.fitted_terms:
        err = r.values[t] / TRUTH[t] - 1
        sig = r.rel_stderr[t]
        print(f"{t:<24}{TRUTH[t]:11.4g}{r.values[t]:11.4g}"
              f"{(f'{100 * sig:.1f}%' if math.isfinite(sig) else 'inf'):>10}{100 * err:+8.1f}%")


if __name__ == "__main__":
    main()
