"""Code: small function-synthesis problems; the judge runs OUTSIDE the sandbox.

The prompt is a signature plus a one-line spec; the completion is the function body. For each
problem the trusted parent computes the expected values itself, at generation time, with the
spec's oracle (plain Python in this module, never the completion) on the problem's argument
lists. The checker runs prompt + completion in `executor.sandbox.run_function`, which only
calls the function on those arguments and returns the values as typed JSON; `judge` then
compares them here with `strict_equal` (exact types: 5.0 is not 5, 1 is not True). Reward 1 iff
every case returns exactly the expected value; otherwise 0 with a reason (the sandbox's:
timeout, memory limit, refused...; or the first failing case: "failed: case 2: ZeroDivisionError",
"wrong answer: case 0: got 3, expected 5").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from executor.sandbox import RunResult, SandboxLimits, run_function
from executor.tasks.base import Problem, Verdict, problem_rng
from executor.typed_json import JsonValue, canonical, short, strict_equal


@dataclass(frozen=True)
class CodeSpec:
    """One function to synthesise: signature, one-line spec, reference body (the SFT target),
    the trusted oracle, and the argument lists of a problem from two random ints a, b."""

    signature: str
    spec: str
    body: str
    oracle: Callable
    cases: Callable[[int, int], list[tuple]]

    @property
    def function(self) -> str:
        return self.signature[len("def "):self.signature.index("(")]


def _biggest(a, b):
    return a if a >= b else b


SPECS: tuple[CodeSpec, ...] = (
    CodeSpec("def add(a, b):", "return a plus b", "    return a + b",
             lambda a, b: a + b, lambda a, b: [(a, b), (0, 0), (-7, 3), (b, 11)]),
    CodeSpec("def mul(a, b):", "return a times b", "    return a * b",
             lambda a, b: a * b, lambda a, b: [(a, b), (3, 0), (-2, 5), (b, 7)]),
    CodeSpec("def biggest(a, b):", "return the larger of a and b", "    return max(a, b)",
             _biggest, lambda a, b: [(a, b), (-1, -2), (b, a), (5, 9)]),
    CodeSpec("def square(a):", "return a squared", "    return a * a",
             lambda a: a * a, lambda a, b: [(a,), (-3,), (0,), (b,)]),
    CodeSpec("def is_even(a):", "return True if a is even", "    return a % 2 == 0",
             lambda a: a % 2 == 0, lambda a, b: [(a,), (7,), (0,), (b,)]),
    CodeSpec("def rev(s):", "return the string s reversed", "    return s[::-1]",
             lambda s: "".join(reversed(s)), lambda a, b: [(f"ab{a}",), ("",), (f"x{b}yz",)]),
)


@dataclass(frozen=True)
class CodeCase:
    """One call of the candidate: its arguments and the value the trusted oracle returned
    (both typed JSON)."""

    args: tuple[JsonValue, ...]
    expected: JsonValue


def judge(run: RunResult, cases: tuple[CodeCase, ...]) -> Verdict:
    """Reward 1 iff the run completed and every case's value strictly equals the expected one."""
    if not run.completed:
        return Verdict(0.0, run.reason, run.isolation)
    if len(run.cases) != len(cases):
        return Verdict(0.0, "malformed results", run.isolation)
    for i, (got, case) in enumerate(zip(run.cases, cases)):
        if got.error is not None:
            return Verdict(0.0, f"failed: case {i}: {got.error}", run.isolation)
        if not strict_equal(got.value, case.expected):
            return Verdict(0.0, f"wrong answer: case {i}: got {short(got.value)}, expected "
                           f"{short(case.expected)}", run.isolation)
    return Verdict(1.0, "passed", run.isolation)


@dataclass(frozen=True)
class CodeTask:
    """One of SPECS with random arguments; `limits` bound each sandboxed run.

    Problem.data holds the CodeCase tuple (arguments + expected values computed here);
    Problem.answer is the same as readable JSON (for logs and humans)."""

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    name: str = "code"

    def problem(self, seed: int, index: int, stream: str = "train") -> Problem:
        rng = problem_rng(seed, index, stream)
        spec = rng.choice(SPECS)
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        cases = tuple(CodeCase(tuple(canonical(x) for x in args), canonical(spec.oracle(*args)))
                      for args in spec.cases(a, b))
        answer = json.dumps({"function": spec.function,
                             "cases": [[list(c.args), c.expected] for c in cases]})
        return Problem(index=index, prompt=f"# {spec.spec}\n{spec.signature}\n", answer=answer,
                       reference=spec.body, data=cases)

    def check(self, problem: Problem, completion: str) -> Verdict:
        function = json.loads(problem.answer)["function"]
        run = run_function(problem.prompt + completion + "\n", function,
                           [c.args for c in problem.data], self.limits)
        return judge(run, problem.data)
