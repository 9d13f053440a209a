"""`rlvr-sim calibrate`: micro-benchmark this machine, fit a hardware profile, write it.

Writes three files: PROFILE.yaml (loadable by a scenario's `profile:`), PROFILE.fit.json (fit
report, provenance, load during measurement, verifier latencies) and PROFILE.bench.parquet (the
raw benchmark table, so `--bench` can refit without measuring again).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from calibration.machine import resolve_device
from rlvr_sim.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="profile YAML to write, e.g. profiles/cpu-2core.yaml")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                   help="hf: micro-benchmark torch/HF (default); vllm: run the held-in engine "
                        "workloads through vLLM (in the vLLM venv) and fit the decode terms "
                        "(calibration.engine_cli)")
    vg = p.add_argument_group("--backend vllm")
    vg.add_argument("--runs", action="append", default=[], metavar="DIR",
                    help="recorded engine runs (files or directories of NAME.rN.run.json[.gz]; "
                         "`recorded`: the committed sets under calibration/engine_runs/) instead "
                         "of running vLLM now")
    vg.add_argument("--vllm-venv", default=None,
                    help="the vLLM venv (default: $RLVR_VLLM_VENV or .venv-vllm; `make venv-vllm`)")
    vg.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                    help="engine step times to fit: CPU clock (default; robust at threads=1 on a "
                         "shared machine) or wall clock")
    vg.add_argument("--min-cpu-share", type=float, default=0.7,
                    help="fit only held-in runs that had this share of their core (default 0.7)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--gpu", default="auto",
                   help="catalog entry whose datasheet the efficiencies refer to (auto: cpu-2core "
                        "on CPU, the catalog GPU named like the CUDA device)")
    p.add_argument("--quick", action="store_true", help="small grid (about a minute or two)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for every benchmark (recorded; validate uses the same)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per grid point")
    p.add_argument("--bench", action="append", default=[], metavar="TABLE",
                   help="refit existing benchmark tables (.parquet) instead of measuring; "
                        "repeat it to fit calibrations made at different times together (their "
                        "rows are merged into PROFILE.bench.parquet)")
    p.add_argument("--time", default="cpu", choices=["cpu", "wall"],
                   help="fit CPU-share-corrected times (cpu: what an uncontended core takes; "
                        "default) or raw wall times")
    p.add_argument("--loss", default="soft_l1", choices=["soft_l1", "huber", "cauchy", "linear"])
    p.add_argument("--json", action="store_true", help="print the fit report as JSON")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("budgeted real-model calibration (GPU lease; same code on CPU)")
    g.add_argument("--budget-s", type=float, default=None,
                   help="measure the most informative points of a real model shape first and stop "
                        "inside this many seconds (process start included); default on CUDA: 480")
    g.add_argument("--model", default=None,
                   help="decode/prefill/sync model: catalog name, config.json or local checkpoint "
                        "dir (default qwen2.5-7b on CUDA, tiny-qwen2-4m on CPU); --backend vllm: "
                        "comma-separated tiny models (default tiny-0.5m,tiny-4m,tiny-13m)")
    lg = p.add_argument_group("calibration from a real RL run's logs")
    lg.add_argument("--from-log", default=None, metavar="FILE",
                    help="the run's per-step metrics (JSON lines, wandb CSV export, console log, "
                         "trainer_state.json or NeMo-RL metrics JSON); fits the phases it times")
    lg.add_argument("--framework", default=None, choices=["verl", "trl", "nemo-rl", "openrlhf"])
    lg.add_argument("--config", default=None, help="the run's config (YAML/JSON, the framework's "
                    "own keys): model, GPUs, batch; flags below override it")
    lg.add_argument("--gpus", type=int, default=None, help="GPUs of the logged run")
    lg.add_argument("--sequences", type=int, default=None,
                    help="responses per step (prompts x samples per prompt)")
    lg.add_argument("--sampler-tp", type=int, default=None)
    lg.add_argument("--mini-batches", type=int, default=None, help="optimizer steps per RL step")
    lg.add_argument("--base-profile", default=None, metavar="PROFILE.yaml",
                    help="start from this profile (e.g. one from --budget-s on the same GPU); "
                         "terms the log cannot separate keep its values (default: catalog)")
    lg.add_argument("--skip-steps", type=int, default=1, help="warm-up steps left out (default 1)")
    g.add_argument("--train-model", default=None,
                   help="training model (default qwen2.5-1.5b on CUDA, tiny-qwen2-4m on CPU)")


def _catalog_gpu(device: str, gpu: str) -> str:
    from rlvr_sim.hardware import gpu_names

    if gpu != "auto":
        if gpu.lower() not in gpu_names():
            raise UserError(f"--gpu {gpu!r} is not in the catalog; use one of {', '.join(gpu_names())}")
        return gpu.lower()
    if not device.startswith("cuda"):
        return "cpu-2core"
    import torch

    name = torch.cuda.get_device_name(torch.device(device)).lower().replace(" ", "-")
    hits = [g for g in gpu_names() if g.split("-")[0] in name]
    if len(hits) != 1:
        raise UserError(f"cannot tell which catalog GPU {name!r} is ({hits or 'no match'}); "
                        "pass --gpu NAME")
    return hits[0]


def burst_fit(items: list[int], workers: int, seconds: list[float]) -> tuple[float, float]:
    """(round trip, service per item) of a FCFS pool from burst times: T(n) = rpc + s*ceil(n/w),
    least squares with both terms >= 0 (one burst size: rpc 0, s = T / ceil(n/w))."""
    import numpy as np

    waves = np.array([math.ceil(n / workers) for n in items], dtype=float)
    t = np.array(seconds, dtype=float)
    if len(set(waves.tolist())) >= 2:
        (rpc, s), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(waves), waves]), t, rcond=None)
        if rpc >= 0 and s > 0:
            return float(rpc), float(s)
    return 0.0, float(np.sum(t * waves) / np.sum(waves * waves))


def verifier_notes(df) -> dict:
    """Per task: in-worker latency fit, and per pool size the scenario's verifier model of a
    burst (`latency_s` service per item, `rpc_latency_s` round trip; `burst_fit`), which
    includes the pool's dispatch overhead."""
    from calibration.fit import fit_latency

    out: dict = {}
    ver = df[df["kind"] == "verify"]
    for task, rows in ver.groupby("task"):
        lats = [x for d in rows["details_json"] for x in json.loads(d)]
        fit = fit_latency(str(task), lats)
        by_w = {}
        for w, wrows in rows.groupby("workers"):
            rpc, service = burst_fit([int(n) for n in wrows["sequences"]], int(w),
                                     [float(x) for x in wrows["seconds"]])
            by_w[str(int(w))] = {
                "latency_s": {"dist": "lognormal", "mean": service, "sigma": fit.sigma,
                              "cap": max(fit.max_s * 2, service * 20)},
                "rpc_latency_s": rpc,
                "bursts": {str(int(n)): float(x) for n, x in zip(wrows["sequences"], wrows["seconds"])}}
        default = by_w[max(by_w, key=int)]
        out[str(task)] = {"in_worker": asdict(fit), "scenario_by_workers": by_w, "scenario": default}
    return out


