"""Arithmetic: `a+b=` style expression problems, answered with a number.

The grader reads ONE final answer. It first picks the final-answer part of the completion:
1. the content of the last `\\boxed{...}` (balanced braces), else
2. after the last "answer" (any case; "Final answer:", "The answer is", "answer =") or GSM8K's
   "####", up to the end of that sentence (a newline, or . ! ? ; followed by a space or the
   end: "The answer is 7. Check: 7-4=3" reads "7"), else
3. the last non-empty line;
then, inside that part, only what follows its last "=" or " is " ("so 3 + 4 is 7" reads "7").
Every number left is a candidate; several DISTINCT values ("3 or 4", "\\boxed{3, 4}") is
wrong ("ambiguous"), none is "no answer". Accepted formats: a Unicode minus sign (U+2212 and
other dashes used as minus, full-width digits via NFKC), thousands separators (1,000), decimals,
exponents (1e3), fractions a/b and \\frac{a}{b}; a '-' right before a digit is a sign unless it
follows a digit or ')' ("7-4" is 7 and 4). Values compare exactly (fractions) within an
absolute TOLERANCE of 1e-6. Parsing is one left-to-right scan; its only regexes are single
characters or fixed strings (no backtracking), so time is linear in the completion's length.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

from executor.tasks.base import Problem, Verdict, problem_rng

TOLERANCE = Fraction(1, 10**6)
MINUS_SIGNS = {"\u2212": "-", "\u2012": "-", "\u2013": "-", "\u2010": "-", "\u2011": "-"}
SENTENCE_ENDS = ".!?;"
MAX_DIGITS = 60          # a longer number is unreadable (no huge-int work on hostile input)
MAX_EXPONENT = 30
_DIGITS = frozenset("0123456789")
# Single-character (or fixed-string) patterns only: each search is linear in the text.
_BRACE = re.compile(r"[{}]")
_DIGIT_RUN = re.compile(r"[0-9]*")
_SENTENCE_END = re.compile(r"\n|[.!?;](?=\s|\Z)")
_NUMBER_START = re.compile(r"[0-9]|\\[dt]?frac\{")


@dataclass(frozen=True)
class Extraction:
    """The final answer read from a completion: its distinct candidate values (in order of
    appearance), whether some number was unreadable, and the part they came from."""

    candidates: tuple[int | Fraction, ...]
    unreadable: bool
    part: str

    @property
    def value(self) -> int | Fraction | None:
        """The answer when there is exactly one readable candidate, else None."""
        return self.candidates[0] if len(self.candidates) == 1 and not self.unreadable else None


def normalize(text: str) -> str:
    """NFKC (full-width digits and signs to ASCII) and Unicode dashes used as minus to '-'."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return "".join(MINUS_SIGNS.get(c, c) for c in text) if any(c in MINUS_SIGNS for c in text) else text


def _boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for m in _BRACE.finditer(text, i):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return text[i:m.start()]
    return text[i:]


def _sentence(text: str, start: int) -> str:
    """text[start:] up to the end of its sentence."""
    m = _SENTENCE_END.search(text, start)
    return text[start:m.start()] if m else text[start:]


def final_part(text: str) -> str:
    """The final-answer part of a normalized completion (see the module docstring)."""
    part = _boxed(text)
    if part is None:
        lower = text.lower()
        marker = max(((lower.rfind(m), m) for m in ("answer", "####")), key=lambda x: x[0])
        if marker[0] >= 0:
            part = _sentence(text, marker[0] + len(marker[1]))
        else:
            stripped = text.rstrip()
            part = stripped[stripped.rfind("\n") + 1:]
    lower = part.lower()
    cut = max(part.rfind("="), lower.rfind(" is "))
    if cut >= 0 and part[cut:].strip() not in ("=", "is"):
        part = part[cut + (1 if part[cut] == "=" else 4):]
    return part


def _int_run(text: str, i: int) -> int:
    """End of the run of ASCII digits starting at i."""
    run = _DIGIT_RUN.match(text, i)
    return i if run is None else run.end()          # `[0-9]*` always matches


