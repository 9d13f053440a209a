"""How far from the long run the planner's steady-state rule stops (issue 14).

The planner simulates each plan until its step time is steady (rlvr_sim.sim.steady.PLANNER_RULE)
and extrapolates hours from there. This benchmark simulates planner candidates of three
scenarios for `--steps` steps (default 96, past the planner's 64-step cap) once, then feeds each run's step times to the rule one
step at a time, as the simulator does, and reports where it stops and the hours it would report
there against the hours of the whole long run (detected with the default rule). Rows with
`--min-steady-pipelined 4` show what the rule did before overlapping runs needed 6 steady steps.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_steady.py [--steps 96] [--plans a,b]
        [--cache /tmp/steady_series] [--json]

A long run is itself an estimate (its standard error is printed); a plan that never passes the
rule within `PLANNER_RULE.max_steps` is reported at that cap, as the planner would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.sim import simulate  # noqa: E402
from rlvr_sim.sim.metrics import max_warmup  # noqa: E402
from rlvr_sim.sim.steady import PLANNER_RULE, Rule, detect, hours_estimate  # noqa: E402

R1 = "scenarios/deepseek-r1-zero-like.yaml"
NEMO = "scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml"
CODE = "scenarios/code-rl-verifier-bound.yaml"
R1_BASE = ["model=qwen2.5-32b", "hardware.gpu=h100-sxm", "trainer.mini_batches=16"]
SMALL_BASE = ["hardware.gpu=h100-sxm", "trainer.mini_batches=4"]


def _plan(s: int, t: int, s_tp: int, t_tp: int, t_pp: int, eta: int | None,
          placement: str = "disaggregated") -> list[str]:
    o = [f"orchestration.placement={placement}", f"orchestration.mode={'sync' if eta is None else 'async'}",
         f"sampler.gpus={s}", f"trainer.gpus={t}", f"sampler.tp={s_tp}", f"trainer.tp={t_tp}",
         f"trainer.pp={t_pp}"]
    return o + ([f"orchestration.max_staleness={eta}"] if eta is not None else [])


# the README's 64-GPU pick and its runners-up, the 32-GPU optimum, sampler-bound async plans
# (KV-thrashing), sync plans; NeMo 8B and code-RL picks and neighbours (the plan command's answers)
PLANS: dict[str, tuple[str, list[str]]] = {
    "r1 S24tp4 T40tp2pp2 async2": (R1, R1_BASE + _plan(24, 40, 4, 2, 2, 2)),
    "r1 S24tp4 T40tp2pp4 async2": (R1, R1_BASE + _plan(24, 40, 4, 2, 4, 2)),
    "r1 S24tp4 T40tp1pp2 async2": (R1, R1_BASE + _plan(24, 40, 4, 1, 2, 2)),
    "r1 S12tp4 T20tp2 async2": (R1, R1_BASE + _plan(12, 20, 4, 2, 1, 2)),
    "r1 S10tp2 T22tp2 async1": (R1, R1_BASE + _plan(10, 22, 2, 2, 1, 1)),
    "r1 S16tp4 T48tp2 async1": (R1, R1_BASE + _plan(16, 48, 4, 2, 1, 1)),
    "r1 S20tp2 T44tp2pp2 async8": (R1, R1_BASE + _plan(20, 44, 2, 2, 2, 8)),
    "r1 S32tp4 T32tp2pp2 sync": (R1, R1_BASE + _plan(32, 32, 4, 2, 2, None)),
    "r1 coloc32 tp4 sync": (R1, R1_BASE + _plan(32, 32, 4, 2, 2, None, "colocated")),
    "nemo S8tp2 T8tp1pp2 async2": (NEMO, SMALL_BASE + _plan(8, 8, 2, 1, 2, 2)),
    "nemo S6tp1 T10tp1 async2": (NEMO, SMALL_BASE + _plan(6, 10, 1, 1, 1, 2)),
    "code S4tp4 T12tp4 async8": (CODE, SMALL_BASE + _plan(4, 12, 4, 4, 1, 8)),
    "code S8tp4 T12tp4 async8": (CODE, SMALL_BASE + _plan(8, 12, 4, 4, 1, 8)),
    "code S12tp1 T4tp4 async8": (CODE, SMALL_BASE + _plan(12, 4, 1, 4, 1, 8)),
    "code S3tp1 T13tp1 async8": (CODE, SMALL_BASE + _plan(3, 13, 1, 1, 1, 8)),
}


def series(name: str, steps: int, cache: Path | None) -> dict[str, object]:
    """One plan's step times and batch-ready times over `steps` steps (from `cache` if there)."""
    path = cache / f"{name.replace(' ', '_')}-{steps}.json" if cache else None
    if path is not None and path.exists():
        got: dict[str, object] = json.loads(path.read_text())
        return got
    scenario, overrides = PLANS[name]
    sc = load_scenario(ROOT / scenario, overrides=overrides)
    cpu0 = time.process_time()
    result = simulate(sc, steps=steps, trace=False)
    row: dict[str, object] = {
        "name": name, "workload_steps": sc.workload.steps, "min_warmup": result.config.staleness_bound,
        "max_warmup": max_warmup(result.config), "times_s": [r.time_s for r in result.steps],
        "ready_s": [r.verify_end_s for r in result.steps], "cpu_s": time.process_time() - cpu0}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row))
    return row


