"""An optimistic bound on a plan's simulated hours, from the cost model alone (no simulation).

`PlanBounds.hours(allocation)` is at most the `hours_total` the simulator reports for that plan
(same seed, same steady rule); the planner's branch and bound (rlvr_sim.sweep.planner) skips a
plan whose bound is already worse than a simulated plan, which keeps the search's answer equal to
an exhaustive sweep's as long as the bound holds. Why it holds, term by term:

- The workload's batches are drawn from (seed, step) only (rlvr_sim.sim.source), so step j's
  samples are the same in every plan: their decode tokens D_j (output tokens minus the one the
  prefill produces, per sample), longest output L_j and the trainer's token sums are computed
  once here, for the steps a plan can simulate (`max_steps`).
- Sampler: a decode iteration of b sequences costs at least `step_s(b, 0, 0)` (every term grows
  with the KV context; decode_span_s integrates with positive weights), so one token costs at
  least min over b <= max_concurrent_sequences of step_s(b, 0, 0) / (b x tokens per iteration);
  R replicas need >= D_j x that / R seconds, and the longest sample needs >= ceil((L_j - 1) /
  tokens per iteration) iterations of at least step_s(1, 0, 0). Prefill, verification,
  preemption and recompute only add time.
- Trainer: the simulator charges `cm.train_step(sequences, prompt_tokens, output_tokens)` per
  step, which grows with tokens (tests/test_plan_bound.py checks it), so the step with the fewest
  tokens bounds every step. Weight sync is left out (>= 0).
- Sync step (rlvr_sim.sim.orchestrator.run_sync): generation, then training, then weight sync
  (colocated: plus two switches), in sequence: step_j >= gen_j + train_j (+ 2 switch).
- Async step: the trainer waits for batch j, trains it and sends the weights: step_j >= train_j.
  The sampler term is a steady-state rate argument, NOT a per-step fact, so it is used only for
  plans simulated until steady (`steady`) and only for the steady mean: over a steady window the
  samplers must produce one batch per step, so the mean step >= mean_j (step j's decode work) /
  R. Right after the fill phase the samplers may be up to eta + 1 batches ahead and a short
  window could drain that buffer faster (a fixed `--steps 2` run of an eta = 1 plan does: its
  one counted step is 30x shorter); the steady test's drift check and `ASYNC_RATE_SHARE` are the
  margin, and tests/test_plan_bound.py checks the bound against the simulator on random plans.
  This is the one term that is checked rather than proven.
- hours_total = (warm-up steps + steady mean x the remaining steps) / 3600; the warm-up is at
  most half the simulated steps (MSER), so hours >= (max_steps / 2 x every-step bound + the
  other steps x steady-mean bound) / 3600; dollars = hours x GPUs x price.

Limits: no bound (0, nothing pruned) for dynamic sampling (rewards), streaming trainers and
inference-only runs, whose batches or step structure differ; such plans are simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.space import COLOCATED, Allocation

if TYPE_CHECKING:
    from rlvr_sim.cost import CostModel
    from rlvr_sim.scenario import Scenario
    from rlvr_sim.sweep.robust import Perturbation

# async: share of the sampler's steady-state rate bound that is used (see module docstring)
ASYNC_RATE_SHARE = 0.9


@dataclass(frozen=True)
class StepTokens:
    """What step j of the seeded workload holds (the same for every allocation)."""

    sequences: int
    prompt_tokens: int       # sum over samples (each carries its prompt)
    output_tokens: int
    decode_tokens: int       # output tokens minus one per sample (the prefill's token)
    longest_output: int
    decode_context: int      # generated tokens held in KV summed over every decode iteration


@dataclass(frozen=True)
class SamplerRates:
    """Lower-bound coefficients of one replica's decode iteration (rlvr_sim.cost.sampler), taken
    from the cost model at one and two sequences and a zero / large KV context:
    iteration_s(b, c) >= max(compute_per_token_s b + attention_per_ctx_s c, weights_s + kv_per_ctx_s c)
                         + comm_per_token_s b + fixed_s
    (exact for dense models without speculative decoding, whose terms are linear; MoE reads more
    experts at b > 1, so weights_s at b = 1 is a lower bound). With speculative decoding the
    linear form is not used (`linear` False): `token_s` (cheapest seconds per token over the
    allowed batch sizes at zero context) and `iteration_s` (one sequence) bound it instead."""

    linear: bool
    compute_per_token_s: float
    attention_per_ctx_s: float
    weights_s: float
    kv_per_ctx_s: float
    comm_per_token_s: float
    fixed_s: float
    max_sequences: int
    kv_capacity_tokens: float     # generated tokens one replica's KV blocks can hold
    token_s: float
    iteration_s: float
    tokens_per_iteration: float
    switch_s: float

    def work_s(self, s: StepTokens) -> float:
        """Replica-seconds the step's decoding needs at least, summed over the replicas."""
        if not self.linear:
            return s.decode_tokens * self.token_s
        n, c = s.decode_tokens, s.decode_context
        iterations = max(n / self.max_sequences, c / self.kv_capacity_tokens)
        return (max(self.compute_per_token_s * n + self.attention_per_ctx_s * c,
                    self.weights_s * iterations + self.kv_per_ctx_s * c)
                + self.comm_per_token_s * n + self.fixed_s * iterations)

    def longest_s(self, s: StepTokens) -> float:
        """Seconds the longest sample's decoding needs at least (it runs with >= 1 sequence)."""
        length = max(s.longest_output - 1, 0)
        if not self.linear:
            return math.ceil(length / self.tokens_per_iteration) * self.iteration_s
        c = length * (length + 1) / 2
        return (max(self.compute_per_token_s * length + self.attention_per_ctx_s * c,
                    self.weights_s * length + self.kv_per_ctx_s * c)
                + (self.comm_per_token_s + self.fixed_s) * length)


