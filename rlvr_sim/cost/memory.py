"""Memory per GPU: the sampler's paged-KV plan and the trainer's states under FSDP/TP/PP.

Sampler (one replica = tp x pp GPUs, vLLM-style): usable = hbm x gpu_memory_utilization;
weights/(tp x pp) and an activation reserve come first, the rest is the KV pool, cut into blocks
of `block_tokens`. A sequence holds ceil(context / block_tokens) blocks; with prefix caching the
full blocks of a prompt are stored once for the k samples of that prompt.

Trainer (mixed-precision Adam): bf16 params (2 B) + fp32 master (4) + fp32 grads (4) + Adam m, v
(4 + 4) = 18 bytes per parameter, sharded over tp x pp and, with FSDP, over data-parallel ranks;
plus activations of one micro-batch sequence (checkpointed layer inputs with recompute, ~34
bytes x hidden per token per layer without), fp32 logits, and the bf16 reference model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlvr_sim.cost.params import kv_bytes_per_token, param_counts, weight_bytes
from rlvr_sim.model_spec import ModelSpec

GIB = 2**30
PREFILL_CHUNK_TOKENS = 8192  # tokens one prefill pass processes (vLLM max_num_batched_tokens)
TRAIN_BYTES_PER_PARAM = 18.0


def activation_reserve_bytes(m: ModelSpec, hbm_bytes: float, tp: int) -> float:
    """Sampler memory kept out of the KV pool: framework/CUDA-graph overhead plus the peak
    activations of one prefill chunk (hidden states, MLP intermediate, fp32 logits)."""
    fixed = min(1.0 * GIB, 0.05 * hbm_bytes)
    inter = max(m.intermediate_size, (m.moe_intermediate_size or 0) * max(m.num_experts_per_tok, 1))
    per_token = 2 * (4 * m.hidden_size + 2 * inter / tp)
    logits = 4 * m.vocab_size / tp * 256  # sampled rows only
    return fixed + PREFILL_CHUNK_TOKENS * per_token + logits


@dataclass(frozen=True)
class SamplerMemoryPlan:
    """KV memory of one sampler replica; all byte figures are per GPU of the replica."""

    hbm_bytes: float
    usable_bytes: float
    weight_bytes_per_gpu: float
    activation_reserve_bytes: float
    kv_pool_bytes: float
    kv_bytes_per_token: float
    block_tokens: int
    kv_blocks: int
    max_num_seqs: int
    prefix_caching: bool
    fits: bool
    reason: str

    @property
    def kv_tokens(self) -> int:
        return self.kv_blocks * self.block_tokens

    def blocks_for(self, sequences: int, context_tokens: int, prompt_tokens: int = 0,
                   samples_per_prompt: int = 1) -> int:
        """KV blocks held by `sequences` sequences of `context_tokens` each; with prefix caching
        groups of `samples_per_prompt` share the full blocks of their `prompt_tokens`."""
        per_seq = math.ceil(max(context_tokens, 1) / self.block_tokens)
        shared = self._shared_blocks(context_tokens, prompt_tokens, samples_per_prompt)
        groups = math.ceil(sequences / max(samples_per_prompt, 1)) if shared else 0
        return groups * shared + sequences * (per_seq - shared)

    def _shared_blocks(self, context_tokens: int, prompt_tokens: int, k: int) -> int:
        if not self.prefix_caching or k <= 1 or prompt_tokens <= 0:
            return 0
        return min(prompt_tokens, context_tokens) // self.block_tokens

    def max_concurrent_sequences(self, context_tokens: int, prompt_tokens: int = 0,
                                 samples_per_prompt: int = 1) -> int:
        """Most sequences of `context_tokens` whose blocks fit the pool, capped at max_num_seqs.

        Never admits more than fit: `blocks_for(result, ...) <= kv_blocks` always holds.
        """
        if not self.fits or self.kv_blocks <= 0:
            return 0
        per_seq = math.ceil(max(context_tokens, 1) / self.block_tokens)
        k = max(samples_per_prompt, 1)
        shared = self._shared_blocks(context_tokens, prompt_tokens, k)
        unique = per_seq - shared
        if shared == 0:
            n = self.kv_blocks // per_seq
        elif unique == 0:
            n = (self.kv_blocks // shared) * k
        else:
            group = shared + k * unique
            full, left = divmod(self.kv_blocks, group)
            n = full * k + (min(k - 1, (left - shared) // unique) if left >= shared + unique else 0)
        return int(min(n, self.max_num_seqs))


def sampler_memory_plan(m: ModelSpec, hbm_bytes: float, *, tp: int = 1, pp: int = 1,
                        gpu_memory_utilization: float = 0.9, weight_dtype: str = "bf16",
                        kv_dtype: str = "bf16", block_tokens: int = 16, max_num_seqs: int = 256,
                        prefix_caching: bool = True, min_context_tokens: int = 1) -> SamplerMemoryPlan:
    """Plan one replica's memory; `fits` is False (with the reason) when the weights and reserve
    leave no room for even one sequence of `min_context_tokens`."""
    usable = hbm_bytes * gpu_memory_utilization
    w = weight_bytes(m, weight_dtype) / (tp * pp)
    reserve = activation_reserve_bytes(m, hbm_bytes, tp)
    pool = max(usable - w - reserve, 0.0)
    kv_tok = kv_bytes_per_token(m, kv_dtype, tp, pp)
    blocks = int(pool // (kv_tok * block_tokens))
    need_blocks = math.ceil(min_context_tokens / block_tokens)
    fits, reason = True, "fits"
    if w + reserve >= usable:
        fits = False
        reason = (f"model does not fit: {w / 1e9:.1f} GB of weights per GPU at tp={tp}, pp={pp} "
                  f"+ {reserve / 1e9:.1f} GB activation reserve exceeds {hbm_bytes / 1e9:.0f} GB x "
                  f"sampler.gpu_memory_utilization={gpu_memory_utilization:g} = "
                  f"{usable / 1e9:.1f} GB; raise sampler.tp or sampler.pp, use "
                  "sampler.weight_dtype: fp8, or a GPU with more memory")
    elif blocks < need_blocks:
        fits = False
        reason = (f"KV pool of {pool / 1e9:.2f} GB per GPU holds {blocks * block_tokens} tokens, "
                  f"less than one sequence of {min_context_tokens} tokens "
                  "(workload.prompt_tokens + workload.response_tokens maxima); raise sampler.tp "
                  "or sampler.gpu_memory_utilization, use sampler.kv_dtype: fp8, or shorten "
                  "workload.response_tokens")
    return SamplerMemoryPlan(
        hbm_bytes=hbm_bytes, usable_bytes=usable, weight_bytes_per_gpu=w,
        activation_reserve_bytes=reserve, kv_pool_bytes=pool, kv_bytes_per_token=kv_tok,
        block_tokens=block_tokens, kv_blocks=blocks, max_num_seqs=max_num_seqs,
        prefix_caching=prefix_caching, fits=fits, reason=reason)


@dataclass(frozen=True)
class TrainerMemory:
    """Bytes per trainer GPU by role."""

    states_bytes: float       # params + master + grads + Adam, sharded
    activation_bytes: float   # one micro-batch of one sequence
    logits_bytes: float
    reference_bytes: float    # bf16 reference model, sharded like the policy
    hbm_bytes: float
    seq_tokens: int = 0

    @property
    def total_bytes(self) -> float:
        return self.states_bytes + self.activation_bytes + self.logits_bytes + self.reference_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= 0.95 * self.hbm_bytes

    @property
    def reason(self) -> str:
        if self.fits:
            return "fits"
        return (f"trainer does not fit: {self.total_bytes / 1e9:.1f} GB per GPU (states "
                f"{self.states_bytes / 1e9:.1f}, activations {self.activation_bytes / 1e9:.1f}, "
                f"logits {self.logits_bytes / 1e9:.1f}, reference {self.reference_bytes / 1e9:.1f})"
                f" for sequences of {self.seq_tokens} tokens (workload.prompt_tokens + "
                "workload.response_tokens maxima) "
                f"exceeds 95% of {self.hbm_bytes / 1e9:.0f} GB; use more trainer.gpus with "
                "trainer.fsdp, raise trainer.tp or trainer.pp, turn on "
                "trainer.recompute_activations, or shorten workload.response_tokens")


def trainer_memory(m: ModelSpec, hbm_bytes: float, *, gpus: int, tp: int = 1, pp: int = 1,
                   fsdp: bool = True, seq_tokens: int = 4096, reference_model: bool = True,
                   recompute_activations: bool = True, cp: int = 1, ep: int = 1,
                   fsdp_shard_size: int | None = None, offload_optimizer: bool = False,
                   offload_params: bool = False) -> TrainerMemory:
    """Per-GPU trainer memory for one micro-batch of one `seq_tokens` sequence.

    States: 18 bytes per parameter the GPU holds (cost.trainer.params_per_gpu: experts split
    over `ep`, FSDP over its shard group); optimizer offload keeps bf16 params + bf16 grads on
    the GPU (4 bytes), parameter offload as well keeps only two gathered layers in flight.
    Context parallelism (`cp`) splits a sequence's activations and logits."""
    from rlvr_sim.cost.trainer import TrainerShape, params_per_gpu

    counts = param_counts(m)
    shape = TrainerShape(gpus=gpus, tp=tp, pp=pp, fsdp=fsdp, cp=cp, ep=ep,
                         fsdp_shard_size=fsdp_shard_size)
    ppg = params_per_gpu(counts, shape)
    if offload_params:
        layer = (counts.total - counts.embedding) / max(m.num_hidden_layers, 1) / (tp * max(ep, 1))
        states = 2 * 2.0 * layer
    elif offload_optimizer:
        states = 4.0 * ppg
    else:
        states = TRAIN_BYTES_PER_PARAM * ppg
    layers = m.num_hidden_layers / pp
    h = m.hidden_size
    local = seq_tokens / max(cp, 1)
    if recompute_activations:  # checkpointed inputs of every layer + one layer's full activations
        act = local * h * 2 * layers + local * 34 * h / tp
    else:
        act = local * 34 * h * layers / tp
    logits = local * m.vocab_size / tp * 4 * 2  # fp32 logits and their gradient
    ref = (2.0 * ppg) if reference_model and not offload_params else 0.0
    return TrainerMemory(states, act, logits, ref, hbm_bytes, seq_tokens)
