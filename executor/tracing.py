"""Trace rows (rlvr_sim.trace schema, same granularity as the simulator) and learning metrics.

Rows per RL step, like `rlvr_sim/sim/recorder.py` writes them:
- sampler 0 `generate` (extra: prefill_s, decode_s, decode_iterations, staleness per sample);
- verifier w `verify`, one row per (step, worker) spanning its first start to last end (extra:
  busy_s, latencies_s and ends_s of each verification, wrong_answers (graded reward 0),
  checker_errors (the checker raised or its worker died), timeouts (over the item timeout),
  reasons (counts by reason), isolation: how many checks ran under each sandbox isolation, for
  code tasks). Read with `rlvr_sim.trace.VerifyExtra` (which also reads older traces' `failures`);
- trainer 0 `ref_logprob` / `old_logprob` / `forward_backward` / `optimizer` rows as they ran
  (one per mini-batch), then `train` for the rest of the update (batching, advantages);
- trainer 0 and sampler 0 `weight_sync` (policy_version = the version sent).
The SFT warm-start is a trainer `sft` row with step -1. Times are seconds since the run started
(continued across resumes). Learning metrics go to a separate JSONL table, one row per step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from executor.results import Evals
from rlvr_sim.errors import UserError
from rlvr_sim.trace import TRACE_COLUMNS, TraceEvent, read_trace, to_frame, write_trace

if TYPE_CHECKING:                 # tracing sits below the verifier in the import graph
    from executor.verifier import VerifyResult


@dataclass
class StepMetrics:
    """Learning and timing summary of one RL step (one JSONL row).

    accuracy: fraction of samples with reward 1; kl: mean per-token k3 KL to the reference
    model (0 when beta = 0: no reference forward runs); entropy: mean per-token entropy of the
    policy on the sampled completions; *_s: wall seconds of the step's phases (verify_s is
    only the wait after generation ends, since samples are scored as they finish).
    """

    step: int
    policy_version: int
    mean_reward: float
    accuracy: float
    kl: float
    entropy: float
    loss: float
    clip_fraction: float
    grad_norm: float
    response_tokens_mean: float
    finished_fraction: float
    step_s: float
    generate_s: float
    verify_s: float
    train_s: float
    weight_sync_s: float
    data_cursor: int


class Tracer:
    """Collects trace events with run-relative times; writes the trace and metrics files.

    `offset_s` continues the clock of a resumed run (the previous trace's last end time).
    Perf-counter times (sampler, trainer) and wall-clock times (verifier workers, other
    processes) are both converted through `rel_perf` / `rel_wall`.
    """

    def __init__(self, run_id: str, offset_s: float = 0.0):
        self.run_id = run_id
        self._perf0, self._wall0 = time.perf_counter(), time.time()
        self.offset_s = offset_s
        self.events: list[TraceEvent] = []

    def rel_perf(self, t: float) -> float:
        return self.offset_s + t - self._perf0

    def rel_wall(self, t: float) -> float:
        return self.offset_s + t - self._wall0

    def event(self, pool: str, worker: int, phase: str, step: int, version: int, start_s: float,
              end_s: float, sequences: int = 0, prompt_tokens: int = 0, output_tokens: int = 0,
              **extra: Any) -> None:
        """One row; start_s/end_s are already run-relative (the signature of the simulator's
        `rlvr_sim.sim.recorder.Recorder.event`)."""
        self.events.append(TraceEvent(self.run_id, step, version, pool, worker, phase, start_s,
                                      end_s, sequences, prompt_tokens, output_tokens, extra))

    def verify_events(self, step: int, version: int, results: Sequence[VerifyResult]) -> None:
        """Aggregate VerifyResults into one row per worker (simulator granularity)."""
        by_worker = defaultdict(list)
        for r in results:
            by_worker[r.worker_id].append(r)
        for worker, rs in sorted(by_worker.items()):
            reasons = Counter(r.reason.split(":")[0] for r in rs)
            kinds = Counter(r.outcome for r in rs)
            self.event("verifier", worker, "verify", step, version,
                     self.rel_wall(min(r.start_s for r in rs)), self.rel_wall(max(r.end_s for r in rs)),
                     sequences=len(rs), busy_s=sum(r.latency_s for r in rs),
                     latencies_s=[round(r.latency_s, 6) for r in rs],
                     ends_s=[round(self.rel_wall(r.end_s), 6) for r in rs],
                     wrong_answers=kinds["wrong_answer"], checker_errors=kinds["checker_error"],
                     timeouts=kinds["timeout"], reasons=dict(reasons), **isolation_counts(rs))

    add = event                   # the older names, kept for one release
    add_verify = verify_events

    def frame(self, previous: pd.DataFrame | None = None) -> pd.DataFrame:
        df = to_frame(self.events)
        if previous is not None and len(previous):
            df = pd.concat([previous[TRACE_COLUMNS], df], ignore_index=True)
        return df.sort_values(["start_s", "worker_pool", "worker_id"], kind="stable").reset_index(drop=True)


def isolation_counts(results: Sequence[VerifyResult]) -> dict[str, Any]:
    """{"isolation": {kind: count}} of code checks (empty for tasks that run no code)."""
    counts = Counter(r.isolation for r in results)
    counts.pop("", None)
    return {"isolation": dict(counts)} if counts else {}


def load_previous_trace(path: Path, upto_step: int) -> pd.DataFrame | None:
    """The rows of an earlier (interrupted) run's trace up to and including `upto_step`."""
    if not path.exists():
        return None
    try:
        df = read_trace(path)
    except UserError:
        raise
    except Exception as exc:    # pyarrow/pandas errors of a damaged file
        raise UserError(f"{path}: cannot be read as a trace ({type(exc).__name__}) ; move it away "
                        "to resume without the earlier trace rows") from None
    return df[df["step"] <= upto_step].reset_index(drop=True)


def save_trace(tracer: Tracer, path: Path, previous: pd.DataFrame | None) -> Path:
    return write_trace(tracer.frame(previous), path)


def append_metrics(path: Path, metrics: StepMetrics) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(asdict(metrics)) + "\n")


