"""Expert iteration: filtering of accepted traces, SFT on them, and a small end-to-end round."""

from __future__ import annotations

import json

import pytest
import torch

from executor.policy import build_random_policy
from executor.sampler import Rollout
from executor.self_improve import SelfImproveSettings, keep_accepted, run_self_improve, sft_on
from executor.trainer import make_batch, token_logps
from rlvr_sim.scenario import load_scenario
from rlvr_sim.trace import read_trace

TINY = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64}


def test_keep_accepted_filters_and_dedupes_in_order():
    a = Rollout(0, [5, 6], [7, 2], [], True, 0)
    b = Rollout(0, [5, 6], [8, 2], [], True, 0)
    a_again = Rollout(0, [5, 6], [7, 2], [], True, 0)
    c = Rollout(1, [9], [7, 2], [], True, 0)
    kept = keep_accepted([a, b, a_again, c], [1.0, 0.0, 1.0, 1.0])
    assert kept == [a, c]
    assert keep_accepted([a, b], [0.0, 0.5]) == []
    truncated = Rollout(2, [4], [7, 7, 7], [], False, 0)
    assert keep_accepted([truncated, a], [1.0, 1.0]) == [truncated, a]
    assert keep_accepted([truncated, a], [1.0, 1.0], finished_only=True) == [a]


def test_sft_on_accepted_traces_raises_their_likelihood():
    policy = build_random_policy(TINY, device="cpu", threads=1, seed=0)
    tok = policy.tokenizer
    data = [Rollout(0, tok.encode(f"{a}+{b}=", add_special_tokens=False),
                    tok.encode(str(a + b), add_special_tokens=False), [], True, 0)
            for a in range(4) for b in range(4)]
    with_eos = [Rollout(0, r.prompt_ids, r.completion_ids + [tok.eos_token_id], [], True, 0) for r in data]
    batch = make_batch(with_eos, tok.pad_token_id, torch.device("cpu"))

    def nll() -> float:
        with torch.no_grad():
            logps, _ = token_logps(policy.model, batch, 1.0)
        return float(-(logps * batch.mask).sum() / batch.mask.sum())

    before = nll()
    steps, loss = sft_on(policy.model, data, tok.pad_token_id, tok.eos_token_id, lr=3e-3,
                         batch_size=5, epochs=3, seed=0)
    assert steps == 3 * 4            # ceil(16 / 5) = 4 batches per epoch
    assert nll() < before - 0.5 and loss == loss
    assert sft_on(policy.model, [], tok.pad_token_id, tok.eos_token_id, 1e-3, 4, 1, 0)[0] == 0


def test_one_round_end_to_end(tmp_path):
    scenario = load_scenario("scenarios/tiny-cpu-execute.yaml", overrides=[
        "executor.sft_steps=5", "executor.eval_problems=8", "executor.threads=1",
        "workload.samples_per_prompt=4", "verifier.workers=1"])
    result = run_self_improve(scenario, SelfImproveSettings(rounds=1, problems_per_round=16),
                              out_dir=str(tmp_path), progress=False)
    (rnd,) = result.rounds
    assert rnd.attempted == 16 * 4 and 0 <= rnd.kept <= rnd.accepted <= rnd.attempted
    assert rnd.pass_rate == pytest.approx(rnd.accepted / rnd.attempted)
    trace = read_trace(result.trace_path)
    gen = trace[trace["phase"] == "generate"]
    assert gen["sequences"].sum() == 64 and set(gen["step"]) == {0}
    verified = trace[trace["phase"] == "verify"]
    assert verified["sequences"].sum() == 64
    sft = trace[(trace["phase"] == "sft") & (trace["step"] == 0)]
    assert len(sft) == 1 and sft["sequences"].iloc[0] == rnd.kept
    saved = json.loads((tmp_path / "self_improve.json").read_text())
    assert saved["rounds"][0]["kept"] == rnd.kept


@pytest.mark.slow
def test_two_rounds_raise_held_out_accuracy(tmp_path):
    """The measured run (README numbers): warm-start ~36%, two rounds of expert iteration above it."""
    small = ("{name: small-test, model_type: qwen2, hidden_size: 64, intermediate_size: 256, "
             "num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, "
             "tie_word_embeddings: true, max_position_embeddings: 64}")
    scenario = load_scenario("scenarios/tiny-cpu-execute.yaml", overrides=[
        f"model={small}", "executor.threads=1", "workload.samples_per_prompt=8",
        "executor.sft_steps=80", "executor.sft_lr=3e-3", "executor.eval_problems=100",
        "verifier.workers=2"])
    result = run_self_improve(scenario, SelfImproveSettings(rounds=2, problems_per_round=256,
                                                            sft_lr=3e-4),
                              out_dir=str(tmp_path), progress=False)
    accuracies = [result.accuracy_after_warmstart] + [r.accuracy_after for r in result.rounds]
    assert 0.1 <= accuracies[0] <= 0.5, accuracies
    assert accuracies[-1] >= accuracies[0] + 0.1, accuracies


def test_execute_cli_self_improve(tmp_path, capsys):
    from rlvr_sim.cli import main

    args = ["execute", "scenarios/tiny-cpu-execute.yaml", "--self-improve", "1", "--out", str(tmp_path)]
    for override in ("executor.sft_steps=5", "executor.eval_problems=8", "executor.threads=1",
                     "workload.samples_per_prompt=2", "verifier.workers=1"):
        args += ["--set", override]
    assert main(args + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "round 0: pass rate" in out and "/512," in out          # 256 problems x 2 samples
    saved = json.loads((tmp_path / "self_improve.json").read_text())
    trace = read_trace(saved["trace_path"])
    assert trace[trace["phase"] == "generate"]["sequences"].sum() == 512
    assert main(args + ["--resume"]) == 2
    assert "error: --resume does not apply to --self-improve" in capsys.readouterr().err
