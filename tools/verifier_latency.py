"""Per-item verification latency of two checkouts side by side (A B A B ..., medians).

    python tools/verifier_latency.py --old /work/main --new . [--rounds 3] [--items 64]

Each round runs in a fresh process with PYTHONPATH=<checkout>: a warmed-up
`VerifierPool(task, 2)` scores `items` completions per task (code: the reference body of
problems 0..items-1 and `return None` alternately; math: the reference answer and a wrong
one), and reports the median in-worker latency (`VerifyResult.latency_s`, what the calibration
fits) and the batch wall time. Rounds alternate old/new so machine load hits both alike; the
table shows per-checkout medians over rounds and the new/old ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROUND = r"""
import json, statistics, sys, time
from executor.tasks import problems
from executor.tasks.code import CodeTask
from executor.tasks.math import MathTask
from executor.verifier import VerifierPool
n = int(sys.argv[1])
out = {}
for name, task in (("code", CodeTask()), ("math", MathTask())):
    probs = problems(task, 0, 0, n)
    wrong = "    return None" if name == "code" else "x"
    items = [(p, p.reference if i % 2 == 0 else wrong) for i, p in enumerate(probs)]
    with VerifierPool(task, 2) as pool:
        pool.warm_up()
        t0 = time.perf_counter()
        res = pool.score(items)
        wall = time.perf_counter() - t0
    out[name] = {"median_s": statistics.median(r.latency_s for r in res), "batch_wall_s": wall,
                 "passed": sum(r.reward for r in res)}
print(json.dumps(out))
"""


def one_round(checkout: str, items: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(checkout)}
    proc = subprocess.run([sys.executable, "-c", ROUND, str(items)], env=env, cwd="/tmp",
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="checkout measured as 'old' (e.g. /work/main)")
    p.add_argument("--new", default=".", help="checkout measured as 'new'")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--items", type=int, default=64)
    args = p.parse_args(argv)
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for label, path in (("old", args.old), ("new", args.new)):
            runs[label].append(one_round(path, args.items))
            print(f"round {r} {label}: {json.dumps(runs[label][-1])}", flush=True)
    print(f"\n{'task':<6}{'metric':<14}{'old':>10}{'new':>10}{'new/old':>9}")
    for task in ("code", "math"):
        for metric in ("median_s", "batch_wall_s"):
            old = statistics.median(x[task][metric] for x in runs["old"])
            new = statistics.median(x[task][metric] for x in runs["new"])
            print(f"{task:<6}{metric:<14}{old:>10.5f}{new:>10.5f}{new / old:>9.2f}")
    print(f"\n{args.rounds} rounds x {args.items} items per task, 2 workers; "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
