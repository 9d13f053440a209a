"""Where the GRPO step's generate time goes with the vLLM backend: the sampler's own call, timed
on the wall and CPU clocks, vs the simulator's engine replay of the same requests.

`python -m calibration.engine_generate_probe --out PROBE.json` (in the vLLM venv) builds the
GRPO validation's model (tiny-4m, random init), starts `executor.sampler_vllm.VllmSampler` as the
executor does (behaviour log-probs, prefix caching, fp32, eager), and times `generate` of the
GRPO configs' shape (8 prompts x 4 samples, up to 32 new tokens, 10-token prompts) `--repeats`
times after a warm-up, on the wall clock and on the process's CPU clock / threads. Each repeat is
then replayed by the simulator's engine (`engine_validate.simulate_run`, the profile's cost
model) with the lengths the samples really had, so CPU / simulated isolates the cost model on
this shape from the machine's contention (wall / CPU).

Limits: one process (the executor's sampler runs in its own process next to the trainer); the
CPU clock at 1 thread still stretches under heavy load (docs/engine_validation.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from calibration.engine_records import EngineRun, EngineWorkload, RequestRecord


def replay_s(prompt_tokens: int, lengths: list[int], k: int, model: dict, profile: str) -> float:
    """The simulator's generate time (last finish) of one call's requests, all at t = 0."""
    from calibration.engine_validate import simulate_run
    from rlvr_sim.hardware import HardwareProfile

    w = EngineWorkload(name="probe", prompts=len(lengths) // k, k=k, prompt_tokens=prompt_tokens,
                       cap_tokens=max(lengths), block_tokens=128)
    reqs = tuple(RequestRecord(request=i, group=i // k, prompt_tokens=prompt_tokens,
                               target_tokens=max(n, 1), output_tokens=n, arrival_s=0.0,
                               first_token_s=None, finish_s=None, preemptions=None)
                 for i, n in enumerate(lengths))
    run = EngineRun(workload=w, engine="probe", model=model, threads=1, load_avg_before=0.0,
                    load_avg_after=0.0, wall_s=0.0, requests=reqs, steps=(),
                    preemptions_total=None, kv_blocks_engine=100_000)
    return max(simulate_run(run, HardwareProfile.load(profile)).finish_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="profiles/vllm-cpu.yaml")
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0" if a.threads == 1 else f"0-{a.threads - 1}")
    import numpy as np
    import torch

    from calibration.models import BENCH_MODELS
    from executor.policy import build_random_policy
    from executor.sampler import SamplingParams
    from executor.sampler_vllm import VllmOptions, VllmSampler

    torch.set_num_threads(a.threads)
    model = BENCH_MODELS["tiny-4m"]
    prompts_n, k, new_tokens, prompt_len = 8, 4, 32, 10
    rng = np.random.default_rng(0)
    prompts = [rng.integers(4, 100, prompt_len).tolist() for _ in range(prompts_n)]
    params = SamplingParams(samples_per_prompt=k, max_new_tokens=new_tokens)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vllm-probe-") as tmp:
        policy = build_random_policy(model, device="cpu", threads=a.threads, seed=0)
        sampler = VllmSampler.from_policy(policy, tmp, VllmOptions(dtype="fp32", kv_cache_gib=1))
        sampler.generate(prompts, params, seed=999)                     # warm-up
        for r in range(a.repeats):
            load = os.getloadavg()[0]
            c0, t0 = time.process_time(), time.perf_counter()
            batch = sampler.generate(prompts, params, seed=r)
            wall, cpu = time.perf_counter() - t0, (time.process_time() - c0) / a.threads
            lengths = [len(x.completion_ids) for x in batch.rollouts]
            sim = replay_s(prompt_len, lengths, k, model, a.profile)
            rows.append({"repeat": r, "wall_s": wall, "cpu_s": cpu, "simulated_s": sim,
                         "cpu_share": cpu / wall if wall > 0 else float("nan"),
                         "load_avg": load, "mean_length": statistics.fmean(lengths),
                         "max_length": max(lengths), "lengths": lengths})
            print(f"r{r}: wall {wall:.3f} s, cpu {cpu:.3f} s, sim {sim:.3f} s, "
                  f"cpu/sim {cpu / sim:.2f}, wall/cpu {wall / cpu:.2f}, load {load:.1f}, "
                  f"lengths mean {statistics.fmean(lengths):.1f} max {max(lengths)}",
                  file=sys.stderr, flush=True)
        sampler.close()
    med = {q: statistics.median(r[q] for r in rows) for q in ("wall_s", "cpu_s", "simulated_s")}
    quiet = [r for r in rows if r["cpu_share"] >= 0.7]      # as the engine fit's filter
    med_quiet = ({q: statistics.median(r[q] for r in quiet) for q in ("cpu_s", "simulated_s")}
                 if quiet else None)
    out = {"model": "tiny-4m", "shape": {"prompts": prompts_n, "k": k, "max_new_tokens": new_tokens,
                                         "prompt_tokens": prompt_len},
           "threads": a.threads, "profile": a.profile, "rows": rows, "median": med,
           "median_cpu_share_0.7": med_quiet, "rows_cpu_share_0.7": len(quiet)}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"median: wall {med['wall_s']:.3f} s, cpu {med['cpu_s']:.3f} s, simulated "
          f"{med['simulated_s']:.3f} s; calls with CPU share >= 0.7: {len(quiet)}"
          + (f", their median cpu {med_quiet['cpu_s']:.3f} s, simulated "
             f"{med_quiet['simulated_s']:.3f} s" if med_quiet else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
