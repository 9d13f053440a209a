"""Sampler KV plan and trainer memory: hand-computed values and hypothesis invariants."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlvr_sim.cost.memory import activation_reserve_bytes, sampler_memory_plan, trainer_memory
from rlvr_sim.cost.params import weight_bytes
from rlvr_sim.model_spec import catalog_model, catalog_names

GIB = 2**30
LLAMA = catalog_model("llama-3.1-8b")


def test_llama_8b_plan_on_h100_by_hand():
    plan = sampler_memory_plan(LLAMA, 80 * GIB, tp=1, gpu_memory_utilization=0.9, block_tokens=16,
                               max_num_seqs=10_000)
    usable = 0.9 * 80 * GIB
    pool = usable - 8_030_261_248 * 2 - activation_reserve_bytes(LLAMA, 80 * GIB, 1)
    assert plan.kv_pool_bytes == pytest.approx(pool)
    assert plan.kv_blocks == int(pool // (131_072 * 16))
    # 4096-token sequences hold 256 blocks each, no sharing without a prompt
    assert plan.max_concurrent_sequences(4096) == plan.kv_blocks // 256
    assert plan.fits


def test_prefix_caching_shares_prompt_blocks():
    plan = sampler_memory_plan(LLAMA, 80 * GIB, max_num_seqs=100_000)
    alone = plan.max_concurrent_sequences(3000, prompt_tokens=2048, samples_per_prompt=1)
    shared = plan.max_concurrent_sequences(3000, prompt_tokens=2048, samples_per_prompt=16)
    # per sequence 188 blocks; a group of 16 shares 128 of them: 128 + 16 x 60 = 1088 blocks
    assert alone == plan.kv_blocks // 188
    assert shared >= (plan.kv_blocks // 1088) * 16 > 2 * alone


def test_does_not_fit_names_the_numbers():
    plan = sampler_memory_plan(catalog_model("llama-3.1-70b"), 80 * GIB, tp=1)
    assert not plan.fits and plan.max_concurrent_sequences(100) == 0
    assert "141.1 GB of weights per GPU at tp=1" in plan.reason and "raise sampler.tp" in plan.reason


def test_trainer_states_by_hand():
    mem = trainer_memory(LLAMA, 80 * GIB, gpus=8, fsdp=True, seq_tokens=4096, reference_model=False)
    assert mem.states_bytes == pytest.approx(18 * 8_030_261_248 / 8)
    no_fsdp = trainer_memory(LLAMA, 80 * GIB, gpus=8, fsdp=False, seq_tokens=4096)
    assert no_fsdp.states_bytes == pytest.approx(18 * 8_030_261_248) and not no_fsdp.fits


@given(name=st.sampled_from(catalog_names()), tp_exp=st.integers(0, 3), dtype=st.sampled_from(
    ["bf16", "fp8", "int4", "fp32"]))
def test_more_tp_never_raises_weight_bytes_per_gpu(name, tp_exp, dtype):
    m = catalog_model(name)
    tp = 2**tp_exp
    a = sampler_memory_plan(m, 80 * GIB, tp=tp, weight_dtype=dtype)
    b = sampler_memory_plan(m, 80 * GIB, tp=2 * tp, weight_dtype=dtype)
    assert b.weight_bytes_per_gpu <= a.weight_bytes_per_gpu
    assert b.kv_bytes_per_token <= a.kv_bytes_per_token
    assert a.weight_bytes_per_gpu == pytest.approx(weight_bytes(m, dtype) / tp)


@given(name=st.sampled_from(catalog_names()),
       hbm_gib=st.integers(8, 200), util=st.floats(0.3, 1.0), tp=st.sampled_from([1, 2, 4, 8]),
       block=st.sampled_from([1, 16, 32, 128]), cap=st.integers(1, 4096),
       ctx=st.integers(1, 40_000), prompt=st.integers(0, 20_000), k=st.integers(1, 32),
       caching=st.booleans())
def test_plan_never_admits_more_than_fit(name, hbm_gib, util, tp, block, cap, ctx, prompt, k,
                                         caching):
    m = catalog_model(name)
    plan = sampler_memory_plan(m, hbm_gib * GIB, tp=tp, gpu_memory_utilization=util,
                               block_tokens=block, max_num_seqs=cap, prefix_caching=caching)
    n = plan.max_concurrent_sequences(ctx, prompt, k)
    assert 0 <= n <= cap
    if n:
        assert plan.fits
        assert plan.blocks_for(n, ctx, prompt, k) <= plan.kv_blocks
        if not caching or k == 1 or prompt < block:  # no sharing: plain byte count
            assert n * math.ceil(ctx / block) * block * plan.kv_bytes_per_token <= plan.kv_pool_bytes
    if plan.fits and n < cap:  # maximal: one more sequence would not fit
        assert plan.blocks_for(n + 1, ctx, prompt, k) > plan.kv_blocks
