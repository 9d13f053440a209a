"""Code: small function-synthesis problems checked by unit tests in the sandbox.

The prompt is a signature plus a one-line spec; the completion is the function body. The
checker runs prompt + completion, then the problem's asserts, in `executor.sandbox` (wall/CPU/
memory/output limits, no processes, no network, private temp dir). Reward 1 iff every assert
passes; otherwise 0 with the sandbox's reason (timeout, memory limit, failed: AssertionError...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from executor.sandbox import SandboxLimits, run_python
from executor.tasks import Problem, Verdict, problem_rng

# (signature, spec, reference body, test template with {a} {b} placeholders for random ints)
SPECS: tuple[tuple[str, str, str, str], ...] = (
    ("def add(a, b):", "return a plus b", "    return a + b",
     "assert add({a}, {b}) == {a} + {b}\nassert add(0, 0) == 0"),
    ("def mul(a, b):", "return a times b", "    return a * b",
     "assert mul({a}, {b}) == {a} * {b}\nassert mul(3, 0) == 0"),
    ("def biggest(a, b):", "return the larger of a and b", "    return max(a, b)",
     "assert biggest({a}, {b}) == max({a}, {b})\nassert biggest(-1, -2) == -1"),
    ("def square(a):", "return a squared", "    return a * a",
     "assert square({a}) == {a} ** 2\nassert square(-3) == 9"),
    ("def is_even(a):", "return True if a is even", "    return a % 2 == 0",
     "assert is_even({a}) == ({a} % 2 == 0)\nassert is_even(7) is False"),
    ("def rev(s):", "return the string s reversed", "    return s[::-1]",
     "assert rev('ab{a}') == '{a}ba'\nassert rev('') == ''"),
)


@dataclass(frozen=True)
class CodeTask:
    """One of SPECS with random test constants; `limits` bound each sandboxed test run."""

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    name: str = "code"

    def problem(self, seed: int, index: int, stream: str = "train") -> Problem:
        rng = problem_rng(seed, index, stream)
        signature, spec, body, tests = rng.choice(SPECS)
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        prompt = f"# {spec}\n{signature}\n"
        return Problem(index=index, prompt=prompt, answer=tests.format(a=a, b=b), reference=body)

    def check(self, problem: Problem, completion: str) -> Verdict:
        result = run_python(problem.prompt + completion + "\n", problem.answer, self.limits)
        return Verdict(1.0 if result.ok else 0.0, result.reason)
