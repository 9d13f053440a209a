"""GRPO still learns on the code task with the judge outside the sandbox (slow: ~7 min on 2 cores).

A ~130k-param Qwen2 (2 layers, width 64, char tokenizer) gets 50 SFT steps on reference
bodies (sampled completions are then right ~1% of the time), then 16 GRPO steps of 16 prompts x
8 samples, every sample scored by `CodeTask.check` in a real VerifierPool (sandboxed run,
typed-JSON results, strict comparison in the parent). The per-step mean reward must rise:
first 6 steps vs last 6 (Welch t-test on the step means, each step an independent batch of
prompts, p < 0.05), and the last 6 must average at least twice the first 6.
"""

import json
import os
from pathlib import Path

import pytest
from scipy import stats

from executor.config import RunConfig
from executor.loop import run_grpo
from rlvr_sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SMALL_MODEL = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 256,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "vocab_size": 64, "tie_word_embeddings": True, "max_position_embeddings": 128}


@pytest.mark.slow
def test_grpo_raises_reward_on_the_code_task(tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "tiny-cpu-execute.yaml", overrides=[
        "executor.task=code", "executor.threads=1", "executor.sft_steps=50",
        "executor.sft_lr=3e-3", "executor.sft_batch_size=32", "executor.lr=1e-3",
        "executor.warmup_steps=2", "executor.checkpoint_every=0", "executor.eval_problems=48",
        "executor.max_new_tokens=24", "workload.prompts_per_step=16",
        f"executor.allow_weak_sandbox={str(os.geteuid() != 0).lower()}"])
    scenario = scenario.model_copy(update={"model": scenario.model.model_validate(
        {**scenario.model.model_dump(), **SMALL_MODEL, "name": "small-test"})})
    cfg = RunConfig.from_scenario(scenario, steps=16, out_dir=str(tmp_path))
    result = run_grpo(cfg, progress=False)
    rewards = [json.loads(x)["mean_reward"] for x in cfg.metrics_path.read_text().splitlines()]
    first, last = rewards[:6], rewards[-6:]
    test = stats.ttest_ind(first, last, equal_var=False, alternative="less")
    summary = (f"sft {result.accuracy_after_sft:.3f} -> grpo {result.accuracy_after_grpo:.3f}; "
               f"reward {sum(first) / 6:.3f} -> {sum(last) / 6:.3f} (p={test.pvalue:.2g}); "
               f"{[round(r, 3) for r in rewards]}")
    print(summary)
    assert test.pvalue < 0.05, summary
    assert sum(last) >= 2 * sum(first) > 0, summary
