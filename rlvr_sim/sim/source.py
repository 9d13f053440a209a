"""Prompt source: the prompts x samples of each RL step, with seeded lengths and verifier draws.

Batch `j` is drawn from its own generator `default_rng([seed, j])`, in a fixed order (prompt
lengths, response lengths, verifier latencies, verifier failures, then rewards when the config
has a pass rate), so a batch's content does not depend on the orchestration mode or on event
order: sync and async runs of one scenario see the same samples, and the same seed gives the
same trace.

Rewards and dynamic sampling (`cfg.rewards`, rlvr_sim.dynamic_sampling): each group gets its
own pass rate (the schedule's, or a Beta draw around it), each sample a Bernoulli reward (0 when
the check failed). With `filter_groups`, a step is generated in rounds of
`prompts_per_round` prompts; round r > 0 draws from `default_rng([seed, j, r])`; rounds are
added until `prompts_per_step` groups have rewards that are not all equal, or `max_rounds`.
The first `prompts_per_step` such groups are trained (verl trims the surplus); when no group
had a signal after max_rounds, the last round is trained as is (as the executor does; verl
raises an error there). `trained(j)` says what, the rest is waste. Sample and group ids stay unique: round r of step j starts at
sample (j x max_rounds + r) x prompts_per_round x k (= j x p x k without filtering).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_sim.dynamic_sampling import StepSampling, prompts_per_round
from rlvr_sim.sim.config import SimConfig


@dataclass(frozen=True)
class Group:
    """One prompt and its k samples; the k samples share the prompt's KV prefix."""

    step: int                      # the RL step (batch) that trains these samples
    group_id: int                  # global prompt index
    prompt_tokens: int
    response_tokens: tuple[int, ...]
    first_sample: int              # global index of sample 0 of this group

    @property
    def samples(self) -> range:
        return range(self.first_sample, self.first_sample + len(self.response_tokens))


@dataclass(frozen=True)
class Batch:
    """The samples of one RL step (or one generation round of it) plus their (pre-drawn)
    verification outcome and, with a pass rate, rewards."""

    step: int
    groups: tuple[Group, ...]
    verify_s: list[float]          # per sample, already capped at the timeout
    timed_out: list[bool]          # per sample
    failed: list[bool]             # per sample (checker error: reward 0)
    rewards: list[int] | None = None   # per sample, 0/1 (None: no pass rate given)

    @property
    def first_sample(self) -> int:
        return self.groups[0].first_sample

    @property
    def size(self) -> int:
        return len(self.verify_s)

    def has_signal(self) -> list[bool]:
        """Per group: its k rewards are not all equal (True for every group without rewards)."""
        if self.rewards is None:
            return [True] * len(self.groups)
        out, i = [], 0
        for g in self.groups:
            k = len(g.response_tokens)
            out.append(len(set(self.rewards[i:i + k])) > 1)
            i += k
        return out


