"""Engine validation (calibration.engine_validate): the comparison on synthetic records.

The real vLLM run is tests/test_vllm_engine.py (it runs in .venv-vllm, which lacks scipy and so
cannot import the simulator)."""

from __future__ import annotations

import math
from dataclasses import replace


from calibration.engine_records import EngineRun, EngineWorkload, RequestRecord, StepRecord
from calibration.engine_validate import (DEFAULT_PROFILE, EngineComparison, compare,
                                         decode_samples, finish_steps, step_time_table,
                                         fit_decode_terms, mape, measured_quantities, quantities,
                                         simulate_run, table)
from calibration.models import BENCH_MODELS
from rlvr_sim.cost.sampler import DecodeCoeffs, SamplerShape, iteration_s
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec
from rlvr_sim.sim.fake_cost import FakeCostModel

TINY = BENCH_MODELS["tiny-0.5m"]
FAKE = FakeCostModel(decode_iter_s=1.0, prefill_s_fixed=0.5)


def _run(lengths: list[int], k: int, prompt: int = 2, steps=(), **workload) -> EngineRun:
    w = EngineWorkload(name="synthetic", prompts=len(lengths) // k, k=k, prompt_tokens=prompt,
                       **workload)
    reqs = tuple(RequestRecord(request=i, group=i // k, prompt_tokens=prompt, target_tokens=n,
                               output_tokens=n, arrival_s=0.0, first_token_s=0.1,
                               finish_s=float(n), preemptions=0)
                 for i, n in enumerate(lengths))
    return EngineRun(workload=w, engine="synthetic", model=TINY, threads=1, load_avg_before=1.0,
                     load_avg_after=3.0, wall_s=float(max(lengths)), requests=reqs,
                     steps=tuple(steps), preemptions_total=0)


def test_lengths_are_seeded_clipped_and_forced_to_the_median_at_sigma_zero():
    w = EngineWorkload(name="a", prompts=4, k=4, median_tokens=48, sigma=1.5, cap_tokens=100)
    lengths = w.response_lengths()
    assert lengths == w.response_lengths() and len(lengths) == 16
    assert all(1 <= n <= 100 for n in lengths) and max(lengths) == 100   # sigma 1.5: the cap bites
    assert EngineWorkload(name="b", prompts=2, k=3, median_tokens=7, sigma=0.0).response_lengths() \
        == [7] * 6
    assert replace(w, seed=1).response_lengths() != lengths


def test_engine_run_round_trips_through_json():
    step = StepRecord(start_s=0.0, duration_s=0.01, running=4, new_tokens=4, prefill_tokens=0,
                      context_sum=40, context_max=12)
    run = replace(_run([2, 4, 1, 3], k=2, steps=[step]), notes=("n",), prefix_cache_hits=3)
    back = EngineRun.from_json(run.to_json())
    assert back == run and isinstance(back.steps[0], StepRecord)


def test_every_sample_admitted_at_once_finishes_after_its_own_iterations():
    # one prefill (0.5 s) for all 4, then 1 s per iteration; each stops after its own length:
    # lengths 2, 4, 1, 3 -> 0.5 + n
    sim = simulate_run(_run([2, 4, 1, 3], k=2), None, FAKE)
    assert sim.finish_s == (2.5, 4.5, 1.5, 3.5)
    assert sim.start_s == (0.0,) * 4 and sim.preemptions == 0 and sim.prefill_s == 0.5


def test_max_num_seqs_queues_the_second_prompt_behind_the_first():
    # 2 slots: group 0 runs [0, 0.5 + 3]; group 1 admitted at 3.5 when both slots free up
    # (group 0's samples both take 3), prefill -> 4.0, 3 iterations -> 7.0
    sim = simulate_run(_run([3, 3, 3, 3], k=2, max_num_seqs=2), None, FAKE)
    assert sim.finish_s == (3.5, 3.5, 7.0, 7.0)
    assert sim.start_s == (0.0, 0.0, 3.5, 3.5)


def test_a_small_kv_pool_preempts_the_last_admitted_and_recomputes_it():
    # block 1 token, 7 blocks of which vLLM keeps 1 (its null block): 6 usable; no prefix
    # sharing, prompts of 2: both admitted (2 + 2 = 4 <= 6). The m-th iteration holds 2 + (m-1)
    # tokens each: m = 2 fits (6), m = 3 needs 8: at 2.5 s sample 1 is preempted with 2 tokens;
    # sample 0 runs its last iteration alone -> 3.5; sample 1 re-prefills 2 + 2 tokens (0.5 s)
    # -> 4.0 and decodes its last one -> 5.0
    sim = simulate_run(_run([3, 3], k=1, kv_blocks=7, block_tokens=1, prefix_caching=False),
                       None, FAKE)
    assert sim.finish_s == (3.5, 5.0)
    assert sim.preemptions == 1 and sim.prefill_s == 1.0


