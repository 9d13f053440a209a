"""The event engine on KV-bound sampler replicas, this tree vs an older one (issue 14).

The four plans of tools/kv_engine_fingerprint.py (the README's 32B example: 8,192 samples of
~8K tokens per step capped at 32K; two of them thrash the KV pool with preemptions) run
`simulate(..., steps=N)` in a fresh subprocess each, pinned to one CPU, with the `rlvr_sim` of
this tree and of `--baseline` (default /work/main) alternating A B A B (the machine's load
drifts); reported: the median CPU seconds of each, their ratio, sampler spans and preemptions
per step, and whether both trees' summary JSON are byte-identical (the engine is the reference:
a faster one must give the same results, not close ones). A change of fast mode's approximations
(`--tolerance REL`) passes when every step time moved by at most REL; `--exact` also runs this
tree's exact mode once per plan and reports fast mode's largest step-time error against it.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_kv_engine.py [--steps 3] [--repeats 3]
        [--baseline /work/main] [--plans "disagg S32tp4 T32 sync,disagg S40tp4 T24 async4"]
        [--tolerance 0] [--exact] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "tools"))
from kv_engine_fingerprint import BASE, PLANS, SCENARIO  # noqa: E402


def child(plan: str, steps: int, exact: bool = False) -> dict[str, object]:
    """One plan with the `rlvr_sim` first on sys.path (the tree under test); its numbers."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    import rlvr_sim
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim import simulate

    sc = load_scenario(ROOT / SCENARIO, overrides=BASE + PLANS[plan])
    cpu0 = time.process_time()
    result = simulate(sc, steps=steps, trace=False, exact=exact)
    cpu = time.process_time() - cpu0
    s = result.summary
    summary = s.model_dump_json()
    return {"plan": plan, "tree": str(Path(rlvr_sim.__file__).resolve().parents[1]), "cpu_s": cpu,
            "spans_per_step": s.counters["sampler_segments_per_step"],
            "preemptions_per_step": s.counters["preemptions"] / steps,
            "summary_sha256": hashlib.sha256(summary.encode()).hexdigest(),
            "step_times_s": [r.time_s for r in result.steps]}


def _largest_change(a: object, b: object) -> float:
    """The largest relative difference of two runs' step times (lists of floats)."""
    assert isinstance(a, list) and isinstance(b, list)
    return max(abs(x / y - 1) for x, y in zip(a, b))


def _run_child(plan: str, steps: int, tree: Path, exact: bool = False) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", plan, str(steps)]
                         + (["exact"] if exact else []), cwd=tree,
                         capture_output=True, text=True, check=True, env=env)
    row: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    if row["tree"] != str(tree.resolve()):
        raise SystemExit(f"error: the child imported rlvr_sim from {row['tree']}, not {tree}")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per tree")
    p.add_argument("--baseline", type=Path, default=Path("/work/main"))
    p.add_argument("--plans", default=",".join(PLANS), help="comma-separated plan names")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="pass when step times moved by at most this (relative; 0: identical)")
    p.add_argument("--exact", action="store_true",
                   help="also run this tree's exact mode: fast mode's step-time error")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", nargs="+", metavar="PLAN STEPS [exact]", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.child[2:] == ["exact"])))
        return 0
    report = {}
    for plan in args.plans.split(","):
        runs: dict[str, list[dict[str, object]]] = {"baseline": [], "this": []}
        for _ in range(args.repeats):
            for name, tree in (("baseline", args.baseline.resolve()), ("this", ROOT)):
                runs[name].append(_run_child(plan, args.steps, tree))
        old, new = (statistics.median(float(str(r["cpu_s"])) for r in runs[k])
                    for k in ("baseline", "this"))
        this, base = runs["this"][0], runs["baseline"][0]
        report[plan] = {"baseline_cpu_s": old, "this_cpu_s": new, "speedup": old / new,
                        "spans_per_step": this["spans_per_step"],
                        "preemptions_per_step": this["preemptions_per_step"],
                        "identical_summary": this["summary_sha256"] == base["summary_sha256"],
                        "step_time_change": _largest_change(this["step_times_s"],
                                                            base["step_times_s"])}
        if args.exact:
            ref = _run_child(plan, args.steps, ROOT, exact=True)
            report[plan]["exact_cpu_s"] = ref["cpu_s"]
            report[plan]["fast_vs_exact"] = _largest_change(this["step_times_s"],
                                                            ref["step_times_s"])
        if not args.json:
            r = report[plan]
            versus = (f"; fast vs exact {100 * float(str(r['fast_vs_exact'])):.3f} % "
                      f"(exact {float(str(r['exact_cpu_s'])):.2f} s)" if args.exact else "")
            print(f"{plan:<26} baseline {old:6.2f} s, this tree {new:6.2f} s (CPU, {args.steps} "
                  f"steps, median of {args.repeats}): {r['speedup']:.2f}x; "
                  f"{r['spans_per_step']:,.0f} spans/step, {r['preemptions_per_step']:,.0f} "
                  f"preemptions/step; summary identical: {r['identical_summary']}, step times "
                  f"moved <= {100 * float(str(r['step_time_change'])):.3f} %{versus}", flush=True)
    if args.json:
        print(json.dumps({"baseline": str(args.baseline), "steps": args.steps, "plans": report},
                         indent=1))
    ok = [r["identical_summary"] or float(str(r["step_time_change"])) <= args.tolerance
          for r in report.values()]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
