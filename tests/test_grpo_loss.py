"""GRPO advantages and loss: hand-computed examples, invariants, and TRL 1.16's own code.

The TRL comparison calls `trl.GRPOTrainer._compute_loss` itself (unbound, on a stand-in `self`
holding only the attributes that method reads) with the same log-probs, old/ref log-probs,
advantages and masks, and compares the loss value and its gradient with respect to the
log-probs. Advantages are compared with TRL's formula built from TRL's own `nanstd`.
"""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.trainer import LossConfig, group_advantages, grpo_loss

trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer")


# --- hand-computed ------------------------------------------------------------------------------
def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # group 1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735; group 2: identical -> 0
    a = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert group_advantages(r, 4, "group").tolist() == pytest.approx([a, -a, -a, a, 0, 0, 0, 0], abs=1e-6)
    assert group_advantages(r, 4, "none").tolist() == pytest.approx([.5, -.5, -.5, .5, 0, 0, 0, 0])
    # batch: same centring per group, divided by the std of all 8 rewards (mean .75, unbiased)
    std = math.sqrt((2 * 0.75**2 + 6 * 0.25**2) / 7)
    b = 0.5 / (std + 1e-4)
    assert group_advantages(r, 4, "batch").tolist() == pytest.approx([b, -b, -b, b, 0, 0, 0, 0], abs=1e-6)


def _hand_example():
    # 2 sequences, 3 completion positions; sequence 2 has only 2 tokens.
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.75, 0.5, 0.55], [0.25, 0.45, 0.5]]))   # ratios 1.5 1 1.1 / .5 .9
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    adv = torch.tensor([2.0, -1.0])
    return new, old, adv, mask


def test_loss_by_hand():
    new, old, adv, mask = _hand_example()
    cfg = LossConfig(loss_type="grpo", epsilon_low=0.2, epsilon_high=0.28, max_completion_length=4)
    # seq 1 (A=2):  -min(1.5*2, 1.28*2) = -2.56; -min(2, 2) = -2; -min(2.2, 2.2) = -2.2
    # seq 2 (A=-1): -min(-.5, -.8) = .8 (clipped low); -min(-.9, -.9) = .9
    s1, s2 = -2.56 - 2 - 2.2, 0.8 + 0.9
    loss, stats = grpo_loss(new, old, adv, mask, cfg)
    assert float(loss) == pytest.approx((s1 / 3 + s2 / 2) / 2, abs=1e-5)
    assert stats.clip_fraction == pytest.approx(2 / 5)          # positions 1 of both sequences
    loss, _ = grpo_loss(new, old, adv, mask, LossConfig("dr_grpo", 0, 0.2, 0.28, 4))
    assert float(loss) == pytest.approx((s1 + s2) / (2 * 4), abs=1e-5)
    loss, _ = grpo_loss(new, old, adv, mask, LossConfig("dapo", 0, 0.2, 0.28, 4))
    assert float(loss) == pytest.approx((s1 + s2) / 5, abs=1e-5)
    loss, _ = grpo_loss(new, old, adv, mask, LossConfig("dapo", 0, 0.2, 0.28, 4), dapo_normalizer=10)
    assert float(loss) == pytest.approx((s1 + s2) / 10, abs=1e-5)


def test_kl_term_by_hand():
    new, old, adv, mask = _hand_example()
    ref = old.clone()   # k3 estimator: exp(ref - new) - (ref - new) - 1
    d = (ref - new)
    k3 = (torch.exp(d) - d - 1) * mask
    base, _ = grpo_loss(new, old, adv, mask, LossConfig("dapo", 0.0, 0.2, 0.28, 4))
    loss, stats = grpo_loss(new, old, adv, mask, LossConfig("dapo", 0.1, 0.2, 0.28, 4), ref_logps=ref)
    assert float(loss - base) == pytest.approx(0.1 * float(k3.sum()) / 5, abs=1e-6)
    assert stats.kl == pytest.approx(float(k3.sum()) / 5, abs=1e-6)