def read_metrics(path: Path, drop_torn_tail: bool = False) -> list[StepMetrics]:
    """The rows of a metrics.jsonl. A line that is not a metrics row is a UserError naming the
    file and line; with `drop_torn_tail` a last line without its newline that does not parse (a
    write cut by a kill) is dropped instead, with a note on stderr."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    rows: list[StepMetrics] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(StepMetrics(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            torn = number == len(lines) and not text.endswith("\n")
            if torn and drop_torn_tail:
                print(f"resume: {path}:{number}: dropped a torn last line (cut by a kill)",
                      file=sys.stderr)
                break
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not a metrics row"
            raise UserError(f"{path}:{number}: {reason} ; the line is damaged"
                            f"{' (a write cut by a kill)' if torn else ''}: delete it, or rerun "
                            "with --resume, which rewrites the file from the checkpoint") from None
    return rows


def truncate_metrics(path: Path, upto_step: int) -> list[StepMetrics]:
    """Keep only rows with step <= upto_step (steps after the checkpoint are redone on resume);
    a torn last line is dropped."""
    kept = [m for m in read_metrics(path, drop_torn_tail=True) if m.step <= upto_step]
    write_atomic(path, "".join(json.dumps(asdict(m)) + "\n" for m in kept))
    return kept


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a kill leaves the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_evals(path: Path) -> Evals | None:
    """The held-out evaluations of a run being resumed (None, with a note, when unreadable:
    they only feed the summary, which then shows them as missing)."""
    try:
        return Evals.from_json(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError,
            TypeError, ValueError) as exc:
        print(f"resume: {path} unreadable ({type(exc).__name__}); the summary will lack the "
              "pre-GRPO accuracies", file=sys.stderr)
        return None
