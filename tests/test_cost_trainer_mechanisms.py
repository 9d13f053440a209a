"""Trainer mechanisms of issue 12: MFU vs work per GPU, DP balance (packing vs padding), FP8,
optimizer/parameter offload, FSDP hybrid shard, context and expert parallelism. Hand-computed."""

import pytest

from rlvr_sim.cost.balance import Balance, batch_balance, minibatch_balance
from rlvr_sim.cost.memory import trainer_memory
from rlvr_sim.cost.params import param_counts
from rlvr_sim.cost.trainer import TrainerShape, params_per_gpu, train_mfu, train_step
from rlvr_sim.hardware import Efficiency, HardwareProfile
from rlvr_sim.model_spec import catalog_model

H100 = HardwareProfile.from_catalog("h100-sxm")
LLAMA = catalog_model("llama-3.1-8b")
N = 8_030_261_248
PEAK = 989.4e12


def _hw(**eff) -> HardwareProfile:
    return H100.model_copy(update={"efficiency": Efficiency(**eff)})


def test_mfu_curve_is_the_contract():
    hw = _hw(train_mfu_half_tokens=1000.0)
    assert train_mfu(hw, 1000) == pytest.approx(0.2)
    assert train_mfu(hw, 9000) == pytest.approx(0.4 * 0.9)
    assert train_mfu(H100, 10) == 0.4                      # None: flat


def test_mfu_curve_in_a_step_by_hand():
    hw = _hw(train_mfu_half_tokens=1000.0)
    shape = TrainerShape(gpus=1, fsdp=False, mini_batches=1, recompute_activations=False)
    tb = train_step(LLAMA, hw, shape, sequences=8, prompt_tokens=8 * 512, output_tokens=8 * 512)
    t, s = 8192, 1024
    fwd = 2 * N * t + 4 * 32 * 4096 * s * t
    mfu = 0.4 * t / (t + 1000)
    assert tb.mfu == pytest.approx(mfu)
    assert tb.forward_backward_s == pytest.approx(3 * fwd / (PEAK * mfu))


def test_more_trainer_gpus_are_not_a_free_one_over_n():
    """With the MFU curve, 8x the GPUs on the same 8192 tokens gives far less than 8x: the
    compute part runs at MFU(1024 tokens/GPU) instead of MFU(8192)."""
    hw = _hw(train_mfu_half_tokens=1000.0)
    one = train_step(LLAMA, hw, TrainerShape(gpus=1, fsdp=False, mini_batches=1), 8, 4096, 4096)
    eight = train_step(LLAMA, hw, TrainerShape(gpus=8, mini_batches=1), 8, 4096, 4096)
    speedup = one.forward_backward_s / eight.forward_backward_s
    expected = 8 * (1024 / 2024) / (8192 / 9192)            # compute-bound ratio by hand
    assert eight.bound == "compute"
    assert speedup == pytest.approx(expected, rel=1e-9) and speedup < 4.6
    flat = train_step(LLAMA, H100, TrainerShape(gpus=8, mini_batches=1), 8, 4096, 4096)
    flat_one = train_step(LLAMA, H100, TrainerShape(gpus=1, fsdp=False, mini_batches=1), 8, 4096, 4096)
    assert flat_one.forward_backward_s / flat.forward_backward_s == pytest.approx(8.0)


def test_packing_balance_by_hand():
    # LPT over 2 ranks: 5->r0, 4->r1, 3->r1 (7), 3->r0 (8), 3->r1 (10): max 10, mean 9
    hi, total, real, _ = minibatch_balance([3, 5, 3, 4, 3], 2, packing=True)
    assert (hi, total, real) == (10.0, 18.0, 18.0)
    bal = batch_balance([3, 5, 3, 4, 3], ranks=2, mini_batches=1, packing=True)
    assert bal.imbalance == pytest.approx(10 / 9) and bal.pad_factor == 1.0


def test_padding_balance_by_hand():
    # rank 0 gets [1, 4] -> one micro-batch padded to 4: 8 tokens; rank 1 [2, 2] -> 4
    bal = batch_balance([1, 4, 2, 2], ranks=2, mini_batches=1, packing=False, micro_batch_sequences=2)
    assert bal.pad_factor == pytest.approx(12 / 9)
    assert bal.imbalance == pytest.approx(8 / 6)
    # the same batch packed is perfectly balanced (4+1 vs 2+2 -> 5 vs 4: LPT gives 4+1, 2+2)
    assert batch_balance([1, 4, 2, 2], 2, 1, packing=True).imbalance == pytest.approx(5 / 4.5)


def test_imbalance_and_padding_scale_compute():
    base = TrainerShape(gpus=1, fsdp=False, mini_batches=1, recompute_activations=False)
    a = train_step(LLAMA, H100, base, 8, 4096, 4096)
    padded = TrainerShape(gpus=1, fsdp=False, mini_batches=1, recompute_activations=False,
                          balance=Balance(imbalance=1.25, pad_factor=1.5))
    b = train_step(LLAMA, H100, padded, 8, 4096, 4096)
    t, s = 8192, 1024
    fwd = 2 * N * t * 1.5 + 4 * 32 * 4096 * (s * 1.5) * (t * 1.5)
    assert b.forward_backward_s == pytest.approx(3 * fwd / (PEAK * 0.4) * 1.25)
    assert b.forward_backward_s > a.forward_backward_s


def test_fp8_runs_linear_layers_at_the_fp8_rate():
    shape = TrainerShape(gpus=1, fsdp=False, mini_batches=1, recompute_activations=False, fp8=True)
    tb = train_step(LLAMA, H100, shape, 8, 4096, 4096)
    t, s = 8192, 1024
    at_peak = 2 * N * t / 1978.9e12 + 4 * 32 * 4096 * s * t / PEAK
    assert tb.forward_backward_s == pytest.approx(3 * at_peak / 0.4)