# --- invariants -----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=8, max_size=8), st.floats(-5, 5),
       st.sampled_from(["group", "batch", "none"]))
def test_advantages_centre_each_group_and_ignore_offsets(rewards, offset, scale):
    r = torch.tensor(rewards, dtype=torch.float64)
    a = group_advantages(r, 4, scale)
    assert a.view(2, 4).sum(1).abs().max() < 1e-6
    assert torch.allclose(a, group_advantages(r + offset, 4, scale), atol=1e-6)


def test_on_policy_gradient_is_advantage_weighted_logprob():
    # ratio == 1 at the single update: d loss / d logp = -A * mask / normaliser
    new, _, adv, mask = _hand_example()
    new = new.clone().requires_grad_(True)
    loss, _ = grpo_loss(new, new.detach(), adv, mask, LossConfig("dapo", 0, 0.2, 0.28, 4))
    loss.backward()
    assert torch.allclose(new.grad, -adv[:, None] * mask / mask.sum())


# --- TRL 1.16 -----------------------------------------------------------------------------------
def _trl_self(loss_type, beta, max_len, mini_batches, logps, entropies):
    acc = SimpleNamespace(num_processes=1, sync_gradients=True, reduce=lambda t, reduction: t,
                          gather=lambda t: t, gather_for_metrics=lambda t: t)
    args = SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=mini_batches)
    return SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, entropies, None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        beta=beta, loss_type=loss_type, epsilon_low=0.2, epsilon_high=0.28, args=args,
        use_vllm=False, vllm_importance_sampling_correction=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=max_len, accelerator=acc,
        _entropy_bonus_enabled=False, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)})


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_matches_trl_compute_loss(loss_type, beta):
    g = torch.Generator().manual_seed(1)
    B, T, mini_batches, max_len = 6, 5, 2, 8
    old = -torch.rand(B, T, generator=g) * 3
    new = (old + torch.randn(B, T, generator=g) * 0.3).requires_grad_(True)
    ref = old + torch.randn(B, T, generator=g) * 0.2
    mask = (torch.rand(B, T, generator=g) > 0.25).float()
    mask[:, 0] = 1
    adv = torch.randn(B, generator=g)
    total_tokens = mask.sum() * mini_batches   # this mini-batch is one of `mini_batches` equal ones
    inputs = {"prompt_ids": torch.zeros(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": total_tokens}
    fake = _trl_self(loss_type, beta, max_len, mini_batches, new, torch.zeros(B, T))
    trl_loss = trl_grpo.GRPOTrainer._compute_loss(fake, None, inputs)
    trl_grad, = torch.autograd.grad(trl_loss, new)
    cfg = LossConfig(loss_type, beta, 0.2, 0.28, max_len)
    ours, _ = grpo_loss(new, old, adv, mask, cfg, ref_logps=ref if beta else None,
                        dapo_normalizer=float(total_tokens) / mini_batches)
    our_grad, = torch.autograd.grad(ours, new)
    assert float(ours.detach()) == pytest.approx(float(trl_loss.detach()), rel=1e-6, abs=1e-7)
    assert torch.allclose(our_grad, trl_grad, atol=1e-7)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_match_trl_formula(scale):
    """TRL's `_generate_and_score_completions` (sum_then_normalize, one reward function)."""
    from trl.trainer.utils import nanstd

    k = 4
    rewards = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0.5, 0, 1, 0])
    mean = torch.nanmean(rewards.view(-1, k), dim=1).repeat_interleave(k)
    std = (nanstd(rewards.view(-1, k), dim=1).repeat_interleave(k) if scale in ("group", "none")
           else nanstd(rewards).expand_as(rewards))
    trl_adv = rewards - mean
    if scale != "none":
        trl_adv = trl_adv / (std + 1e-4)
    assert torch.allclose(group_advantages(rewards, k, scale), trl_adv, atol=1e-6)
