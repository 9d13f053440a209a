"""Compare two `rlvr-sim execute` output folders of the same seeded scenario (e.g. one run
with the code before a refactor, one after): the result.json shape, the metrics.jsonl rows
(timing columns left out: wall seconds differ between runs), the trace rows (times and the
verifier worker a sample landed on left out: the process pool schedules freely), per-step
verification totals and evals.json. Prints one line per check; exit 1 when one differs.

    rlvr-sim execute scenarios/tiny-cpu-execute.yaml --steps 3 --set executor.threads=1 \\
        --set executor.eval_problems=20 --set executor.sft_steps=5 \\
        --set executor.checkpoint_every=0 --json --no-progress --out A
    (same with the other checkout, --out B)
    python tools/compare_execute_runs.py A B
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

TIMING = {"step_s", "generate_s", "verify_s", "train_s", "weight_sync_s"}
KEYS = ["run_id", "step", "policy_version", "worker_pool", "phase", "sequences", "prompt_tokens",
        "output_tokens"]


def shape(value: Any) -> Any:
    """Keys and value types of a JSON document (numbers' values left out)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def verify_totals(trace: pd.DataFrame) -> dict[int, tuple[int, int, dict[str, int]]]:
    """Per step: samples verified, reward-0 samples (any writer's keys), reasons."""
    out: dict[int, tuple[int, int, dict[str, int]]] = {}
    for _, row in trace[trace.phase == "verify"].iterrows():
        extra = json.loads(row.extra)
        zero = extra.get("failures", sum(extra.get(k, 0) for k in
                                         ("wrong_answers", "checker_errors", "timeouts")))
        seqs, zeros, reasons = out.get(int(row.step), (0, 0, {}))
        for k, v in extra.get("reasons", {}).items():
            reasons[k] = reasons.get(k, 0) + v
        out[int(row.step)] = (seqs + int(row.sequences), zeros + int(zero), reasons)
    return out


def main(a: Path, b: Path) -> int:
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    ma, mb = ([{k: v for k, v in json.loads(line).items() if k not in TIMING}
               for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (a, b))
    ta, tb = (pd.read_parquet(d / "trace.parquet") for d in (a, b))
    rows = lambda t: t[t.phase != "verify"][KEYS].sort_values(KEYS).reset_index(drop=True)  # noqa: E731
    checks = {
        "result.json shape": shape(ra) == shape(rb),
        "result.json learning values": all(ra[k] == rb[k] for k in (
            "steps", "accuracy_initial", "accuracy_after_sft", "accuracy_after_grpo",
            "mean_reward_first", "mean_reward_last")),
        "metrics.jsonl (no timing)": ma == mb,
        "trace rows (no times, verify apart)": rows(ta).equals(rows(tb)),
        "verify totals per step": verify_totals(ta) == verify_totals(tb),
        "evals.json": (a / "evals.json").read_text() == (b / "evals.json").read_text(),
    }
    for name, ok in checks.items():
        print(f"{'same' if ok else 'DIFFERENT':>9}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
