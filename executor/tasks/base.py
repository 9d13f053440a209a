"""What every task is made of: a `Problem`, a checker's `Verdict`, the `Task` protocol, and the
problem stream (a pure function of (seed, index), so the data cursor is all a checkpoint needs).
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