def test_optimizer_offload_by_hand():
    shape = TrainerShape(gpus=8, mini_batches=2, offload_optimizer=True)
    tb = train_step(LLAMA, H100, shape, 64, 64 * 256, 64 * 256)
    ppg = N / 8
    assert tb.optimizer_s == pytest.approx(2 * (ppg * 32 / 50e9 + 4 * ppg / 50e9 + 0.02))
    timed = _hw(cpu_adam_s_per_param=1e-9)
    tb2 = train_step(LLAMA, timed, shape, 64, 64 * 256, 64 * 256)
    assert tb2.optimizer_s == pytest.approx(2 * (ppg * 1e-9 + 4 * ppg / 50e9 + 0.02))
    on_gpu = train_step(LLAMA, H100, TrainerShape(gpus=8, mini_batches=2), 64, 64 * 256, 64 * 256)
    assert tb.optimizer_s > on_gpu.optimizer_s


def test_offload_memory_by_hand():
    gib = 2**30
    full = trainer_memory(LLAMA, 80 * gib, gpus=8, seq_tokens=4096, reference_model=False)
    off = trainer_memory(LLAMA, 80 * gib, gpus=8, seq_tokens=4096, reference_model=False,
                         offload_optimizer=True)
    assert full.states_bytes == pytest.approx(18 * N / 8)
    assert off.states_bytes == pytest.approx(4 * N / 8)


def test_fsdp_hybrid_shard_by_hand():
    shape = TrainerShape(gpus=16, mini_batches=1, fsdp_shard_size=8, recompute_activations=False)
    tb = train_step(LLAMA, H100, shape, 16, 16 * 8, 16 * 8)       # tiny batch: comm-bound
    rank = 2 * N
    intra = 3 * 7 / 8 * rank / (450e9 * 0.7)
    inter = 2 * 1 / 2 * (rank / 8) / (50e9 * 0.7) + 1e-5             # 2 replicas over the network
    assert tb.bound == "communication"
    assert tb.overlapped_comm_s == pytest.approx(intra + inter + 2 * (7 / 8 * rank / (450e9 * 0.7)))
    full = train_step(LLAMA, H100, TrainerShape(gpus=16, mini_batches=1,
                                                recompute_activations=False), 16, 128, 128)
    assert full.forward_backward_s == pytest.approx(3 * 15 / 16 * rank / (50e9 * 0.7))
    assert tb.forward_backward_s < full.forward_backward_s          # hybrid keeps gathers on NVLink


def test_context_parallel_splits_activations_and_adds_all_to_all():
    gib = 2**30
    one = trainer_memory(LLAMA, 80 * gib, gpus=8, seq_tokens=32768)
    cp4 = trainer_memory(LLAMA, 80 * gib, gpus=8, seq_tokens=32768, cp=4)
    assert cp4.activation_bytes == pytest.approx(one.activation_bytes / 4)
    assert cp4.logits_bytes == pytest.approx(one.logits_bytes / 4)
    shape = TrainerShape(gpus=8, cp=4, mini_batches=1, recompute_activations=False)
    tb = train_step(LLAMA, H100, shape, 8, 8 * 512, 8 * 32256)
    tokens_gpu = 8 * 32768 / (2 * 4)
    qkvo = tokens_gpu * (2 * 4096 + 2 * 1024) * 2
    per_layer = 3 / 4 * qkvo / (450e9 * 0.7) + 1e-5 + 3 * 1e-5
    fb, fwd = 2 * 32 * per_layer, 32 * per_layer                     # backward = 2 forwards
    assert tb.exposed_comm_s == pytest.approx(fb + 2 * fwd)


def test_expert_parallel_all_to_all_by_hand():
    moe = catalog_model("qwen3-30b-a3b")
    shape = TrainerShape(gpus=8, ep=8, mini_batches=1, recompute_activations=False,
                         reference_model=False, old_logprob=False)
    tb = train_step(moe, H100, shape, 64, 64 * 256, 64 * 768)
    tokens_gpu = 64 * 1024 / 8
    dispatch = tokens_gpu * 8 * 2048 * 2
    one = 7 / 8 * dispatch / (450e9 * 0.7) + 1e-5
    assert tb.ep_all_to_all_s == pytest.approx(2 * 48 * 2 * one)     # fwd+bwd, dispatch+combine
    imb = train_step(moe, _hw(moe_imbalance=1.5), shape, 64, 64 * 256, 64 * 768)
    assert imb.ep_all_to_all_s > tb.ep_all_to_all_s
    slow_gemm = train_step(moe, _hw(grouped_gemm_eff=0.5), shape, 64, 64 * 256, 64 * 768)
    assert slow_gemm.forward_backward_s > tb.forward_backward_s
    counts = param_counts(moe)
    assert params_per_gpu(counts, shape) == pytest.approx(counts.total / 8)
    no_fsdp = TrainerShape(gpus=8, ep=8, fsdp=False)
    assert params_per_gpu(counts, no_fsdp) == pytest.approx(
        counts.total - counts.expert + counts.expert / 8)


def test_step_overhead_is_paid_once():
    tb = train_step(LLAMA, _hw(train_step_overhead_s=2.0), TrainerShape(gpus=8), 64, 64 * 256, 64 * 256)
    base = train_step(LLAMA, H100, TrainerShape(gpus=8), 64, 64 * 256, 64 * 256)
    assert tb.total_s == pytest.approx(base.total_s + 2.0) and tb.fixed_s == 2.0
