"""The sampler's host terms outside its engine steps (issue 19): the generate-call cost
(sampler_call_fixed_s + sampler_call_s_per_seq x sequences) in the cost model and in a sync
step's exact event log, and the fits of calibration.engine_host (call terms from probe calls,
the per-tensor weight-load term from engine weight updates), all against hand-computed numbers.
"""

from __future__ import annotations

import math

import pytest

from calibration.engine_host import (ProbeCall, engine_load_copy_s, engine_replay_s,
                                     fit_call_terms, fit_load_term)
from calibration.engine_records import (EngineRun, EngineWorkload, RequestRecord,
                                        WeightUpdateRecord)
from calibration.models import BENCH_MODELS
from rlvr_sim.cost.params import tensor_count, weight_bytes
from rlvr_sim.cost.sampler import sampler_call_s
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec
from rlvr_sim.sim import Constant, SimConfig, simulate_config
from rlvr_sim.sim.fake_cost import FakeCostModel
from tests.test_sim_exact import Lengths

PROFILE = HardwareProfile.load("profiles/vllm-cpu.yaml")
CPU = HardwareProfile.load("profiles/cpu-2core.yaml")


def _with(hw: HardwareProfile, **terms) -> HardwareProfile:
    return hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update=terms)})


# ----------------------------------------------------------------- cost model
def test_call_cost_is_fixed_plus_per_sequence_and_zero_when_not_modelled():
    hw = _with(CPU, sampler_call_fixed_s=0.03, sampler_call_s_per_seq=0.002)
    assert sampler_call_s(hw, 32) == pytest.approx(0.03 + 0.002 * 32)      # 0.094
    assert sampler_call_s(hw, 0) == 0.0                                     # no call
    assert sampler_call_s(_with(CPU, sampler_call_s_per_seq=0.002), 10) == pytest.approx(0.02)
    assert CPU.efficiency.sampler_call_fixed_s is None                      # shipped: unmodelled
    assert sampler_call_s(CPU, 32) == 0.0


# ----------------------------------------------------------------- simulator, exact log
def _config(**kw) -> SimConfig:
    base = dict(prompts_per_step=1, samples_per_prompt=2, steps=2, prompt_tokens=Constant(4),
                response_tokens=Lengths(3, 5), sampler_gpus=1, trainer_gpus=1,
                verifier_workers=1, verifier_latency_s=Constant(1.0))
    base.update(kw)
    return SimConfig(**base)


def test_sync_step_pays_one_generate_call_per_replica_before_the_engine():
    # test_sim_exact.test_disaggregated_sync_log plus a call of 2 sequences: 1 + 2 x 0.25 =
    # 1.5 s before the prefill. Step 0: call [0, 1.5], prefill [1.5, 2], s0 done 5 (3 its),
    # s1 done 7; verify s0 [5, 6], s1 [7, 8]; train [8, 18]; sync [18, 20]. Step 1 = +20.
    cm = FakeCostModel(weight_sync_s=2.0, call_s_fixed=1.0, call_s_per_seq=0.25)
    res = simulate_config(_config(), cm, event_log=True)
    gen = [e for e in res.log if e[0] == "generated"]
    assert gen == [("generated", 0, 5.0), ("generated", 1, 7.0),
                   ("generated", 2, 25.0), ("generated", 3, 27.0)]
    s = res.summary
    assert s.step_time_s.mean == pytest.approx(20.0)
    assert s.phase_time_s == pytest.approx(
        {"generate": 7.0, "verify": 1.0, "switch": 0.0, "train": 10.0, "weight_sync": 2.0})


def test_two_replicas_each_pay_their_own_call():
    # 2 prompts x 2 samples on 2 replicas: one group each, one call of 2 sequences each (1.5 s);
    # both replicas run in parallel, so the step is as with one replica and one group
    cm = FakeCostModel(weight_sync_s=2.0, call_s_fixed=1.0, call_s_per_seq=0.25)
    res = simulate_config(_config(prompts_per_step=2, sampler_gpus=2, verifier_workers=2,
                                  steps=1), cm, event_log=True)
    gen = sorted(e[2] for e in res.log if e[0] == "generated")
    assert gen == [5.0, 5.0, 7.0, 7.0]


