"""What the simulator needs from the outside world, as Protocols.

The simulator never imports the cost model's internals: it takes any object with the
`CostModel` facade's interface (docs/contracts.md). Tests inject a hand-computable fake
(`rlvr_sim.sim.fake_cost.FakeCostModel`) so event logs can be checked by hand, the way SimPy's
own tests check `(name, env.now)` sequences.
"""

from __future__ import annotations

from typing import Generator, Protocol

import numpy as np
import simpy

# A SimPy process body: yields events, never reads what they send back, returns nothing.
ProcessBody = Generator[simpy.Event, object, None]


class TrainBreakdownLike(Protocol):
    """Seconds of one RL step's training on the whole trainer pool (all mini-batches)."""

    @property
    def ref_logprob_s(self) -> float: ...
    @property
    def old_logprob_s(self) -> float: ...
    @property
    def forward_backward_s(self) -> float: ...
    @property
    def optimizer_s(self) -> float: ...
    @property
    def total_s(self) -> float: ...


class SamplerCostLike(Protocol):
    """The sampler part of the cost-model facade: what one replica's engine (sim.sampler.
    ReplicaEngine) prices. Engine-only callers (calibration's engine replay) provide just this."""

    @property
    def tokens_per_iteration(self) -> float: ...

    def prefill_s(self, new_tokens: int, sequences: int = 1) -> float: ...

    def decode_span_s(self, sequences: int, context_tokens_sum: float,
                      context_tokens_max: float, iterations: int) -> float: ...

    def sampler_call_s(self, sequences: int) -> float:
        """Host seconds of one synchronous generate call of `sequences` sequences on one replica,
        beyond its engine steps (0: not modelled)."""
        ...


class CostModelLike(SamplerCostLike, Protocol):
    """The cost-model facade (rlvr_sim.cost.CostModel) as the simulator uses it."""

    @property
    def weight_sync_s(self) -> float: ...
    @property
    def switch_s(self) -> float: ...

    def train_step(self, sequences: int, prompt_tokens: int,
                   output_tokens: int) -> TrainBreakdownLike: ...

    def train_minibatch(self, sequences: int, prompt_tokens: int,
                        output_tokens: int) -> TrainBreakdownLike:
        """One mini-batch of a streaming trainer: its forwards, backward, one optimizer step."""
        ...


class KvPlanLike(Protocol):
    """The sampler's memory plan as the simulator's config reads it."""

    @property
    def kv_blocks(self) -> int | None: ...


class PlannedCostModelLike(CostModelLike, Protocol):
    """A cost model that also sizes the sampler's KV cache (sim.run.config_from_scenario)."""

    @property
    def sampler_plan(self) -> KvPlanLike: ...


class DistributionLike(Protocol):
    """A seeded distribution (rlvr_sim.distributions): `sample(rng, n)` floats."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...
