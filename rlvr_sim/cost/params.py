"""Parameter counts, weight bytes and KV-cache bytes of a ModelSpec.

Counts follow the Hugging Face module layout: embeddings (+ untied lm_head), per layer the
attention projections (GQA or MLA, with Qwen2 q/k/v biases and Qwen3 q/k norms), the MLP
(SwiGLU, 3 matrices; MoE: router + routed experts + shared experts) and two RMSNorms, plus the
final norm. Active parameters count the top-k routed experts instead of all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rlvr_sim.model_spec import ModelSpec

DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int4": 0.5}


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by role; `total` is what memory holds, `active` what one token multiplies."""

    embedding: int          # input embedding + untied lm_head
    attention: int          # all layers
    dense_mlp: int          # all dense-MLP layers
    expert: int             # routed experts, all MoE layers (total)
    expert_active: int      # routed experts actually used by one token, all MoE layers
    shared_and_router: int  # shared experts + routers, all MoE layers
    norms: int

    @property
    def total(self) -> int:
        return (self.embedding + self.attention + self.dense_mlp + self.expert
                + self.shared_and_router + self.norms)

    @property
    def active(self) -> int:
        return self.total - self.expert + self.expert_active

    @property
    def non_expert(self) -> int:
        """Parameters every decode step reads, whatever the batch."""
        return self.total - self.expert


def attention_params_per_layer(m: ModelSpec) -> int:
    h, nh = m.hidden_size, m.num_attention_heads
    if m.is_mla:
        d = m.mla
        qk_head = d.qk_head_dim
        if d.q_lora_rank:
            q = h * d.q_lora_rank + d.q_lora_rank + d.q_lora_rank * nh * qk_head
        else:
            q = h * nh * qk_head
        kv = h * (d.kv_lora_rank + d.qk_rope_head_dim) + d.kv_lora_rank
        kv += d.kv_lora_rank * nh * (d.qk_nope_head_dim + d.v_head_dim)
        return q + kv + nh * d.v_head_dim * h
    hd, kvh = m.attn_head_dim, m.kv_heads
    proj = h * nh * hd + 2 * h * kvh * hd + nh * hd * h
    bias = (nh * hd + 2 * kvh * hd) if m.attention_bias else 0
    norm = 2 * hd if m.qk_norm else 0
    return proj + bias + norm


@lru_cache(maxsize=256)
def param_counts(m: ModelSpec) -> ParamCounts:
    """Parameter counts by role (cached: ModelSpec is frozen and hashable)."""
    h = m.hidden_size
    embedding = m.vocab_size * h * (1 if m.tie_word_embeddings else 2)
    moe_layers = m.moe_layers
    dense_layers = m.num_hidden_layers - moe_layers
    expert_size = 3 * h * (m.moe_intermediate_size or 0)
    shared = 3 * h * (m.n_shared_experts * (m.moe_intermediate_size or 0)
                      + m.shared_expert_intermediate_size)
    if m.shared_expert_intermediate_size:
        shared += h  # Qwen2-MoE shared-expert gate
    router = h * m.num_experts
    return ParamCounts(
        embedding=embedding,
        attention=m.num_hidden_layers * attention_params_per_layer(m),
        dense_mlp=dense_layers * 3 * h * m.intermediate_size,
        expert=moe_layers * m.num_experts * expert_size,
        expert_active=moe_layers * m.num_experts_per_tok * expert_size,
        shared_and_router=moe_layers * (shared + router),
        norms=(2 * m.num_hidden_layers + 1) * h,
    )


def dtype_bytes(dtype: str) -> float:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}") from None


def weight_bytes(m: ModelSpec, dtype: str = "bf16") -> float:
    return param_counts(m).total * dtype_bytes(dtype)


def kv_bytes_per_token(m: ModelSpec, dtype: str = "bf16", tp: int = 1, pp: int = 1) -> float:
    """KV-cache bytes one token occupies on one GPU of a tp x pp replica.

    GQA/MHA: K and V of every kv head; TP shards kv heads (replicated when tp > kv heads).
    MLA: one compressed latent (kv_lora_rank + rope dim) per layer, replicated on every TP rank.
    PP splits the layers.
    """
    layers = m.num_hidden_layers / pp
    b = dtype_bytes(dtype)
    if m.is_mla:
        return layers * (m.mla.kv_lora_rank + m.mla.qk_rope_head_dim) * b
    kv_heads_per_gpu = -(-m.kv_heads // tp)
    return 2 * layers * kv_heads_per_gpu * m.attn_head_dim * b


def attention_flop_per_context_token(m: ModelSpec) -> float:
    """Decode FLOPs per new token per token of context (QK^T and AV, 2 FLOPs per MAC)."""
    if m.is_mla:  # absorbed MLA: scores and values against the latent
        return 2.0 * m.num_hidden_layers * m.num_attention_heads * (
            2 * m.mla.kv_lora_rank + m.mla.qk_rope_head_dim)
    return 4.0 * m.num_hidden_layers * m.num_attention_heads * m.attn_head_dim


def tensor_count(m: ModelSpec) -> int:
    """Named weight tensors of the Hugging Face checkpoint layout (what a weight sync sends one
    by one): per layer the attention projections (+ q/k/v biases, q/k norms; MLA: q_a, q_a_norm,
    q_b or q_proj, kv_a, kv_a_norm, kv_b, o), two norms, and either a dense MLP (3) or a router
    + 3 per routed expert + 3 per shared-expert block (+ Qwen2-MoE's shared gate); plus the
    embedding, an untied lm_head and the final norm."""
    if m.is_mla:
        attn = (3 if m.q_lora_rank else 1) + 4
    else:
        attn = 4 + (3 if m.attention_bias else 0) + (2 if m.qk_norm else 0)
    per_layer = attn + 2
    moe = m.moe_layers
    dense = m.num_hidden_layers - moe
    shared = 3 if (m.n_shared_experts or m.shared_expert_intermediate_size) else 0
    if m.shared_expert_intermediate_size:
        shared += 1
    moe_tensors = 1 + 3 * m.num_experts + shared
    return (m.num_hidden_layers * per_layer + dense * 3 + moe * moe_tensors
            + 1 + (0 if m.tie_word_embeddings else 1) + 1)