def first_steady(row: dict[str, object], rule: Rule) -> tuple[int, float, bool]:
    """(steps, hours, reached): where `rule` fed one step at a time stops, the hours it reports."""
    times, ready = list(row["times_s"]), list(row["ready_s"])          # type: ignore[call-overload]
    mw, xw, total = int(row["min_warmup"]), row["max_warmup"], int(row["workload_steps"])  # type: ignore[call-overload]
    cap = min(rule.max_steps, len(times))
    for n in range(1, cap + 1):
        state = detect(times[:n], mw, rule, xw, ready[:n])          # type: ignore[arg-type]
        if state.reached:
            return n, hours_estimate(times[:n], state, total), True
    state = detect(times[:cap], mw, rule, xw, ready[:cap])          # type: ignore[arg-type]
    return cap, hours_estimate(times[:cap], state, total), False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--steps", type=int, default=96, help="steps of each long run")
    p.add_argument("--plans", default=",".join(PLANS), help="comma-separated plan names")
    p.add_argument("--cache", type=Path, default=None, help="keep / reuse the long runs here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rules = {"planner rule": PLANNER_RULE,
             "min_steady_pipelined 4": replace(PLANNER_RULE, min_steady_pipelined=4)}
    out = []
    for name in args.plans.split(","):
        row = series(name, args.steps, args.cache)
        times = list(row["times_s"])                                          # type: ignore[call-overload]
        ref = detect(times, int(row["min_warmup"]), Rule(max_steps=10**6), row["max_warmup"],  # type: ignore[call-overload, arg-type]
                     list(row["ready_s"]))                                    # type: ignore[call-overload]
        ref_hours = hours_estimate(times, ref, int(row["workload_steps"]))   # type: ignore[call-overload]
        entry: dict[str, object] = {"plan": name, "long_run_steps": len(times), "long_run_hours": ref_hours,
                                    "long_run_rel_stderr": ref.rel_stderr, "cpu_s": row.get("cpu_s")}
        for label, rule in rules.items():
            n, hours, reached = first_steady(row, rule)
            entry[label] = {"steps": n, "reached": reached, "hours": hours, "error": hours / ref_hours - 1}
        out.append(entry)
        if not args.json:
            cells = "  ".join(f"{label}: {e['steps']:>2}{'' if e['reached'] else ' (cap)'} steps "   # type: ignore[index]
                              f"{100 * e['error']:+5.1f}%" for label in rules for e in [entry[label]])
            print(f"{name:28s} long run {ref_hours:8.1f} h (+-{100 * ref.rel_stderr:.1f}%)  {cells}", flush=True)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for label in rules:
            errs = [abs(e[label]["error"]) for e in out]                      # type: ignore[index]
            steps = [e[label]["steps"] for e in out]                          # type: ignore[index]
            print(f"{label}: max |error| {100 * max(errs):.1f}%, mean steps {sum(steps) / len(steps):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
