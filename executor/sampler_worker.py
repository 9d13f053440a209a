"""The sampler process of disaggregated/async runs: generate -> verify -> enqueue, with admission.

It runs in its own process (torch.multiprocessing, spawn) with its own model copy (HF or vLLM
backend) and verifier pool. It talks to the trainer through two queues:
- `batches` (bounded): one `SampleMessage` per RL batch, carrying the policy version that
  generated it, the scored rollouts and raw timings (perf_counter / time.time values, which are
  system-wide on Linux, so the trainer puts them on its own trace clock);
- `weights`: `WeightsMessage`s from the trainer after each step; the worker applies the newest
  one between batches (older ones are skipped: only the latest policy matters).

Admission (`stale_policy="block"`): batch i is trained at trainer version i, so it may only be
generated with weights of version >= i - max_staleness; otherwise the worker waits for weights
(the batch is "not generated" until it would be fresh enough; each such wait is counted).
`stale_policy="drop"` never waits for weights; the trainer drops batches that are too old.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Literal

import torch

from executor.config import RunConfig
from executor.run import build_policy
from executor.sampler import HFSampler, Rollout, SampleTiming, SamplingParams
from executor.sampler_vllm import VllmOptions, VllmSampler
from executor.steps import decode, step_seed
from executor.tasks import make_task, problems
from executor.verifier import VerifierPool, VerifyResult
from rlvr_sim.lifecycle import become_worker


@dataclass
class WeightsMessage:
    version: int
    state_dict: dict[str, torch.Tensor]
    sent_perf: float                 # perf_counter when the trainer put it


@dataclass
class WeightLoad:
    version: int
    sent_perf: float
    start_perf: float                # the worker began loading
    end_perf: float


@dataclass
class Wait:
    kind: str                        # "admission" (weights too old) | "queue_full"
    start_perf: float
    end_perf: float


@dataclass
class SampleMessage:
    """One generated + scored RL batch and what happened on the sampler side before it."""

    batch_index: int
    policy_version: int
    data_cursor: int                 # next unused problem index after this batch
    rollouts: list[Rollout]
    results: list[VerifyResult]
    timing: SampleTiming
    backend_extra: dict
    generate_perf: tuple[float, float]
    verify_perf: tuple[float, float]
    weight_loads: list[WeightLoad] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerPlan:
    """What the sampler process needs (picklable)."""

    cfg: RunConfig
    max_staleness: int
    stale_policy: str                # "block" | "drop"
    batches: int | None              # block: exactly the RL steps; drop: None (until stopped)
    workdir: str


def may_generate(batch_index: int, policy_version: int, max_staleness: int) -> bool:
    """Admission rule of stale_policy="block": batch i is trained at trainer version i, so its
    weights (version v) are i - v steps old then; allow it only when i - v <= max_staleness."""
    return batch_index - policy_version <= max_staleness


def make_sampler(cfg, policy, workdir: str):
    """The sampling backend named by executor.backend ('hf' or 'vllm') over `policy`'s weights
    (importing executor.sampler_vllm never imports vllm; building a VllmSampler does)."""
    if cfg.spec.backend == "vllm":
        spec = cfg.scenario.sampler.speculative
        method: Literal["none", "ngram"] = "ngram" if spec.method == "ngram" else "none"
        threads = cfg.spec.threads
        opts = VllmOptions(dtype=cfg.spec.dtype, prefix_caching=cfg.scenario.sampler.prefix_caching,
                           speculative=method, draft_tokens=spec.draft_tokens, seed=cfg.seed,
                           cpu_threads_bind="0" if threads == 1 else f"0-{threads - 1}")
        return VllmSampler.from_policy(policy, workdir, opts)
    return HFSampler(policy.model, policy.tokenizer.eos_token_id, policy.tokenizer.pad_token_id)


class WeightsChannel:
    """The worker's view of the weights channel: applies the newest message, records loads."""

    def __init__(self, channel, sampler):
        self.channel, self.sampler, self.loads = channel, sampler, []

    def _apply(self, msg: WeightsMessage) -> None:
        t0 = time.perf_counter()
        self.sampler.load_weights(msg.state_dict)
        self.sampler.policy_version = msg.version
        self.loads.append(WeightLoad(msg.version, msg.sent_perf, t0, time.perf_counter()))

    def poll(self, block: bool, stop) -> bool:
        """Apply the newest waiting message; with block=True wait for one. False when stopped."""
        newest = None
        while True:
            try:
                newest = self.channel.get(timeout=0.05) if block and newest is None \
                    else self.channel.get_nowait()
            except queue.Empty:
                if newest is not None or not block:
                    break
                if stop.is_set():
                    return False
        if newest is not None:
            self._apply(newest)
        return True


def _put(batches, msg: SampleMessage, stop, waits: list[Wait]) -> bool:
    t0 = time.perf_counter()
    while not stop.is_set():
        try:
            batches.put(msg, timeout=0.05)
            break
        except queue.Full:
            continue
    if time.perf_counter() - t0 > 1e-3:
        waits.append(Wait("queue_full", t0, time.perf_counter()))
    return not stop.is_set()


def sampler_main(plan: WorkerPlan, batches, weights, stop, ready) -> None:
    """Process entry: build, set `ready`, wait for version-0 weights, produce batches until done/stopped."""
    become_worker()     # quiet on Ctrl-C (the trainer side stops it), exits with its parent
    cfg = plan.cfg
    torch.set_num_threads(cfg.spec.threads)
    policy = build_policy(cfg)
    sampler = make_sampler(cfg, policy, plan.workdir)
    channel = WeightsChannel(weights, sampler)
    tok, task = policy.tokenizer, make_task(cfg.spec)
    params = SamplingParams(cfg.samples_per_prompt, cfg.max_new_tokens, cfg.spec.temperature,
                            cfg.spec.top_p)
    with VerifierPool(task, cfg.verifier_workers) as pool:
        pool.warm_up()
        ready.set()
        if not channel.poll(block=True, stop=stop):
            batches.put(None)
            return
        channel.loads = []       # version 0 arrives before the clock starts
        index, waits = 0, []
        while plan.batches is None or index < plan.batches:
            if not channel.poll(block=False, stop=stop):
                break
            while plan.stale_policy == "block" and not may_generate(index, sampler.policy_version,
                                                                      plan.max_staleness):
                t0 = time.perf_counter()
                if not channel.poll(block=True, stop=stop):
                    break
                waits.append(Wait("admission", t0, time.perf_counter()))
            if stop.is_set():
                break
            probs = problems(task, cfg.seed, index * cfg.prompts_per_step, cfg.prompts_per_step)
            g0 = time.perf_counter()
            out = sampler.generate([tok.encode(p.prompt, add_special_tokens=False) for p in probs],
                                   params, seed=step_seed(cfg.seed, index))
            g1 = time.perf_counter()
            results = pool.score([(probs[r.group], decode(tok, r.completion_ids)) for r in out.rollouts])
            g2 = time.perf_counter()
            msg = SampleMessage(index, sampler.policy_version, (index + 1) * cfg.prompts_per_step,
                                out.rollouts, results, out.timing, out.extra, (g0, g1), (g1, g2),
                                channel.loads, waits)
            channel.loads, waits = [], []
            if not _put(batches, msg, stop, waits):
                break
            index += 1
        batches.put(None)       # before the pool shuts down: the trainer can stop waiting now
