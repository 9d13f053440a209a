"""Honest records: what a step did not measure is NaN/None or an error, never a stand-in 0; the
typed trace extras keep checker errors and wrong answers apart."""

import copy
import json
import math
from types import SimpleNamespace

import pytest

from executor.policy import build_random_policy
from executor.records import Learning, PhaseSeconds, rollout_metrics, step_metrics
from executor.sampler import HFSampler, Rollout, SamplingParams
from executor.sampler_vllm import sampled_logprobs
from executor.trainer import GRPOTrainer, LossConfig, TrainConfig
from executor.tracing import Tracer
from executor.trl_backend import logged_mean
from executor.verifier import VerifyResult
from rlvr_sim.trace import GenerateExtra, VerifyExtra

TINY = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
        "tie_word_embeddings": True, "max_position_embeddings": 128, "name": "test-tiny"}


def test_grad_norm_is_measured_without_clipping():
    """max_grad_norm None: the pre-clip norm is still measured (it used to be reported as 0),
    and it equals the norm the clipped run reports before clipping."""
    policy = build_random_policy(TINY, device="cpu", threads=1, seed=0)
    sampler = HFSampler(copy.deepcopy(policy.model), policy.tokenizer.eos_token_id,
                        policy.tokenizer.pad_token_id)
    prompts = [policy.tokenizer.encode(t, add_special_tokens=False) for t in ("2+2=", "5-3=")]
    rollouts = sampler.generate(prompts, SamplingParams(4, 4), seed=3).rollouts
    rewards = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    norms = []
    for clip in (None, 1e9):               # a bound nothing reaches: same update, same norm
        model = copy.deepcopy(policy.model)
        cfg = TrainConfig(lr=1e-3, max_grad_norm=clip, loss=LossConfig("dapo", 0.0, 0.2, 0.28, 4))
        norms.append(GRPOTrainer(model, cfg, policy.tokenizer.pad_token_id).step(rollouts, rewards, 4)
                     .grad_norm)
    assert norms[0] > 0 and math.isfinite(norms[0])
    assert norms[0] == pytest.approx(norms[1], rel=1e-6)


def test_a_missing_vllm_logprob_is_an_error_not_zero():
    lp = SimpleNamespace
    assert sampled_logprobs([{5: lp(logprob=-0.5)}, {7: lp(logprob=-1.25)}], [5, 7]) == [-0.5, -1.25]
    with pytest.raises(RuntimeError, match="no log-prob for sampled token 7 at position 1"):
        sampled_logprobs([{5: lp(logprob=-0.5)}, None], [5, 7])
    with pytest.raises(RuntimeError, match="returned none log-probs for 2"):
        sampled_logprobs(None, [5, 7])
    with pytest.raises(RuntimeError, match="returned 1 log-probs for 2"):
        sampled_logprobs([{5: lp(logprob=-0.5)}], [5, 7])


def test_trl_keys_it_did_not_log_are_nan():
    entries = [{"loss": 0.5, "grad_norm": 2.0}, {"loss": 1.5, "grad_norm": 4.0}]
    assert logged_mean(entries, "loss") == 1.0 and logged_mean(entries, "grad_norm") == 3.0
    assert math.isnan(logged_mean(entries, "kl"))           # beta = 0: TRL logs no kl
    assert math.isnan(logged_mean([], "loss"))


def test_step_metrics_by_hand():
    rollouts = [Rollout(0, [1], [2, 3, 4], [0.0] * 3, True, 0),
                Rollout(0, [1], [2], [0.0], False, 0)]
    m = rollout_metrics(3, 2, [1.0, 0.5], rollouts, Learning(loss=0.25),
                        PhaseSeconds(1.0, 0.4, 0.1, 0.3, 0.2), 8)
    assert (m.step, m.policy_version, m.data_cursor) == (3, 2, 8)
    assert m.mean_reward == 0.75 and m.accuracy == 0.5
    assert m.response_tokens_mean == 2.0 and m.finished_fraction == 0.5
    assert m.loss == 0.25 and math.isnan(m.kl) and math.isnan(m.grad_norm)   # not measured
    assert (m.step_s, m.generate_s, m.verify_s, m.train_s, m.weight_sync_s) == (1.0, 0.4, 0.1, 0.3, 0.2)
    assert step_metrics(3, 2, [1.0, 0.5], 2.0, 0.5, Learning(loss=0.25),
                        PhaseSeconds(1.0, 0.4, 0.1, 0.3, 0.2), 8).mean_reward == m.mean_reward


