"""Tasks: a deterministic problem generator plus a checker. The checker IS the reward.

Problems are a pure function of (seed, index), so the data cursor (the next index) is all a
checkpoint needs to resume the data stream. Checkers never raise: every failure is a `Verdict`
with reward 0 and a reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Problem:
    """One prompt and what the checker needs to score a completion of it."""

    index: int
    prompt: str
    answer: str          # ground truth (a number, a target, or test code)
    reference: str       # a correct completion (SFT warm-start target)
    data: tuple = ()     # task-specific extra (countdown numbers, ...)


@dataclass(frozen=True)
class Verdict:
    """A checker's result: reward in [0, 1] and why; `isolation` names the sandbox a code
    check ran in ("os", "python", "none" when refused; "" for tasks that run no code)."""

    reward: float
    reason: str
    isolation: str = ""


class Task(Protocol):
    """What the loop needs from a task. Implementations are small picklable (frozen)
    dataclasses; `name` is read-only."""

    @property
    def name(self) -> str: ...

    def problem(self, seed: int, index: int, stream: str = "train") -> Problem: ...

    def check(self, problem: Problem, completion: str) -> Verdict: ...


def problem_rng(seed: int, index: int, stream: str = "train") -> random.Random:
    """The RNG of problem `index`: independent of every other problem (seeded by a string)."""
    return random.Random(f"{stream}:{seed}:{index}")


def problems(task: Task, seed: int, start: int, count: int, stream: str = "train") -> list[Problem]:
    """Problems start .. start+count-1 of `stream` ("train" or the held-out "eval") under `seed`."""
    return [task.problem(seed, i, stream) for i in range(start, start + count)]


def make_task(spec) -> Task:
    """The task named by an ExecutorSpec (`spec.task`), configured from its fields."""
    if spec.task == "math":
        from executor.tasks.math import MathTask
        return MathTask(operand_max=spec.operand_max, operators=tuple(spec.operators))
    if spec.task == "countdown":
        from executor.tasks.countdown import CountdownTask
        return CountdownTask(rules=spec.countdown_rules)
    if spec.task == "code":
        from executor.tasks.code import CodeTask
        from executor.sandbox import SandboxLimits
        limits = SandboxLimits(
            wall_s=spec.code_timeout_s, cpu_s=max(1, int(spec.code_timeout_s)),
            memory_bytes=spec.code_memory_bytes, output_bytes=spec.code_output_bytes,
            result_bytes=spec.code_output_bytes, allow_weak=spec.allow_weak_sandbox)
        require_isolation(limits)
        return CodeTask(limits=limits)
    raise ValueError(f"unknown task {spec.task!r}")


def require_isolation(limits) -> str:
    """The isolation code runs will get under `limits`; UserError when the sandbox refuses
    (no OS isolation and no allow_weak), so a run fails at start instead of scoring 0 always."""
    from executor.sandbox import probe_isolation
    from rlvr_sim.errors import UserError

    probe = probe_isolation(limits)
    if probe.isolation == "none":
        raise UserError(f"executor.task=code: {probe.reason} ; run as root (or with "
                        "CAP_SYS_ADMIN) for namespace isolation, or accept the weaker in-process "
                        "audit hook with --allow-weak-sandbox (executor.allow_weak_sandbox: true)")
    if not probe.completed:
        raise UserError(f"executor.task=code: the sandbox cannot run code ({probe.reason}) ; "
                        "check executor.code_timeout_s / code_memory_bytes")
    return probe.isolation
