"""Arithmetic: `a+b=` style expression problems, answered with a number.

The grader extracts the final answer robustly, in this order: the last `\\boxed{...}`, the
number after the last "answer:" (case-insensitive), else the last number in the completion.
Numbers compare with an absolute tolerance of 1e-6; there is no partial credit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from executor.tasks import Problem, Verdict, problem_rng

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER = re.compile(r"answer\s*[:=]?\s*(" + _NUMBER + ")", re.IGNORECASE)
_ANY = re.compile(_NUMBER)
TOLERANCE = 1e-6


def extract_answer(completion: str) -> float | None:
    """The completion's final numeric answer, or None when it states none."""
    for pattern in (_BOXED, _ANSWER):
        found = pattern.findall(completion)
        if found:
            inner = _ANY.findall(found[-1])
            if inner:
                return float(inner[-1])
    found = _ANY.findall(completion)
    return float(found[-1]) if found else None


def grade(completion: str, answer: float) -> Verdict:
    """Reward 1 when the extracted answer is within TOLERANCE of `answer`, else 0 with a reason."""
    got = extract_answer(completion)
    if got is None:
        return Verdict(0.0, "no answer")
    if abs(got - answer) <= TOLERANCE:
        return Verdict(1.0, "correct")
    return Verdict(0.0, f"wrong answer: got {got:g}, expected {answer:g}")


@dataclass(frozen=True)
class MathTask:
    """Two operands in 0..operand_max joined by one of `operators`; completion is the result."""

    operand_max: int = 9
    operators: tuple[str, ...] = ("+", "-")
    name: str = "math"

    def problem(self, seed: int, index: int, stream: str = "train") -> Problem:
        rng = problem_rng(seed, index, stream)
        a, b = rng.randint(0, self.operand_max), rng.randint(0, self.operand_max)
        op = rng.choice(self.operators)
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return Problem(index=index, prompt=f"{a}{op}{b}=", answer=str(value), reference=str(value))

    def check(self, problem: Problem, completion: str) -> Verdict:
        return grade(completion, float(problem.answer))