def test_verify_row_counts_wrong_answers_checker_errors_and_timeouts_apart():
    """The executor's verify row writes the three causes of a reward 0 under their own keys
    (it used to write `failures` = every reward 0), and the trace reader reads them back."""
    results = [VerifyResult(0, 1.0, "correct", 0, 1.0, 2.0),
               VerifyResult(1, 0.0, "wrong answer: 7 != 8", 0, 1.0, 2.0),
               VerifyResult(2, 0.0, "wrong answer: 1 != 2", 0, 2.0, 3.0),
               VerifyResult(3, 0.0, "checker error: ValueError: boom", 0, 2.0, 3.0),
               VerifyResult(4, 0.0, "verifier worker crashed: BrokenProcessPool", 0, 2.0, 3.0),
               VerifyResult(5, 0.0, "verifier timeout: item over 5 s", 0, 3.0, 4.0),
               VerifyResult(6, 0.0, "verifier hard timeout: no result within 10 s", 0, 3.0, 4.0),
               VerifyResult(7, 0.5, "partial", 0, 3.0, 4.0)]
    assert [r.outcome for r in results] == ["scored", "wrong_answer", "wrong_answer",
                                            "checker_error", "checker_error", "timeout", "timeout",
                                            "scored"]
    tracer = Tracer("t")
    tracer.verify_events(0, 0, results)
    extra = tracer.events[0].extra
    assert "failures" not in extra
    assert (extra["wrong_answers"], extra["checker_errors"], extra["timeouts"]) == (2, 2, 2)
    parsed = VerifyExtra.parse(json.dumps(extra))
    assert (parsed.wrong_answers, parsed.checker_errors, parsed.timeouts) == (2, 2, 2)
    assert parsed.busy_s == pytest.approx(8.0) and len(parsed.latencies_s) == 8


def test_verify_extra_reads_older_traces_failures_key():
    # older executor row: failures = every reward-0 sample, reasons say why
    ex = VerifyExtra.parse(json.dumps({"busy_s": 0.5, "failures": 6, "latencies_s": [0.1, 0.4],
                                       "reasons": {"ok": 3, "wrong answer": 3, "checker error": 2,
                                                   "verifier timeout": 1}}))
    assert (ex.checker_errors, ex.wrong_answers, ex.timeouts) == (2, 3, 1)
    assert ex.latencies_s == [0.1, 0.4] and ex.ends_s == []
    # older simulator row (before it wrote checker_errors): failures = checker failures;
    # answers are not graded
    sim = VerifyExtra.parse(json.dumps({"busy_s": 1.0, "timeouts": 1, "failures": 2}))
    assert (sim.checker_errors, sim.wrong_answers, sim.timeouts) == (2, None, 1)
    # a row that counts nothing: None, not 0
    bare = VerifyExtra.parse(json.dumps({"busy_s": 1.0}))
    assert (bare.checker_errors, bare.wrong_answers, bare.timeouts) == (None, None, None)


def test_generate_extra_reads_both_writers():
    ex = GenerateExtra.parse(json.dumps({"staleness": [0, 1], "prefill_s": 0.1, "decode_s": 0.2,
                                         "decode_iterations": 7, "round": 1, "backend": "vllm"}))
    assert ex.staleness == [0, 1] and ex.decode_iterations == 7 and ex.round == 1
    assert ex.backend == "vllm" and ex.dropped is False
    sim = GenerateExtra.parse(json.dumps({"staleness": [2], "multi_version_samples": 1}))
    assert sim.decode_iterations is None and sim.prefill_s is None and sim.multi_version_samples == 1
    assert GenerateExtra.parse("{}").staleness == []
