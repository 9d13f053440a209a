"""Run prioritised benchmark points inside a wall-clock budget (a short GPU lease).

A `Point` is one unit of work with an estimated cost; `run_points` walks the points in priority
order and starts one only when its estimate (scaled by how badly earlier estimates of the same
group under-shot) fits in what is left of the budget minus a reserve kept for the fit and the
files. A point that raises is recorded with its error and the run goes on; a point whose
prerequisite (e.g. its model build) did not run is skipped. The clock is injectable, so tests
count planned vs run points with a fake clock instead of asserting on wall time.

Limits: a point that is admitted runs to its end (it cannot be interrupted), so a point whose
real cost is far above its estimate can overrun; every point therefore also caps its own
repeats by time (`Budget.point_deadline`).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Budget:
    """Seconds available from `start`; `reserve_s` is kept for the work after the last point."""

    budget_s: float
    reserve_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.clock()

    def elapsed_s(self) -> float:
        return self.clock() - self.start

    def left_s(self) -> float:
        """Seconds left for benchmark points (the reserve excluded)."""
        return self.budget_s - self.reserve_s - self.elapsed_s()

    def admits(self, est_s: float) -> bool:
        return est_s <= self.left_s()


@dataclass
class Point:
    """One benchmark step. `run(deadline)` returns result rows (any objects) and must stop
    repeating once `clock() >= deadline` (after at least one timed repeat). `provides` names
    what it makes available to later points (a built model); `requires` what it needs."""

    name: str
    group: str
    est_s: float
    run: Callable[[float], list]
    requires: str = ""
    provides: str = ""


@dataclass
class PointOutcome:
    """What happened to one point (the run log)."""

    name: str
    group: str
    status: str            # ok | error | skipped_budget | skipped_dependency
    est_s: float
    scaled_est_s: float
    seconds: float = 0.0
    rows: int = 0
    error: str = ""


def run_points(points: list[Point], budget: Budget,
               on_rows: Callable[[list, PointOutcome], None] | None = None,
               slack: float = 1.5) -> list[PointOutcome]:
    """Run `points` in order inside `budget`; returns one outcome per point.

    A point is admitted when `est_s x scale(group)` fits in `budget.left_s()`, where scale is
    the worst ratio of actual to estimated seconds seen so far in that group (at least 1).
    A point gets `slack` x its scaled estimate (capped by what is left) as its own deadline.
    `on_rows(rows, outcome)` is called after each point that ran (to write partial results).
    """
    ready: set[str] = set()
    scale: dict[str, float] = {}
    out: list[PointOutcome] = []
    for p in points:
        est = p.est_s * scale.get(p.group, 1.0)
        oc = PointOutcome(p.name, p.group, "skipped_budget", p.est_s, est)
        if p.requires and p.requires not in ready:
            oc.status = "skipped_dependency"
            oc.error = f"needs {p.requires}"
            out.append(oc)
            continue
        if not budget.admits(est):
            out.append(oc)
            continue
        t0 = budget.clock()
        deadline = t0 + min(slack * est, max(budget.left_s(), 0.0))
        rows: list = []
        try:
            rows = list(p.run(deadline) or [])
            oc.status = "ok"
            if p.provides:
                ready.add(p.provides)
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not end the lease
            oc.status = "error"
            oc.error = f"{type(exc).__name__}: {exc}"[:500]
            tb = traceback.format_exc(limit=3)
            oc.error += " | " + tb.strip().splitlines()[-1][:200] if tb else ""
        oc.seconds = budget.clock() - t0
        oc.rows = len(rows)
        if p.est_s > 0 and oc.status == "ok":
            scale[p.group] = max(scale.get(p.group, 1.0), oc.seconds / p.est_s)
        out.append(oc)
        if on_rows is not None:
            on_rows(rows, oc)
    return out