def _load_stats(df) -> dict:
    share = df["cpu_share"] if "cpu_share" in df.columns else None
    return {"cpu_share_median": float(share.median()) if share is not None else None,
            "cpu_share_min": float(share.min()) if share is not None else None,
            "loadavg_1m_max": float(df[["loadavg_before", "loadavg_after"]].max().max()),
            "loadavg_1m_min": float(df[["loadavg_before", "loadavg_after"]].min().min()),
            "spin_slowdown_max": float(df["spin_slowdown_max"].max()),
            "spin_slowdown_median": float(df["spin_slowdown_max"].median())}


def gpu_for_device(device: str) -> str:
    """Catalog GPU of a CUDA device name by whole-word match ("NVIDIA H200" -> h200, not h20;
    an H100 is the SXM entry unless the name says PCIe); UserError when none or several match."""
    from rlvr_sim.hardware import gpu_names

    import torch

    name = torch.cuda.get_device_name(torch.device(device)).lower()
    return match_gpu_name(name, gpu_names())


def match_gpu_name(device_name: str, names: list[str]) -> str:
    import re

    words = set(re.split(r"[^a-z0-9]+", device_name.lower()))
    hits = [g for g in names if g.split("-")[0] in words]
    if len(hits) > 1:
        narrowed = [g for g in hits if "-" in g and g.split("-", 1)[1] in words]
        if not narrowed and "pcie" not in words:
            narrowed = [g for g in hits if g.endswith("-sxm")]
        hits = narrowed or hits
    if len(hits) != 1:
        raise UserError(f"--gpu auto: cannot tell which catalog GPU {device_name!r} is "
                        f"({hits or 'no match'}); pass --gpu NAME")
    return hits[0]


