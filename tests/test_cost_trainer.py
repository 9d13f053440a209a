"""Trainer step and weight sync: hand-computed values and monotonicity."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlvr_sim.cost.trainer import TrainerShape, train_step
from rlvr_sim.cost.weight_sync import SyncLayout, switch_s, weight_sync
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import catalog_model

H100 = HardwareProfile.from_catalog("h100-sxm")
LLAMA = catalog_model("llama-3.1-8b")
N = 8_030_261_248


def test_train_step_by_hand_single_gpu():
    shape = TrainerShape(gpus=1, fsdp=False, mini_batches=1, recompute_activations=False)
    tb = train_step(LLAMA, H100, shape, sequences=8, prompt_tokens=8 * 512, output_tokens=8 * 512)
    t, s = 8192, 1024
    fwd = 2 * N * t + 4 * 32 * 4096 * s * t
    peak = 989.4e12 * 0.4
    assert tb.forward_backward_s == pytest.approx(3 * fwd / peak)
    assert tb.ref_logprob_s == pytest.approx(fwd / peak) == pytest.approx(tb.old_logprob_s)
    assert tb.optimizer_s == pytest.approx(N * 32 / (3.35e12 * 0.8) + 0.02)
    assert tb.total_s == pytest.approx(tb.forward_backward_s + 2 * tb.ref_logprob_s + tb.optimizer_s)
    assert tb.tokens == t and tb.bound == "compute"


def test_moe_uses_active_params_for_flops():
    moe = catalog_model("qwen3-30b-a3b")
    shape = TrainerShape(gpus=8)
    tb = train_step(moe, H100, shape, 64, 64 * 256, 64 * 256)
    dense_like = train_step(catalog_model("qwen3-32b"), H100, shape, 64, 64 * 256, 64 * 256)
    assert tb.flop < 0.2 * dense_like.flop


def test_recompute_and_ref_model_switches():
    base = TrainerShape(gpus=8, recompute_activations=False, reference_model=False)
    a = train_step(LLAMA, H100, base, 512, 512 * 512, 512 * 1000)
    b = train_step(LLAMA, H100, TrainerShape(gpus=8), 512, 512 * 512, 512 * 1000)
    assert a.ref_logprob_s == 0 and b.ref_logprob_s > 0
    assert b.forward_backward_s == pytest.approx(a.forward_backward_s * 4 / 3, rel=0.02)


@given(seqs=st.integers(1, 4096), prompt=st.integers(1, 4096), out=st.integers(1, 8192),
       more=st.integers(1, 10_000), gpus=st.sampled_from([1, 8, 16, 64]),
       fsdp=st.booleans(), mb=st.integers(1, 16))
def test_train_time_grows_with_tokens(seqs, prompt, out, more, gpus, fsdp, mb):
    shape = TrainerShape(gpus=gpus, fsdp=fsdp, mini_batches=mb)
    a = train_step(LLAMA, H100, shape, seqs, seqs * prompt, seqs * out)
    b = train_step(LLAMA, H100, shape, seqs, seqs * prompt, seqs * out + more)
    assert b.total_s >= a.total_s > 0


def test_weight_sync_disaggregated_two_nodes_by_hand():
    # nccl broadcast of full tensors (issue 12): every sampler GPU receives all N x 2 bytes over
    # the network, then load_weights writes its shard at decode_bw_eff of HBM (the earlier model
    # sent only the shard and had no load step).
    lay = SyncLayout(placement="disaggregated", sampler_gpus=8, trainer_gpus=8, gpus_per_node=8)
    ws = weight_sync(LLAMA, H100, lay)
    buckets = -(-N * 2 // (512 * 2**20))
    load = N * 2 / (3.35e12 * 0.8)
    assert ws.link == "network" and ws.buckets == buckets == 30
    assert ws.total_s == pytest.approx(N * 2 / (50e9 * 0.7) + buckets * 1e-3 + load)
    one_node = weight_sync(LLAMA, H100, SyncLayout(placement="disaggregated", sampler_gpus=4,
                                                   trainer_gpus=4))
    assert one_node.link == "nvlink" and one_node.total_s < ws.total_s
    tp4 = weight_sync(LLAMA, H100, SyncLayout(placement="disaggregated", sampler_tp=4))
    assert tp4.transfer_s == pytest.approx(ws.transfer_s)          # full tensors either way
    assert tp4.load_s == pytest.approx(load / 4)                   # each GPU loads its quarter
    # nixl reads only the shard: max(shard, outbound share) over the link
    nixl = weight_sync(LLAMA, H100, SyncLayout(placement="disaggregated", method="nixl",
                                               sampler_tp=4))
    assert nixl.transfer_s == pytest.approx(max(N * 2 / 4, N * 2 * 2 / 8) / (50e9 * 0.7))


def test_disk_sync_slower_and_colocated_switch():
    # disk: write N x 2 once, read it back (tp 1: the whole model), then load_weights
    disk = weight_sync(LLAMA, H100, SyncLayout(placement="disaggregated", method="disk"))
    assert disk.total_s == pytest.approx(2 * N * 2 / 2e9 + 30 * 1e-3 + N * 2 / (3.35e12 * 0.8))
    assert switch_s(LLAMA, H100, "disaggregated", 1, 1) == 0
    assert switch_s(LLAMA, H100, "colocated", 1, 1) == pytest.approx(2 * N * 2 / 50e9 + 1.0)
    # both copies resident (no offload): only the fixed wake/sleep cost
    assert switch_s(LLAMA, H100, "colocated", 1, 1, offload=False) == pytest.approx(1.0)


def test_colocated_sync_all_gathers_over_nvlink():
    ws = weight_sync(LLAMA, H100, SyncLayout(placement="colocated", sampler_gpus=8))
    assert ws.link == "nvlink"
    assert ws.total_s == pytest.approx(N * 2 / (450e9 * 0.7) + 30 * 1e-3)
    single = weight_sync(LLAMA, H100, SyncLayout(placement="colocated", sampler_gpus=1))
    assert single.link == "hbm" and single.transfer_s == pytest.approx(N * 2 / (3.35e12 * 0.8))
