"""Sampler throughput: HF transformers backend vs vLLM(-cpu) backend on the same model and batch.

Both backends sit behind executor.sampler.Sampler and sample the same prompts (arithmetic
problems, k samples each, fixed max new tokens, temperature 1) from the same random-init model
(catalog `tiny-qwen2-4m` by default). Calls are interleaved (HF, vLLM, HF, vLLM, ...) after one
warm-up call each; reported: median output tokens/s of each, the ratio vLLM/HF per pair and its
median, and the weight-sync time of each backend (HF: load_state_dict into its own copy;
vLLM: in-place reload into the live engine), also interleaved. Threads: torch and vLLM's OMP
binding both get `--threads` cores. Needs the vllm extra (run it with the venv that has it).

    .venv-vllm/bin/python benchmarks/bench_sampler_hf_vs_vllm.py [--model tiny-qwen2-4m]
        [--prompts 16] [--k 8] [--tokens 32] [--reps 5] [--threads 1] [--json] [--out report.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time


def build(args, workdir: str):
    """(policy, HF sampler on a copy, vLLM sampler) over the same weights."""
    from executor.policy import build_random_policy
    from executor.sampler import HFSampler
    from executor.sampler_vllm import VllmOptions, VllmSampler
    from rlvr_sim.model_spec import catalog_model

    policy = build_random_policy(catalog_model(args.model).to_hf_config_dict(), device="cpu",
                                 threads=args.threads, seed=0)
    tok = policy.tokenizer
    hf = HFSampler(copy.deepcopy(policy.model), tok.eos_token_id, tok.pad_token_id)
    bind = f"0-{args.threads - 1}" if args.threads > 1 else "0"
    vllm = VllmSampler.from_policy(policy, workdir, VllmOptions(cpu_threads_bind=bind, seed=0))
    return policy, hf, vllm


def prompts(tok, n: int) -> list[list[int]]:
    from executor.tasks import problems
    from executor.tasks.math import MathTask

    return [tok.encode(p.prompt, add_special_tokens=False) for p in problems(MathTask(), 0, 0, n)]


def timed_generate(sampler, batch, params, seed: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = sampler.generate(batch, params, seed=seed)
    return time.perf_counter() - t0, out.timing.output_tokens


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny-qwen2-4m")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also write the JSON report here (vLLM logs to stdout too)")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    from executor.sampler import SamplingParams

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as workdir:
        policy, hf, vllm = build(args, workdir)
        batch = prompts(policy.tokenizer, args.prompts)
        params = SamplingParams(args.k, args.tokens, temperature=1.0)
        for s in (hf, vllm):                                   # warm-up (first touch, kernels)
            timed_generate(s, batch, params, seed=999)
        runs = {"hf": [], "vllm": []}
        syncs = {"hf": [], "vllm": []}
        state = {k: v.clone() for k, v in policy.model.state_dict().items()}
        for rep in range(args.reps):
            for name, s in (("hf", hf), ("vllm", vllm)):
                wall, tokens = timed_generate(s, batch, params, seed=rep)
                runs[name].append({"wall_s": wall, "output_tokens": tokens,
                                   "tokens_per_s": tokens / wall})
                t0 = time.perf_counter()
                s.load_weights(state)
                syncs[name].append(time.perf_counter() - t0)
            print(f"rep {rep}: hf {runs['hf'][-1]['tokens_per_s']:.0f} tok/s, "
                  f"vllm {runs['vllm'][-1]['tokens_per_s']:.0f} tok/s", file=sys.stderr)
    ratios = [v["tokens_per_s"] / h["tokens_per_s"] for h, v in zip(runs["hf"], runs["vllm"])]
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in runs.items()}
    report = {"model": args.model, "params": policy.params, "prompts": args.prompts, "k": args.k,
              "max_new_tokens": args.tokens, "threads": args.threads, "reps": args.reps,
              "torch": torch.__version__, "hf_tokens_per_s_median": med["hf"],
              "vllm_tokens_per_s_median": med["vllm"], "ratio_vllm_over_hf_per_pair": ratios,
              "ratio_vllm_over_hf_median": statistics.median(ratios),
              "weight_sync_s_median": {k: statistics.median(v) for k, v in syncs.items()},
              "vllm_startup_s": vllm.startup_s, "runs": runs}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.model} ({policy.params:,} params), {args.prompts} prompts x {args.k} samples x "
              f"{args.tokens} tokens, {args.threads} thread(s)")
        print(f"HF {med['hf']:.0f} tok/s, vLLM {med['vllm']:.0f} tok/s: vLLM/HF median "
              f"{report['ratio_vllm_over_hf_median']:.2f} (pairs {', '.join(f'{r:.2f}' for r in ratios)})")
        print(f"weight sync median: HF {report['weight_sync_s_median']['hf'] * 1e3:.1f} ms, vLLM "
              f"{report['weight_sync_s_median']['vllm'] * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
