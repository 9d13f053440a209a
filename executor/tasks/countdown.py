"""Countdown: reach a target with the given numbers, each used at most once, with + - * / ( ).

The validator parses the expression with a small recursive-descent parser (never `eval`),
computes it exactly with fractions, checks that the numbers used are a sub-multiset of the
given ones, and that the value equals the target. The expression is the completion's last line
(an optional "answer:" prefix and a trailing "= target" are tolerated).

Rules (`CountdownTask.rules`, scenario `executor.countdown_rules`):
- "rational" (the DEFAULT): intermediate values may be any exact fraction or negative number,
  only the final value must equal the target (e.g. 7/2*2 = 7 is accepted);
- "classic": the TV game's rule, every intermediate result (each + - * /) must be a positive
  integer (7/2*2 and 3-5+9 are rejected; division must be exact).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from executor.tasks.base import Problem, Verdict, problem_rng

_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")
MAX_EXPRESSION_CHARS = 200
RULES = ("rational", "classic")


class ParseError(ValueError):
    """The expression is not a valid arithmetic expression over integers."""


def tokenize(text: str) -> list[str]:
    """Integers and the operators + - * / ( ); anything else is a ParseError."""
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError(f"unexpected character {text[pos]!r} at {pos}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)*; term := atom (('*'|'/') atom)*; atom := int | '(' expr ')'."""

    def __init__(self, tokens: list[str], classic: bool = False):
        self.tokens, self.pos, self.classic = tokens, 0, classic
        self.numbers: list[int] = []

    def checked(self, value: Fraction, op: str) -> Fraction:
        """Under classic rules an intermediate must be a positive integer."""
        if self.classic and (value.denominator != 1 or value <= 0):
            raise ParseError(f"classic rules: intermediate {value} after '{op}' is not a "
                             "positive integer")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ParseError("expression ends too early")
        self.pos += 1
        return tok

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = self.checked(value + self.term() if op == "+" else value - self.term(), op)
        return value

    def term(self) -> Fraction:
        value = self.atom()
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.atom()
            if op == "/" and rhs == 0:
                raise ParseError("division by zero")
            value = self.checked(value * rhs if op == "*" else value / rhs, op)
        return value

    def atom(self) -> Fraction:
        tok = self.take()
        if tok == "(":
            value = self.expr()
            if self.take() != ")":
                raise ParseError("missing ')'")
            return value
        if tok.isdigit():
            self.numbers.append(int(tok))
            return Fraction(int(tok))
        raise ParseError(f"unexpected {tok!r}")


def evaluate(expression: str, classic: bool = False) -> tuple[Fraction, list[int]]:
    """(exact value, the integer literals used) of an expression; ParseError when invalid
    (or, with classic=True, when an intermediate result is not a positive integer)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ParseError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    parser = _Parser(tokenize(expression), classic)
    value = parser.expr()
    if parser.peek() is not None:
        raise ParseError(f"trailing {parser.peek()!r}")
    return value, parser.numbers


def _expression_of(completion: str) -> str:
    lines = [ln for ln in completion.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    line = re.sub(r"^\s*answer\s*:\s*", "", line, flags=re.IGNORECASE)
    return line.split("=")[0]


def validate(completion: str, numbers: tuple[int, ...], target: int,
             rules: str = "rational") -> Verdict:
    """Reward 1 iff the expression is valid (under `rules`), uses each given number at most
    once, and hits target."""
    expression = _expression_of(completion)
    if not expression.strip():
        return Verdict(0.0, "no expression")
    try:
        value, used = evaluate(expression, classic=rules == "classic")
    except ParseError as exc:
        return Verdict(0.0, f"invalid expression: {exc}")
    extra = Counter(used) - Counter(numbers)
    if extra:
        return Verdict(0.0, f"numbers not available: {sorted(extra.elements())}")
    if value != target:
        return Verdict(0.0, f"value {value} != target {target}")
    return Verdict(1.0, "correct")


@dataclass(frozen=True)
class CountdownTask:
    """`count` numbers in 1..number_max; the target is built from a random expression over them.
    rules: "rational" (default) or "classic" (see the module docstring); under classic rules
    the reference expression itself obeys them."""

    count: int = 3
    number_max: int = 9
    rules: str = "rational"
    name: str = "countdown"

    def __post_init__(self):
        if self.rules not in RULES:
            raise ValueError(f"countdown rules={self.rules!r}: use one of {RULES}")

    def problem(self, seed: int, index: int, stream: str = "train") -> Problem:
        rng = problem_rng(seed, index, stream)
        while True:
            nums = tuple(rng.randint(1, self.number_max) for _ in range(self.count))
            used = rng.sample(nums, rng.randint(2, self.count))
            expr = str(used[0])
            for n in used[1:]:
                expr = f"{expr}{rng.choice('+-*')}{n}"
            value, _ = evaluate(expr)
            if value.denominator == 1 and value > 0 and self._allowed(expr):
                break
        target = int(value)
        prompt = f"{' '.join(map(str, nums))} -> {target}:"
        return Problem(index=index, prompt=prompt, answer=str(target), reference=expr, data=nums)

    def _allowed(self, expr: str) -> bool:
        if self.rules != "classic":
            return True
        try:
            evaluate(expr, classic=True)
        except ParseError:
            return False
        return True

    def check(self, problem: Problem, completion: str) -> Verdict:
        return validate(completion, problem.data, int(problem.answer), self.rules)
