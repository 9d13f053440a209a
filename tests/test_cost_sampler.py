"""Decode roofline, spans, speculative decoding and prefill: hand values and monotonicity."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.cost.sampler import (DecodeCoeffs, SamplerShape, Speculative, decode_iteration,
                                   decode_iteration_c, decode_span_s, iteration_s, prefill, step_s)
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import catalog_model, catalog_names

H100 = HardwareProfile.from_catalog("h100-sxm")
LLAMA = catalog_model("llama-3.1-8b")
SHAPE = SamplerShape()


def test_batch_one_decode_is_weight_streaming_by_hand():
    bd = decode_iteration(LLAMA, H100, SHAPE, batch=1, context_tokens_sum=1000,
                          context_tokens_max=1000)
    bw = 3.35e12 * 0.8
    assert bd.bound == "memory"
    assert bd.memory_s == pytest.approx((8_030_261_248 * 2 + 1000 * 131_072) / bw)
    assert bd.skew_s == 0.0 and bd.comm_s == 0.0
    assert bd.total_s == pytest.approx(bd.memory_s + 0.003)


def test_large_batch_becomes_compute_bound():
    bd = decode_iteration(LLAMA, H100, SHAPE, batch=4096, context_tokens_sum=4096 * 16,
                          context_tokens_max=16)
    assert bd.bound == "compute"


def test_skew_term_mixed_lengths():
    even = decode_iteration(LLAMA, H100, SHAPE, 100, 100 * 2000, 2000)
    mixed = decode_iteration(LLAMA, H100, SHAPE, 100, 100 * 2000, 8000)
    assert mixed.skew_s == pytest.approx(0.3 * even.kv_bytes / (3.35e12 * 0.8) * (6000 / 8000))
    assert mixed.total_s > even.total_s


def test_tp_adds_allreduce_and_cuts_weight_reads():
    tp2 = decode_iteration(LLAMA, H100, SamplerShape(tp=2), 64, 64 * 1000, 1000)
    tp1 = decode_iteration(LLAMA, H100, SHAPE, 64, 64 * 1000, 1000)
    act = 64 * 4096 * 2
    assert tp2.comm_s == pytest.approx(2 * 32 * (2 * 0.5 * act / (450e9 * 0.7) + 1e-5))
    assert tp2.weight_bytes == pytest.approx(tp1.weight_bytes / 2)


def test_moe_large_batch_touches_most_experts():
    m = catalog_model("qwen3-30b-a3b")
    small = decode_iteration(m, H100, SHAPE, 1, 100, 100)
    big = decode_iteration(m, H100, SHAPE, 512, 512 * 100, 100)
    # one token reads 8 of 128 experts; 512 tokens read ~all of them
    assert small.weight_bytes < 0.2 * big.weight_bytes
    assert big.weight_bytes == pytest.approx(30.53e9 * 2, rel=0.01)


def test_speculative_expected_tokens():
    assert Speculative(method="draft", draft_tokens=4, acceptance_rate=0.7).tokens_per_iteration \
        == pytest.approx((1 - 0.7**5) / 0.3)
    assert Speculative().tokens_per_iteration == 1.0
    assert Speculative(method="ngram", draft_tokens=3, acceptance_rate=1.0).tokens_per_iteration == 4


def test_speculation_helps_small_batch_more_than_large():
    c = DecodeCoeffs.build(LLAMA, H100, SHAPE)
    spec = Speculative(method="draft", draft_tokens=4, acceptance_rate=0.7, draft_cost_ratio=0.05)
    none = Speculative()

    def gain(b):
        plain = b / step_s(c, none, b, b * 1000, 1000)
        fast = b * spec.tokens_per_iteration / step_s(c, spec, b, b * 1000, 1000)
        return fast / plain
    assert gain(1) > 2.0 and gain(1) > gain(1024)


def test_span_matches_sum_of_iterations():
    c = DecodeCoeffs.build(LLAMA, H100, SHAPE)
    spec = Speculative()
    exact = sum(step_s(c, spec, 64, 64 * 500 + i * 64, 3000 + i) for i in range(1000))
    assert decode_span_s(c, spec, 64, 64 * 500, 3000, 1000) == pytest.approx(exact, rel=1e-3)
    assert decode_span_s(c, spec, 64, 64 * 500, 3000, 5) == pytest.approx(
        sum(step_s(c, spec, 64, 64 * 500 + i * 64, 3000 + i) for i in range(5)))


def test_prefill_compute_bound_by_hand():
    bd = prefill(LLAMA, H100, SHAPE, new_tokens=8192, sequences=16)
    flop = 2 * 8_030_261_248 * 8192 + 4 * 32 * 32 * 128 * 8192 * 256
    assert bd.bound == "compute"
    assert bd.compute_s == pytest.approx(flop / (989.4e12 * 0.6))


_models = st.sampled_from([n for n in catalog_names()])


@given(name=_models, tp=st.sampled_from([1, 2, 4, 8]), batch=st.integers(1, 2048),
       extra=st.integers(1, 512), ctx=st.integers(1, 30_000), dctx=st.integers(0, 30_000),
       spread=st.floats(1.0, 8.0), gpu=st.sampled_from(["h100-sxm", "a100-80gb", "l40s", "cpu-2core"]))
def test_decode_never_faster_with_more_batch_or_context(name, tp, batch, extra, ctx, dctx, spread, gpu):
    m, hw = catalog_model(name), HardwareProfile.from_catalog(gpu)
    c = DecodeCoeffs.build(m, hw, SamplerShape(tp=tp))
    for spec in (Speculative(), Speculative(method="draft")):
        base = step_s(c, spec, batch, batch * ctx, ctx * spread)
        assert step_s(c, spec, batch + extra, (batch + extra) * ctx, ctx * spread) >= base
        assert step_s(c, spec, batch, batch * (ctx + dctx), (ctx + dctx) * spread) >= base
        # same total context spread over more sequences, longest unchanged
        assert step_s(c, spec, batch + extra, batch * ctx, ctx * spread) >= base
        assert step_s(c, spec, batch, batch * ctx, ctx * spread + dctx) >= base


@given(name=_models, batch=st.integers(1, 512), ctx=st.integers(1, 8000), iters=st.integers(1, 3000),
       more=st.integers(1, 500))
def test_span_monotone(name, batch, ctx, iters, more):
    c = DecodeCoeffs.build(catalog_model(name), H100, SHAPE)
    spec = Speculative()
    base = decode_span_s(c, spec, batch, batch * ctx, ctx, iters)
    assert base > 0
    assert decode_span_s(c, spec, batch, batch * ctx, ctx, iters + more) >= base
    assert decode_span_s(c, spec, batch + more, (batch + more) * ctx, ctx, iters) >= base
    assert decode_span_s(c, spec, batch, batch * (ctx + more), ctx + more, iters) >= base


def test_decode_iteration_c_equals_convenience_form():
    c = DecodeCoeffs.build(LLAMA, H100, SamplerShape(tp=2, pp=2))
    a = decode_iteration_c(c, 10, 5000, 900)
    b = decode_iteration(LLAMA, H100, SamplerShape(tp=2, pp=2), 10, 5000, 900)
    assert a == b
    assert iteration_s(c, 10, 5000, 900) == pytest.approx(a.total_s, rel=1e-12)
    moe = DecodeCoeffs.build(catalog_model("deepseek-v3"), H100, SamplerShape(tp=8))
    assert iteration_s(moe, 64, 64e3, 3000, 5) == pytest.approx(
        decode_iteration_c(moe, 64, 64e3, 3000, 5).total_s, rel=1e-12)


def test_weight_dtype_picks_the_tensor_core_rate():
    assert H100.peak_flop_per_s("fp8") == 1978.9e12
    assert H100.peak_flop_per_s("int4") == H100.peak_flop_per_s("bf16") == 989.4e12
    fp8 = decode_iteration(LLAMA, H100, SamplerShape(weight_dtype="fp8"), 1, 0, 0)
    assert fp8.weight_bytes == pytest.approx(8_030_261_248)


def test_decode_overlap_interpolates_between_roofline_max_and_serial_sum():
    """decode_overlap=1 is max(compute, memory); 0 is their sum; 0.5 hides half the smaller."""
    from rlvr_sim.cost.sampler import DecodeBreakdown
    b = DecodeBreakdown(compute_s=3.0, memory_s=1.5, skew_s=0.5, comm_s=0.25, overhead_s=0.125,
                        weight_bytes=0.0, kv_bytes=0.0, overlap=1.0)
    assert b.total_s == 3.0 + 0.25 + 0.125
    serial = DecodeBreakdown(3.0, 1.5, 0.5, 0.25, 0.125, 0.0, 0.0, overlap=0.0)
    assert serial.total_s == 3.0 + 2.0 + 0.25 + 0.125
    half = DecodeBreakdown(3.0, 1.5, 0.5, 0.25, 0.125, 0.0, 0.0, overlap=0.5)
    assert half.total_s == 3.0 + 1.0 + 0.25 + 0.125


def test_train_pass_overhead_is_paid_once_per_pass():
    """mini_batches forward+backward passes and one pass per log-prob forward."""
    from rlvr_sim.cost.trainer import TrainerShape, train_step
    from rlvr_sim.hardware import HardwareProfile
    from rlvr_sim.model_spec import catalog_model
    m = catalog_model("qwen2.5-1.5b")
    hw = HardwareProfile.from_catalog("h100-sxm")
    hw2 = hw.model_copy(update={"efficiency": hw.efficiency.model_copy(
        update={"train_pass_overhead_s": 0.5})})
    shape = TrainerShape(gpus=8, mini_batches=4)
    a = train_step(m, hw, shape, 64, 64 * 100, 64 * 400)
    b = train_step(m, hw2, shape, 64, 64 * 100, 64 * 400)
    assert b.forward_backward_s - a.forward_backward_s == pytest.approx(4 * 0.5)
    assert b.ref_logprob_s - a.ref_logprob_s == pytest.approx(0.5)
    assert b.old_logprob_s - a.old_logprob_s == pytest.approx(0.5)


def test_layer_overhead_adds_per_layer_dispatch_to_decode_prefill_and_train():
    """L x layer_overhead_s per decode iteration and prefill call; 3 L per fwd+bwd pass."""
    from rlvr_sim.cost.sampler import prefill
    from rlvr_sim.cost.trainer import TrainerShape, train_step
    m = catalog_model("llama-3.1-8b")  # 32 layers
    hw = HardwareProfile.from_catalog("h100-sxm")
    hw2 = hw.model_copy(update={"efficiency": hw.efficiency.model_copy(
        update={"layer_overhead_s": 1e-3})})
    shape = SamplerShape()
    d1 = decode_iteration(m, hw, shape, 8, 8 * 500, 500).total_s
    d2 = decode_iteration(m, hw2, shape, 8, 8 * 500, 500).total_s
    assert d2 - d1 == pytest.approx(32e-3)
    assert prefill(m, hw2, shape, 1000).total_s - prefill(m, hw, shape, 1000).total_s \
        == pytest.approx(32e-3)
    tshape = TrainerShape(gpus=8, mini_batches=2, pp=2)
    a = train_step(m, hw, tshape, 16, 1600, 6400)
    b = train_step(m, hw2, tshape, 16, 1600, 6400)
    assert b.forward_backward_s - a.forward_backward_s == pytest.approx(2 * 3 * 16 * 1e-3)
    assert b.ref_logprob_s - a.ref_logprob_s == pytest.approx(16 * 1e-3)


def test_kv_bw_eff_prices_kv_reads_separately_from_weights():
    """Unset, KV reads go at decode_bw_eff; set, KV seconds scale by decode_bw_eff / kv_bw_eff
    while weight seconds stay (hand-computed on a memory-bound iteration)."""
    m = catalog_model("llama-3.1-8b")
    hw = HardwareProfile.from_catalog("h100-sxm")
    eff = hw.efficiency
    half = hw.model_copy(update={"efficiency": eff.model_copy(
        update={"kv_bw_eff": eff.decode_bw_eff / 2, "skew_coef": 0.0})})
    base = hw.model_copy(update={"efficiency": eff.model_copy(update={"skew_coef": 0.0})})
    shape = SamplerShape()
    a = decode_iteration(m, base, shape, 64, 64 * 2000, 2000)
    b = decode_iteration(m, half, shape, 64, 64 * 2000, 2000)
    kv_s = a.kv_bytes / (hw.datasheet.hbm_bytes_per_s * eff.decode_bw_eff)
    assert b.memory_s - a.memory_s == pytest.approx(kv_s, rel=1e-9)


@settings(max_examples=500, deadline=None)
@given(name=_models, tp=st.sampled_from([1, 2, 4, 8, 16]), pp=st.sampled_from([1, 2, 4]),
       pp_overlap=st.booleans(), gpu=st.sampled_from(["h100-sxm", "a100-80gb", "l40s", "cpu-2core"]),
       batch=st.one_of(st.integers(-1, 4096), st.floats(-1.0, 4096.0)),
       ctx=st.floats(0.0, 1e8), ctx_max=st.floats(0.0, 1e5))
def test_plain_step_function_is_step_s_to_the_bit(name, tp, pp, pp_overlap, gpu, batch, ctx, ctx_max):
    """The fused step (constants folded in) returns exactly step_s's float, for dense models
    (None for MoE or speculative decoding); int and fractional batches, compute- or memory-bound."""
    from rlvr_sim.cost.sampler import plain_step_function

    m, hw = catalog_model(name), HardwareProfile.from_catalog(gpu)
    c = DecodeCoeffs.build(m, hw, SamplerShape(tp=tp, pp=pp, pp_overlap=pp_overlap))
    assert plain_step_function(c, Speculative(method="draft")) is None
    fused = plain_step_function(c, Speculative())
    if m.num_experts:
        assert fused is None
        return
    assert fused is not None
    assert fused(batch, ctx, ctx_max) == step_s(c, Speculative(), batch, ctx, ctx_max)
    overlapped = DecodeCoeffs(**{**c.__dict__, "overlap": 0.0})     # serial sum (CPU profiles)
    fused0 = plain_step_function(overlapped, Speculative())
    assert fused0 is not None
    assert fused0(batch, ctx, ctx_max) == step_s(overlapped, Speculative(), batch, ctx, ctx_max)
