"""Executor pieces on a tiny random model: policy, sampler, trainer, weight sync, checkpoints."""

import copy
import math

import pytest
import torch

from executor.checkpoint import RunState, latest_checkpoint, load_checkpoint, save_checkpoint
from executor.policy import build_random_policy, load_policy, resolve_device, save_policy
from executor.sampler import HFSampler, SamplingParams, pick_tokens
from executor.trainer import (GRPOTrainer, LossConfig, TrainConfig, group_advantages, make_batch,
                              token_logps)
from executor.weight_sync import sync_weights

TINY = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
        "tie_word_embeddings": True, "max_position_embeddings": 128, "name": "test-tiny"}


@pytest.fixture(scope="module")
def policy():
    return build_random_policy(TINY, device="cpu", threads=1, seed=0)


def enc(policy, texts):
    return [policy.tokenizer.encode(t, add_special_tokens=False) for t in texts]


def test_policy_records_device_dtype_threads(policy):
    d = policy.describe()
    assert d.device == "cpu" and d.dtype == "fp32" and d.threads == 1
    assert d.vocab_size == len(policy.tokenizer)          # resized to the char tokenizer
    assert d.params == sum(p.numel() for p in policy.model.parameters())
    assert torch.get_num_threads() == 1


def test_save_and_load_local_checkpoint(policy, tmp_path):
    save_policy(policy, tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt", device="auto", threads=1)
    ids = torch.tensor(enc(policy, ["3+4="]))
    with torch.no_grad():
        a = policy.model(ids).logits
        b = loaded.model.cpu()(ids).logits
    assert torch.allclose(a, b, atol=1e-6)
    assert loaded.tokenizer.decode(ids[0]) == "3+4="
    with pytest.raises(ValueError, match="config.json"):
        load_policy(tmp_path / "missing")


def test_sampler_logprobs_match_a_full_forward(policy):
    sampler = HFSampler(copy.deepcopy(policy.model), policy.tokenizer.eos_token_id,
                        policy.tokenizer.pad_token_id)
    prompts = enc(policy, ["1+2=", "13-4=", "9="])                 # different lengths: left padding
    batch = sampler.generate(prompts, SamplingParams(3, 6, temperature=0.7), seed=0)
    assert len(batch.rollouts) == 9 and [r.group for r in batch.rollouts] == [0] * 3 + [1] * 3 + [2] * 3
    for r in batch.rollouts:
        assert r.prompt_ids == prompts[r.group] and 1 <= len(r.completion_ids) <= 6
        with torch.no_grad():
            logits = policy.model(torch.tensor([r.prompt_ids + r.completion_ids])).logits[0] / 0.7
        lp = torch.log_softmax(logits, -1)
        n = len(r.prompt_ids)
        want = [lp[n - 1 + i, t].item() for i, t in enumerate(r.completion_ids)]
        assert r.logprobs == pytest.approx(want, abs=1e-4)
    t = batch.timing
    assert t.prefill_s > 0 and t.decode_s > 0 and t.sequences == 9
    assert t.output_tokens == sum(len(r.completion_ids) for r in batch.rollouts)
    streamed = {}
    again = sampler.generate(prompts, SamplingParams(3, 6, temperature=0.7), seed=0,
                             on_finished=lambda row, r: streamed.setdefault(row, []).append(r))
    assert [r.completion_ids for r in again.rollouts] == [r.completion_ids for r in batch.rollouts]
    assert sorted(streamed) == list(range(9)) and all(len(v) == 1 for v in streamed.values())
    assert [streamed[i][0] for i in range(9)] == again.rollouts     # each sample handed over once


def test_top_p_and_greedy_pick():
    logits = torch.tensor([[0.0, 5.0, 4.9, -3.0]])
    tok, lp = pick_tokens(logits, SamplingParams(greedy=True), None)
    assert tok.item() == 1 and lp.item() == pytest.approx(torch.log_softmax(logits, -1)[0, 1].item())
    g = torch.Generator().manual_seed(0)
    draws = {pick_tokens(logits, SamplingParams(top_p=0.5), g)[0].item() for _ in range(50)}
    assert draws == {1}       # token 1 alone holds > 50% of the mass


def test_sampler_stops_at_eos(policy):
    model = copy.deepcopy(policy.model)
    eos = policy.tokenizer.eos_token_id
    with torch.no_grad():                     # force eos everywhere: bias the output layer
        model.lm_head.weight.zero_()
        model.lm_head.weight[eos] = 0
        model.model.norm.weight.fill_(0)
    head_bias = torch.zeros(model.config.vocab_size)
    head_bias[eos] = 10.0
    model.lm_head.register_forward_hook(lambda m, i, o: o + head_bias)
    sampler = HFSampler(model, eos, policy.tokenizer.pad_token_id)
    batch = sampler.generate(enc(policy, ["1+1="]), SamplingParams(4, 8), seed=1)
    assert all(r.completion_ids == [eos] and r.finished for r in batch.rollouts)
    assert batch.timing.decode_iterations == 1


def _rollouts(policy, rewards_per_group=((1, 0, 0, 1), (0, 0, 0, 1))):
    sampler = HFSampler(copy.deepcopy(policy.model), policy.tokenizer.eos_token_id,
                        policy.tokenizer.pad_token_id)
    batch = sampler.generate(enc(policy, ["2+2=", "5-3="]), SamplingParams(4, 4), seed=3)
    return batch.rollouts, [float(r) for g in rewards_per_group for r in g]


@pytest.mark.parametrize("beta, mini_batches", [(0.0, 1), (0.05, 2)])
def test_trainer_step_moves_towards_rewarded_samples(policy, beta, mini_batches):
    model = copy.deepcopy(policy.model)
    ref = copy.deepcopy(model).eval() if beta else None
    cfg = TrainConfig(lr=1e-2, loss=LossConfig("dapo", beta, 0.2, 0.28, 4), mini_batches=mini_batches)
    trainer = GRPOTrainer(model, cfg, policy.tokenizer.pad_token_id, ref)
    rollouts, rewards = _rollouts(policy)
    batch = make_batch(rollouts, policy.tokenizer.pad_token_id, torch.device("cpu"))

    def seq_logp():
        with torch.no_grad():
            lp, _ = token_logps(model, batch, 1.0)
        return (lp * batch.mask).sum(-1)

    before = seq_logp()
    stats = trainer.step(rollouts, rewards, 4)
    gain = seq_logp() - before
    good = torch.tensor(rewards) == 1
    assert gain[good].mean() > gain[~good].mean()
    names = [p.name for p in stats.phases]
    assert names.count("forward_backward") == mini_batches and names.count("optimizer") == mini_batches
    assert ("ref_logprob" in names) == (beta > 0)
    assert ("old_logprob" in names) == (mini_batches > 1)
    assert all(p.end >= p.start for p in stats.phases)
    assert all(p.extra["forward_s"] > 0 and p.extra["backward_s"] > 0
               for p in stats.phases if p.name == "forward_backward")


@pytest.mark.parametrize("mini_batches", [1, 2])
def test_trainer_step_uses_given_old_logps_as_the_behaviour_policy(policy, mini_batches):
    """old_logps replaces the old-policy forward; the ratio exp(logp - old) weights the loss.

    lr=0 keeps the policy fixed, so every call sees the same current log-probs `cur`.
    """
    model = copy.deepcopy(policy.model)
    cfg = TrainConfig(lr=0.0, max_grad_norm=None, loss=LossConfig("dapo", 0.0, 0.2, 0.28, 4),
                      mini_batches=mini_batches)
    trainer = GRPOTrainer(model, cfg, policy.tokenizer.pad_token_id)
    rollouts, rewards = _rollouts(policy)
    batch = make_batch(rollouts, policy.tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        cur, _ = token_logps(model, batch, 1.0)
    adv = group_advantages(torch.tensor(rewards), 4)
    tokens = batch.mask.sum(-1)
    # on-policy (ratio 1): dapo loss of one mini-batch = -sum_i A_i n_i / (N / mini_batches)
    norm = float(batch.mask.sum()) / mini_batches
    bounds = [round(i * len(rollouts) / mini_batches) for i in range(mini_batches + 1)]

    def hand(weight):        # mean over mini-batches of -sum_i w(A_i) A_i n_i / norm
        per_mb = [-float((weight(adv[lo:hi]) * adv[lo:hi] * tokens[lo:hi]).sum()) / norm
                  for lo, hi in zip(bounds[:-1], bounds[1:])]
        return sum(per_mb) / len(per_mb)

    on_policy = trainer.step(rollouts, rewards, 4)
    assert on_policy.loss == pytest.approx(hand(lambda a: torch.ones_like(a)), abs=1e-5)
    same = trainer.step(rollouts, rewards, 4, old_logps=cur)
    assert same.loss == pytest.approx(on_policy.loss, abs=1e-6)
    assert "old_logprob" not in [p.name for p in same.phases]
    # ratio 1.1 everywhere (inside the clip range [0.8, 1.28]): the loss scales by 1.1
    inside = trainer.step(rollouts, rewards, 4, old_logps=cur - math.log(1.1))
    assert inside.loss == pytest.approx(hand(lambda a: torch.full_like(a, 1.1)), abs=1e-5)
    assert inside.clip_fraction == 0.0
    # ratio 2: -min(2A, 1.28A) is -1.28A for A > 0 and -2A for A < 0
    outside = trainer.step(rollouts, rewards, 4, old_logps=cur - math.log(2.0))
    assert outside.loss == pytest.approx(hand(lambda a: torch.where(a > 0, 1.28, 2.0)), abs=1e-5)
    with pytest.raises(ValueError, match="old_logps has shape"):
        trainer.step(rollouts, rewards, 4, old_logps=cur[:, :-1])


def test_weight_sync_copies_and_versions(policy):
    model = copy.deepcopy(policy.model)
    sampler = HFSampler(copy.deepcopy(policy.model), 2, 0)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    res = sync_weights(model, sampler)
    assert res.policy_version == sampler.policy_version == 1 and res.end >= res.start
    assert res.bytes == sum(t.numel() * 4 for t in model.state_dict().values())
    for a, b in zip(model.state_dict().values(), sampler.model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_roundtrip_and_latest(policy, tmp_path):
    model = copy.deepcopy(policy.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    for steps in (2, 4, 6):
        save_checkpoint(tmp_path, RunState(steps, steps * 10, steps, True), model, opt)
    assert latest_checkpoint(tmp_path).name == "step_000006"
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000004", "step_000006"]
    assert not list(tmp_path.glob(".*tmp*"))
    fresh = copy.deepcopy(policy.model)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    torch.manual_seed(123)
    state = load_checkpoint(latest_checkpoint(tmp_path), fresh, opt2)
    assert state == RunState(6, 60, 6, True)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_device_auto_and_explicit_cuda_error():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loads_local_checkpoint_and_trains_on_cuda(policy, tmp_path):
    save_policy(policy, tmp_path / "ckpt")
    gpu = load_policy(tmp_path / "ckpt", device="auto", threads=1)
    assert gpu.device.type == "cuda"
    sampler = HFSampler(copy.deepcopy(gpu.model), gpu.tokenizer.eos_token_id, gpu.tokenizer.pad_token_id)
    batch = sampler.generate(enc(gpu, ["2+2=", "5-3="]), SamplingParams(4, 4), seed=3)
    trainer = GRPOTrainer(gpu.model, TrainConfig(loss=LossConfig(max_completion_length=4)),
                          gpu.tokenizer.pad_token_id)
    stats = trainer.step(batch.rollouts, [1.0, 0, 0, 1, 0, 0, 0, 1], 4)
    assert stats.tokens > 0 and sync_weights(gpu.model, sampler).bytes > 0


def test_lr_warmup_follows_the_update_count(policy):
    model = copy.deepcopy(policy.model)
    cfg = TrainConfig(lr=1e-3, loss=LossConfig("dapo", 0, 0.2, 0.28, 4), mini_batches=2,
                      warmup_updates=8)
    trainer = GRPOTrainer(model, cfg, policy.tokenizer.pad_token_id)
    rollouts, rewards = _rollouts(policy)
    trainer.step(rollouts, rewards, 4)              # updates 1 and 2: lr x 1/8, x 2/8
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 2 / 8)
    for _ in range(4):
        trainer.step(rollouts, rewards, 4)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
