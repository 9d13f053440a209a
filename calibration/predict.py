"""Map one micro-benchmark row onto the cost model: what the simulator would predict for it.

A row (`BenchKey`) says what was measured (kind, model shape, batch, tokens, mini-batches); given
a candidate `HardwareProfile`, `predict_s` evaluates the very cost functions the simulator uses
(`rlvr_sim.cost.sampler.prefill / decode_span_s`, `cost.trainer.train_step`,
`cost.weight_sync.weight_sync`). The fit only changes the profile's efficiency terms, so what
is fitted is exactly what the simulator consumes.

Conventions matching the executor's HF backend (executor/sampler.py, executor/trainer.py):
- decode rows time `iterations` model forwards of `sequences` rows whose KV holds
  `context_tokens_sum` tokens (longest `context_tokens_max`) at the first timed forward;
- prefill rows prefill `prompt_tokens` tokens over `sequences` prompts;
- train rows are one RL step on a one-device trainer, no activation recompute, no FSDP traffic;
  `train_fb` is forward+backward over all mini-batches, `optimizer` all optimizer steps,
  `logprob` one no-grad log-prob forward over the batch;
- weight_sync rows copy the policy's weights into the colocated sampler.
"""

from __future__ import annotations

import json
from functools import lru_cache

from rlvr_sim.cost.sampler import DecodeCoeffs, SamplerShape, Speculative, decode_span_s, prefill
from rlvr_sim.cost.trainer import TrainerShape, train_step
from rlvr_sim.cost.weight_sync import SyncLayout, weight_sync
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec

from calibration.harness import BenchKey

LSQ_KINDS = ("decode", "prefill", "train_fb", "optimizer", "logprob", "weight_sync")
NO_SPEC = Speculative()

# Which efficiency terms each kind of row informs (a term is fitted only when some row informs it
# and the installed cost model has it: optional terms are skipped on older profiles).
TERMS_BY_KIND: dict[str, tuple[str, ...]] = {
    "decode": ("decode_mfu", "decode_bw_eff", "decode_overhead_s", "decode_overlap",
               "layer_overhead_s", "kv_bw_eff"),
    "decode_mixed": ("skew_coef", "kv_bw_eff"),
    # prefill overlaps compute and weight reads with the decode term (cost.sampler.prefill reads
    # eff.decode_overlap; there is no prefill_overlap in the cost model, so none is fitted)
    "prefill": ("prefill_mfu", "prefill_overhead_s", "decode_overlap", "layer_overhead_s"),
    "train_fb": ("train_mfu", "train_pass_overhead_s", "layer_overhead_s"),
    "logprob": ("train_mfu", "train_pass_overhead_s", "layer_overhead_s"),
    "optimizer": ("optimizer_s_per_param", "train_overhead_s"),
    "weight_sync": ("decode_bw_eff", "bucket_latency_s"),
}


@lru_cache(maxsize=64)
def model_of(model_json: str) -> ModelSpec:
    """The ModelSpec a row names (rows carry the HF-style config as JSON)."""
    return ModelSpec.from_hf_config_dict(json.loads(model_json))


def kind_of(key: BenchKey) -> str:
    """The row's kind, with mixed-length decode rows told apart (they inform the skew term)."""
    if key.kind == "decode" and key.sequences and \
            key.context_tokens_max * key.sequences > key.context_tokens_sum:
        return "decode_mixed"
    return key.kind


def _trainer_shape(key: BenchKey, dtype: str) -> TrainerShape:
    return TrainerShape(gpus=1, tp=1, pp=1, fsdp=False, mini_batches=max(key.mini_batches, 1),
                        reference_model=True, old_logprob=False, recompute_activations=False,
                        dtype=dtype, gpus_per_node=1)


def predict_s(key: BenchKey, hw: HardwareProfile, dtype: str = "fp32",
              coeffs_cache: dict | None = None) -> float:
    """Seconds the cost model predicts for one benchmark row under profile `hw`.

    `coeffs_cache` (optional, keyed by model JSON) reuses decode constants within one
    evaluation of the same profile.
    """
    m = model_of(key.model_json)
    shape = SamplerShape(tp=1, pp=1, weight_dtype=dtype, kv_dtype=dtype)
    if key.kind == "decode":
        c = None if coeffs_cache is None else coeffs_cache.get(key.model_json)
        if c is None:
            c = DecodeCoeffs.build(m, hw, shape)
            if coeffs_cache is not None:
                coeffs_cache[key.model_json] = c
        return decode_span_s(c, NO_SPEC, key.sequences, key.context_tokens_sum,
                             key.context_tokens_max, key.iterations)
    if key.kind == "prefill":
        return prefill(m, hw, shape, key.prompt_tokens, max(key.sequences, 1)).total_s
    if key.kind in ("train_fb", "optimizer", "logprob"):
        br = train_step(m, hw, _trainer_shape(key, dtype), key.sequences, key.prompt_tokens,
                        key.output_tokens)
        return {"train_fb": br.forward_backward_s, "optimizer": br.optimizer_s,
                "logprob": br.ref_logprob_s}[key.kind]
    if key.kind == "weight_sync":
        lay = SyncLayout(placement="colocated", method="nccl", sampler_gpus=1, sampler_tp=1,
                         sampler_pp=1, trainer_gpus=0, gpus_per_node=1, dtype=dtype,
                         bucket_bytes=float(max(key.payload_bytes, 1)))
        return weight_sync(m, hw, lay).total_s
    raise ValueError(f"no cost-model prediction for benchmark kind {key.kind!r}")


def with_efficiency(base: HardwareProfile, values: dict[str, float]) -> HardwareProfile:
    """A copy of `base` whose efficiency terms are replaced by `values` (no validation: fast)."""
    return base.model_copy(update={"efficiency": base.efficiency.model_copy(update=values)})