def _run_budgeted(args: argparse.Namespace, device: str, out: Path) -> int:
    from calibration.gpu_run import run_budgeted

    if out.suffix not in (".yaml", ".yml"):
        out = out.with_name(f"{out.name}.{device.split(':')[0]}.yaml")
    budget = args.budget_s if args.budget_s is not None else 480.0
    if budget <= 0:
        raise UserError(f"--budget-s {args.budget_s}: give a positive number of seconds, e.g. 480")
    if args.gpu != "auto":
        gpu = _catalog_gpu(device, args.gpu)
    elif device.startswith("cuda"):
        gpu = gpu_for_device(device)
    else:
        gpu = "cpu-2core"
    for b in args.bench:
        if not Path(b).exists():
            raise UserError(f"--bench {b!r} does not exist; run without --bench to measure")
    return run_budgeted(device, gpu, budget, out, args.model, args.train_model,
                        bench=args.bench or None)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from calibration.fit import fit_profile, write_profile
    from calibration.harness import frame_to_keys
    from calibration.machine import provenance
    from calibration.microbench import FULL, QUICK, run_grid
    from rlvr_sim.hardware import HardwareProfile

    if args.threads < 1:
        raise UserError(f"--threads={args.threads}: give at least 1")
    if args.backend == "vllm":
        from calibration.engine_cli import calibrate as calibrate_vllm
        return calibrate_vllm(args)
    if args.from_log:
        from calibration.from_log import run as run_from_log
        return run_from_log(args)
    out = Path(args.out)
    device0 = resolve_device(args.device)
    if args.budget_s is not None or (device0.startswith("cuda") and not args.bench):
        return _run_budgeted(args, device0, out)
    if out.suffix not in (".yaml", ".yml"):
        raise UserError(f"--out {args.out!r} must end in .yaml (the profile file)")
    device = device0
    gpu = _catalog_gpu(device, args.gpu)
    t0 = time.perf_counter()
    if args.bench:
        for b in args.bench:
            if not Path(b).exists():
                raise UserError(f"--bench {b!r} does not exist; run without --bench to measure")
        df = pd.concat([pd.read_parquet(b) for b in args.bench], ignore_index=True)
    else:
        grid = QUICK if args.quick else FULL
        if args.repeats:
            grid = replace(grid, repeats=args.repeats)
        df = run_grid(grid, device, args.threads, progress=not args.no_progress)
    measure_s = time.perf_counter() - t0
    bench_path = out.with_name(out.stem + ".bench.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(args.bench) != 1:             # measured now, or several tables merged
        df.to_parquet(bench_path, index=False)
    base = HardwareProfile.from_catalog(gpu)
    base = base.model_copy(update={"efficiency": base.efficiency.model_copy(
        update={"switch_fixed_s": 0.0})})   # the executor keeps both copies resident: no switch
    column = "seconds_cpu" if args.time == "cpu" and "seconds_cpu" in df.columns else "seconds"
    fit = fit_profile(frame_to_keys(df, column), base, loss=args.loss)
    prov = provenance(device, int(df["threads"].iloc[0]) if len(df) else args.threads)
    verifier = verifier_notes(df)
    load = _load_stats(df)
    grid_name = "bench" if args.bench else ("quick" if args.quick else "full")
    notes: dict[str, object] = {"provenance": prov.as_dict(), "grid": grid_name,
             "measure_s": measure_s, "time_column": column, "fit_s": time.perf_counter() - t0 - measure_s,
             "rows": int(len(df)), "load": load, "bench_table": bench_path.name,
             "bench_sources": [Path(b).name for b in args.bench],
             "verifier": verifier,
             "kept_from_datasheet": sorted(set(type(base.efficiency).model_fields) - set(fit.fitted_terms)),
             "switch_fixed_s": "0: the executor's colocated HF backend keeps sampler and trainer "
                               "copies resident (no offload/reload between phases)"}
    from calibration.fit import calibration_info

    info = calibration_info(
        fit, prov.as_dict(), {t: v["in_worker"]["p50_s"] for t, v in verifier.items()},
        notes=f"{grid_name} grid, {len(df)} rows measured in {measure_s:.0f} s at load "
              f"{load['loadavg_1m_min']:.1f}-{load['loadavg_1m_max']:.1f}; "
              f"details in {out.stem}.fit.json")
    path, side = write_profile(fit, out, prov.source_line(gpu), notes, calibration=info)
    if args.json:
        print(side.read_text())
        return 0
    r = fit.result
    how = "refit of " + ", ".join(args.bench) if args.bench else f"measured in {measure_s:.0f} s"
    print(f"profile {path} ({len(df)} benchmark rows, {how}, "
          f"threads={prov.threads}, load {load['loadavg_1m_min']:.1f}-"
          f"{load['loadavg_1m_max']:.1f}, CPUs {os.cpu_count()})")
    for t in fit.fitted_terms:
        print(f"  {t:<24}{r.values[t]:11.4g}  +- {100 * r.rel_stderr[t]:.0f}%"
              + ("  (at bound)" if t in r.at_bound else ""))
    print(f"  R^2 {r.r2:.3f} (log {r.r2_log:.3f}); median |error| {100 * r.median_abs_rel_error:.1f}%")
    for k in fit.kinds:
        print(f"    {k.kind:<13}{k.rows:4d} rows  median |err| {k.median_abs_error_pct:5.1f}%  "
              f"max {k.max_abs_error_pct:5.1f}%")
    print(f"  fit report: {side}")
    return 0
