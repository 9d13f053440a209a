"""`SimConfig`: the plain numbers one simulation needs, separated from the scenario schema.

`simulate()` builds it from a validated `Scenario` plus the cost model; tests build it directly
(with a fake cost model and fixed lengths) so every event time can be computed by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rlvr_sim import rules
from rlvr_sim.dynamic_sampling import RewardSpec
from rlvr_sim.errors import ScenarioError
from rlvr_sim.sim.protocols import DistributionLike


@dataclass(frozen=True)
class Constant:
    """A distribution that always returns `value` (for tests and instant verifiers)."""

    value: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))


@dataclass(frozen=True)
class SimConfig:
    """Everything the orchestrators read. Counts are per RL step unless named otherwise.

    kv_blocks is per sampler replica (None: unlimited memory).
    """

    prompts_per_step: int
    samples_per_prompt: int
    steps: int                                  # steps to simulate
    prompt_tokens: DistributionLike
    response_tokens: DistributionLike
    sampler_gpus: int
    trainer_gpus: int
    gpus_per_replica: int = 1
    max_concurrent_sequences: int = 256
    kv_blocks: int | None = None
    block_tokens: int = 16
    prefix_caching: bool = True
    verifier_workers: int = 1
    verifier_latency_s: DistributionLike = field(default_factory=lambda: Constant(0.0))
    verifier_timeout_s: float = float("inf")
    verifier_failure_rate: float = 0.0
    verifier_rpc_s: float = 0.0                 # round trip per sample, not a worker's time
    placement: Literal["colocated", "disaggregated"] = "disaggregated"
    mode: Literal["sync", "async"] = "sync"
    max_staleness: int = 0
    partial_rollout: bool = False
    seed: int = 0
    workload_steps: int | None = None           # steps of the whole run (extrapolation)
    usd_per_gpu_hour: float = 0.0
    run_id: str = "sim"
    coalesce_fraction: float = 0.0              # 0: a span per finish (exact); see sim.sampler
    span_rule: Literal["cost_model", "simpson3"] = "cost_model"
    rewards: RewardSpec | None = None            # pass rate + dynamic sampling (sim.source)
    # --- asynchrony as verl / AReaL run it (issue 12) ---
    staleness_fraction: float | None = None     # async: bound in batches, may be fractional
                                                # (verl staleness_threshold); None: max_staleness
    weight_update: Literal["drain", "recompute", "keep_kv"] | None = None  # None: partial_rollout
    streaming: bool = False                     # async: train each mini-batch when it is verified
    mini_batches: int = 1                       # optimizer steps per RL step (streaming unit)
    stream_batches: int = 1                     # streaming: mini-batches per fetch
    inference_only: bool = False                # sampler alone: no trainer, no weight sync
    arrival_qps: float | None = None            # inference_only: Poisson group arrivals

    def __post_init__(self) -> None:
        checks = [
            (self.prompts_per_step >= 1, "workload.prompts_per_step", self.prompts_per_step, "use >= 1"),
            (self.samples_per_prompt >= 1, "workload.samples_per_prompt", self.samples_per_prompt, "use >= 1"),
            (self.steps >= 1, "steps", self.steps, "simulate at least 1 step"),
            (self.sampler_gpus % self.gpus_per_replica == 0 and self.sampler_gpus >= self.gpus_per_replica,
             "sampler.gpus", self.sampler_gpus,
             f"use a multiple of tp*pp={self.gpus_per_replica}"),
            (self.max_concurrent_sequences >= 1, "sampler.max_concurrent_sequences",
             self.max_concurrent_sequences, "use >= 1"),
            (self.verifier_workers >= 1, "verifier.workers", self.verifier_workers, "use >= 1"),
            (0.0 <= self.verifier_failure_rate <= 1.0, "verifier.failure_rate",
             self.verifier_failure_rate, "use a probability in [0, 1]"),
            (self.verifier_rpc_s >= 0.0, "verifier.rpc_latency_s", self.verifier_rpc_s, "use >= 0"),
            (self.max_staleness >= 0, "orchestration.max_staleness", self.max_staleness, "use >= 0"),
            (self.staleness_fraction is None or self.staleness_fraction >= 0,
             "orchestration.staleness_threshold", self.staleness_fraction, "use >= 0"),
            (self.mini_batches >= 1, "trainer.mini_batches", self.mini_batches, "use >= 1"),
            (self.stream_batches >= 1, "trainer.stream_batches", self.stream_batches, "use >= 1"),
            (self.arrival_qps is None or self.arrival_qps > 0, "orchestration.arrival_qps",
             self.arrival_qps, "use a rate > 0"),
        ]
        for ok, name, value, fix in checks:
            if not ok:
                raise ScenarioError(f"{name}={value!r} is invalid: {fix}")
        for v in (rules.streaming_needs_async(self.streaming, self.mode)
                  + rules.colocated_is_sync(self.placement, self.mode)):
            raise ScenarioError(str(v))

    @property
    def replicas(self) -> int:
        return self.sampler_gpus // self.gpus_per_replica

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt

    @property
    def total_gpus(self) -> int:
        return rules.run_gpus(self.placement, self.inference_only, self.sampler_gpus,
                              self.trainer_gpus)

    @property
    def staleness_batches(self) -> float:
        """The async admission bound in batches: samples up to (published + 1 + this) x batch
        may start (fractional with staleness_fraction); 0 in sync modes."""
        if self.mode != "async":
            return 0.0
        if self.staleness_fraction is not None:
            return float(self.staleness_fraction)
        return float(self.max_staleness)

    @property
    def staleness_bound(self) -> int:
        """Largest allowed (trainer step - generating version); 0 in sync modes."""
        return math.ceil(self.staleness_batches - 1e-12)

    @property
    def update_mode(self) -> str:
        """What a replica does with running sequences when new weights arrive (async)."""
        if self.weight_update is not None:
            return self.weight_update
        return "recompute" if self.partial_rollout else "drain"
