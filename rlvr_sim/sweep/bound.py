"""An optimistic bound on a plan's simulated hours, from the cost model alone (no simulation).

`PlanBounds.hours(allocation)` is at most the `hours_total` the simulator reports for that plan
(same seed, same steady rule); the planner's branch and bound (rlvr_sim.sweep.planner) skips a
plan whose bound is already worse than a simulated plan, which keeps the search's answer equal to
an exhaustive sweep's as long as the bound holds. Why it holds, term by term:

- The workload's batches are drawn from (seed, step) only (rlvr_sim.sim.source), so step j's
  samples are the same in every plan; they are drawn once here for the steps a plan can
  simulate (`max_steps`). A sample of T output tokens runs ceil(T / tpi) decode iterations
  (tpi: tokens per iteration; the engine's `todo`, rlvr_sim.sim.sampler) whose KV context is
  its prompt plus what it has generated: p, p + tpi, ... (preemption and recompute only add).
- Decode iteration cost (dense, no speculative decoding: every term is linear in the batch b and
  the context sum c; `SamplerRates`): iteration_s >= max(compute b + attention c, weights +
  kv c) + comm b + fixed. Summed over any schedule of iterations (spans are integrated with
  positive weights, so the max of sums is below the sum of maxima):
  busy >= max(compute N + attention C, weights I + kv C) + comm N + fixed I, with N the
  sequence-iterations, C the context read, and I the iterations run, which is at least
  N / max_concurrent, H / KV capacity (H: tokens held in KV blocks summed over iterations: each
  sequence's private tokens, the shared prompt blocks of a group while any of its samples
  runs) and the longest sample's iteration count (one iteration advances every sequence once).
  With speculative decoding: N tokens at the cheapest seconds per token, or the longest sample
  at one sequence per iteration, whichever is more.
- Prefill: every admitted prompt is prefilled at least once (with prefix caching: the whole
  prompt once per group, the part past its full blocks for each other sample); running
  sequences pause meanwhile, so it adds to the replica's busy time. A lower bound of the calls'
  sum is one call of all those tokens with no attention term (compute and per-call weight read
  overlapped at most fully; collectives affine): `cm.prefill_s(tokens, tokens x 1e6)`.
- Sync step (rlvr_sim.sim.orchestrator.run_sync): every replica starts empty and `dispatch`
  sends the prompt groups to the least-loaded replica, so the samples each replica gets are
  known from the batch alone (the same `dispatch` is run here on stand-ins). The step's
  generation lasts at least the busiest replica's own bound (its host call cost, prefill and
  decode above); then (colocated: a switch); training starts once the last reward is in, which
  is no earlier than the step's verifier work spread over all workers, nor than its longest
  check, plus the RPC round trip (the verifier pool is idle at a sync step's start; service
  times are drawn with the batch, the same in every plan); then training, the trainer's weight
  sync (`cm.weight_sync_s`) (colocated: a switch back).
- Trainer: the simulator charges `cm.train_step(sequences, prompt_tokens, output_tokens)` for
  step j's batch (every sample, no dynamic sampling), computed here for each step.
- Async step: the trainer waits for batch j, trains it and sends the weights (in its own
  timeline), so every step >= train_j + weight sync (proven). The sampler term is a steady-state
  rate argument, NOT a per-step fact, so it is used only for plans simulated until steady
  (`steady`) and only for the steady mean: over a steady window [d, n) the samplers must produce
  the window's batches, so the mean step >= the pooled work of those batches / replicas /
  (n - d). The batches overlap (a replica decodes several steps' samples in one iteration), so
  their work is bounded as one schedule (`SamplerBound.window_s`: summed sequence-iterations,
  context, KV held and prompt tokens), never as a sum of per-batch bounds, which would count the
  shared iterations' weight reads and fixed costs once per batch. Right after the fill phase the
  samplers may be up to eta + 1 batches ahead and a short window could drain that buffer faster
  (a fixed `--steps 2` run of an eta = 1 plan does: its one counted step is 30x shorter); the
  steady test's drift check and `ASYNC_RATE_SHARE` are the margin, and tests/test_plan_bound.py
  checks the bound against the simulator on random plans. The verifier pool's work of the
  window's batches (worker-seconds / workers) is a second rate bound of the same kind. This is the one term that is checked
  rather than proven. (What is provable: the batches b >= d + eta of the window can only start
  after the window's start, since a replica admits batch b only once it holds version b - eta;
  with windows as short as 4 steps that gives (4 - eta) / 4 of the rate, nothing for
  eta >= 4. A run simulated to its end is bounded by all its batches' pooled work, proven.)
- hours_total. Sync runs have no warm-up cut and simulate n >= min(steady steps needed, max_steps) steps
  (a fixed step count: exactly `max_steps`): hours >= total steps x the smallest mean of the
  first n per-step bounds over those n. Async runs: the warm-up is at most max(eta, half the
  simulated steps) (MSER), so hours >= (that many steps x every-step bound + the other steps x
  steady-mean bound) / 3600. Dollars = hours x GPUs x price.

Limits: no bound (0, nothing pruned) for dynamic sampling (rewards), streaming trainers and
inference-only runs, whose batches or step structure differ; such plans are simulated. The
engine's coalesced spans (rlvr_sim.sim.sampler, coalesce_fraction) count a sequence that
finishes inside a span as absent for part of it, which under-counts its context by
f (m - f) / 2 token-iterations (f of the span's m iterations): the context term C can exceed
the simulator's by that much (~1 % on long-tailed batches); the tests check the bound with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlvr_sim.errors import UserError
from rlvr_sim.sim.steady import PLANNER_RULE, Rule
from rlvr_sim.sweep.bound_sampler import ReplicaWork, SamplerBound, StepSamples, _sampler_bound, replica_work
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.space import COLOCATED, Allocation

if TYPE_CHECKING:
    from rlvr_sim.cost import CostModel
    from rlvr_sim.scenario import Scenario
    from rlvr_sim.sweep.robust import Perturbation

# async: share of the sampler's steady-state rate bound that is used (see module docstring)
ASYNC_RATE_SHARE = 0.9


@dataclass
class PlanBounds:
    """Lower bounds of simulated hours per allocation, for one base scenario (+ `fixed`)."""

    scenario: str | Path | dict[str, Any]
    fixed: Plan = Plan(())
    max_steps: int = PLANNER_RULE.max_steps
    seed: int | None = None          # the simulation seed (None: the scenario's)
    steady: bool = True              # plans simulated until steady (False: a fixed step count)
    perturb: "Perturbation | None" = None
    rule: Rule = PLANNER_RULE        # the steady rule (its fewest steady steps, sync and async)
    _bases: dict[tuple[object, ...], "Scenario | None"] = field(default_factory=dict)
    _steps: dict[tuple[object, ...], tuple[StepSamples, ...] | None] = field(default_factory=dict)
    _sampler: dict[tuple[object, ...], SamplerBound] = field(default_factory=dict)
    _trainer: dict[tuple[object, ...], tuple[float, ...]] = field(default_factory=dict)
    _sync: dict[tuple[object, ...], float] = field(default_factory=dict)
    _work: dict[tuple[object, ...], ReplicaWork] = field(default_factory=dict)
    _valid: dict[Allocation, bool] = field(default_factory=dict)

    # ------------------------------------------------------------------ scenarios
    def _base(self, a: Allocation) -> "Scenario | None":
        """The base scenario of `a`'s GPU type and knobs (validated once, without the fit check),
        None when it is structurally invalid."""
        key = (a.gpu, a.knobs)
        if key not in self._bases:
            from rlvr_sim.scenario import load_scenario

            try:
                sc = load_scenario(self.scenario, overrides=Plan(self.fixed.settings + a.plan().settings).overrides(),
                                   check_fit=False)
            except UserError:
                sc = None
            if sc is not None and self.perturb is not None:
                sc, profile = self.perturb.apply(sc)
                sc = sc.model_copy()
                sc.__dict__["hardware_profile"] = profile
            self._bases[key] = sc
        return self._bases[key]

    def _variant(self, base: "Scenario", a: Allocation) -> "Scenario":
        """`base` with `a`'s pools and orchestration (no re-validation: these fields derive
        nothing else; tests compare with a validated load)."""
        sc = base.model_copy(update={
            "sampler": base.sampler.model_copy(update={"gpus": a.sampler_gpus, "tp": a.sampler_tp,
                                                       "pp": a.sampler_pp}),
            "trainer": base.trainer.model_copy(update={"gpus": a.trainer_gpus, "tp": a.trainer_tp,
                                                       "pp": a.trainer_pp, "mini_batches": a.mini_batches}),
            "orchestration": base.orchestration.model_copy(update={
                "placement": a.placement, "mode": "async" if a.max_staleness > 0 else "sync",
                "max_staleness": a.max_staleness})})
        sc.__dict__["hardware_profile"] = base.hardware_profile
        return sc

    def cost_model(self, a: Allocation) -> "CostModel | None":
        """The cost model of `a` as the simulator would build it (None: structurally invalid)."""
        from rlvr_sim.cost import CostModel

        base = self._base(a)
        return None if base is None else CostModel.from_scenario(self._variant(base, a))

    def valid(self, a: Allocation) -> bool:
        """Whether scenario loading accepts `a`: the cross-field rules (TP divides the attention
        heads, whole model-parallel groups per pool, ...) and the memory-fit check, asked on the
        bound's own variant of the scenario (`rlvr_sim.scenario_checks.scenario_problems`, what
        `load_scenario` runs after the schema); a plan it rejects is never queued (bound inf)."""
        from rlvr_sim.scenario_checks import scenario_problems

        if a not in self._valid:
            base = self._base(a)
            self._valid[a] = base is not None and not scenario_problems(self._variant(base, a))
        return self._valid[a]

    def step_samples(self, a: Allocation) -> tuple[StepSamples, ...] | None:
        """The samples of the steps a plan can simulate; None where batches depend on the plan."""
        key = (a.gpu, a.knobs)
        if key not in self._steps:
            self._steps[key] = self._draw_steps(a)
        return self._steps[key]

    def _draw_steps(self, a: Allocation) -> tuple[StepSamples, ...] | None:
        from rlvr_sim.cost import CostModel
        from rlvr_sim.sim.run import config_from_scenario
        from rlvr_sim.sim.source import PromptSource

        base = self._base(a)
        if base is None:
            return None
        sc = self._variant(base, a)
        if sc.trainer.streaming or sc.orchestration.inference_only:
            return None
        steps = min(self.max_steps, sc.workload.steps)
        cfg = config_from_scenario(sc, CostModel.from_scenario(sc), steps, self.seed)
        if cfg.rewards is not None:
            return None
        source = PromptSource(cfg)
        out = []
        workers = max(cfg.verifier_workers, 1)
        for j in range(steps):
            batch = source.batch(j)
            groups = batch.groups
            sizes = [len(g.response_tokens) for g in groups]
            work = float(sum(batch.verify_s)) / workers
            floor = max(work, max(batch.verify_s, default=0.0)) + cfg.verifier_rpc_s
            out.append(StepSamples(groups, np.array([g.prompt_tokens for g in groups], dtype=np.int64),
                                   np.repeat(np.arange(len(groups)), sizes),
                                   np.array([t for g in groups for t in g.response_tokens], dtype=np.int64),
                                   work, floor))
        return tuple(out)

    # ------------------------------------------------------------------ parts
    def _skey(self, a: Allocation) -> tuple[object, ...]:
        return (a.gpu, a.knobs, a.sampler_tp, a.sampler_pp, a.placement == COLOCATED, self._replicas(a))

    def _tkey(self, a: Allocation) -> tuple[object, ...]:
        return (a.gpu, a.knobs, a.trainer_gpus, a.trainer_tp, a.trainer_pp, a.mini_batches)

    def _wkey(self, a: Allocation) -> tuple[object, ...]:
        return (a.gpu, a.knobs, a.placement, a.sampler_gpus, a.sampler_tp, a.sampler_pp, a.trainer_gpus,
                a.trainer_tp, a.trainer_pp)

    @staticmethod
    def _replicas(a: Allocation) -> int:
        return max(a.sampler_gpus // a.sampler_unit, 1)

    def sampler_bound(self, a: Allocation, base: "Scenario", steps: tuple[StepSamples, ...]) -> SamplerBound:
        """The sampler side of `a` (cached per sampler shape and replica count)."""
        key = self._skey(a)
        if key not in self._sampler:
            from rlvr_sim.cost import CostModel

            cm = CostModel.from_scenario(self._variant(base, a))
            tpi = float(cm.tokens_per_iteration)
            split, pooled = (self._replica_work(a, base, steps, r, tpi) for r in (self._replicas(a), None))
            self._sampler[key] = _sampler_bound(cm, split, pooled)
        return self._sampler[key]

    def _replica_work(self, a: Allocation, base: "Scenario", steps: tuple[StepSamples, ...], replicas: int | None,
                      tpi: float) -> ReplicaWork:
        key = (a.gpu, a.knobs, replicas, tpi)
        if key not in self._work:
            self._work[key] = replica_work(steps, replicas, tpi, base.sampler.block_tokens,
                                           bool(base.sampler.prefix_caching))
        return self._work[key]

    def train_s(self, a: Allocation, base: "Scenario", steps: tuple[StepSamples, ...]
                ) -> tuple[tuple[float, ...], float]:
        """(train seconds of each step, the trainer's weight-sync seconds)."""
        tkey, wkey = self._tkey(a), self._wkey(a)
        if tkey not in self._trainer or wkey not in self._sync:
            from rlvr_sim.cost import CostModel

            cm = CostModel.from_scenario(self._variant(base, a))
            if tkey not in self._trainer:
                self._trainer[tkey] = tuple(float(cm.train_step(t.sequences, t.prompt_tokens, t.output_tokens).total_s)
                                            for t in (s.tokens for s in steps))
            self._sync[wkey] = float(cm.weight_sync_s)
        return self._trainer[tkey], self._sync[wkey]

    # ------------------------------------------------------------------ the bound
    def _hours(self, a: Allocation, trainer: bool) -> float:
        base = self._base(a)
        if base is None or not self.valid(a):
            return math.inf
        steps = self.step_samples(a)
        if not steps:
            return 0.0
        side = self.sampler_bound(a, base, steps)
        train, sync = self.train_s(a, base, steps) if trainer else ((0.0,) * len(steps), 0.0)
        total = base.workload.steps
        cap = len(steps)
        if a.max_staleness == 0:
            verified = np.array([s.verify_floor_s for s in steps])
            every = np.maximum(np.array(side.generate_s) + side.switch_s, verified) + np.array(train) + sync \
                + side.switch_s
            return total * _smallest_prefix_mean(every, min(self.rule.steady_needed(0), cap) if self.steady else cap,
                                                 cap, total) / 3600
        lo = min(a.max_staleness + self.rule.steady_needed(None), cap) if self.steady else cap
        verify = np.array([s.verify_work_s for s in steps])
        return _async_seconds(np.array(train) + sync, side, self._replicas(a), total, a.max_staleness, lo, cap,
                              self.steady, verify) / 3600

    def quick_hours(self, a: Allocation) -> float:
        """A cheaper, weaker lower bound (sampler side only: no trainer, no weight sync):
        <= `hours(a)`. The branch and bound orders plans by it and computes `hours` only for
        plans that reach the front of the queue (the trainer term needs a load-balance draw per
        layout)."""
        return self._hours(a, trainer=False)

    def hours(self, a: Allocation) -> float:
        """Lower bound of the plan's simulated `hours_total` (0: none known; inf: invalid)
        (module docstring)."""
        return self._hours(a, trainer=True)

    def usd(self, a: Allocation) -> float:
        """Lower bound of the plan's simulated dollars (hours bound x GPUs x price)."""
        hours = self.hours(a)
        base = self._bases.get((a.gpu, a.knobs))
        if base is None or not math.isfinite(hours):
            return hours
        return hours * a.total_gpus * float(base.hardware_profile.datasheet.usd_per_gpu_hour)


def _smallest_prefix_mean(every: np.ndarray, lo: int, hi: int, total: int) -> float:
    """The smallest mean of every[:n] over the step counts n in [lo, hi] a run may stop at (a
    run of n >= total steps counts its first `total`)."""
    n = np.arange(1, len(every) + 1)
    means = np.cumsum(every) / n
    lo, hi = min(max(lo, 1), total), min(hi, total)
    return float(means[lo - 1:hi].min())


def _async_seconds(each: np.ndarray, side: SamplerBound, replicas: int, total: int, eta: int, lo: int, cap: int,
                   steady: bool, verify: np.ndarray | None = None) -> float:
    """Lower bound of an async run's `hours_total` x 3600: step j >= each[j] (its training + the
    weight sync); a run simulated to the end (n >= total) generated every batch before its last
    step (the pooled work of all batches / replicas); else the warm-up d in [eta, max(eta,
    n // 2)] (MSER) and the steady mean over the window [d, n), >= the window's mean of `each`
    and, when simulated until steady (`steady`), >= ASYNC_RATE_SHARE x the pooled work of the
    window's batches / replicas / (n - d) (the checked term), and likewise the verifier pool's
    work of those batches (`verify`: per step, worker-seconds / workers); smallest over the
    step counts n in [lo, cap] a run may stop at."""
    esum = np.concatenate([[0.0], np.cumsum(each)])
    vsum = np.concatenate([[0.0], np.cumsum(verify if verify is not None else np.zeros(len(each)))])
    best = math.inf
    if cap >= total:      # a run of n >= total steps counts its first `total`
        whole = max(float(side.windows_s[0, total]) / replicas, float(vsum[total]))
        best = max(float(esum[total]), whole + float(each[total - 1]))
    n, d = _windows(eta, max(lo, 1), min(cap, total - 1))
    if len(n):
        mean = (esum[n] - esum[d]) / (n - d)
        if steady:
            rate = np.maximum(side.windows_s[d, n] / replicas, vsum[n] - vsum[d]) / (n - d)
            mean = np.maximum(mean, ASYNC_RATE_SHARE * rate)
        best = min(best, float(np.min(esum[d] + (total - d) * mean)))
    return best


@lru_cache(maxsize=256)
def _windows(eta: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The (n, d) pairs of an async run's steady window: n steps simulated in [lo, hi], warm-up d
    in [eta, max(eta, n // 2)] (0 when n <= eta; MSER, rlvr_sim.sim.steady.warmup_cut), d < n."""
    pairs = [(n, d) for n in range(lo, hi + 1)
             for d in range(eta if n > eta else 0, max(eta if n > eta else 0, n // 2) + 1) if d < n]
    return np.array([n for n, _ in pairs], dtype=np.int64), np.array([d for _, d in pairs], dtype=np.int64)
