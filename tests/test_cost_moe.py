"""MoE and parallelism in the sampler cost model (issue 12): distinct experts touched, expert
parallelism (all-to-all, imbalance), grouped-GEMM efficiency, TP across nodes, PP decode overlap."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.cost.params import param_counts
from rlvr_sim.cost.sampler import SamplerShape, decode_iteration, prefill
from rlvr_sim.hardware import Efficiency, HardwareProfile
from rlvr_sim.model_spec import catalog_model

H100 = HardwareProfile.from_catalog("h100-sxm")
QWEN_MOE = catalog_model("qwen3-30b-a3b")
DSV3 = catalog_model("deepseek-v3")


def _hw(**eff) -> HardwareProfile:
    return H100.model_copy(update={"efficiency": Efficiency(**eff)})


def touched(E: int, k: int, b: int) -> float:
    """Expected distinct experts hit by b tokens each routing to k distinct experts of E:
    a token misses a given expert with probability C(E-1,k)/C(E,k) = (E-k)/E, independently."""
    return E * (1 - (1 - k / E) ** b)


def test_touched_experts_by_hand():
    assert touched(8, 2, 1) == pytest.approx(2.0)               # one token: exactly k
    assert touched(8, 2, 3) == pytest.approx(8 * (1 - 0.75 ** 3))  # 4.625
    assert touched(128, 8, 10_000) == pytest.approx(128.0)       # large batch: all experts


@settings(max_examples=8, deadline=None)
@given(E=st.integers(2, 64), k_frac=st.floats(0.05, 1.0), b=st.integers(1, 40))
def test_touched_experts_matches_monte_carlo(E, k_frac, b):
    k = max(1, min(E, round(k_frac * E)))
    rng = np.random.default_rng([E, k, b])
    trials = 1500
    hits = np.zeros(trials)
    for t in range(trials):
        chosen = np.zeros(E, dtype=bool)
        for _ in range(b):
            chosen[rng.choice(E, size=k, replace=False)] = True
        hits[t] = chosen.sum()
    # 5 standard errors, floored at the Monte Carlo resolution (a sample with no spread, e.g.
    # every trial touching all experts, has a zero sample std but is still only an estimate)
    se = max(hits.std(), 1.0) / math.sqrt(trials)
    assert abs(hits.mean() - touched(E, k, b)) < 5 * se


def test_decode_weight_bytes_follow_touched_experts():
    c = param_counts(QWEN_MOE)
    shape = SamplerShape(tp=2)
    for batch in (1, 4, 64):
        br = decode_iteration(QWEN_MOE, H100, shape, batch, batch * 100, 100)
        frac = 1 - (1 - 8 / 128) ** batch
        assert br.weight_bytes == pytest.approx((c.non_expert + c.expert * frac) * 2 / 2)


def test_expert_parallel_all_to_all_by_hand():
    c_tp = decode_iteration(QWEN_MOE, H100, SamplerShape(tp=8), 64, 64 * 500, 500)
    c_ep = decode_iteration(QWEN_MOE, H100, SamplerShape(tp=8, ep=8), 64, 64 * 500, 500)
    act = 64 * 2048 * 2
    link = 450e9 * 0.7
    ar = 2 * 7 / 8 * act / link + 1e-5                       # one ring all-reduce
    assert c_tp.comm_s == pytest.approx(96 * ar)             # 2 per layer, 48 layers
    a2a = 7 / 8 * (act / 8 * 8) / link + 1e-5                # tokens/ep x top-8 hidden vectors
    assert c_ep.comm_s == pytest.approx(48 * ar + 2 * 48 * a2a)
    # same bytes per GPU (whole experts vs slices), the busiest rank decides with imbalance
    assert c_ep.weight_bytes == pytest.approx(c_tp.weight_bytes)
    imb = decode_iteration(QWEN_MOE, _hw(moe_imbalance=1.3), SamplerShape(tp=8, ep=8), 64,
                           64 * 500, 500)
    c = param_counts(QWEN_MOE)
    frac = 1 - (1 - 8 / 128) ** 64
    assert imb.weight_bytes == pytest.approx((c.non_expert + 1.3 * c.expert * frac) * 2 / 8)
    assert imb.comm_s > c_ep.comm_s


def test_grouped_gemm_efficiency_slows_expert_matmuls_only():
    base = decode_iteration(QWEN_MOE, H100, SamplerShape(), 256, 256 * 10, 10)
    slow = decode_iteration(QWEN_MOE, _hw(grouped_gemm_eff=0.5), SamplerShape(), 256, 256 * 10, 10)
    c = param_counts(QWEN_MOE)
    extra = 2 * c.expert_active * 256 / (989.4e12 * 0.5)       # expert FLOPs counted twice
    assert slow.compute_s - base.compute_s == pytest.approx(extra)
    p0 = prefill(QWEN_MOE, H100, SamplerShape(), 4096)
    p1 = prefill(QWEN_MOE, _hw(grouped_gemm_eff=0.5), SamplerShape(), 4096)
    assert p1.compute_s - p0.compute_s == pytest.approx(2 * c.expert_active * 4096 / (989.4e12 * 0.6))


def test_tensor_parallel_across_nodes_uses_the_network():
    one_node = decode_iteration(DSV3, H100, SamplerShape(tp=16, gpus_per_node=16, weight_dtype="fp8"),
                                32, 32 * 1000, 1000)
    two_nodes = decode_iteration(DSV3, H100, SamplerShape(tp=16, gpus_per_node=8, weight_dtype="fp8"),
                                 32, 32 * 1000, 1000)
    act = 32 * 7168 * 2
    per = 2 * 15 / 16 * act
    assert one_node.comm_s == pytest.approx(2 * 61 * (per / (450e9 * 0.7) + 1e-5))
    assert two_nodes.comm_s == pytest.approx(2 * 61 * (per / (50e9 * 0.7) + 1e-5))


def test_pipeline_decode_overlap_divides_compute_and_kv_not_weights():
    llama = catalog_model("llama-3.1-70b")
    seq = decode_iteration(llama, H100, SamplerShape(tp=4, pp=2), 256, 256 * 2000, 2000)
    ovl = decode_iteration(llama, H100, SamplerShape(tp=4, pp=2, pp_overlap=True), 256,
                           256 * 2000, 2000)
    assert ovl.compute_s == pytest.approx(seq.compute_s / 2)
    w_s = seq.weight_bytes * 2 / (3.35e12 * 0.8)
    kv_s = seq.kv_bytes * 2 / (3.35e12 * 0.8)
    assert seq.memory_s == pytest.approx(w_s + kv_s)
    assert ovl.memory_s == pytest.approx(w_s + kv_s / 2)
    assert ovl.total_s < seq.total_s