# ----------------------------------------------------------------- fits
def _call(n_prompts: int, k: int, cpu_s: float, share: float = 1.0) -> ProbeCall:
    lengths = tuple([12, 20, 32, 7][i % 4] for i in range(n_prompts * k))
    return ProbeCall(prompts=n_prompts, k=k, prompt_tokens=10, lengths=lengths, cpu_s=cpu_s,
                     wall_s=cpu_s / share, cpu_share=share, model="tiny-4m")


def test_call_fit_recovers_the_terms_that_made_the_calls():
    calls = []
    for p, k in ((2, 4), (8, 4), (8, 8)):
        c = _call(p, k, 0.0)
        calls.append(_call(p, k, engine_replay_s(c, PROFILE) + 0.03 + 0.002 * p * k))
    calls.append(_call(8, 4, 9.9, share=0.3))                # no core: left out
    fit = fit_call_terms(calls, PROFILE)
    assert fit.values["sampler_call_fixed_s"] == pytest.approx(0.03, abs=1e-9)
    assert fit.values["sampler_call_s_per_seq"] == pytest.approx(0.002, abs=1e-9)
    assert (fit.calls, fit.left_out, fit.sizes) == (3, 1, (8, 32, 64))
    assert fit.median_abs_rel_error == pytest.approx(0.0, abs=1e-9)


def test_call_fit_with_one_size_puts_the_residual_per_sequence():
    c = _call(8, 4, 0.0)
    fit = fit_call_terms([_call(8, 4, engine_replay_s(c, PROFILE) + 0.096)], PROFILE)
    assert fit.values["sampler_call_fixed_s"] is None             # not identified
    assert fit.values["sampler_call_s_per_seq"] == pytest.approx(0.096 / 32)


def test_call_fit_without_a_quiet_call_says_so():
    with pytest.raises(ValueError, match="CPU share"):
        fit_call_terms([_call(8, 4, 1.0, share=0.2)], PROFILE)


def _wu_run(durations_cpu_s: list[float]) -> list[EngineRun]:
    model = BENCH_MODELS["tiny-4m"]
    w = EngineWorkload(name="wu", prompts=1, k=1, prompt_tokens=4, weight_update_after_step=1)
    req = (RequestRecord(request=0, group=0, prompt_tokens=4, target_tokens=2, output_tokens=2,
                         arrival_s=0.0, first_token_s=0.1, finish_s=1.0, preemptions=0),)
    return [EngineRun(workload=w, engine="synthetic", model=model, threads=1,
                      load_avg_before=0.0, load_avg_after=0.0, wall_s=1.0, requests=req, steps=(),
                      preemptions_total=0,
                      weight_updates=(WeightUpdateRecord(after_step=1, mode="keep_kv",
                                                         start_s=0.5, duration_s=9.0,
                                                         start_cpu_s=0.5, duration_cpu_s=d,
                                                         running=1, interrupted=0),))
            for d in durations_cpu_s]


def test_load_fit_spreads_the_median_update_less_the_copy_over_the_tensors():
    m = ModelSpec.from_hf_config_dict(BENCH_MODELS["tiny-4m"])
    eff, ds = PROFILE.efficiency, PROFILE.datasheet
    # the copy: fp32 bytes of every parameter at load_weights_bytes_eff (None: decode_bw_eff)
    # of the memory bandwidth
    copy = engine_load_copy_s(m, PROFILE)
    assert copy == pytest.approx(weight_bytes(m, "fp32") / (ds.hbm_bytes_per_s * (
        eff.load_weights_bytes_eff or eff.decode_bw_eff)))
    fit = fit_load_term(_wu_run([0.020, 0.030, 0.050]), PROFILE)      # wall 9 s: CPU clock read
    assert fit.median_update_s == pytest.approx(0.030)
    # 4 layers x (q, k, v, o + 3 biases + 2 norms + 3 MLP) + embedding + final norm (tied)
    assert fit.tensors == tensor_count(m) == 50
    assert fit.per_tensor_s == pytest.approx((0.030 - copy) / 50)
    assert math.isclose(fit_load_term(_wu_run([1e-4]), PROFILE).per_tensor_s, 0.0)  # floor 0


def test_load_fit_needs_updates():
    with pytest.raises(ValueError, match="no weight updates"):
        fit_load_term([], PROFILE)