def test_a_token_budget_per_step_leaves_the_prompt_that_crosses_it_for_the_next_step():
    # prompts of 2 tokens, 3 requests of 2 tokens, budget 5 tokens per step: the first round
    # takes s0, s1 (4 tokens; s2 would make 6), prefill [0, 0.5], and the span stops after one
    # iteration (1.5) so s2 joins at the next step: 2 running decode 1 token each, 3 left >= 2;
    # prefill [1.5, 2.0]; s0, s1 need 1 more iteration -> 3.0; s2 its second -> 4.0.
    # Without a budget all three go together: 0.5 + 2 = 2.5.
    run = _run([2, 2, 2], k=1)
    sim = simulate_run(run, None, FAKE, max_batched_tokens=5)
    assert sim.finish_s == (3.0, 3.0, 4.0) and sim.start_s == (0.0, 0.0, 1.5)
    assert simulate_run(run, None, FAKE, max_batched_tokens=None).finish_s == (2.5, 2.5, 2.5)
    # a prompt longer than the budget still starts (vLLM chunks it) when it heads the round:
    # budget 1: s0 alone [0, 0.5] + 1 iteration (1.5); s1 [1.5, 2.0] + 1 (3.0: s0 done);
    # s2 [3.0, 3.5] + 1 (4.5: s1 done); s2's last iteration -> 5.5
    assert simulate_run(run, None, FAKE, max_batched_tokens=1).finish_s == (3.0, 4.5, 5.5)


def test_quantities_are_hand_computed():
    q = quantities([1.0, 2.0, 3.0, 4.0], output_tokens=10, preemptions=2.0)
    assert q.generate_s == 4.0 and q.finish_max_s == 4.0 and q.tokens_per_s == 2.5
    assert q.finish_p50_s == 2.5 and math.isclose(q.finish_p90_s, 3.7)
    m = measured_quantities(_run([2, 4, 1, 3], k=2))
    assert m.generate_s == 4.0 and m.tokens_per_s == 10 / 4 and m.preemptions == 0.0


def test_errors_mape_and_table():
    meas = quantities([1.0, 2.0], 4, 0.0)
    rows = [EngineComparison("a", False, meas, quantities([1.5, 3.0], 4, 1.0), 2.0),
            EngineComparison("b", False, meas, quantities([0.5, 1.0], 4, 0.0), 2.0),
            EngineComparison("c", True, meas, quantities([9.0, 9.0], 4, 0.0), 2.0)]
    assert rows[0].error("generate_s") == 0.5 and rows[1].error("generate_s") == -0.5
    assert math.isnan(rows[0].error("preemptions"))         # measured 0: no relative error
    assert mape(rows[:2], "generate_s") == 50.0 and math.isnan(mape([], "generate_s"))
    text = table(rows)
    assert "held-in" in text and "+50" in text and "-50" in text and "n/a" in text


def test_decode_fit_recovers_the_terms_that_made_the_steps():
    hw = HardwareProfile.load(DEFAULT_PROFILE)
    truth = {"decode_mfu": 0.05, "kv_bw_eff": 0.02, "decode_overhead_s": 0.004}
    true_hw = hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update=truth)})
    c = DecodeCoeffs.build(ModelSpec.from_hf_config_dict(TINY), true_hw,
                           SamplerShape(weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1))
    steps = [StepRecord(0.0, iteration_s(c, n, n * ctx, ctx), n, n, 0, n * ctx, ctx)
             for n in (1, 4, 16, 64, 128) for ctx in (64, 512, 2048)]
    steps.append(StepRecord(0.0, 1.0, 8, 8, 100, 800, 100))      # a prefill step: left out
    run = _run([2, 2], k=2, steps=steps)
    assert len(decode_samples(run)) == 15
    fitted, diag = fit_decode_terms([run], hw)
    assert diag["steps"] == 15 and diag["rms_log_error"] < 1e-6
    for term, value in truth.items():
        assert math.isclose(getattr(fitted.efficiency, term), value, rel_tol=1e-3)


def test_the_cpu_clock_view_reads_the_cpu_instants():
    run = _run([2, 4], k=2)
    cpu = tuple(replace(r, finish_cpu_s=r.finish_s / 2) for r in run.requests)
    run = replace(run, requests=cpu, cpu_s=3.0, threads=2, wall_s=4.0)
    assert measured_quantities(run, "cpu").generate_s == 2.0
    assert measured_quantities(run, "wall").generate_s == 4.0
    assert run.cpu_share == 3.0 / 8.0


def test_the_step_clock_counts_engine_steps():
    # 3 steps ending at 0.1, 0.5, 0.6: requests finishing at 0.5 and 0.6 end at steps 2 and 3
    steps = [StepRecord(0.0, 0.1, 2, 2, 4, 0, 0), StepRecord(0.1, 0.4, 2, 2, 0, 6, 3),
             StepRecord(0.5, 0.1, 1, 1, 0, 4, 4)]
    run = _run([2, 3], k=2, steps=steps)
    run = replace(run, requests=(replace(run.requests[0], finish_s=0.5),
                                 replace(run.requests[1], finish_s=0.6)))
    assert finish_steps(run) == [2, 3]
    row = compare(run, HardwareProfile.load(DEFAULT_PROFILE), clock="step")
    # the simulator on the step clock: both admitted at 0, free prefill, 1 s per iteration
    assert row.simulated.finish_max_s == 3.0 and row.measured.finish_max_s == 3.0
    assert row.error("finish_p50_s") == 0.0


