"""How tight the planner's lower bound (rlvr_sim.sweep.bound) is on the README's 64-GPU space, before
and after a change: bound / simulated hours per plan class, and how many plans of the space have a
bound below their group's best-known hours (the plans `plan --exact` must simulate at least).

The space: `plan scenarios/deepseek-r1-zero-like.yaml --total-gpus 64 --gpu h100-sxm --set
model=qwen2.5-32b --trainer-pp 1,2,4` (4,886 plans). Simulated hours come from
- `--results`: a finished `plan --out` table of that command (its `label` and `hours_total`), and
- a sample of `--sample` plans stratified by placement, staleness and GPU total (seeded), each
  simulated until steady with PLANNER_RULE (`--simulate`, `--workers` processes), kept in
  `--cache` (JSON lines: label, hours_total) so a rerun simulates only what is missing.
The old bound is `rlvr_sim/sweep/bound.py` at `--old-ref` (git), imported beside this tree's.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_bound.py --simulate [--sample 40] [--workers 2]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_bound.py --results /tmp/s3/base.parquet
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_bound.py --decompose "64x h100-sxm disagg S16(tp4) T48(tp2) async1 mb16"

Output: per class (placement, sync / async and, for async, whether the simulated plan's sampler or
trainer was the busier pool), the median, min and max of bound / simulated, old and new; the
number of plans whose bound exceeds their simulated hours (must be 0); per (GPU, total) and in
all, the plans whose bound is below the group's best-known hours, old and new; and the CPU
seconds both bounds take over the whole space. `--share` evaluates the new bound with another
ASYNC_RATE_SHARE (what-if); `--decompose LABEL` instead splits one plan's simulated decode time
into the cost model's terms beside the bound's pooled iterations and work (where the gap is).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from types import ModuleType
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
# --decompose patches the engine's class and module, which the compiled engine's native classes
# do not allow: the Python sources run then (rlvr_sim.sim.compiled; same results)
if "--decompose" in sys.argv:
    os.environ["RLVR_SIM_PURE"] = "1"
SCENARIO = "scenarios/deepseek-r1-zero-like.yaml"
README_ARGS = ["--total-gpus", "64", "--gpu", "h100-sxm", "--set", "model=qwen2.5-32b", "--trainer-pp", "1,2,4"]
OLD_REF = "a5af861"     # the bound before issue 14's tightening


def old_bound_module(ref: str) -> ModuleType:
    """`rlvr_sim/sweep/bound.py` at git `ref`, imported as module `bound_old`."""
    text = subprocess.run(["git", "show", f"{ref}:rlvr_sim/sweep/bound.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    path = Path("/tmp") / f"bench_bound_old_{ref}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("bound_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bound_old"] = module
    spec.loader.exec_module(module)
    return module


def readme_space() -> tuple[argparse.Namespace, list]:
    from rlvr_sim.commands import plan as plancmd
    from rlvr_sim.sweep.space import enumerate_space

    parser = argparse.ArgumentParser()
    plancmd.add_arguments(parser)
    args = parser.parse_args([str(ROOT / SCENARIO), *README_ARGS])
    space, _ = plancmd.build_space(args)
    return args, enumerate_space(space)


def simulate_one(scenario: str, settings: tuple, label: str) -> dict:
    """Simulate one plan until steady (PLANNER_RULE), as the planner does."""
    from rlvr_sim.sim.steady import PLANNER_RULE
    from rlvr_sim.sweep.grid import Plan
    from rlvr_sim.sweep.jobs import evaluate_plan, make_jobs

    t0 = time.process_time()
    outcome = evaluate_plan(make_jobs(scenario, [Plan(settings)], None, None, PLANNER_RULE)[0])
    m = outcome.metrics
    return {"label": label, "hours_total": None if m is None else m.hours_total, "status": outcome.status,
            "sampler_busy": None if m is None else m.utilization.sampler,
            "trainer_busy": None if m is None else m.utilization.trainer,
            "steps": None if outcome.summary is None else outcome.summary.steps_simulated,
            "cpu_s": time.process_time() - t0}


def fits(scenario: str, settings: tuple) -> bool:
    """Whether the plan passes the scenario validator (memory fit included), as the planner
    checks before simulating."""
    from rlvr_sim.errors import UserError
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sweep.grid import Plan

    try:
        load_scenario(scenario, overrides=Plan(settings).overrides())
    except UserError:
        return False
    return True


def stratified(plans: list, k: int, seed: int, keep) -> list:
    """`k` plans drawn round-robin over (placement, staleness, GPU total) strata, seeded, among
    those `keep` accepts."""
    strata: dict[tuple, list] = defaultdict(list)
    for a in plans:
        strata[(a.placement, a.max_staleness, a.total_gpus)].append(a)
    rng = random.Random(seed)
    for members in strata.values():
        rng.shuffle(members)
    keys = sorted(strata)
    rng.shuffle(keys)
    out: list = []
    while len(out) < k and any(strata.values()):
        for key in keys:
            while strata[key] and len(out) < k:
                a = strata[key].pop()
                if keep(a):
                    out.append(a)
                    break
    return out


def plan_class(a, known: dict) -> str:
    mode = "sync" if a.max_staleness == 0 else "async"
    if mode == "async":
        row = known.get(a.label(), {})
        s, t = row.get("sampler_busy"), row.get("trainer_busy")
        if s is not None and t is not None:
            mode += " sampler-bound" if s >= t else " trainer-bound"
    return f"{a.placement[:6]} {mode}"


@contextlib.contextmanager
def _kv_occupancy() -> Iterator[dict[str, list[float]]]:
    """While open, every sampler span adds its iterations and its KV pool share (the engine's
    exact block count at the span's start) under what the replica's queue is doing: why the pool
    is not full when the bound assumes it. Yields state -> [iterations, iterations x share]."""
    import rlvr_sim.sim.sampler as sampler_module

    kv: dict[str, list[float]] = {}
    account = sampler_module.ReplicaEngine._account

    def accounting(self, span_s, iterations):
        w, run = self.waiting, self.run
        if not self.admit_enabled:
            state = "draining for new weights"
        elif not w:
            state = "queue empty"
        elif w[0].group.step - self.eta > self.version:
            state = "queue held by the staleness gate"
        elif len(run) >= self.max_concurrent:
            state = "at max_concurrent_sequences"
        else:
            state = "queue waiting on KV blocks"
        used = self._exact_blocks(run.priv_off_sum, len(run)) if len(run) else 0.0
        row = kv.setdefault(state, [0.0, 0.0])
        row[0] += iterations
        row[1] += iterations * used / self.kv.capacity if self.kv.limited else 0.0
        return account(self, span_s, iterations)

    setattr(sampler_module.ReplicaEngine, "_account", accounting)
    try:
        yield kv
    finally:
        setattr(sampler_module.ReplicaEngine, "_account", account)


def _print_kv_occupancy(kv: dict[str, list[float]]) -> None:
    total = sum(its for its, _ in kv.values())
    occupied = sum(occ for _, occ in kv.values())
    print(f"  KV pool occupancy {occupied / total:.1%} of the blocks (iteration-weighted); by queue state:")
    for state, (its, occ) in sorted(kv.items(), key=lambda item: -item[1][0]):
        print(f"    {state:34s} {its / total:6.1%} of iterations, pool {occ / its:6.1%} full")


def decompose(scenario: str, fixed, a, steps: int) -> None:
    """Where a plan's sampler time goes against the bound's pooled terms: simulate `steps` fixed
    steps with every decode span's cost split into the cost model's terms (at the span rule's own
    quadrature points and weights) and print per-step sums beside the bound's."""
    from collections import Counter

    import rlvr_sim.sim.sampler as sampler_module
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim import simulate, spans
    from rlvr_sim.sweep.bound import PlanBounds
    from rlvr_sim.sweep.bound_sampler import _sampler_rates
    from rlvr_sim.sweep.grid import Plan

    acc: Counter[str] = Counter()

    def counting(cm, rule, tpi):        # wraps rlvr_sim.sim.spans.span_function
        inner = spans.span_function(cm, rule, tpi)

        def span(n, ctx_sum, ctx_max, iters):
            last = iters - 1
            points = [(0, 1), (last / 2, 4), (last, 1)] if iters > 2 else [(i, 6 / iters) for i in range(iters)]
            for i, weight in points:
                bd = cm.decode_breakdown(n, ctx_sum + i * tpi * n, ctx_max + i * tpi)
                f = iters * weight / 6
                for key in ("compute_s", "memory_s", "skew_s", "comm_s", "overhead_s"):
                    acc[key] += f * getattr(bd, key)
            acc["iterations"] += iters
            acc["sequence_iterations"] += n * iters
            return inner(n, ctx_sum, ctx_max, iters)
        return span

    setattr(sampler_module, "span_function", counting)
    label = a.label()
    sc = load_scenario(scenario, overrides=Plan(fixed.settings + a.plan().settings).overrides())
    with _kv_occupancy() as kv:
        summary = simulate(sc, steps=steps, trace=False).summary
    replicas = summary.sampler_replicas
    print(f"\n{label}: {steps} steps simulated, per step and replica")
    for key in ("iterations", "sequence_iterations", "compute_s", "memory_s", "skew_s", "comm_s", "overhead_s"):
        print(f"  simulated {key:20s} {acc[key] / steps / replicas:14.1f}")
    print(f"  simulated prefill_s (recompute incl.) {summary.counters.get('prefill_s_per_replica_step', 0.0):8.1f}"
          f"   preemptions {summary.counters.get('preemptions', 0.0) / replicas:.0f}")
    _print_kv_occupancy(kv)
    b = PlanBounds(scenario, fixed, steps, None, steady=False)
    base = b._base(a)
    samples = b.step_samples(a)
    assert base is not None and samples is not None
    side = b.sampler_bound(a, base, samples)
    rates = _sampler_rates(b.cost_model(a))        # type: ignore[arg-type]
    w = side.pooled
    its = max(w.seq_iterations.mean() / rates.max_sequences, w.held.mean() / rates.kv_capacity_tokens)
    print(f"  bound iterations {its / replicas:.1f} (N/B {w.seq_iterations.mean() / rates.max_sequences / replicas:.1f},"
          f" H/K {w.held.mean() / rates.kv_capacity_tokens / replicas:.1f}); pooled work per step and replica"
          f" {side.windows_s[0, steps] / steps / replicas:.1f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="/tmp/s3/base.parquet", help="a `plan --out` table of the README command")
    p.add_argument("--cache", default="/tmp/bench_bound_sample.jsonl", help="simulated sample plans (JSON lines)")
    p.add_argument("--sample", type=int, default=40)
    p.add_argument("--best", type=int, default=3,
                   help="also simulate the BEST fitting plans of lowest new bound per (GPU, total): the "
                        "branch and bound's first picks, whose best hours stand in for the group optimum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--simulate", action="store_true", help="simulate the sample plans missing from the results")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--old-ref", default=OLD_REF, help="git ref of the old bound")
    p.add_argument("--share", type=float, default=None,
                   help="what-if: the new bound with this ASYNC_RATE_SHARE (the checked async term)")
    p.add_argument("--decompose", default=None, metavar="LABEL",
                   help="split one plan's simulated decode time into the cost model's terms (no report)")
    p.add_argument("--steps", type=int, default=4, help="steps simulated by --decompose")
    opts = p.parse_args()

    from rlvr_sim.commands.plan_space import fixed_plan
    from rlvr_sim.sweep import bound
    from rlvr_sim.sweep.bound import PlanBounds

    if opts.share is not None:
        bound.ASYNC_RATE_SHARE = opts.share
        print(f"what-if: ASYNC_RATE_SHARE = {opts.share}")

    args, plans = readme_space()
    fixed = fixed_plan(args)
    if opts.decompose:
        decompose(args.scenario, fixed, next(a for a in plans if a.label() == opts.decompose), opts.steps)
        return 0
    old = old_bound_module(opts.old_ref)
    bounds = {}
    for name, cls in (("old", old.PlanBounds), ("new", PlanBounds)):
        b = cls(args.scenario, fixed, 32, None)
        t0 = time.process_time()
        bounds[name] = {a: b.hours(a) for a in plans}
        print(f"{name} bound over {len(plans)} plans: {time.process_time() - t0:.1f} CPU-s", flush=True)

    known: dict[str, dict] = {}
    results = Path(opts.results)
    if results.is_file():
        import pandas as pd

        table = pd.read_parquet(results) if results.suffix == ".parquet" else pd.read_csv(results)
        for rec in table.to_dict("records"):
            if rec["status"] == "ok" and rec["hours_total"] == rec["hours_total"]:
                known[rec["label"]] = {"hours_total": float(rec["hours_total"]),
                                       "sampler_busy": rec.get("utilization.sampler"),
                                       "trainer_busy": rec.get("utilization.trainer")}
        print(f"results: {len(known)} simulated plans from {results}")
    cache = Path(opts.cache)
    if cache.is_file():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["hours_total"] is not None:
                known.setdefault(row["label"], row)
    valid = [a for a in plans if math.isfinite(bounds["new"][a])]

    def keep(a) -> bool:
        return a.label() in known or fits(args.scenario, fixed.settings + a.plan().settings)

    firsts: list = []
    groups: dict[tuple, list] = defaultdict(list)
    for a in valid:
        groups[(a.gpu, a.total_gpus)].append(a)
    for members in groups.values():
        members.sort(key=lambda a: bounds["new"][a])
        picked = 0
        for a in members:
            if picked == opts.best:
                break
            if keep(a):
                firsts.append(a)
                picked += 1
    sample = stratified(valid, opts.sample, opts.seed, keep)
    todo = list(dict.fromkeys(a for a in firsts + sample if a.label() not in known))
    if todo and opts.simulate:
        print(f"simulating {len(todo)} sample plans on {opts.workers} workers ...", flush=True)
        with ProcessPoolExecutor(opts.workers) as pool, cache.open("a") as out:
            futures = [pool.submit(simulate_one, args.scenario, fixed.settings + a.plan().settings, a.label())
                       for a in todo]
            for f in as_completed(futures):
                row = f.result()
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"  {row['label']}: {row['hours_total']} h ({row['cpu_s']:.0f} CPU-s, {row['steps']} steps)",
                      flush=True)
                if row["hours_total"] is not None:
                    known[row["label"]] = row

    by_label = {a.label(): a for a in plans}
    simulated = [by_label[lab] for lab in known if lab in by_label]
    print(f"\nbound / simulated hours ({len(simulated)} simulated plans; sample: "
          f"{sum(a.label() in known for a in sample)} of {len(sample)}; lowest-bound firsts: "
          f"{sum(a.label() in known for a in firsts)} of {len(firsts)})")
    classes: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"old": [], "new": []})
    over = {"old": 0, "new": 0}
    for a in simulated:
        hours = known[a.label()]["hours_total"]
        for name in ("old", "new"):
            ratio = bounds[name][a] / hours
            classes[plan_class(a, known)][name].append(ratio)
            over[name] += ratio > 1 + 1e-9
    print(f"{'class':34s} {'plans':>5s}  {'old median [min, max]':>24s}  {'new median [min, max]':>24s}")
    for key in sorted(classes):
        o, n = classes[key]["old"], classes[key]["new"]
        print(f"{key:34s} {len(o):5d}  {statistics.median(o):6.3f} [{min(o):.3f}, {max(o):.3f}]"
              f"      {statistics.median(n):6.3f} [{min(n):.3f}, {max(n):.3f}]")
    print(f"bound above the simulated hours (must be 0): old {over['old']}, new {over['new']}")

    best: dict[tuple, float] = {}
    for a in simulated:
        g = (a.gpu, a.total_gpus)
        best[g] = min(best.get(g, math.inf), known[a.label()]["hours_total"])
    print("\nplans whose bound is below their group's best-known hours (they must be simulated)")
    total = {"old": 0, "new": 0}
    for g in sorted(best):
        members = [a for a in plans if (a.gpu, a.total_gpus) == g]
        below = {name: sum(1 for a in members if bounds[name][a] < best[g]) for name in ("old", "new")}
        for name in total:
            total[name] += below[name]
        print(f"  {g[1]:3d}x {g[0]}: best {best[g]:8.1f} h, {len(members):5d} plans: "
              f"old {below['old']:5d}  new {below['new']:5d}")
    print(f"  all groups: old {total['old']}  new {total['new']}  (of {len(plans)} plans)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
