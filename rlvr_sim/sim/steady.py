"""Steady state of a simulated run: which first steps are warm-up, and whether the rest is steady.

`detect(times_s, min_warmup)` decides, from the step times in order:
- the warm-up cut `d` (steps 0..d-1 are pipeline fill / warm-up, excluded from the steady mean):
  MSER (White 1997, "An effective truncation heuristic for bias reduction in simulation output"):
  the `d` minimising sum((t_i - mean_d)^2) / (n - d)^2 over the steps that remain, searched in
  [min_warmup, n // 2]; never below `min_warmup` (async: the staleness bound eta, whose first eta
  steps cannot overlap training yet) unless the run is shorter than that; `max_warmup=0` for
  sync runs, whose steps all start from the same empty pipeline (no transient to cut);
- whether what remains is steady: at least `min_steady` steps (`min_steady_pipelined` in runs
  whose steps overlap, staleness > 0: their step times are autocorrelated, often alternating
  long and short, and a streak of 4 similar steps right after the cut passed the test 6-8 %
  below the long-run mean; benchmarks/bench_steady.py measures it); no drift (the means of the first
  and second half of the remaining steps (even lengths) differ by at most `rel_tol` of the mean
  plus two standard errors of that difference, so i.i.d. noise does not count as drift); the
  mean known to `rel_tol` (its standard error, from batch means, at most `rel_tol` of the mean);
  and (given `ready_s`, when each step's batch had its last reward) batches made as fast as they
  are trained: over the remaining steps, the interval between batches ready is at most the mean
  step time (+ `rel_tol` + two standard errors). An async run with a large staleness bound
  fills a buffer of up to eta + 1 batches first; while the trainer uses it up, its steps are
  shorter than the rate the samplers and verifiers sustain, and that phase can last longer
  than the warm-up cut and look steady (a verifier-bound eta = 8 plan: steps of 59 s while
  batches come every 180 s). `production_interval` is that rate; `long_run_mean` = the larger
  of the two, what the steps settle to.

Limits: a run whose step time oscillates with a period longer than half the run, or converges
more slowly than the run is long, can look steady; `max_steps` in `Rule` bounds the cost and the
result then says `reached=False` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence


@dataclass(frozen=True)
class Rule:
    """When a run counts as steady (see the module docstring); `max_steps` caps an adaptive run."""

    rel_tol: float = 0.01
    min_steady: int = 4
    max_steps: int = 64
    min_steady_pipelined: int = 6

    def steady_needed(self, max_warmup: int | None) -> int:
        """Fewest steady steps a run needs: `min_steady`, or `min_steady_pipelined` (if larger)
        for a run whose steps overlap (`max_warmup` not 0: async with staleness > 0)."""
        return self.min_steady if max_warmup == 0 else max(self.min_steady, self.min_steady_pipelined)


# the planner ranks plans: a mean known to 2 % (about a quarter of the steps 1 % needs) is enough
# to order them, and the robustness draws spread far wider than that. The cap is 64 steps: a plan
# whose samplers fall behind and catch up in bursts (code RL, S3(tp1) T13 eta 8: a 550 s step,
# then 17 s ones) is steady only after ~54 steps, and at a 32-step cap its hours were 10.8 % low
# (benchmarks/bench_steady.py); few plans run that long (4 of 227 on the README example).
PLANNER_RULE = Rule(rel_tol=0.02, min_steady=4, max_steps=64)


@dataclass(frozen=True)
class SteadyState:
    """Warm-up cut and steadiness of one run's step times."""

    warmup_steps: int
    steady_steps: int
    mean_s: float
    rel_stderr: float          # standard error of the steady mean / mean (nan with < 2 steps)
    rel_drift: float           # |second-half mean - first-half mean| / mean (nan with < 2 steps)
    reached: bool
    reason: str                # why not steady ("" when reached)
    production_interval_s: float = math.nan   # seconds between batches ready over the window
    draining: bool = False     # batches made slower than trained (the production test failed)

    @property
    def long_run_mean_s(self) -> float:
        """The steady mean, or, while the trainer is still using up batches made ahead
        (`draining`), the batches' production interval: the pace its steps settle to."""
        return self.production_interval_s if self.draining else self.mean_s


