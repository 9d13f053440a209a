"""Task generators and checkers (the checker is the reward)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.tasks import Verdict, problems
from executor.tasks.countdown import CountdownTask, ParseError, evaluate, validate
from executor.tasks.math import MathTask, extract_answer, grade


@pytest.mark.parametrize("text, value", [
    ("12", 12.0), ("-3", -3.0), ("so 3 + 4 is 7", 7.0), ("\\boxed{42} but then 7", 42.0),
    ("Answer: 5. Check: 1+1=2", 5.0), ("answer = -2.5", -2.5), ("1e3", 1000.0), ("none", None),
    ("", None), ("\\boxed{x = 9}", 9.0),
])
def test_extract_answer(text, value):
    assert extract_answer(text) == value


def test_grade_tolerance_and_reasons():
    assert grade("7", 7.0) == Verdict(1.0, "correct")
    assert grade("7.0000001", 7.0).reward == 1.0
    assert grade("7.01", 7.0).reward == 0.0
    assert grade("nothing", 7.0) == Verdict(0.0, "no answer")
    assert grade("8", 7.0).reason.startswith("wrong answer")


def test_math_problems_are_deterministic_and_streams_differ():
    task = MathTask(operand_max=9, operators=("+", "-"))
    a, b = problems(task, 0, 0, 50), problems(task, 0, 0, 50)
    assert a == b
    assert problems(task, 0, 10, 5) == a[10:15]
    assert [p.prompt for p in problems(task, 0, 0, 50, "eval")] != [p.prompt for p in a]
    assert [p.prompt for p in problems(task, 1, 0, 50)] != [p.prompt for p in a]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([("+",), ("-",), ("*",), ("+", "-", "*")]))
def test_math_reference_is_correct(index, ops):
    task = MathTask(operand_max=9, operators=ops)
    p = task.problem(3, index)
    a, op, b = p.prompt[0], p.prompt[1], p.prompt[2]
    assert int(p.answer) == eval(f"{a}{op}{b}")  # noqa: S307 - test oracle on generated digits
    assert task.check(p, p.reference).reward == 1.0


def test_countdown_parser_is_exact_and_safe():
    assert evaluate("(3+5)*2") == (16, [3, 5, 2])
    assert evaluate("7/2*2")[0] == 7
    for bad in ("__import__('os')", "3+", "(3+5", "3 5", "2**3", "1/0", "9" * 300):
        with pytest.raises(ParseError):
            evaluate(bad)


def test_countdown_validator():
    nums = (3, 5, 2)
    assert validate("(3+5)*2", nums, 16) == Verdict(1.0, "correct")
    assert validate("answer: 3*5 = 15", nums, 15).reward == 1.0
    assert validate("3*3", nums, 9).reason.startswith("numbers not available")   # 3 used twice
    assert validate("3+5", nums, 9).reason.startswith("value")
    assert validate("import os", nums, 9).reason.startswith("invalid expression")
    assert validate("", nums, 9).reason == "no expression"


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000))
def test_countdown_reference_solves_problem(index):
    task = CountdownTask()
    p = task.problem(0, index)
    assert task.check(p, p.reference).reward == 1.0
    assert int(p.answer) > 0


def test_code_task_reference_passes_and_wrong_fails():
    from executor.tasks.code import CodeTask
    task = CodeTask()
    for p in problems(task, 0, 0, 4):
        assert task.check(p, p.reference).reward == 1.0, p
    p = problems(task, 0, 0, 1)[0]
    v = task.check(p, "    return None")
    assert v.reward == 0.0 and v.reason.startswith("failed")
