"""How fast and how big the simulator is on large plans.

Cases (each in a fresh subprocess pinned to one CPU, BLAS threads 1):
  plan64    : Llama-3.1-8B, 64 H100 colocated sync, 512 prompts x 16 samples, responses
              log-normal mean 2000 capped at 8192, 256 verifier workers;
  deepseek  : scenarios/deepseek-r1-zero-like.yaml (DeepSeek-V3 size, 512 x 16, up to 32K);
  minimal   : scenarios/minimal.yaml; small: the same with 4 prompts x 4 samples (memory at
              100 vs 1000 steps under tracemalloc in seconds).
The tracemalloc runs use `simulate(..., trace=False)` where the tree has it (what `simulate`
without --trace keeps); an older tree keeps its trace rows, so its memory grows with steps.
Each runs in `fast` mode (simulate()'s default: coalesced finishes, 3-point Simpson spans, a sync
round of all replicas in one numpy pass: rlvr_sim.sim.batch_sync.sync_round) and in `exact` mode
(the event engine, span by span; fewer steps) so the speed-up and what it costs in accuracy come
from one run. The issue-14 target line compares plan64's fast CPU seconds per 100 steps with 2 s.
Reported: wall and CPU seconds, seconds per simulated step, sampler spans ("events") per step,
peak RSS of the process (ru_maxrss, includes the interpreter and imports), the peak of live
Python memory under tracemalloc at two run lengths (flat = memory does not grow with steps) and
the simulated step time. The machine is shared: compare the CPU seconds, and fast vs exact within one run.
`--baseline DIR` also runs the fast cases with the `rlvr_sim` package found in DIR (e.g. a
`git worktree` of an older commit), alternating with this tree's, and reports the median CPU
ratio and whether the simulated step times are identical.

    .venv/bin/python benchmarks/bench_simulator.py [--steps 100] [--exact-steps 10] [--json]
    .venv/bin/python benchmarks/bench_simulator.py --memory-steps 100,1000   # memory flat in steps
    .venv/bin/python benchmarks/bench_simulator.py --baseline /tmp/old-tree --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S_PER_100_STEPS = 2.0     # issue 14: 100 steps of the 64-GPU plan in <= 2 s on one core

PLAN64 = {
    "name": "bench-plan64", "model": "llama-3.1-8b", "hardware": {"gpu": "h100-sxm"},
    "workload": {"prompts_per_step": 512, "samples_per_prompt": 16, "steps": 100,
                 "prompt_tokens": {"dist": "lognormal", "mean": 256, "sigma": 0.4, "cap": 1024},
                 "response_tokens": {"dist": "lognormal", "mean": 2000, "sigma": 1.0, "cap": 8192}},
    "sampler": {"gpus": 64, "tp": 1}, "trainer": {"gpus": 64}, "verifier": {"workers": 256},
    "orchestration": {"placement": "colocated", "mode": "sync"}}


def child(case: str, steps: int, exact: bool, traced: bool = False, root: Path = ROOT) -> dict:
    """Run one case in this process with the rlvr_sim package of `root`; the numbers the parent
    reports (`traced`: under tracemalloc, for the peak of live Python memory; its timings are
    not comparable)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    sys.path.insert(0, str(root))
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim import simulate

    files = {"deepseek": "deepseek-r1-zero-like.yaml", "minimal": "minimal.yaml", "small": "minimal.yaml"}
    overrides = ["workload.prompts_per_step=4", "workload.samples_per_prompt=4"] if case == "small" else []
    sc = load_scenario(PLAN64 if case == "plan64" else ROOT / "scenarios" / files[case], overrides)
    kwargs = {}
    if traced:
        import inspect
        import tracemalloc
        if "trace" in inspect.signature(simulate).parameters:
            kwargs["trace"] = False      # what `simulate` without --trace keeps (flat in steps)
        tracemalloc.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = simulate(sc, steps=steps, exact=exact, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else None
    s = result.summary
    mode = "exact" if exact else "fast"
    return {"case": case, "mode": mode + ("-traced" if traced else ""), "steps": steps,
            "traced_peak_bytes": traced_peak,
            "wall_s": wall, "cpu_s": cpu, "cpu_s_per_step": cpu / steps,
            "events_per_step": s.counters["sampler_segments_per_step"],
            "samples_per_step": sc.workload.prompts_per_step * sc.workload.samples_per_prompt,
            "gpus": s.gpus, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "trace_rows": len(result.trace), "sim_step_time_s": s.step_time_s.mean,
            "sim_first_steps_s": [r.time_s for r in result.steps[:3]], "trace_kept": not kwargs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--exact-steps", type=int, default=10)
    p.add_argument("--cases", default="plan64,deepseek")
    p.add_argument("--memory-steps", default="10,100",
                   help="fast runs under tracemalloc at these step counts (peak live memory)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--baseline", type=Path, help="a tree whose rlvr_sim to compare against (fast mode)")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per tree with --baseline")
    p.add_argument("--child", nargs=5, metavar=("CASE", "STEPS", "EXACT", "TRACED", "ROOT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        case, steps, exact, traced, root = args.child
        print(json.dumps(child(case, int(steps), exact == "1", traced == "1", Path(root))))
        return 0
    if args.baseline is not None:
        return compare_trees(args)
    rows = []
    memory_steps = [int(x) for x in args.memory_steps.split(",") if x]
    for case in args.cases.split(","):
        runs = [(args.steps, False, False), (args.exact_steps, True, False)]
        runs += [(n, False, True) for n in memory_steps]
        for steps, exact, traced in runs:
            rows.append(_run_child(case, steps, exact, traced, ROOT))
            if not args.json and traced:
                r = rows[-1]
                print(f"{r['case']:<9} traced {r['steps']:4d} steps: peak live Python memory "
                      f"{r['traced_peak_bytes'] / 2**20:,.1f} MiB (tracemalloc), peak RSS "
                      f"{r['peak_rss_bytes'] / 2**20:,.0f} MiB", flush=True)
            elif not args.json:
                r = rows[-1]
                print(f"{r['case']:<9} {r['mode']:<5} {r['steps']:4d} steps: wall {r['wall_s']:7.2f} s, "
                      f"cpu {r['cpu_s']:7.2f} s ({r['cpu_s_per_step']:.3f} s/step), "
                      f"{r['events_per_step']:,.0f} events/step for {r['samples_per_step']:,} samples, "
                      f"peak RSS {r['peak_rss_bytes'] / 2**20:,.0f} MiB, "
                      f"simulated step {r['sim_step_time_s']:.2f} s", flush=True)
    by = {(r["case"], r["mode"]): r for r in rows}
    compare = {}
    for case in args.cases.split(","):
        fast, exact = by[(case, "fast")], by[(case, "exact")]
        n = min(len(fast["sim_first_steps_s"]), len(exact["sim_first_steps_s"]))
        errs = [f / e - 1 for f, e in zip(fast["sim_first_steps_s"][:n], exact["sim_first_steps_s"][:n])]
        compare[case] = {"cpu_speedup_per_step": exact["cpu_s_per_step"] / fast["cpu_s_per_step"],
                         "step_time_rel_diff_first_steps": errs}
    if args.json:
        print(json.dumps({"runs": rows, "fast_vs_exact": compare}, indent=1))
    else:
        plan = by.get(("plan64", "fast"))
        if plan is not None:
            per_100 = plan["cpu_s_per_step"] * 100
            print(f"target (issue 14): 100 steps of plan64 in <= {TARGET_S_PER_100_STEPS:.0f} s of CPU: "
                  f"{per_100:.2f} s ({'met' if per_100 <= TARGET_S_PER_100_STEPS else 'NOT met'})")
        traced = sorted((r for r in rows if r["mode"] == "fast-traced"), key=lambda r: r["steps"])
        for case in args.cases.split(","):
            mine = [r for r in traced if r["case"] == case]
            if len(mine) >= 2:
                print(f"{case}: peak live memory {mine[0]['traced_peak_bytes'] / 2**20:.1f} MiB at "
                      f"{mine[0]['steps']} steps, {mine[-1]['traced_peak_bytes'] / 2**20:.1f} MiB at "
                      f"{mine[-1]['steps']} steps (x{mine[-1]['traced_peak_bytes'] / mine[0]['traced_peak_bytes']:.2f})")
        for case, c in compare.items():
            print(f"{case}: fast is {c['cpu_speedup_per_step']:.1f}x cheaper per step than exact; "
                  f"step-time difference on the first steps: "
                  + ", ".join(f"{e:+.3%}" for e in c["step_time_rel_diff_first_steps"]))
    return 0


def _run_child(case: str, steps: int, exact: bool, traced: bool, root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case, str(steps), "1" if exact else "0",
                          "1" if traced else "0", str(root)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_trees(args: argparse.Namespace) -> int:
    """Fast-mode CPU seconds of this tree vs `args.baseline`, runs alternating (the machine's
    load drifts), medians; and whether both simulate the same step times."""
    report = {}
    for case in args.cases.split(","):
        runs: dict[str, list[dict]] = {"baseline": [], "this": []}
        for _ in range(args.repeats):
            for name, root in (("baseline", args.baseline.resolve()), ("this", ROOT)):
                runs[name].append(_run_child(case, args.steps, False, False, root))
        base, this = (statistics.median(r["cpu_s_per_step"] for r in runs[k]) for k in ("baseline", "this"))
        report[case] = {"baseline_cpu_s_per_step": base, "this_cpu_s_per_step": this,
                        "speedup": base / this,
                        "events_per_step": runs["this"][0]["events_per_step"],
                        "same_simulated_steps": runs["this"][0]["sim_first_steps_s"]
                        == runs["baseline"][0]["sim_first_steps_s"]
                        and runs["this"][0]["sim_step_time_s"] == runs["baseline"][0]["sim_step_time_s"]}
        if not args.json:
            r = report[case]
            print(f"{case:<9} baseline {base:.4f} s/step, this tree {this:.4f} s/step (CPU, median of "
                  f"{args.repeats}): {r['speedup']:.2f}x; simulated step times identical: "
                  f"{r['same_simulated_steps']}", flush=True)
    if args.json:
        print(json.dumps({"baseline": str(args.baseline), "steps": args.steps, "cases": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