def warmup_cut(times_s: Sequence[float], min_warmup: int, max_warmup: int | None = None) -> int:
    """MSER truncation point in [min_warmup, min(n // 2, max_warmup)] (0 when n <= min_warmup)."""
    n = len(times_s)
    if n <= min_warmup:
        return 0
    hi = max(min_warmup, n // 2)
    if max_warmup is not None:
        hi = max(min_warmup, min(hi, max_warmup))
    # suffix sums: sum and sum of squares of times_s[d:]
    best_d, best = min_warmup, math.inf
    s = sq = 0.0
    suffix: list[tuple[float, float]] = [(0.0, 0.0)] * (n + 1)
    for i in range(n - 1, -1, -1):
        s += times_s[i]
        sq += times_s[i] * times_s[i]
        suffix[i] = (s, sq)
    for d in range(min_warmup, hi + 1):
        m = n - d
        if m < 1:
            break
        total, total_sq = suffix[d]
        sse = max(total_sq - total * total / m, 0.0)
        stat = sse / (m * m)
        if stat < best * (1 - 1e-12):
            best_d, best = d, stat
    return best_d


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _var(values: Sequence[float], mean: float) -> float:
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0


def batch_means_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean from non-overlapping batch means of 1, 2 and 4 steps (each with
    at least 4 batches), the smallest: async pipelines often alternate long and short steps, whose
    means of pairs are steady although single steps are not (the i.i.d. formula would overstate
    the error); a slow positive drift is the drift test's job. When the batch size does not divide
    the steps, batches aligned to the last step and to the first are both formed and the larger
    error kept, so no step is left out: the step left out used to be the first after the warm-up
    cut, the likeliest outlier (a verifier-bound eta = 8 plan's last 20 s drain step among 190 s
    ones counted in the mean but not in its error; hours 8 % low)."""
    n = len(values)
    best = math.inf
    for b in (1, 2, 4):
        k = n // b
        if k < 4 and b > 1:
            break
        worst = 0.0
        for start in {n - k * b, 0}:
            means = [sum(values[start + i * b:start + (i + 1) * b]) / b for i in range(k)]
            mu = _mean(means)
            worst = max(worst, math.sqrt(_var(means, mu) / k) if k > 1 else math.inf)
        best = min(best, worst)
    return best


def production_interval(ready_s: Sequence[float], first: int) -> tuple[float, float]:
    """Mean seconds between consecutive batches ready from step `first` on, and its standard
    error (the intervals' spread / sqrt(count): a batch's last reward waits on its slowest
    sample, so single intervals scatter widely); (nan, nan) with < 2 steps."""
    n = len(ready_s)
    if n - first < 2:
        return math.nan, math.nan
    gaps = [b - a for a, b in zip(ready_s[first:-1], ready_s[first + 1:])]
    mean = (max(ready_s[first:]) - ready_s[first]) / len(gaps)
    return mean, math.sqrt(_var(gaps, _mean(gaps)) / len(gaps))


def detect(times_s: Sequence[float], min_warmup: int = 0, rule: Rule = Rule(),
           max_warmup: int | None = None, ready_s: Sequence[float] | None = None) -> SteadyState:
    """Warm-up cut and steadiness of `times_s` (module docstring). `max_warmup=0` where steps
    cannot have a transient (sync runs: every step starts from the same empty pipeline).
    `ready_s` (when each step's batch was ready) adds the production-rate test."""
    n = len(times_s)
    if n == 0:
        return SteadyState(0, 0, math.nan, math.nan, math.nan, False, "no step finished")
    d = warmup_cut(times_s, min_warmup, max_warmup)
    rest = list(times_s[d:])
    m = len(rest)
    mean = _mean(rest)
    needed = rule.steady_needed(max_warmup)
    if m < 2 or mean <= 0:
        reason = (f"{n} step(s) simulated: steady state needs at least "
                  f"{max(min_warmup, 0) + needed} (warm-up of {max(min_warmup, 0)} + "
                  f"{needed} steady steps)")
        return SteadyState(d, m, mean, math.nan, math.nan, False, reason)
    rel_se = batch_means_stderr(rest) / mean
    half = 2 * (m // 4) if m >= 4 else m // 2      # even halves: a period-2 pattern cancels
    first, second = rest[:half], rest[m - half:]
    m1, m2 = _mean(first), _mean(second)
    rel_drift = abs(m2 - m1) / mean
    se_diff = math.sqrt(_var(first, m1) / len(first) + _var(second, m2) / len(second)) / mean \
        if half > 1 else rel_se * 2
    reasons = []
    if m < needed:
        reasons.append(f"only {m} step(s) after {d} warm-up step(s); at least {needed} "
                       f"steady steps are needed ({d + needed} in all)")
    if rel_drift > rule.rel_tol + 2 * se_diff:
        reasons.append(f"step time still drifting ({rel_drift:.1%} between the halves of the "
                       f"last {m} steps)")
    if rel_se > rule.rel_tol:
        reasons.append(f"mean known to {rel_se:.1%} only (target {rule.rel_tol:.0%})")
    # from the batch after the cut on: the cut's own batch may be one of the eta + 1 made at once
    # when the run started (the fill), which is no measure of the pace
    interval, interval_se = production_interval(ready_s[:n], d + 1) if ready_s is not None else (math.nan, math.nan)
    # judged on as many steps as steadiness needs, and beyond both estimates' noise (two
    # standard errors each, plus the tolerance)
    draining = m >= needed and interval - 2 * interval_se > mean * (1 + rule.rel_tol + 2 * rel_se)
    if draining:
        reasons.append(f"batches ready every {interval:.4g} s but trained every {mean:.4g} s: the trainer "
                       "is still using up batches made ahead (hours use the batches' pace)")
    return SteadyState(d, m, mean, rel_se, rel_drift, not reasons, "; ".join(reasons), interval, draining)


# a plan raced against another stops once its hours are this many standard errors above
RACE_Z = 3.0


def hours_estimate(times_s: Sequence[float], state: SteadyState, total_steps: int) -> float:
    """Hours of a `total_steps` run from the simulated step times: the warm-up steps as they
    were plus the long-run mean for every later step (`metrics.summarize`'s extrapolation)."""
    d = state.warmup_steps
    return (sum(times_s[:d]) + state.long_run_mean_s * (total_steps - d)) / 3600


def slower_than(times_s: Sequence[float], hours: float, total_steps: int, min_warmup: int = 0,
                rule: Rule = Rule(), max_warmup: int | None = None, z: float = RACE_Z,
                ready_s: Sequence[float] | None = None) -> bool:
    """Whether a run whose first steps took `times_s` will certainly take longer than `hours`
    in all: `certainly_above` (below) exceeds it. The planner uses it to stop simulating a plan
    that cannot beat the plan it is compared with (`simulate(stop_above_hours=...)`)."""
    if not math.isfinite(hours):
        return False
    return certainly_above(times_s, total_steps, min_warmup, rule, max_warmup, z, ready_s) > hours


def certainly_above(times_s: Sequence[float], total_steps: int, min_warmup: int = 0,
                    rule: Rule = Rule(), max_warmup: int | None = None, z: float = RACE_Z,
                    ready_s: Sequence[float] | None = None) -> float:
    """The hours a run whose first steps took `times_s` certainly takes longer than in all
    (-inf: not known yet): the extrapolated hours with the steady mean lowered by `z` standard
    errors, and also with the mean of the latest half of the steady steps (a run still speeding
    up is not judged by its slow start). Known only once the steady test could first pass
    (warm-up + `rule.steady_needed` steps) and before the run is complete. Like the steady test
    it is statistical, with `z` = 3 about one wrong claim in 700 for a normal mean estimate. A
    raced plan records it as its stop level, so a search whose best later rises simulates the
    plan again only when its best passes this level, not the threshold it was stopped at."""
    n = len(times_s)
    needed = rule.steady_needed(max_warmup)
    if n < min_warmup + needed or n >= total_steps:
        return -math.inf
    state = detect(times_s, min_warmup, rule, max_warmup, ready_s)
    rest = list(times_s[state.warmup_steps:])
    if state.steady_steps < needed or not math.isfinite(state.rel_stderr):
        return -math.inf
    latest = _mean(rest[len(rest) // 2:])
    low_mean = min(state.mean_s, latest) * (1 - z * state.rel_stderr)
    if state.draining:                  # the pace the batches are made at
        low_mean = state.production_interval_s * (1 - z * state.rel_stderr)
    low = replace(state, mean_s=low_mean, draining=False)     # the lowered pace, whichever it was
    return hours_estimate(times_s, low, total_steps)
