"""Timing harness for a noisy shared machine: warm-ups, interleaved repeats, medians, load probes.

Every case is run once untimed (warm-up: first-touch of memory, lazy kernels, allocator growth),
then all cases are run round-robin `repeats` times in a shuffled order per round, so a burst of
someone else's work spreads over all cases instead of biasing one. Each round is bracketed by a
load probe (load average + reference spin); a row records the worst slowdown its rounds saw.
Each call's CPU share (process CPU time / wall time) is recorded too: with one torch thread, a
call that had its core has share ~1, one that waited behind other people's work has less, and
sample x share estimates what the call would take on an uncontended core (`seconds_cpu`).
Limits: a case is timed by its own `run()` (so it can time one phase inside a larger call,
e.g. decode without prefill); the harness cannot see inside it.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import pandas as pd
from tqdm import tqdm

from calibration.machine import probe_load, spin_slowdown


@dataclass(frozen=True)
class BenchKey:
    """What a benchmark row measured: the features the fit maps onto the cost model.

    Unused fields stay 0 / "". Token counts are per call; `params` is the model's parameter
    count; `payload_bytes` is what a weight sync moved.
    """

    kind: str                       # decode | prefill | train_fb | optimizer | logprob | verify | weight_sync
    model: str = ""
    model_json: str = ""            # the HF-style config of the benchmarked model (JSON)
    params: int = 0
    sequences: int = 0
    context_tokens_sum: int = 0     # decode: KV tokens of all sequences at the first timed iteration
    context_tokens_max: int = 0
    iterations: int = 0             # decode iterations timed
    prompt_tokens: int = 0          # prefill / train / logprob: prompt tokens of the batch
    output_tokens: int = 0          # train / logprob: response tokens of the batch
    mini_batches: int = 0           # train rows: optimizer steps in the RL step
    payload_bytes: int = 0
    task: str = ""
    workers: int = 0


@dataclass
class BenchCase:
    """A measurable case: `run()` performs the work once and returns one measured time (seconds)
    per key (one call of a train step times several phases). `details` collects per-item
    values a case wants kept (e.g. every verification's latency)."""

    keys: list[BenchKey]
    run: Callable[[], list[float]]
    details: list[float] = field(default_factory=list)
    cpu_bound: bool = True          # False: the case waits on other processes (verifier pool)


@dataclass
class BenchRow:
    """One benchmark result row (the Parquet table has exactly these columns)."""

    key: BenchKey
    seconds: float                  # median over repeats
    seconds_p25: float
    seconds_p75: float
    repeats: int
    threads: int
    device: str
    loadavg_before: float
    loadavg_after: float
    spin_slowdown_max: float
    seconds_cpu: float | None = None  # median of (sample x CPU share of its call); None: = seconds
    cpu_share: float = 1.0          # median CPU time / wall time of the calls (1: had its core)
    details_json: str = "[]"
    samples_s: list[float] = field(default_factory=list)

    def flat(self) -> dict:
        d = asdict(self.key)
        d.update({k: v for k, v in asdict(self).items() if k not in ("key", "samples_s")})
        d["samples_json"] = json.dumps([round(x, 7) for x in self.samples_s])
        if d["seconds_cpu"] is None:
            d["seconds_cpu"] = self.seconds
        return d


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_cases(cases: list[BenchCase], repeats: int, threads: int, device: str,
              seed: int = 0, progress: bool = True, desc: str = "bench") -> list[BenchRow]:
    """Warm up every case, then time all cases interleaved `repeats` times; medians per key."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    rng = random.Random(seed)
    samples: list[list[list[float]]] = [[[] for _ in c.keys] for c in cases]
    shares: list[list[float]] = [[] for _ in cases]
    worst = [1.0] * len(cases)
    bar = tqdm(total=len(cases) * (repeats + 1), desc=desc, disable=not progress, leave=False)
    first = probe_load(threads)
    for case in cases:  # warm-up, untimed
        case.run()
        case.details.clear()
        bar.update(1)
    last = first
    for _ in range(repeats):
        order = list(range(len(cases)))
        rng.shuffle(order)
        before = probe_load(threads)
        for i in order:
            c0, w0 = time.process_time(), time.perf_counter()
            times = cases[i].run()
            wall = time.perf_counter() - w0
            shares[i].append(min((time.process_time() - c0) / wall, 1.0) if wall > 0 else 1.0)
            if len(times) != len(cases[i].keys):
                raise RuntimeError(f"case {cases[i].keys[0].kind} returned {len(times)} times "
                                   f"for {len(cases[i].keys)} keys")
            for j, t in enumerate(times):
                samples[i][j].append(float(t))
            bar.update(1)
        last = probe_load(threads)
        slow = max(spin_slowdown(before, threads), spin_slowdown(last, threads))
        worst = [max(w, slow) for w in worst]
    bar.close()
    rows = []
    for case, per_key, w, sh in zip(cases, samples, worst, shares):
        share = statistics.median(sh) if case.cpu_bound else 1.0
        for key, s in zip(case.keys, per_key):
            cpu = [t * x for t, x in zip(s, sh)] if case.cpu_bound else s
            rows.append(BenchRow(
                key=key, seconds=statistics.median(s), seconds_p25=_quantile(s, 0.25),
                seconds_p75=_quantile(s, 0.75), repeats=len(s), threads=threads, device=device,
                loadavg_before=first.loadavg_1m, loadavg_after=last.loadavg_1m,
                spin_slowdown_max=w, seconds_cpu=statistics.median(cpu), cpu_share=share,
                details_json=json.dumps([round(x, 7) for x in case.details]),
                samples_s=s))
    return rows


def rows_to_frame(rows: list[BenchRow]) -> pd.DataFrame:
    """Benchmark rows -> the Parquet table (one row per case)."""
    return pd.DataFrame([r.flat() for r in rows])


def frame_to_keys(df: pd.DataFrame, column: str = "seconds") -> list[tuple[BenchKey, float]]:
    """The Parquet table -> (key, median seconds) pairs for the fit; `column` picks wall
    ("seconds") or CPU-share-corrected ("seconds_cpu") times."""
    if column not in df.columns:
        raise ValueError(f"benchmark table has no column {column!r}")
    names = list(BenchKey.__dataclass_fields__)
    out = []
    for rec in df.to_dict("records"):
        key = BenchKey(**{n: rec[n] for n in names})
        ints: dict[str, Any] = {n: int(getattr(key, n)) for n in names
                                if isinstance(BenchKey.__dataclass_fields__[n].default, int)}
        key = replace(key, **ints)
        out.append((key, float(rec[column])))
    return out
