"""Sweep results on disk: rows appended as they finish, consolidated at the end, resumable.

While a sweep runs, finished rows are flushed every few seconds into Parquet parts under
`<out>.parts/`. An interrupted sweep loses at most the unflushed rows; re-running the same
command reads the parts, skips the plans already done (matched by `plan_id`) and finishes the
rest. At the end the parts are merged into `<out>` (`.parquet` or `.csv`) and removed.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.jobs import PlanOutcome

FRONT_COLUMNS = ["plan_index", "plan_id"]


def _cell(value: Any) -> Any:
    """Scalar table cell: lists/dicts become JSON text so every column stores in Parquet."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def outcome_row(outcome: PlanOutcome) -> dict[str, Any]:
    """One table row: ids, plan values, status, the Summary flattened to dotted columns
    (`Summary.flat()`: the one place it is flattened), `scenario_yaml` last."""
    summary = {} if outcome.summary is None else {k: _cell(v) for k, v in outcome.summary.flat().items()}
    return {"plan_index": outcome.index, "plan_id": outcome.plan_id, **outcome.columns,
            "status": outcome.status, "error": outcome.error, "cached": outcome.cached,
            "confirmed": outcome.confirmed, **summary,
            "scenario_yaml": outcome.scenario_yaml}


def outcomes_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> one DataFrame sorted by plan index; columns of mixed Python types become text.

    Rows are ordered before the frame is built, so column order (rows may carry different keys,
    e.g. `staleness.hist.2`) does not depend on which worker finished first."""
    frame = pd.DataFrame(sorted(rows, key=lambda row: row["plan_index"]))
    if frame.empty:
        return frame
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and pd.isna(v))}
            if len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: None if v is None else str(v))
            elif kinds == {bool}:      # booleans with gaps (invalid plans): nullable, as Parquet reads them
                frame[column] = frame[column].astype("boolean")
    return frame.sort_values("plan_index", kind="stable").reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write `.csv` or Parquet (any other suffix), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)


class ResultStore:
    """Incremental writer of one sweep's rows (see the module docstring)."""

    def __init__(self, out: str | Path, flush_every_s: float = 5.0, fresh: bool = False):
        self.out = Path(out)
        if self.out.suffix.lower() not in (".parquet", ".csv", ".pq"):
            raise UserError(f"--out {str(self.out)!r}: give a .parquet or .csv file name")
        self.parts_dir = self.out.with_name(self.out.name + ".parts")
        self.flush_every_s = flush_every_s
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        if fresh and self.parts_dir.exists():
            shutil.rmtree(self.parts_dir)
        self.done_rows = self._read_parts()

    def _read_parts(self) -> list[dict[str, Any]]:
        if not self.parts_dir.is_dir():
            return []
        rows: list[dict[str, Any]] = []
        for part in sorted(self.parts_dir.glob("part-*.json")):
            rows.extend(json.loads(part.read_text()))
        return rows

    def done_ids(self) -> set[str]:
        """`plan_id`s already stored by an earlier, interrupted run of this sweep."""
        return {row["plan_id"] for row in self.done_rows}

    def add(self, outcome: PlanOutcome) -> None:
        self._buffer.append(outcome_row(outcome))
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Write buffered rows as one new part (JSON rows: a part never needs a fixed schema)."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        number = len(list(self.parts_dir.glob("part-*.json")))
        tmp = self.parts_dir / f".part-{number:06d}.tmp"
        tmp.write_text(json.dumps(self._buffer, default=str))
        tmp.rename(self.parts_dir / f"part-{number:06d}.json")   # atomic: a part is whole or absent
        self.done_rows.extend(self._buffer)
        self._buffer = []

    def consolidate(self, keep_parts: bool) -> pd.DataFrame:
        """Flush, merge every stored row into `out`, and drop the parts unless `keep_parts`."""
        self.flush()
        frame = outcomes_frame(self.done_rows)
        if not frame.empty:
            write_table(frame, self.out)
        if not keep_parts and self.parts_dir.exists():
            shutil.rmtree(self.parts_dir)
        return frame
