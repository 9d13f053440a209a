"""The app's one formatting module (app_pages/fmt.py): hand-computed texts, no exponents, % for
fractions, units on seconds/hours/dollars, missing shown as n/a."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # app_pages/ lives at the repo root
pytest.importorskip("streamlit")

from app_pages import fmt  # noqa: E402


@pytest.mark.parametrize("value, text", [
    (1640.0, "1,640"), (16384.0, "16,384"), (0.123456, "0.123"), (12.3456, "12.3"), (2.0, "2"),
    (1234567.8, "1,234,568"), (0.0, "0"), (-3.14159, "-3.14"), (math.nan, "n/a"),
])
def test_number_has_three_significant_digits_and_no_exponent(value: float, text: str) -> None:
    assert fmt.number(value) == text


def test_fields_get_their_units() -> None:
    assert fmt.value("utilization.sampler", 0.924) == "92%"
    assert fmt.value("cost.usd_total", 788.04) == "$788"
    assert fmt.value("cost.usd_per_step", 2.5123) == "$2.51"
    assert fmt.value("hours_total", 9.8512) == "9.85 h"
    assert fmt.value("step_time_s.mean", 117.666) == "118 s"
    assert fmt.value("gpus", 32) == "32"
    assert fmt.value("bottleneck", "trainer") == "trainer"
    assert fmt.value("cost.usd_total", None) == "n/a" and fmt.value("error", None) == ""
    assert fmt.seconds(226.0) == "226 s (3.77 min)"
    assert fmt.duration(0.000396) == "396 µs" and fmt.duration(2.97e-9) == "2.97 ns" and fmt.duration(1.5) == "1.5 s"


def test_labels_are_human_for_known_fields_and_readable_for_others() -> None:
    assert fmt.label("cost.usd_total") == "$ for the run"
    assert fmt.label("utilization.trainer") == "Trainer busy"
    assert fmt.label("counters.preemptions") == "Counters preemptions"