@dataclass
class PlanBounds:
    """Lower bounds of simulated hours per allocation, for one base scenario (+ `fixed`)."""

    scenario: str | Path | dict[str, Any]
    fixed: Plan = Plan(())
    max_steps: int = 32
    seed: int | None = None          # the simulation seed (None: the scenario's)
    steady: bool = True              # plans simulated until steady (False: a fixed step count)
    perturb: "Perturbation | None" = None
    _bases: dict[tuple[object, ...], "Scenario | None"] = field(default_factory=dict)
    _steps: dict[tuple[object, ...], tuple[StepTokens, ...] | None] = field(default_factory=dict)
    _sampler: dict[tuple[object, ...], SamplerRates] = field(default_factory=dict)
    _trainer: dict[tuple[object, ...], float] = field(default_factory=dict)

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

    def step_tokens(self, a: Allocation) -> tuple[StepTokens, ...] | None:
        """Token sums of the steps a plan can simulate; None where batches depend on the plan."""
        key = (a.gpu, a.knobs)
        if key not in self._steps:
            self._steps[key] = self._draw_steps(a)
        return self._steps[key]

    def _draw_steps(self, a: Allocation) -> tuple[StepTokens, ...] | None:
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
        for j in range(steps):
            groups = source.batch(j).groups
            n = sum(len(g.response_tokens) for g in groups)
            output = sum(sum(g.response_tokens) for g in groups)
            context = sum(o * (o - 1) // 2 for g in groups for o in g.response_tokens)
            out.append(StepTokens(n, sum(g.prompt_tokens * len(g.response_tokens) for g in groups), output,
                                  output - n, max(max(g.response_tokens) for g in groups), context))
        return tuple(out)

    # ------------------------------------------------------------------ parts
    def sampler_rates(self, a: Allocation, cm: "CostModel") -> SamplerRates:
        key = (a.gpu, a.knobs, a.sampler_tp, a.sampler_pp, a.placement == COLOCATED)
        if key not in self._sampler:
            self._sampler[key] = _sampler_rates(cm)
        return self._sampler[key]

    def train_s(self, a: Allocation, cm: "CostModel", fewest: StepTokens) -> float:
        key = (a.gpu, a.knobs, a.trainer_gpus, a.trainer_tp, a.trainer_pp, a.mini_batches)
        if key not in self._trainer:
            self._trainer[key] = float(cm.train_step(fewest.sequences, fewest.prompt_tokens,
                                                     fewest.output_tokens).total_s)
        return self._trainer[key]

    # ------------------------------------------------------------------ the bound
    def step_s(self, a: Allocation) -> tuple[float, float]:
        """Lower bounds of (every simulated step time, the steady mean step time) of `a`
        (0: no bound known; inf: invalid). They differ in async runs only (module docstring)."""
        base = self._base(a)
        if base is None:
            return math.inf, math.inf
        steps = self.step_tokens(a)
        if not steps:
            return 0.0, 0.0
        from rlvr_sim.cost import CostModel

        cm = CostModel.from_scenario(self._variant(base, a)) if self._needs_cm(a) else None
        rates = self.sampler_rates(a, cm) if cm is not None else self._sampler[self._skey(a)]
        replicas = max(a.sampler_gpus // a.sampler_unit, 1)
        fewest = StepTokens(steps[0].sequences, min(s.prompt_tokens for s in steps),
                            min(s.output_tokens for s in steps), 0, 0, 0)
        train = self.train_s(a, cm, fewest) if cm is not None else self._trainer[self._tkey(a)]
        if a.max_staleness == 0:
            switch = 2 * rates.switch_s if a.placement == COLOCATED else 0.0
            every = min(max(rates.work_s(s) / replicas, rates.longest_s(s)) for s in steps) + train + switch
            return every, every
        if not self.steady:
            return train, train
        mean_work = sum(rates.work_s(s) for s in steps) / len(steps)
        return train, max(train, ASYNC_RATE_SHARE * mean_work / replicas)

    def quick_hours(self, a: Allocation) -> float:
        """A cheaper, weaker lower bound (sampler side only, no trainer term): <= `hours(a)`.
        The branch and bound orders plans by it and computes `hours` only for plans that reach
        the front of the queue (the trainer term needs a load-balance draw per layout)."""
        base = self._base(a)
        if base is None:
            return math.inf
        steps = self.step_tokens(a)
        if not steps:
            return 0.0
        key = self._skey(a)
        if key not in self._sampler:
            from rlvr_sim.cost import CostModel

            self._sampler[key] = _sampler_rates(CostModel.from_scenario(self._variant(base, a)))
        rates = self._sampler[key]
        replicas = max(a.sampler_gpus // a.sampler_unit, 1)
        if a.max_staleness == 0:
            switch = 2 * rates.switch_s if a.placement == COLOCATED else 0.0
            every = min(max(rates.work_s(s) / replicas, rates.longest_s(s)) for s in steps) + switch
            steady = every
        else:
            every = 0.0
            steady = ASYNC_RATE_SHARE * sum(rates.work_s(s) for s in steps) / len(steps) / replicas \
                if self.steady else 0.0
        total = base.workload.steps
        warm = min(total, self.max_steps // 2)
        return (warm * every + (total - warm) * steady) / 3600

    def _skey(self, a: Allocation) -> tuple[object, ...]:
        return (a.gpu, a.knobs, a.sampler_tp, a.sampler_pp, a.placement == COLOCATED)

    def _tkey(self, a: Allocation) -> tuple[object, ...]:
        return (a.gpu, a.knobs, a.trainer_gpus, a.trainer_tp, a.trainer_pp, a.mini_batches)

    def _needs_cm(self, a: Allocation) -> bool:
        return self._skey(a) not in self._sampler or self._tkey(a) not in self._trainer

    def hours(self, a: Allocation) -> float:
        """Lower bound of the plan's simulated `hours_total` (0: none known; inf: invalid):
        warm-up steps (at most half the simulated steps) at the every-step bound, the rest at
        the steady-mean bound."""
        every, steady = self.step_s(a)
        base = self._bases.get((a.gpu, a.knobs))
        if base is None or not math.isfinite(every):
            return every
        total = base.workload.steps
        warm = min(total, self.max_steps // 2)
        return (warm * every + (total - warm) * steady) / 3600

    def usd(self, a: Allocation) -> float:
        """Lower bound of the plan's simulated dollars (hours bound x GPUs x price)."""
        hours = self.hours(a)
        base = self._bases.get((a.gpu, a.knobs))
        if base is None or not math.isfinite(hours):
            return hours
        return hours * a.total_gpus * float(base.hardware_profile.datasheet.usd_per_gpu_hour)


def _sampler_rates(cm: "CostModel") -> SamplerRates:
    """The coefficients of `SamplerRates` read off the cost model (see its docstring)."""
    tpi = cm.tokens_per_iteration
    most = max(int(cm.max_num_seqs), 1)
    sizes = sorted({most, *(min(most, 2 ** k) for k in range(0, most.bit_length() + 1))})
    token_s = min(cm.decode_step_s(b, 0.0, 0.0) / (b * tpi) for b in sizes)
    big = 1e6
    one, two, wide = cm.decode_breakdown(1, 0.0, 0.0), cm.decode_breakdown(2, 0.0, 0.0), cm.decode_breakdown(1, big, 1.0)
    comm_per_token = max(two.comm_s - one.comm_s, 0.0)
    plan = cm.sampler_plan
    capacity = float(plan.kv_blocks * plan.block_tokens) if plan.kv_blocks else math.inf
    return SamplerRates(
        linear=tpi == 1.0, compute_per_token_s=one.compute_s,
        attention_per_ctx_s=max(wide.compute_s - one.compute_s, 0.0) / big,
        weights_s=one.memory_s, kv_per_ctx_s=max(wide.memory_s - one.memory_s, 0.0) / big,
        comm_per_token_s=comm_per_token, fixed_s=max(one.comm_s - comm_per_token, 0.0) + one.overhead_s,
        max_sequences=most, kv_capacity_tokens=capacity if capacity > 0 else math.inf,
        token_s=token_s, iteration_s=cm.decode_step_s(1, 0.0, 0.0), tokens_per_iteration=tpi,
        switch_s=float(cm.switch_s) if cm.placement == COLOCATED else 0.0)