def test_peak_running_counts_the_batch_the_kv_pool_allows():
    # the KV case above: 2 run together, then 1; measured peak: the largest step batch
    run = _run([3, 3], k=1, kv_blocks=7, block_tokens=1, prefix_caching=False,
               steps=[StepRecord(0.0, 1.0, 2, 2, 4, 0, 0), StepRecord(1.0, 1.0, 1, 1, 0, 3, 3)])
    assert simulate_run(run, None, FAKE).peak_running == 2
    assert measured_quantities(run).peak_running == 2.0


def test_step_time_table_puts_model_made_steps_at_ratio_one():
    hw = HardwareProfile.load(DEFAULT_PROFILE)
    c = DecodeCoeffs.build(ModelSpec.from_hf_config_dict(TINY), hw,
                           SamplerShape(weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1))
    steps = [StepRecord(0.0, iteration_s(c, 4, 400, 100), 4, 4, 0, 400, 100)] * 6
    text = step_time_table([_run([2, 2], k=2, steps=steps)], hw)
    row = text.splitlines()[1].split()
    assert row[0] == "2-4" and row[1] == "6" and row[-1] == "1.00"


def _with(hw: HardwareProfile, **terms) -> HardwareProfile:
    return hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update=terms)})


def test_ngram_host_cost_adds_fixed_plus_per_sequence_seconds_to_each_spec_step():
    from rlvr_sim.cost.sampler import Speculative, step_s

    hw = HardwareProfile.load(DEFAULT_PROFILE)
    shape = SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1)
    m = ModelSpec.from_hf_config_dict(TINY)
    plain = DecodeCoeffs.build(m, hw, shape)
    host = DecodeCoeffs.build(m, _with(hw, ngram_draft_fixed_s=0.02, ngram_draft_s_per_seq=0.001),
                              shape)
    ngram = Speculative(method="ngram", draft_tokens=4, acceptance_rate=0.1, draft_cost_ratio=0.0)
    eagle = Speculative(method="eagle", draft_tokens=4, acceptance_rate=0.1)
    # 8 running: 0.02 + 8 x 0.001 = 0.028 s more per verify step, for ngram only
    assert math.isclose(step_s(host, ngram, 8, 800, 100) - step_s(plain, ngram, 8, 800, 100), 0.028)
    assert step_s(host, eagle, 8, 800, 100) == step_s(plain, eagle, 8, 800, 100)
    assert step_s(host, Speculative(), 8, 800, 100) == step_s(plain, Speculative(), 8, 800, 100)
    # None (not measured) leaves every profile as it was
    assert hw.efficiency.ngram_draft_fixed_s is None and plain.ngram_fixed_s == 0.0


def test_ngram_host_cost_in_a_replay_adds_it_per_iteration():
    # one request of 20 tokens, ngram with acceptance 0 (1 token per iteration): 20 iterations,
    # each 0.02 + 1 x 0.001 s longer -> the finish moves by exactly 20 x 0.021 = 0.42 s
    hw = HardwareProfile.load(DEFAULT_PROFILE)
    run = replace(_run([20], k=1, speculative="ngram", draft_tokens=4), draft_tokens=100,
                  accepted_tokens=0)
    base = simulate_run(run, hw)
    host = simulate_run(run, _with(hw, ngram_draft_fixed_s=0.02, ngram_draft_s_per_seq=0.001))
    assert base.decode_iterations == host.decode_iterations == 20
    assert math.isclose(host.finish_s[0] - base.finish_s[0], 0.42, rel_tol=1e-9)


def test_ngram_host_fit_recovers_the_terms_that_made_the_steps():
    from calibration.engine_validate import fit_spec_host_terms

    hw = HardwareProfile.load(DEFAULT_PROFILE)
    c = DecodeCoeffs.build(ModelSpec.from_hf_config_dict(TINY), hw,
                           SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32",
                                        gpus_per_node=1))
    steps = [StepRecord(0.0, iteration_s(c, n, n * 100, 100, 5) + 0.02 + 0.003 * n, n, n, 0,
                        n * 100, 100) for n in (1, 2, 4, 8, 16, 32) for _ in range(3)]
    steps.append(StepRecord(0.0, 5.0, 8, 8, 0, 800, 100))          # an outlier: robust loss
    run = _run([4] * 4, k=1, speculative="ngram", draft_tokens=4, steps=steps)
    fitted, diag = fit_spec_host_terms([run], hw)
    assert math.isclose(fitted.efficiency.ngram_draft_fixed_s, 0.02, rel_tol=0.02)
    assert math.isclose(fitted.efficiency.ngram_draft_s_per_seq, 0.003, rel_tol=0.02)
    assert diag["steps"] == 19 and diag["median_abs_log_error"] < 0.01     # the outlier pulls a little
