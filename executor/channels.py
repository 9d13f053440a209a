"""The channels of a disaggregated/async run: the orchestration settings, the sampler process
and the queues between it and the trainer (batches one way, weights the other).

`executor.orchestrator` dispatches a run; `executor.orchestrator_trainer` is the trainer side
and `executor.sampler_worker` the sampler side; both talk only through what is here.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.multiprocessing as tmp

from executor.config import RunConfig
from executor.sampler import Rollout
from executor.sampler_worker import SampleMessage, WeightsMessage, WorkerPlan, sampler_main
from executor.trainer import TokenBatch, GRPOTrainer, TrainStats, make_batch
from rlvr_sim import rules
from rlvr_sim.errors import UserError
from rlvr_sim.lifecycle import sigint_held


@dataclass(frozen=True)
class Orchestration:
    placement: str             # colocated | disaggregated
    mode: str                  # sync | async
    max_staleness: int         # effective bound (0 for sync)
    stale_policy: str          # block | drop
    queue_batches: int         # capacity of the sampler -> trainer queue (RL batches)

    @property
    def label(self) -> str:
        if self.mode == "sync":
            return f"{self.placement}-sync"
        return f"async({self.max_staleness},{self.stale_policy})"


def orchestration_of(cfg: RunConfig, stale_policy: str | None = None) -> Orchestration:
    """The effective settings (stale_policy: an override of executor.stale_policy); UserError
    names the field for values we cannot run."""
    o = cfg.scenario.orchestration
    policy = stale_policy or cfg.spec.stale_policy
    if policy not in ("block", "drop"):
        raise UserError(f"executor.stale_policy={policy!r}: use 'block' or 'drop'")
    if o.partial_rollout:
        raise UserError("orchestration.partial_rollout=true is not executed (the executor finishes "
                        "every rollout with one policy version); set it to false")
    eta = rules.staleness_steps(o.mode, o.max_staleness)
    return Orchestration(o.placement, o.mode, eta, policy, queue_batches=max(1, eta))


def behaviour_logps(rollouts: Sequence[Rollout], batch: TokenBatch) -> torch.Tensor:
    """[B, T-1] old log-probs from the sampler's per-token log-probs, aligned with batch.mask."""
    old = torch.zeros_like(batch.mask, dtype=torch.float32)
    for i, r in enumerate(rollouts):
        start = len(r.prompt_ids) - 1
        old[i, start:start + len(r.logprobs)] = torch.tensor(r.logprobs, dtype=torch.float32)
    return old.to(batch.mask.device)


def train_on(trainer: GRPOTrainer, msg: SampleMessage, group_size: int) -> TrainStats:
    """One GRPO step on a sampler batch, importance-weighted against its behaviour log-probs."""
    rewards = [r.reward for r in msg.results]
    batch = make_batch(msg.rollouts, trainer.pad_id, trainer.device)
    return trainer.step(msg.rollouts, rewards, group_size,
                        old_logps=behaviour_logps(msg.rollouts, batch))


@dataclass
class Counts:
    """What the staleness bound cost: batches not generated in time (waits) or dropped."""

    admission_waits: int = 0
    admission_wait_s: float = 0.0
    dropped_batches: int = 0
    dropped_samples: int = 0
    staleness_hist: Counter[int] = dataclasses.field(default_factory=Counter)
    wall_s: float = 0.0              # first step start -> last step end (trainer clock)
    output_tokens: int = 0           # completion tokens trained on


def make_plan(cfg: RunConfig, orch: Orchestration, workdir: str) -> WorkerPlan:
    batches = cfg.steps if orch.stale_policy == "block" else None
    return WorkerPlan(cfg, orch.max_staleness, orch.stale_policy, batches, workdir)


@dataclass(frozen=True)
class SamplerProcess:
    """The sampler process and its channels (spawn-context queues and events)."""

    proc: Any               # multiprocessing Process
    batches: Any            # Queue[SampleMessage | None], bounded by queue_batches
    weights: Any            # Queue[WeightsMessage]
    stop: Any               # Event: the trainer is done
    ready: Any              # Event: the sampler built its engine and verifier pool


def start_sampler(cfg: RunConfig, orch: Orchestration, workdir: str) -> SamplerProcess:
    """Spawn the sampler process (it builds its engine and verifier pool meanwhile); call
    `wait_ready` before the first step so start-up is not charged to any step."""
    ctx = tmp.get_context("spawn")
    batches, weights, stop, ready = (ctx.Queue(maxsize=orch.queue_batches), ctx.Queue(), ctx.Event(),
                                     ctx.Event())
    proc = ctx.Process(target=sampler_main, name="rlvr-sampler", daemon=False,
                       args=(make_plan(cfg, orch, workdir), batches, weights, stop, ready))
    with sigint_held():     # until sampler_main's become_worker(): a Ctrl-C is the trainer's alone
        proc.start()
    return SamplerProcess(proc, batches, weights, stop, ready)


def wait_ready(proc: Any, ready: Any) -> None:
    while not ready.wait(timeout=0.2):
        if not proc.is_alive():
            raise RuntimeError(f"sampler process exited with code {proc.exitcode} while starting")


def send_weights(model: torch.nn.Module, weights: Any, version: int) -> tuple[float, float, int]:
    """Snapshot the trainer's weights (a copy: the sampler must not see later updates) and send."""
    t0 = time.perf_counter()
    with torch.no_grad():
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    size = sum(t.numel() * t.element_size() for t in state.values())
    weights.put(WeightsMessage(version, state, time.perf_counter()))
    return t0, time.perf_counter(), size


def next_message(batches: Any, proc: Any, timeout_s: float = 0.2) -> SampleMessage | None:
    """The next batch; raises if the sampler process died without finishing."""
    while True:
        try:
            msg: SampleMessage | None = batches.get(timeout=timeout_s)
            return msg
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"sampler process exited with code {proc.exitcode} before "
                                   "sending every batch") from None


def stop_sampler(proc: Any, batches: Any, stop: Any, join_s: float = 30.0) -> None:
    """Tell the sampler to stop, drain the queue until its final None, join (terminate if stuck)."""
    stop.set()
    deadline = time.perf_counter() + join_s
    while proc.is_alive() and time.perf_counter() < deadline:
        try:
            if batches.get(timeout=0.1) is None:
                break
        except queue.Empty:
            continue
    proc.join(timeout=max(0.0, deadline - time.perf_counter()))
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
