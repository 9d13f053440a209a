"""The one trace schema shared by the simulator and the executor.

A trace is a table of events, one row per phase occurrence. Simulated and measured runs write
the same columns, so they are loaded, summarised and compared by the same code.

Columns (units in names; times are seconds from the run's start):
    run_id, step, policy_version, worker_pool, worker_id, phase, start_s, end_s,
    sequences, prompt_tokens, output_tokens, extra
`extra` is a JSON object serialised as a string (phase-specific details: staleness, preemptions,
draft tokens accepted, verifier failure reason, ...).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from rlvr_sim.errors import UserError

TRACE_COLUMNS = [
    "run_id", "step", "policy_version", "worker_pool", "worker_id", "phase",
    "start_s", "end_s", "sequences", "prompt_tokens", "output_tokens", "extra",
]

# Phases every writer uses; writers may add more (they are plain strings).
PHASES = (
    "generate", "prefill", "decode", "verify", "train", "ref_logprob", "old_logprob",
    "forward_backward", "optimizer", "weight_sync", "switch", "idle", "sft",
)
POOLS = ("sampler", "verifier", "trainer")

_DTYPES = {
    "run_id": "string", "step": "int64", "policy_version": "int64", "worker_pool": "string",
    "worker_id": "int64", "phase": "string", "start_s": "float64", "end_s": "float64",
    "sequences": "int64", "prompt_tokens": "int64", "output_tokens": "int64", "extra": "string",
}


@dataclass
class TraceEvent:
    """One phase occurrence on one worker."""

    run_id: str
    step: int
    policy_version: int
    worker_pool: str
    worker_id: int
    phase: str
    start_s: float
    end_s: float
    sequences: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def row(self) -> dict:
        r = asdict(self)
        r["extra"] = json.dumps(self.extra, sort_keys=True) if self.extra else "{}"
        return r


def to_frame(events: Iterable[TraceEvent]) -> pd.DataFrame:
    """Events -> a DataFrame with exactly TRACE_COLUMNS and their dtypes."""
    df = pd.DataFrame([e.row() for e in events], columns=TRACE_COLUMNS)
    return df.astype(_DTYPES)


def write_trace(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a trace as Parquet (`.parquet`) or CSV (anything else); atomically."""
    path = Path(path)
    missing = [c for c in TRACE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"trace is missing columns {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    out = df[TRACE_COLUMNS].astype(_DTYPES)
    if path.suffix == ".parquet":
        out.to_parquet(tmp, index=False)
    else:
        out.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def read_trace(path: str | Path) -> pd.DataFrame:
    """Load a trace written by either the simulator or the executor."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"trace file {path} does not exist")
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)
    missing = [c for c in TRACE_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path} is not an rlvr-sim trace: missing columns {missing}")
    df = df[TRACE_COLUMNS].copy()
    df["extra"] = df["extra"].replace("", "{}")
    return df.astype(_DTYPES)


def extra_field(df: pd.DataFrame, key: str, default=None) -> pd.Series:
    """One key of the `extra` JSON column as a Series (default where absent)."""
    return df["extra"].map(lambda s: json.loads(s).get(key, default) if s else default)