class PromptSource:
    """Draws batch j on demand; deterministic in (seed, j)."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self._rounds: dict[int, list[Batch]] = {}
        self.history: list[StepSampling] = []      # `trained()` of every step, in order

    @property
    def filtering(self) -> bool:
        rw = self.cfg.rewards
        return rw is not None and rw.filter_groups

    def batch(self, step: int) -> Batch:
        """All of step `step`'s samples (every generation round, merged)."""
        rounds = self.rounds(step)
        return rounds[0] if len(rounds) == 1 else _merge(rounds)

    def rounds(self, step: int) -> list[Batch]:
        """Step `step`'s generation rounds (one without dynamic sampling); cached until
        `trained(step)` is asked."""
        if step in self._rounds:
            return self._rounds[step]
        cfg = self.cfg
        if not self.filtering:
            out = [self._draw(step, 0, cfg.prompts_per_step, step * cfg.prompts_per_step)]
        else:
            rw = cfg.rewards
            assert rw is not None                    # self.filtering
            m = prompts_per_round(cfg.prompts_per_step, rw.oversample_factor)
            out, signal = [], 0
            while len(out) < rw.max_rounds and signal < cfg.prompts_per_step:
                b = self._draw(step, len(out), m, (step * rw.max_rounds + len(out)) * m)
                signal += sum(b.has_signal())
                out.append(b)
        if cfg.rewards is not None:          # kept until trained(step) is asked
            self._rounds[step] = out
        return out

    def trained(self, step: int) -> StepSampling:
        """What step `step` trains on (forgets the step's cached rounds; logged in `history`)."""
        rounds = self.rounds(step)
        self._rounds.pop(step, None)
        want = self.cfg.prompts_per_step if self.filtering else None
        kept: list[tuple[Group, int]] = []
        gen_out = signal = generated = 0
        for b in rounds:
            for g, ok in zip(b.groups, b.has_signal()):
                out = sum(g.response_tokens)
                gen_out += out
                generated += 1
                signal += ok
                if (ok or want is None) and (want is None or len(kept) < want):
                    kept.append((g, out))
        fallback = not kept        # no group with signal: train the last round as is
        if fallback:
            kept = [(g, sum(g.response_tokens)) for g in rounds[-1].groups]
        k = self.cfg.samples_per_prompt
        sampling = StepSampling(step, len(rounds), generated, signal, len(kept), len(kept) * k,
                                sum(g.prompt_tokens for g, _ in kept) * k, sum(o for _, o in kept),
                                gen_out, fallback)
        self.history.append(sampling)
        return sampling

    def _draw(self, step: int, rnd: int, p: int, first_group: int) -> Batch:
        cfg = self.cfg
        k = cfg.samples_per_prompt
        rng = np.random.default_rng([cfg.seed, step] if rnd == 0 else [cfg.seed, step, rnd])
        prompt = _tokens(cfg.prompt_tokens.sample(rng, p))
        response = _tokens(cfg.response_tokens.sample(rng, p * k))
        latency = np.maximum(np.asarray(cfg.verifier_latency_s.sample(rng, p * k), dtype=float), 0.0)
        failed = rng.random(p * k) < cfg.verifier_failure_rate
        timed_out = latency > cfg.verifier_timeout_s
        rewards: list[int] | None = None
        if cfg.rewards is not None:
            drawn = _rewards(rng, cfg.rewards.pass_rate, cfg.rewards.concentration, p, k)
            rewards = np.where(failed | timed_out, 0, drawn).tolist()
        first = first_group * k
        prompts, responses = prompt.tolist(), response.tolist()      # Python ints
        groups = tuple(Group(step, first_group + g, prompts[g],
                             tuple(responses[g * k:(g + 1) * k]), first + g * k)
                       for g in range(p))
        return Batch(step, groups, np.minimum(latency, cfg.verifier_timeout_s).tolist(),
                     timed_out.tolist(), failed.tolist(), rewards)


def _rewards(rng: np.random.Generator, rate: float, concentration: float | None, p: int,
             k: int) -> np.ndarray:
    """0/1 rewards, k per group; each group's rate is `rate` or Beta(c rate, c (1 - rate))."""
    if concentration is None or rate in (0.0, 1.0):
        group_rate = np.full(p, rate)
    else:
        group_rate = rng.beta(concentration * rate, concentration * (1.0 - rate), p)
    return (rng.random((p, k)) < group_rate[:, None]).astype(np.int64).ravel()


def _merge(rounds: list[Batch]) -> Batch:
    """One Batch of consecutive rounds (their sample ids are contiguous)."""
    return Batch(rounds[0].step, tuple(g for b in rounds for g in b.groups),
                 [x for b in rounds for x in b.verify_s], [x for b in rounds for x in b.timed_out],
                 [x for b in rounds for x in b.failed],
                 None if rounds[0].rewards is None
                 else [x for b in rounds for x in (b.rewards or ())])


def _tokens(x: np.ndarray) -> np.ndarray:
    tokens: np.ndarray = np.maximum(np.rint(np.asarray(x, dtype=float)), 1).astype(np.int64)
    return tokens
