"""Pareto frontier of a sweep table: the plans no other plan beats on both hours and dollars."""

from __future__ import annotations

import pandas as pd

HOURS = "hours_total"
DOLLARS = "cost.usd_total"
RACED = "stopped_above_hours"


def pareto_mask(frame: pd.DataFrame, x: str = HOURS, y: str = DOLLARS) -> pd.Series:
    """True for rows on the frontier when minimising both `x` and `y`.

    A row is dominated if another row is no worse on both and better on one. Of several rows
    with the same (x, y) only the first (in table order) is kept. Rows with a missing x or y
    (invalid plans) are never on the frontier. O(n log n): sort by (x, y), sweep keeping the
    lowest y seen. Rows of plans stopped by a race (`stopped_above_hours` set: their hours are a
    partial estimate, only known to be above that level) are never on it either.
    """
    mask = pd.Series(False, index=frame.index)
    if frame.empty or x not in frame or y not in frame:
        return mask
    complete = frame[frame[RACED].isna()] if RACED in frame else frame
    valid = complete[[x, y]].dropna()
    ordered = valid.sort_values([x, y], kind="stable")
    best_y = float("inf")
    for index, row in zip(ordered.index, ordered.itertuples(index=False)):
        if row[1] < best_y:
            mask[index] = True
            best_y = row[1]
    return mask


def pareto_front(frame: pd.DataFrame, x: str = HOURS, y: str = DOLLARS) -> pd.DataFrame:
    """The frontier rows, fastest first (so dollars fall along the table); no rows when the
    table has no `x`/`y` column (every plan invalid)."""
    if x not in frame or y not in frame:
        return frame.iloc[0:0]
    return frame[pareto_mask(frame, x, y)].sort_values([x, y], kind="stable")