def _number_at(text: str, i: int) -> tuple[int | Fraction | None, int]:
    """Parse the number whose first digit is at i (sign handled by the caller). Returns
    (value or None when unreadable, end index)."""
    n = len(text)
    j = _int_run(text, i)
    digits = text[i:j]
    if j - i <= 3:                                     # thousands groups: 1,000,000
        while j < n and text[j] == "," and _int_run(text, j + 1) == j + 4:
            digits += text[j + 1:j + 4]
            j += 4
    frac_digits = ""
    if j + 1 < n and text[j] == "." and text[j + 1] in _DIGITS:
        k = _int_run(text, j + 1)
        frac_digits, j = text[j + 1:k], k
    exponent = 0
    if j + 1 < n and text[j] in "eE":
        k = j + 1 + (text[j + 1] in "+-")
        if k < n and text[k] in _DIGITS:
            end = _int_run(text, k)
            if end - k > 3:
                return None, end
            exponent, j = int(text[j + 1:end]), end
    if len(digits) + len(frac_digits) > MAX_DIGITS or abs(exponent) > MAX_EXPONENT:
        return None, j
    if not frac_digits and exponent >= 0:
        value = int(digits) * 10 ** exponent          # the common case: no Fraction needed
    else:
        value = Fraction(int(digits + frac_digits), 10 ** len(frac_digits)) * Fraction(10) ** exponent
    if frac_digits == "" and exponent == 0 and j + 1 < n and text[j] == "/" and text[j + 1] in _DIGITS:
        end = _int_run(text, j + 1)
        if end - (j + 1) > MAX_DIGITS:
            return None, end
        den = int(text[j + 1:end])
        return (Fraction(value, den) if den else None), end
    return value, j


def _frac_at(text: str, i: int) -> tuple[Fraction | None, int] | None:
    """\\frac{a}{b} (also \\dfrac, \\tfrac) starting at i, or None when it is not one."""
    for name in ("\\frac{", "\\dfrac{", "\\tfrac{"):
        if text.startswith(name, i):
            j = i + len(name)
            break
    else:
        return None
    values = []
    for closing in ("}{", "}"):
        sign = -1 if j < len(text) and text[j] == "-" else 1
        j += sign == -1
        end = _int_run(text, j)
        if end == j or end - j > MAX_DIGITS or not text.startswith(closing, end):
            return None
        values.append(sign * int(text[j:end]))
        j = end + len(closing)
    return (Fraction(values[0], values[1]) if values[1] else None), j


def numbers(part: str) -> tuple[list[int | Fraction], bool]:
    """(values of the numbers in `part` in order, whether some number was unreadable)."""
    values: list[int | Fraction] = []
    unreadable, i, n = False, 0, len(part)
    while i < n:
        m = _NUMBER_START.search(part, i)      # jump to the next digit or \frac (C speed)
        if m is None:
            break
        i = m.start()
        c = part[i]
        if c == "\\":
            frac = _frac_at(part, i)
            if frac is not None:
                value, i = frac
                unreadable |= value is None
                if value is not None:
                    values.append(value)
                continue
        if c in _DIGITS:
            number, end = _number_at(part, i)
            negative = (i >= 1 and part[i - 1] == "-"
                        and not (i >= 2 and (part[i - 2] in _DIGITS or part[i - 2] == ")")))
            if number is None:
                unreadable = True
            else:
                values.append(-number if negative else number)
            i = end
            continue
        i += 1
    return values, unreadable


def extract_answer(completion: str) -> Extraction:
    """The completion's final-answer part and its distinct candidate values."""
    part = final_part(normalize(completion))
    values, unreadable = numbers(part)
    distinct = tuple(dict.fromkeys(values))
    return Extraction(distinct, unreadable, part.strip()[:80])


def _fmt(x: int | Fraction) -> str:
    return str(x) if isinstance(x, int) else str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


def _exact(answer) -> int | Fraction:
    """The expected value exactly: an int when it is one (fast path), else a Fraction."""
    if isinstance(answer, int):
        return answer
    if isinstance(answer, str) and answer.lstrip("-").isdigit() and len(answer) <= MAX_DIGITS:
        return int(answer)
    if isinstance(answer, float) and answer.is_integer():
        return int(answer)
    value = Fraction(repr(answer)) if isinstance(answer, float) else Fraction(answer)
    return value.numerator if value.denominator == 1 else value


def grade(completion: str, answer) -> Verdict:
    """Reward 1 when the completion states exactly one final value and it is within TOLERANCE
    of `answer` (int, float or numeric str); else 0 with a reason."""
    expected = _exact(answer)
    got = extract_answer(completion)
    if got.unreadable:
        return Verdict(0.0, "unreadable number in the final answer")
    if not got.candidates:
        return Verdict(0.0, "no answer")
    if len(got.candidates) > 1:
        shown = ", ".join(_fmt(c) for c in got.candidates[:5])
        return Verdict(0.0, f"ambiguous: several final answers ({shown})")
    value = got.candidates[0]
    if value == expected or abs(Fraction(value) - expected) <= TOLERANCE:
        return Verdict(1.0, "correct")
    return Verdict(0.0, f"wrong answer: got {_fmt(value)}, expected {_fmt(expected)}")


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
        return grade(completion, problem.answer)
