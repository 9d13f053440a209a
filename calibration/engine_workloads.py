"""The engine-validation workloads, with their held-in / held-out split.

Held-in workloads only serve to refit the decode terms from the engine's own steps
(`engine_validate.fit_decode_terms`); the held-out ones are predicted, never fitted. Each
held-out workload changes one dynamic from the base (8 prompts x k = 4, 160-token prompts,
lognormal responses median 48, sigma 1.0, cap 384, block 128, prefix caching on, no speculation):
the length tail (sigma 0.5 / 1.5), the group size (k = 16), a small KV pool (24 blocks: limits
admission; 16 blocks with longer responses: preempts),
prefix caching off, ngram speculative decoding, short contexts (12-token prompts, ~20-token
responses, k = 8), a prefill-only batch (8 x 256 tokens), a weight update after engine step 40 (in flight on the same KV cache, or
interrupting every running request to recompute it). The held-in ones
use other seeds, so no held-out workload shares its lengths with a fitted one.
"""

from __future__ import annotations

from dataclasses import replace

from calibration.engine_records import EngineWorkload

BASE = EngineWorkload(name="base", prompts=8, k=4, prompt_tokens=160, median_tokens=48,
                      sigma=1.0, cap_tokens=384, seed=0)

HELD_IN: tuple[EngineWorkload, ...] = (
    replace(BASE, name="fit-s1.0-k4", seed=101),
    replace(BASE, name="fit-s0.8-k8", prompts=4, k=8, sigma=0.8, seed=102),
    # short contexts: separates the per-sequence cost of a step from its per-context-token
    # (KV) cost, which the two above (contexts >= 160 tokens) cannot tell apart
    replace(BASE, name="fit-short", prompts=8, k=4, prompt_tokens=16, median_tokens=24,
            sigma=0.8, cap_tokens=64, seed=103),
    # prefill only (one token per request, no prefix caching, one step): prefill vs tokens
    *(replace(BASE, name=f"fit-prefill-{n}", prompts=8, k=1, prompt_tokens=n, median_tokens=1,
              sigma=0.0, cap_tokens=1, prefix_caching=False, max_batched_tokens=8192, seed=104)
      for n in (32, 128, 512, 1024)),
)

HELD_OUT: tuple[EngineWorkload, ...] = (
    replace(BASE, name="s1.0-k4"),
    replace(BASE, name="s0.5-k4", sigma=0.5),
    replace(BASE, name="s1.5-k4", sigma=1.5),
    replace(BASE, name="s1.0-k16", prompts=2, k=16),
    replace(BASE, name="kv-small", kv_blocks=24),
    replace(BASE, name="kv-tight", kv_blocks=16, median_tokens=96),
    replace(BASE, name="no-prefix", prefix_caching=False),
    replace(BASE, name="ngram", speculative="ngram", draft_tokens=4),
    replace(BASE, name="short-k8", prompts=4, k=8, prompt_tokens=12, median_tokens=20,
            sigma=0.6, cap_tokens=48),
    replace(BASE, name="prefill-256", prompts=8, k=1, prompt_tokens=256, median_tokens=1,
            sigma=0.0, cap_tokens=1, prefix_caching=False, max_batched_tokens=8192),
    replace(BASE, name="wu-keep", weight_update_after_step=40, weight_update_mode="keep_kv"),
    replace(BASE, name="wu-recompute", weight_update_after_step=40,
            weight_update_mode="recompute"),
)

ALL: dict[str, EngineWorkload] = {w.name: w for w in HELD_IN + HELD_OUT}
