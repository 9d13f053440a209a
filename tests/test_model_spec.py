"""ModelSpec: catalog shapes, config.json loading (dense, GQA, MoE, MLA) and hand-computed counts."""

import json

import pytest

from rlvr_sim.cost.params import kv_bytes_per_token, param_counts, weight_bytes
from rlvr_sim.errors import UserError
from rlvr_sim.model_spec import ModelSpec, catalog_model, catalog_names

REQUIRED = {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-1.5b", "qwen2.5-7b",
            "qwen2.5-32b", "qwen2.5-72b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b",
            "qwen3-235b-a22b", "deepseek-v3", "tiny-qwen2-4m"}


def test_catalog_has_required_models():
    assert REQUIRED <= set(catalog_names())


def test_llama_3_1_8b_by_hand():
    m = catalog_model("llama-3.1-8b")
    embed = 128256 * 4096 * 2                       # untied input + output embeddings
    attn = 4096 * 4096 * 2 + 4096 * 1024 * 2         # q, o full; k, v with 8 kv heads x 128
    mlp = 3 * 4096 * 14336
    per_layer = attn + mlp + 2 * 4096
    assert param_counts(m).total == embed + 32 * per_layer + 4096 == 8_030_261_248
    assert kv_bytes_per_token(m, "bf16") == 2 * 32 * 8 * 128 * 2 == 131_072
    assert kv_bytes_per_token(m, "fp8") == 65_536
    assert weight_bytes(m, "fp8") == 8_030_261_248


def test_qwen2_5_7b_has_qkv_bias():
    m = catalog_model("qwen2.5-7b")
    assert m.attention_bias
    assert param_counts(m).total == 7_615_616_512  # the published exact count


def test_deepseek_v3_total_and_active():
    c = param_counts(catalog_model("deepseek-v3"))
    assert c.total == pytest.approx(671e9, rel=0.005)
    assert c.active == pytest.approx(37e9, rel=0.03)
    # MLA latent: 61 layers x (512 + 64) x 2 bytes
    assert kv_bytes_per_token(catalog_model("deepseek-v3")) == 61 * 576 * 2


def test_qwen3_moe_total_and_active():
    c = param_counts(catalog_model("qwen3-30b-a3b"))
    assert c.total == pytest.approx(30.5e9, rel=0.01)
    assert c.active == pytest.approx(3.3e9, rel=0.03)
    c = param_counts(catalog_model("qwen3-235b-a22b"))
    assert c.total == pytest.approx(235e9, rel=0.01)
    assert c.active == pytest.approx(22e9, rel=0.03)


def test_tiny_model_about_4m():
    m = catalog_model("tiny-qwen2-4m")
    assert param_counts(m).total == pytest.approx(3.95e6, rel=0.01)
    assert m.tie_word_embeddings and m.head_dim == 64


def _write(tmp_path, cfg):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def test_from_hf_config_deepseek_mixtral_qwen_moe_fields(tmp_path):
    ds = ModelSpec.from_hf_config(_write(tmp_path, {
        "model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128,
        "moe_intermediate_size": 16, "num_hidden_layers": 4, "num_attention_heads": 4,
        "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
        "first_k_dense_replace": 1, "moe_layer_freq": 1, "kv_lora_rank": 32, "q_lora_rank": None,
        "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16, "vocab_size": 100,
        "architectures": ["DeepseekV3ForCausalLM"], "rope_scaling": {"type": "yarn"}}))
    assert ds.is_mla and ds.num_experts == 8 and ds.moe_layers == 3
    mx = ModelSpec.from_hf_config(_write(tmp_path, {
        "model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
        "num_experts_per_tok": 2, "vocab_size": 50}))
    c = param_counts(mx)
    assert mx.moe_intermediate_size == 96 and c.expert == 2 * 4 * 3 * 64 * 96
    assert c.expert_active == 2 * 2 * 3 * 64 * 96
    qm = ModelSpec.from_hf_config(_write(tmp_path, {
        "model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 96,
        "moe_intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32, "num_experts": 8, "num_experts_per_tok": 2,
        "decoder_sparse_step": 2, "mlp_only_layers": [3], "vocab_size": 50}))
    # sparse layers: (i + 1) % 2 == 0 -> 1, 3; layer 3 is forced dense -> only layer 1
    assert [qm.is_moe_layer(i) for i in range(4)] == [False, True, False, False]
    assert qm.qk_norm and qm.q_dim == 128


def test_gqa_defaults_mha_and_head_dim(tmp_path):
    m = ModelSpec.from_hf_config(_write(tmp_path, {
        "model_type": "gpt_neox_like", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 10}))
    assert m.kv_heads == 8 and m.head_dim == 32
    assert kv_bytes_per_token(m) == 2 * 2 * 8 * 32 * 2


def test_to_hf_config_dict_round_trips_every_catalog_model():
    for name in catalog_names():
        m = catalog_model(name)
        assert ModelSpec.from_hf_config_dict(m.to_hf_config_dict()) == m


def test_unknown_model_names_the_choices():
    with pytest.raises(UserError, match="llama-3.1-8b"):
        catalog_model("llama-9")


def test_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        ModelSpec.from_hf_config(tmp_path / "nope.json")
