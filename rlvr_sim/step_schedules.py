"""Schedules: how a workload distribution changes over the steps of a run (issue 20).

Real RLVR runs are not stationary: responses grow as the policy learns to reason. A length
schedule maps an RL step (0-based) to the response-length distribution of that step
(`piecewise`, `growth`, or a logged `table`); a pass-rate schedule maps it to the probability
that a sample is rewarded. The simulator never reads a schedule directly:
`rlvr_sim.schedule.whole_run` freezes it at representative steps (`at(step)`) and integrates the
step time over the run. `breakpoints()` are the steps where the schedule changes abruptly
(segment boundaries for the integration).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from rlvr_sim.distributions import Distribution, Empirical, LogNormal


class LengthPoint(BaseModel):
    """From `step` on (until the next point), responses follow `tokens`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    step: int = Field(ge=0)
    tokens: Distribution


class CapPoint(BaseModel):
    """From `step` on, the response cap (max new tokens) is `cap` (caps raised in stages)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    step: int = Field(ge=0)
    cap: float = Field(gt=0)


class _Schedule(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @abstractmethod
    def at(self, step: int) -> "Distribution":
        """The response-length distribution of RL step `step` (0-based)."""

    @abstractmethod
    def breakpoints(self) -> list[int]:
        """Steps where the schedule jumps or changes shape (sorted, may be empty)."""

    def max_value(self) -> float:
        """Largest response any step can draw (the maximum over the schedule)."""
        steps = sorted({0, *self.breakpoints()})
        return max(self.at(s).max_value() for s in steps) if steps else math.inf


class _Stepped(Protocol):
    @property
    def step(self) -> int: ...


def _sorted_steps(points: Sequence[_Stepped], what: str) -> None:
    steps = [p.step for p in points]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        raise ValueError(f"{what} steps {steps} must be strictly increasing; sort them")


class PiecewiseSchedule(_Schedule):
    """Piecewise constant: step s uses the last point with step <= s (the first point before)."""

    kind: Literal["piecewise"] = "piecewise"
    points: list[LengthPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "PiecewiseSchedule":
        _sorted_steps(self.points, "points")
        return self

    def at(self, step: int) -> "Distribution":
        chosen = self.points[0]
        for p in self.points:
            if p.step <= step:
                chosen = p
        return chosen.tokens

    def breakpoints(self) -> list[int]:
        return [p.step for p in self.points if p.step > 0]


def growth_fraction(shape: str, x: float, steepness: float = 10.0) -> float:
    """Fraction of the way from start to end at relative position x in [0, 1] (clipped).

    linear: x; exponential: handled by the caller (geometric interpolation of the mean);
    logistic: a sigmoid of `steepness` centred at 0.5, rescaled so that 0 -> 0 and 1 -> 1."""
    x = min(max(x, 0.0), 1.0)
    if shape == "logistic":

        def s(t: float) -> float:
            return 1.0 / (1.0 + math.exp(-steepness * (t - 0.5)))
        return (s(x) - s(0.0)) / (s(1.0) - s(0.0))
    return x


class GrowthSchedule(_Schedule):
    """Parametric growth of the mean response length, log-normal lengths around it.

    The uncapped mean goes from `start_mean` at `start_step` to `end_mean` at `end_step`
    (constant before and after): `linear` interpolates it, `exponential` interpolates
    geometrically (mean x constant factor per step), `logistic` follows an S-curve. Lengths are
    log-normal with `sigma`; the cap is `cap`, or the last of `caps` whose step <= s (caps raised
    in stages, as R1-style runs do). Limits: one sigma for the whole run."""

    kind: Literal["growth"] = "growth"
    shape: Literal["linear", "exponential", "logistic"] = "linear"
    start_step: int = Field(0, ge=0)
    end_step: int = Field(ge=1)
    start_mean: float = Field(gt=0)
    end_mean: float = Field(gt=0)
    sigma: float = Field(0.8, ge=0, le=5)
    cap: float | None = Field(None, gt=0)
    caps: list[CapPoint] = Field(default_factory=list)
    steepness: float = Field(10.0, gt=0, description="logistic only: slope of the S-curve")

    @model_validator(mode="after")
    def _check(self) -> "GrowthSchedule":
        if self.end_step <= self.start_step:
            raise ValueError(f"end_step={self.end_step} must be after start_step={self.start_step}")
        if self.caps and self.cap is not None:
            raise ValueError("give `cap` (one for the run) or `caps` (raised in stages), not both")
        _sorted_steps(self.caps, "caps")
        return self

    def mean_at(self, step: int) -> float:
        x = (step - self.start_step) / (self.end_step - self.start_step)
        if self.shape == "exponential":
            x = min(max(x, 0.0), 1.0)
            return float(self.start_mean * (self.end_mean / self.start_mean) ** x)
        return self.start_mean + (self.end_mean - self.start_mean) * growth_fraction(
            self.shape, x, self.steepness)

    def cap_at(self, step: int) -> float | None:
        if not self.caps:
            return self.cap
        chosen = self.caps[0].cap
        for c in self.caps:
            if c.step <= step:
                chosen = c.cap
        return chosen

    def at(self, step: int) -> "Distribution":
        return LogNormal(mean=self.mean_at(step), sigma=self.sigma, cap=self.cap_at(step))

    def breakpoints(self) -> list[int]:
        return sorted({s for s in (self.start_step, self.end_step, *(c.step for c in self.caps))
                       if s > 0})

    def max_value(self) -> float:
        if self.caps:
            return max(c.cap for c in self.caps)
        return float(self.cap) if self.cap is not None else math.inf


class TableSchedule(_Schedule):
    """Response lengths logged by a previous run: rows of (step, length).

    `rows: [[step, length], ...]` or `path:` a CSV whose first two columns are step and length
    (a header line is allowed), resolved against the scenario's folder. A step with several
    rows is that step's sample of lengths (resampled, `empirical`); a step with one row is a
    logged mean (log-normal with `sigma` around it, capped at `cap`). Step s uses the last logged
    step <= s (the first one before it): piecewise constant between log points."""

    kind: Literal["table"] = "table"
    rows: list[tuple[float, float]] | None = None
    path: str | None = None
    sigma: float = Field(0.8, ge=0, le=5, description="spread around a step's single logged mean")
    cap: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> "TableSchedule":
        if self.rows is None and self.path is None:
            raise ValueError("give `rows: [[step, length], ...]` or `path: lengths.csv`")
        # rows given win: `path` then records where they came from
        if self.rows is None and self.path is not None:
            path = Path(self.path).expanduser()
            base = (info.context or {}).get("base_dir") if info is not None else None
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            self.path = str(path)
            self.rows = read_step_table(path)
        if not self.rows:
            raise ValueError("the length table has no rows")
        for step, length in self.rows:
            if step < 0 or not float(step).is_integer():
                raise ValueError(f"step {step} is not a step number (integer >= 0)")
            if length <= 0:
                raise ValueError(f"length {length} at step {int(step)} must be > 0")
        return self

    def _by_step(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for step, length in self.rows or []:
            out.setdefault(int(step), []).append(float(length))
        return dict(sorted(out.items()))

    def at(self, step: int) -> "Distribution":
        table = self._by_step()
        chosen = next(iter(table))
        for s in table:
            if s <= step:
                chosen = s
        lengths = table[chosen]
        if len(lengths) == 1:
            return LogNormal(mean=lengths[0], sigma=self.sigma, cap=self.cap)
        values = [min(v, self.cap) for v in lengths] if self.cap is not None else lengths
        return Empirical(values=values)

    def breakpoints(self) -> list[int]:
        return [s for s in self._by_step() if s > 0]


def read_step_table(path: Path) -> list[tuple[float, float]]:
    """Rows (step, length) of a CSV file: first two columns, header and `#` lines skipped; read
    under `rlvr_sim.safe_read` limits; a bad or non-finite row is named by `file:line`."""
    from rlvr_sim.errors import UserError
    from rlvr_sim.safe_read import echo, read_user_text

    try:
        text = read_user_text(path, "file", "give a path relative to the scenario file")
    except UserError as exc:
        raise ValueError(str(exc)) from None
    out: list[tuple[float, float]] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.split(",")]
        if not cells[0] or cells[0].startswith("#"):
            continue
        try:
            if len(cells) < 2:
                raise ValueError
            row = (float(cells[0]), float(cells[1]))
        except ValueError:
            if out or line_no > 1:
                raise ValueError(f"{path}:{line_no}: {echo(line.strip())} is not `step, length` ; "
                                 "fix or delete that line") from None
            continue
        if not (math.isfinite(row[0]) and math.isfinite(row[1])):
            raise ValueError(f"{path}:{line_no}: a step or length is nan/inf ; fix or delete that "
                             "line")
        out.append(row)
    return out


LengthSchedule = Annotated[Union[PiecewiseSchedule, GrowthSchedule, TableSchedule],
                           Field(discriminator="kind")]


class PassRatePoint(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    step: int = Field(ge=0)
    rate: float = Field(ge=0, le=1, description="mean probability that one sample is rewarded 1")


class PassRateSchedule(BaseModel):
    """The policy's pass rate over the run (binary verifiable rewards).

    `points`: (step, rate) pairs, linearly interpolated between points and constant outside
    them. `concentration`: prompts differ in difficulty: each prompt group's own rate is drawn
    from Beta(c x rate, c x (1 - rate)) (c = concentration; small c: prompts are either easy or
    hard); None: every group has exactly the schedule's rate. Limits: one rate per step for the
    whole prompt set; a failed check counts as reward 0."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    points: list[PassRatePoint] = Field(min_length=1)
    concentration: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "PassRateSchedule":
        _sorted_steps(self.points, "pass_rate.points")
        return self

    def at(self, step: int) -> float:
        pts = self.points
        if step <= pts[0].step:
            return pts[0].rate
        for a, b in zip(pts, pts[1:]):
            if a.step <= step <= b.step:
                return a.rate + (b.rate - a.rate) * (step - a.step) / (b.step - a.step)
        return pts[-1].rate

    def breakpoints(self) -> list[int]:
        return [p.step for p in self.points if p.step > 0]
