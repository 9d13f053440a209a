"""`rlvr-sim validate --profile PROFILE`: held-out executor runs vs their simulation.

Runs every held-out configuration (calibration.validate.HELD_OUT; `--quick` runs two) for real,
simulates each with the profile, and prints the table and MAPE of step time and each phase.
Writes PROFILE.validation.json and PROFILE.validation.png next to the profile unless --report
names another stem. `--json` prints the report (mape_step_time, mape_phase, rows, configs).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rlvr_sim.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="hardware profile YAML written by `calibrate`")
    p.add_argument("--quick", action="store_true", help="two configurations instead of all")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this configuration (repeatable)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the executor runs (default: the profile's)")
    p.add_argument("--report", default=None,
                   help="output stem (default: PROFILE without .yaml -> .validation.json/.png)")
    p.add_argument("--work-dir", default=None, help="keep executor outputs here (default: a temp dir)")
    p.add_argument("--attempts", type=int, default=2,
                   help="runs per configuration at most, when the machine is busy (default 2)")
    p.add_argument("--min-cpu-share", type=float, default=0.75,
                   help="accept a run once it had this share of a core (default 0.75)")
    p.add_argument("--passes", type=int, default=2,
                   help="passes over all configurations; each config's runs are combined "
                        "(default 2: averages the machine's drift over the validation)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                   help="hf: held-out executor runs (default); vllm: held-out vLLM engine "
                        "workloads replayed by the simulator's engine, and the full GRPO step "
                        "with the vLLM sampler (calibration.engine_cli)")
    vg = p.add_argument_group("--backend vllm")
    vg.add_argument("--runs", action="append", default=[], metavar="DIR",
                    help="recorded engine runs (files or directories; default: the threads=1 "
                         "sets under calibration/engine_runs/, engine_cli.DEFAULT_RUN_DIRS)")
    vg.add_argument("--run-engine", action="store_true",
                    help="run the held-out engine workloads through vLLM now (in the vLLM venv)")
    vg.add_argument("--run-grpo", action="store_true",
                    help="run the vLLM-backend GRPO configs now (default: the recorded report "
                         "calibration/engine_runs/grpo-vllm/report.json, re-simulated)")
    vg.add_argument("--no-grpo", action="store_true", help="leave the GRPO comparison out")
    vg.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                    help="seconds clock of the comparison (default cpu; the step clock is always "
                         "reported too)")
    vg.add_argument("--model", default=None,
                    help="--run-engine: comma-separated tiny models (default tiny-4m)")
    vg.add_argument("--repeats", type=int, default=2, help="--run-engine: interleaved repeats")
    vg.add_argument("--vllm-venv", default=None,
                    help="the vLLM venv (default: $RLVR_VLLM_VENV or .venv-vllm; `make venv-vllm`)")


def run(args: argparse.Namespace) -> int:
    from calibration.fit import finite, load_fit_notes
    from calibration.report import plot_scatter
    from calibration.validate import HELD_OUT, QUICK_HELD_OUT, validate
    from rlvr_sim.hardware import HardwareProfile

    if args.backend == "vllm":
        from calibration.engine_cli import validate as validate_vllm
        return validate_vllm(args)
    profile = Path(args.profile)
    HardwareProfile.load(profile)  # clean error for a missing / invalid profile
    configs = QUICK_HELD_OUT if args.quick else HELD_OUT
    if args.only:
        known = {c.name: c for c in HELD_OUT}
        bad = [n for n in args.only if n not in known]
        if bad:
            raise UserError(f"--only {bad[0]!r} is not a validation configuration; use one of "
                            f"{', '.join(known)}")
        configs = tuple(known[n] for n in args.only)
    threads = args.threads or load_fit_notes(profile).get("provenance", {}).get("threads", 1)
    stem = Path(args.report) if args.report else profile.with_suffix("")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlvr-validate-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        report = validate(profile, configs, work, threads=int(threads),
                          progress=not args.no_progress and not args.json,
                          attempts=args.attempts, min_cpu_share=args.min_cpu_share,
                          passes=args.passes)
    data = report.to_dict()
    data.update(threads=int(threads), wall_s=time.perf_counter() - t0,
                loadavg_1m_end=os.getloadavg()[0])
    json_path = Path(f"{stem}.validation.json")
    png_path = Path(f"{stem}.validation.png")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(finite(data), indent=1) + "\n")
    if report.rows:
        plot_scatter(report, png_path)
    if args.json:
        print(json.dumps(finite(data), indent=1))
    else:
        print(report.text())
        for c in data["configs"]:
            if "skipped" in c:
                print(f"skipped {c['name']}: {c['skipped'][:200]}")
            else:
                m = c["measured"]
                share = "not measured" if m["cpu_share"] is None else f"{m['cpu_share']:.2f}"
                print(f"{c['name']:<28} cpu share {share} "
                      f"(attempts {', '.join(f'{x:.2f}' for x in c['attempt_cpu_shares'])}), "
                      f"load {m['loadavg_1m']:.1f}")
                for note in c.get("assumed", []):
                    print(f"  assumed {note}")
        ce = data.get("cpu_equivalent")
        if ce:
            print(f"CPU-equivalent (measured x CPU share): MAPE step_time {ce['mape_step_time']:.1f}%; "
                  + ", ".join(f"{p} {v:.1f}%" for p, v in ce["mape_phase"].items()))
        print(f"report: {json_path}" + (f", plot: {png_path}" if report.rows else ""))
    return 0 if report.rows else 1
