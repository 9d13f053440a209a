"""Branch and bound in rounds vs streaming, on 2 dedicated workers, from measured per-plan CPU seconds
(load-independent: the shared 2-core machine makes wall clocks of both meaningless side by side).

`trace`: runs `plan --exact`'s search (this tree) with every plan's CPU seconds, hours and bound
recorded (JSON). `replay`: re-runs both schedulers on a virtual clock where each plan takes its
measured CPU seconds on one of `--workers` workers: the streaming branch and bound of this tree
(rlvr_sim.sweep.planner.branch_and_bound) and the previous one, in rounds of 2 plans per worker
where a round ends when its last plan does (`rounds_branch_and_bound`, the loop this tree
replaced). Both read the same recorded results, so they must give the same optima; the report
is each one's makespan, worker utilisation and plans simulated.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_plan_replay.py trace /tmp/t.json \\
        scenarios/deepseek-r1-zero-like.yaml --total-gpus 16 --sizes 16,8 --gpu h100-sxm \\
        --set model=qwen2.5-32b --trainer-pp 1,2,4 --staleness 0,1 --exact --workers 2
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_plan_replay.py replay /tmp/t.json \\
        scenarios/deepseek-r1-zero-like.yaml ...the same plan flags...
"""

from __future__ import annotations

import heapq
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from rlvr_sim.cli import build_parser  # noqa: E402
from rlvr_sim.commands.plan_decision import make_evaluator  # noqa: E402
from rlvr_sim.commands.plan_space import build_space, fixed_plan  # noqa: E402
from rlvr_sim.sim.steady import PLANNER_RULE  # noqa: E402
from rlvr_sim.sweep import jobs as J  # noqa: E402
from rlvr_sim.sweep.planner import Evaluator, best_per_group, branch_and_bound  # noqa: E402
from rlvr_sim.sweep.pools import LocalPool  # noqa: E402
from rlvr_sim.sweep.space import enumerate_space  # noqa: E402


def timed(job: J.PlanJob) -> J.PlanOutcome:
    t0 = time.process_time()
    out = J.evaluate_plan(job)
    out.columns = {**out.columns, "_cpu_s": time.process_time() - t0}
    return out


def trace(path: str, argv: list[str]) -> None:
    args = build_parser().parse_args(["plan", *argv])
    space, _ = build_space(args)
    pool = LocalPool(args.workers or 2, evaluate=timed)
    rule = replace(PLANNER_RULE, max_steps=args.max_steps)
    try:
        ev, _ = make_evaluator(args, pool, rule)
        branch_and_bound(space, ev)
    finally:
        pool.close()
    rows = {a.label(): {"cpu_s": o.columns["_cpu_s"], "hours": ev.hours(a), "status": o.status}
            for a, o in ev.seen.items()}
    Path(path).write_text(json.dumps(rows, indent=1))
    print(f"{len(rows)} plans, {sum(r['cpu_s'] for r in rows.values()):.1f} CPU-s")


class ReplayPool:
    """`workers` workers on a virtual clock; a plan takes its recorded CPU seconds."""

    def __init__(self, rows: dict, labels: dict, workers: int):
        from summaries import toy_summary

        self.rows, self.labels, self.workers, self.now, self.busy = rows, labels, workers, 0.0, 0.0
        self.running: list[tuple[float, int, J.PlanJob]] = []
        self.count, self.toy_summary = 0, toy_summary

    def outcome(self, job: J.PlanJob) -> J.PlanOutcome:
        row = self.rows[self.labels[tuple(job.plan.overrides())]]     # KeyError: a plan the trace lacks
        if row["status"] != J.STATUS_OK:
            return J.PlanOutcome(job.index, job.plan_id, job.plan.columns(), row["status"], "replayed")
        h = row["hours"]
        return J.PlanOutcome(job.index, job.plan_id, job.plan.columns(), J.STATUS_OK, None,
                             self.toy_summary(h, h, h, 0.5, 0.5, "sampler"))

    def cost(self, job: J.PlanJob) -> float:
        return float(self.rows[self.labels[tuple(job.plan.overrides())]]["cpu_s"])

    def submit(self, job: J.PlanJob) -> None:
        self.count += 1
        self.busy += self.cost(job)
        heapq.heappush(self.running, (self.now + self.cost(job), self.count, job))

    def next_done(self) -> J.PlanOutcome:
        self.now, _, job = heapq.heappop(self.running)
        return self.outcome(job)

    def run(self, jobs: list[J.PlanJob]):
        """One round: list scheduling in order on the workers; the round ends with its last plan."""
        free = [self.now] * self.workers
        for job in jobs:
            start = heapq.heappop(free)
            self.busy += self.cost(job)
            heapq.heappush(free, start + self.cost(job))
        self.now = max(free)
        return [self.outcome(job) for job in jobs]

    def close(self) -> None:
        """Nothing to release: a virtual clock, no workers (the pool protocol's close)."""


def rounds_branch_and_bound(space, ev: Evaluator) -> None:
    """The previous loop: each round takes up to 2 x workers plans over the groups, in bound order,
    simulates them as one batch and waits for all."""
    full = ev.bound
    quick = ev.quick_bound or full
    queues: dict = {}
    for a in enumerate_space(space):
        lb = quick(a)
        if lb < math.inf:
            queues.setdefault((a.gpu, a.total_gpus), []).append((lb, quick is full, a))
    for q in queues.values():
        heapq.heapify(q)
    width = 2 * ev.pool.workers
    best = {g: math.inf for g in queues}
    while True:
        picks = []
        live = [g for g in queues if queues[g]]
        share = max(1, -(-width // max(len(live), 1)))
        for g in live:
            q, taken = queues[g], 0
            while q and taken < share and q[0][0] <= best[g]:
                lb, exact, a = heapq.heappop(q)
                if not exact:
                    heapq.heappush(q, (max(lb, full(a)), True, a))
                    continue
                picks.append(a)
                taken += 1
        if not picks:
            break
        ev.evaluate(picks)
        for a in picks:
            g = (a.gpu, a.total_gpus)
            best[g] = min(best[g], ev.hours(a))


def replay(path: str, argv: list[str]) -> None:
    rows = json.loads(Path(path).read_text())
    args = build_parser().parse_args(["plan", *argv])
    space, _ = build_space(args)
    fixed = fixed_plan(args)
    from rlvr_sim.sweep.grid import Plan

    labels = {tuple(Plan(fixed.settings + a.plan().settings).overrides()): a.label() for a in enumerate_space(space)}
    workers = args.workers or 2
    report = {}
    for name, algorithm in (("rounds (before)", rounds_branch_and_bound), ("streaming (after)", branch_and_bound)):
        pool = ReplayPool(rows, labels, workers)
        rule = replace(PLANNER_RULE, max_steps=args.max_steps)
        ev, _ = make_evaluator(args, pool, rule)   # type: ignore[arg-type]
        algorithm(space, ev)
        report[name] = {"makespan_s": round(pool.now, 1), "cpu_s": round(pool.busy, 1),
                        "utilisation": round(pool.busy / (workers * pool.now), 3) if pool.now else None,
                        "plans": len(ev.seen), "optima": [a.label() for a in best_per_group(ev)]}
    names = list(report)
    report["same_optima"] = report[names[0]]["optima"] == report[names[1]]["optima"]
    report["makespan_ratio_before_over_after"] = round(report[names[0]]["makespan_s"] / report[names[1]]["makespan_s"], 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    mode, out, *rest = sys.argv[1:]
    (trace if mode == "trace" else replay)(out, rest)
