"""The least work an exact answer to the README's 64-GPU example needs, whatever the search.

An exact `plan` recommends the plan with the fewest confirmed hours of its GPU total; the plans
the confirmation stage (rlvr_sim.sweep.confirm) re-simulates are those within two combined
standard errors of the group's best, and no lower bound can skip them: a valid bound lies below
each plan's simulated hours, which differ from the best's by less than the simulation's own
noise. So even a search told in advance which plans are the contenders must simulate them under
the confirmation rule. This script does exactly that and nothing else, and times it: the
contenders of one GPU total, read from a finished `plan --json` of the README command (its
`confirmation.plans`), simulated under `confirm_rule(PLANNER_RULE)` in `--workers` processes
with the result cache off. It also times the recommended plan's run alone (the critical path:
one plan's simulation is one process).

    .venv/bin/rlvr-sim plan scenarios/deepseek-r1-zero-like.yaml --total-gpus 64 --gpu h100-sxm \
        --set model=qwen2.5-32b --trainer-pp 1,2,4 --json > exact.json      # ~13 min
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_plan_floor.py --exact exact.json [--total 64]

Output (also `--json`): per contender its steps and hours; wall and CPU seconds of the batch
and of the recommended plan alone. Limits: it measures this machine and this engine; the
robustness draws, the bound and the other GPU totals of the frontier come on top.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exact", required=True, help="`plan --json` output of the README command")
    parser.add_argument("--total", type=int, default=64, help="the GPU total whose contenders are timed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()

    from bench_bound import readme_space

    from rlvr_sim.commands.plan_space import fixed_plan
    from rlvr_sim.sim.steady import PLANNER_RULE
    from rlvr_sim.sweep import result_cache
    from rlvr_sim.sweep.confirm import confirm_rule
    from rlvr_sim.sweep.evaluator import Evaluator
    from rlvr_sim.sweep.pools import InlinePool, open_pool

    exact = json.loads(Path(opts.exact).read_text())
    labels = [p["label"] for p in exact["confirmation"]["plans"] if p["label"].startswith(f"{opts.total}x ")]
    if not labels:
        raise SystemExit(f"--exact {opts.exact}: no confirmed plan of {opts.total} GPUs in its confirmation.plans")
    recommended = exact["recommended"]["label"]
    args, plans = readme_space()
    by_label = {a.label(): a for a in plans}
    missing = [label for label in labels if label not in by_label]
    if missing:
        raise SystemExit(f"--exact {opts.exact}: {missing} are not plans of the README space")
    rule = confirm_rule(PLANNER_RULE)
    out: dict[str, object] = {"total": opts.total, "rule": {"rel_tol": rule.rel_tol, "max_steps": rule.max_steps},
                              "workers": opts.workers}
    with result_cache.turned_off():
        cpu0, t0 = _cpu_s(), time.perf_counter()
        pool = open_pool(opts.workers)
        try:
            ev = Evaluator(args.scenario, pool, None, None, fixed=fixed_plan(args), steady=rule)
            ev.evaluate([by_label[label] for label in labels], "contenders")
        finally:
            pool.close()          # the workers exit: their CPU is counted (RUSAGE_CHILDREN)
        out["contenders_wall_s"], out["contenders_cpu_s"] = time.perf_counter() - t0, _cpu_s() - cpu0
        rows = []
        for label in labels:
            m = ev.metrics(by_label[label])
            rows.append({"label": label, "steps": None if m is None else m.steps_simulated,
                         "hours": None if m is None else m.hours_total})
        out["contenders"] = rows
        if recommended in by_label and recommended.startswith(f"{opts.total}x "):
            alone = Evaluator(args.scenario, InlinePool(), None, None, fixed=fixed_plan(args), steady=rule)
            cpu0, t0 = _cpu_s(), time.perf_counter()
            alone.evaluate([by_label[recommended]], "recommended")
            m = alone.metrics(by_label[recommended])
            out["recommended"] = {"label": recommended, "steps": None if m is None else m.steps_simulated,
                                  "wall_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - cpu0}
    if opts.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{len(rows)} contenders of {opts.total} GPUs under the confirmation rule "
          f"(rel_tol {rule.rel_tol:.0%}, up to {rule.max_steps} steps), {opts.workers} worker(s):")
    for r in rows:
        print(f"  {r['label']:<60} {r['steps']!s:>4} steps  {r['hours'] or float('nan'):9.2f} h")
    print(f"  all: {out['contenders_wall_s']:.1f} s wall, {out['contenders_cpu_s']:.1f} CPU-s")
    if "recommended" in out:
        r = out["recommended"]
        assert isinstance(r, dict)
        print(f"the recommended plan alone ({r['steps']} steps, one process): {r['wall_s']:.1f} s wall, "
              f"{r['cpu_s']:.1f} CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
