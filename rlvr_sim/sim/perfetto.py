"""Chrome / Perfetto trace-event JSON from a trace table (simulated or measured).

One process per worker pool, one thread per worker; every row becomes a complete ("X") event
with its step, version, counts and `extra` as args. Open the file at https://ui.perfetto.dev or
chrome://tracing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

_POOL_PID = {"sampler": 1, "verifier": 2, "trainer": 3}


def perfetto_events(trace: pd.DataFrame) -> list[dict[str, object]]:
    """Trace rows -> Chrome trace-event JSON objects (microseconds)."""
    events: list[dict[str, object]] = []
    pools = list(dict.fromkeys(list(_POOL_PID) + list(trace["worker_pool"].unique())))
    pid_of = {pool: i + 1 for i, pool in enumerate(pools)}
    for pool, pid in pid_of.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": pool}})
    for (pool, worker), _ in trace.groupby(["worker_pool", "worker_id"]):
        events.append({"ph": "M", "name": "thread_name", "pid": pid_of[pool], "tid": int(worker),
                       "args": {"name": f"{pool} {worker}"}})
    for row in trace.itertuples(index=False):
        args = {"step": int(row.step), "policy_version": int(row.policy_version),
                "sequences": int(row.sequences), "prompt_tokens": int(row.prompt_tokens),
                "output_tokens": int(row.output_tokens)}
        extra = json.loads(row.extra) if row.extra else {}
        if isinstance(extra.get("staleness"), list):   # keep the timeline small
            s = extra.pop("staleness")
            extra["staleness_max"] = max(s, default=0)
        args.update(extra)
        events.append({"ph": "X", "name": row.phase, "cat": row.worker_pool,
                       "pid": pid_of[row.worker_pool], "tid": int(row.worker_id),
                       "ts": float(row.start_s) * 1e6,
                       "dur": max(float(row.end_s) - float(row.start_s), 0.0) * 1e6, "args": args})
    return events


def write_perfetto(trace: pd.DataFrame, path: str | Path) -> Path:
    """Write the trace-event JSON of `trace` to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"traceEvents": perfetto_events(trace), "displayTimeUnit": "ms"}))
    return path
