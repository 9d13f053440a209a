"""Check that the planner's bound rejects exactly the plans scenario loading rejects.

`PlanBounds.valid` (rlvr_sim.sweep.bound) asks the loader's rules and memory-fit check on the
bound's own scenario variant, and a plan it rejects is never simulated. This loads every layout of a `plan`
space with the full check (`load_scenario`, check_fit on) and counts the plans where the two
disagree (must be 0).

    .venv/bin/python tools/check_bound_rejects.py -- scenarios/deepseek-r1-zero-like.yaml \\
        --total-gpus 64 --gpu h100-sxm --set model=qwen2.5-32b --trainer-pp 1,2,4

Everything after `--` is the `plan` command line (scenario and flags).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlvr_sim.cli import build_parser  # noqa: E402
from rlvr_sim.commands.plan_space import build_space, fixed_plan  # noqa: E402
from rlvr_sim.errors import UserError  # noqa: E402
from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.sweep.bound import PlanBounds  # noqa: E402
from rlvr_sim.sweep.grid import Plan  # noqa: E402
from rlvr_sim.sweep.space import enumerate_space  # noqa: E402


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    args = build_parser().parse_args(["plan", *argv[argv.index("--") + 1:]])
    space, _ = build_space(args)
    fixed = fixed_plan(args)
    bounds = PlanBounds(args.scenario, fixed)
    every = enumerate_space(space)
    started = time.process_time()
    fits = {a: bounds.valid(a) for a in every}
    bound_s = time.process_time() - started
    loads: dict[tuple[object, ...], bool] = {}
    mismatches = 0
    for a in every:
        key = (a.gpu, a.placement, a.sampler_gpus, a.sampler_tp, a.sampler_pp, a.trainer_gpus, a.trainer_tp,
               a.trainer_pp, a.mini_batches)
        if key not in loads:
            try:
                load_scenario(args.scenario, overrides=Plan(fixed.settings + a.plan().settings).overrides())
                loads[key] = True
            except UserError:
                loads[key] = False
        if loads[key] != fits[a]:
            mismatches += 1
            print(f"MISMATCH {a.label()}: loads {loads[key]}, bound says valid {fits[a]}")
    print(f"{len(every)} plans, {len(loads)} layouts loaded; {sum(fits.values())} valid; "
          f"bound's check {bound_s:.2f} CPU-s; mismatches {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
