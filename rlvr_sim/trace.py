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
from typing import Any, Iterable

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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def row(self) -> dict[str, Any]:
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


def extra_field(df: pd.DataFrame, key: str, default: Any = None) -> pd.Series:
    """One key of the `extra` JSON column as a Series (default where absent)."""
    return df["extra"].map(lambda s: json.loads(s).get(key, default) if s else default)


# --- typed `extra` per phase ---------------------------------------------------------------
# The on-disk `extra` stays a JSON object (both writers keep their keys); readers go through
# these models instead of reading keys by hand, so a renamed key fails here, in one place.
def _opt_float(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    return None if v is None else float(v)


def _opt_int(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    return None if v is None else int(v)


@dataclass(frozen=True)
class GenerateExtra:
    """`extra` of a sampler `generate` row. None: the writer did not record it (the simulator
    records no prefill/decode split; only the executor's HF/vLLM paths count decode iterations)."""

    staleness: list[int]
    prefill_s: float | None = None
    decode_s: float | None = None
    decode_iterations: int | None = None
    multi_version_samples: int = 0
    round: int | None = None               # dynamic sampling: generation round of the step
    signal_groups: int | None = None
    kept_groups: int | None = None
    batch_index: int | None = None         # async: the sampler's batch number
    dropped: bool = False                  # async, stale_policy drop: the trainer discarded it
    backend: str | None = None             # executor backend when not the HF one (vllm, trl)

    @classmethod
    def parse(cls, text: str) -> GenerateExtra:
        d = json.loads(text or "{}")
        return cls(staleness=[int(x) for x in d.get("staleness", [])],
                   prefill_s=_opt_float(d, "prefill_s"), decode_s=_opt_float(d, "decode_s"),
                   decode_iterations=_opt_int(d, "decode_iterations"),
                   multi_version_samples=int(d.get("multi_version_samples", 0)),
                   round=_opt_int(d, "round"), signal_groups=_opt_int(d, "signal_groups"),
                   kept_groups=_opt_int(d, "kept_groups"), batch_index=_opt_int(d, "batch_index"),
                   dropped=bool(d.get("dropped", False)), backend=d.get("backend"))


CHECKER_ERROR = "checker error"     # the executor's reason prefix when the checker itself failed
# executor reason prefixes of results that are not a grade of the answer (older traces)
_OLD_CHECKER_ERRORS = (CHECKER_ERROR, "verifier worker crashed")
_OLD_TIMEOUTS = ("verifier timeout", "verifier hard timeout")


@dataclass(frozen=True)
class VerifyExtra:
    """`extra` of a verifier `verify` row: busy seconds, per-check latencies/ends, and the
    reward-0 samples by cause: `checker_errors` (the checker failed), `timeouts` (past the item
    timeout) and `wrong_answers` (graded reward 0). None: the writer did not count it (the
    simulator grades no answers: wrong_answers is None there).

    On disk: the executor writes `checker_errors`, `wrong_answers`, `timeouts` and `reasons`;
    the simulator writes `checker_errors` (its verifier model's failures) and `timeouts`, no
    `wrong_answers`. Older traces wrote `failures`: the simulator's = its checker failures, the
    executor's = every reward-0 sample (with `reasons` counting why). `parse` maps all of them
    onto the fields above, so readers never look at `failures`.
    """

    busy_s: float | None = None
    latencies_s: list[float] = field(default_factory=list)
    ends_s: list[float] = field(default_factory=list)
    timeouts: int | None = None
    reasons: dict[str, int] | None = None
    checker_errors: int | None = None
    wrong_answers: int | None = None

    @classmethod
    def parse(cls, text: str) -> VerifyExtra:
        d = json.loads(text or "{}")
        raw = d.get("reasons")
        reasons = None if raw is None else {str(k): int(v) for k, v in raw.items()}
        timeouts, errors = _opt_int(d, "timeouts"), _opt_int(d, "checker_errors")
        wrong = _opt_int(d, "wrong_answers")
        failures = _opt_int(d, "failures")
        if errors is None and wrong is None and failures is not None:      # an older trace
            if reasons is None:          # simulator: failures = checker failures
                errors = failures
            else:                        # executor: failures = every reward-0 sample
                errors = sum(n for r, n in reasons.items() if r.startswith(_OLD_CHECKER_ERRORS))
                if timeouts is None:
                    timeouts = sum(n for r, n in reasons.items() if r.startswith(_OLD_TIMEOUTS))
                wrong = failures - errors - timeouts
        return cls(busy_s=_opt_float(d, "busy_s"),
                   latencies_s=[float(x) for x in d.get("latencies_s", [])],
                   ends_s=[float(x) for x in d.get("ends_s", [])], timeouts=timeouts,
                   reasons=reasons, checker_errors=errors, wrong_answers=wrong)


def generate_extras(df: pd.DataFrame) -> list[GenerateExtra]:
    """The typed `extra` of each `generate` row of `df`, in row order."""
    return [GenerateExtra.parse(s) for s in df.loc[df["phase"] == "generate", "extra"]]


def verify_extras(df: pd.DataFrame) -> list[VerifyExtra]:
    """The typed `extra` of each `verify` row of `df`, in row order."""
    return [VerifyExtra.parse(s) for s in df.loc[df["phase"] == "verify", "extra"]]
