"""Dynamic sampling (DAPO's filter, verl's `filter_groups`): expected rounds and waste.

With binary rewards, a prompt group of k samples carries no GRPO signal when its k rewards are
all equal (all 0 or all 1: every advantage is 0). Dynamic sampling drops those groups and keeps
generating rounds of `prompts_per_round = ceil(oversample_factor x prompts_per_step)` prompts
until the batch holds `prompts_per_step` groups with signal (the surplus is dropped, as verl
trims the batch), or `max_rounds` rounds were generated (then the step trains on the groups it
has, or on its last round when it has none; verl raises an error there instead). The
expectations below count groups WITH signal (`trained_groups_mean`); that fallback is not in them.

Pure functions of the pass rate, exact (binomial sums), so tests can check them by hand:
- one group has signal with probability q = 1 - E[p^k] - E[(1-p)^k] (p = the group's pass rate;
  p fixed: q = 1 - p^k - (1-p)^k; p ~ Beta(a, b): E[p^k] = prod_{i<k} (a+i)/(a+b+i));
- with S_r ~ Binomial(r x m, q) the signal groups after r rounds of m prompts,
  E[rounds] = sum_{r=0}^{R-1} P(S_r < P) (R = max_rounds, P = prompts_per_step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass



def beta_moment(a: float, b: float, k: int) -> float:
    """E[p^k] for p ~ Beta(a, b)."""
    out = 1.0
    for i in range(k):
        out *= (a + i) / (a + b + i)
    return out


def signal_probability(pass_rate: float, k: int, concentration: float | None = None) -> float:
    """P(a group of k samples has rewards that are not all equal).

    `concentration` c: the group's own rate is Beta(c p, c (1 - p)); None: exactly p."""
    if not 0.0 <= pass_rate <= 1.0:
        raise ValueError(f"pass_rate={pass_rate} is not a probability")
    if k < 2 or pass_rate in (0.0, 1.0):
        return 0.0
    if concentration is None:
        return 1.0 - pass_rate**k - (1.0 - pass_rate) ** k
    a, b = concentration * pass_rate, concentration * (1.0 - pass_rate)
    return 1.0 - beta_moment(a, b, k) - beta_moment(b, a, k)


def prompts_per_round(prompts_per_step: int, oversample_factor: float) -> int:
    """Prompts generated per round (verl's gen_batch_size); at least 1."""
    return max(1, math.ceil(prompts_per_step * oversample_factor - 1e-9))


@dataclass(frozen=True)
class RoundsEstimate:
    """Expected cost of one step's dynamic sampling (groups = prompts; x k for samples).

    rounds_mean: generation rounds; generated_groups_mean = rounds_mean x prompts_per_round;
    trained_groups_mean: groups with signal the step trains on (<= prompts_per_step; less only
    when max_rounds stops it); wasted_groups_mean = generated - trained (groups without signal
    plus the surplus beyond the batch); p_short: probability that the batch is not full after
    max_rounds."""

    signal_probability: float
    prompts_per_round: int
    rounds_mean: float
    generated_groups_mean: float
    trained_groups_mean: float
    wasted_groups_mean: float
    p_short: float

    @property
    def waste_fraction(self) -> float:
        """Generated groups that are not trained / generated groups."""
        return self.wasted_groups_mean / self.generated_groups_mean if self.generated_groups_mean else 0.0


def _binom_pmf(k: int, n: int, q: float) -> float:
    """P(X = k) for X ~ Binomial(n, q), through log-gamma (the simulator installs without scipy)."""
    if k < 0 or k > n:
        return 0.0
    if q <= 0.0 or q >= 1.0:
        return float(k == (n if q >= 1.0 else 0))
    log_p = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
             + k * math.log(q) + (n - k) * math.log1p(-q))
    return math.exp(log_p)


def _binom_cdf(k: int, n: int, q: float) -> float:
    """P(X <= k) for X ~ Binomial(n, q): the sum of the pmf (n is a few thousand at most here)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, sum(_binom_pmf(i, n, q) for i in range(k + 1)))


def expected_rounds(prompts_per_step: int, per_round: int, q: float,
                    max_rounds: int) -> RoundsEstimate:
    """Exact expectations for i.i.d. groups with signal probability q (see module docstring)."""
    if max_rounds < 1 or per_round < 1 or prompts_per_step < 1:
        raise ValueError("prompts_per_step, per_round and max_rounds must be >= 1")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q} is not a probability")
    if 0.0 < q < 1.0:       # log(q) of a subnormal q loses precision; 1e-12 changes nothing
        q = min(max(q, 1e-12), 1.0 - 1e-12)
    P, m = prompts_per_step, per_round
    short = [1.0] + [_binom_cdf(P - 1, r * m, q) for r in range(1, max_rounds + 1)]
    rounds = sum(short[:max_rounds])                      # sum_{r<R} P(S_r < P)
    # trained: P when the batch filled before the cap; else min(S_R, P) given S_{R-1} < P
    p_full_before_last = 1.0 - short[max_rounds - 1]
    n_prev = (max_rounds - 1) * m
    last = 0.0
    for s in range(P):
        w = _binom_pmf(s, n_prev, q) if n_prev else float(s == 0)
        if w == 0.0:
            continue
        j = range(m + 1)
        last += w * sum(_binom_pmf(x, m, q) * min(s + x, P) for x in j)
    trained = P * p_full_before_last + last
    generated = rounds * m
    return RoundsEstimate(q, m, rounds, generated, trained, generated - trained, short[max_rounds])


def estimate(prompts_per_step: int, samples_per_prompt: int, pass_rate: float,
             oversample_factor: float = 1.0, max_rounds: int = 1,
             concentration: float | None = None) -> RoundsEstimate:
    """`expected_rounds` from a pass rate and the dynamic-sampling settings."""
    q = signal_probability(pass_rate, samples_per_prompt, concentration)
    return expected_rounds(prompts_per_step, prompts_per_round(prompts_per_step, oversample_factor),
                           q, max_rounds)


@dataclass(frozen=True)
class RewardSpec:
    """What the simulator draws rewards from (one frozen step of the workload's schedule).

    pass_rate: mean per-sample probability of reward 1; concentration: Beta spread of the
    per-group rates (None: all groups at pass_rate); filter_groups: drop all-equal groups and
    generate up to max_rounds rounds of prompts_per_round prompts."""

    pass_rate: float
    concentration: float | None = None
    filter_groups: bool = False
    oversample_factor: float = 1.0
    max_rounds: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.pass_rate <= 1.0:
            raise ValueError(f"pass_rate={self.pass_rate} is not a probability")
        if self.oversample_factor < 1.0 or self.max_rounds < 1:
            raise ValueError("oversample_factor must be >= 1 and max_rounds >= 1")


@dataclass(frozen=True)
class StepSampling:
    """What dynamic sampling did in one simulated step (a step without filtering: 1 round,
    every group trained)."""

    step: int
    rounds: int
    generated_groups: int
    signal_groups: int           # generated groups whose rewards are not all equal
    trained_groups: int
    trained_sequences: int
    trained_prompt_tokens: int
    trained_output_tokens: int
    generated_output_tokens: int
    fallback: bool = False       # no group had a signal: the last round was trained as is

    @property
    def wasted_output_tokens(self) -> int:
        return self.generated_output_tokens - self.trained_output_tokens
