"""Disaggregated/async orchestration: the staleness bound, admission, drops, off-policy inputs.

The protocol is checked twice: as a model (hypothesis drives every interleaving of sampler,
weight delivery and trainer through the real admission rule) and by real two-process runs whose
traces must respect the bound sample by sample.
"""

from __future__ import annotations

import json
import queue
import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.config import RunConfig
from executor.orchestrator import behaviour_logps, orchestration_of
from executor.sampler import Rollout
from executor.sampler_worker import WeightsChannel, WeightsMessage, may_generate
from executor.trainer import make_batch
from rlvr_sim.errors import ScenarioError, UserError
from rlvr_sim.scenario import load_scenario
from rlvr_sim.trace import extra_field, read_trace

SCENARIO = "scenarios/tiny-cpu-execute.yaml"
SMALL = ["workload.prompts_per_step=2", "workload.samples_per_prompt=4", "executor.sft_steps=0",
         "executor.eval_problems=4", "executor.threads=1", "verifier.workers=1",
         "orchestration.placement=disaggregated", "sampler.gpus=1", "trainer.gpus=1"]


def _scenario(*overrides: str):
    return load_scenario(SCENARIO, overrides=SMALL + list(overrides))


@settings(max_examples=200, deadline=None)
@given(eta=st.integers(0, 3), capacity=st.integers(1, 4), steps=st.integers(1, 12),
       choices=st.lists(st.integers(0, 2), min_size=200, max_size=200))
def test_admission_keeps_every_batch_within_the_bound_and_never_deadlocks(eta, capacity, steps, choices):
    """Any interleaving: the trainer trains batch t at version t with staleness in [0, eta]."""
    trainer_v, sampler_v, next_index, queue, pending, staleness = 0, 0, 0, [], [], []
    moves = iter(choices * 10)
    while trainer_v < steps:
        enabled = []
        if next_index < steps and len(queue) < capacity and may_generate(next_index, sampler_v, eta):
            enabled.append("generate")
        if pending:
            enabled.append("load_weights")
        if queue:
            enabled.append("train")
        assert enabled, "deadlock"
        move = enabled[next(moves) % len(enabled)]
        if move == "generate":
            queue.append((next_index, sampler_v))
            next_index += 1
        elif move == "load_weights":
            sampler_v, pending = max(pending), []
        else:
            index, version = queue.pop(0)
            assert index == trainer_v
            staleness.append(trainer_v - version)
            trainer_v += 1
            pending.append(trainer_v)
    assert all(0 <= s <= eta for s in staleness) and len(staleness) == steps


def test_weights_channel_applies_only_the_newest_version():
    class FakeSampler:
        policy_version, loaded = 0, []

        def load_weights(self, state_dict):
            self.loaded.append(state_dict["v"])

    channel_q, sampler, stop = queue.Queue(), FakeSampler(), threading.Event()
    for v in (1, 2, 3):
        channel_q.put(WeightsMessage(v, {"v": v}, 0.0))
    channel = WeightsChannel(channel_q, sampler)
    assert channel.poll(block=False, stop=stop)
    assert sampler.loaded == [3] and sampler.policy_version == 3
    assert [load.version for load in channel.loads] == [3]
    assert channel.poll(block=False, stop=stop) and sampler.loaded == [3]     # nothing new
    stop.set()
    assert not channel.poll(block=True, stop=stop)                            # stopped while waiting


def test_behaviour_logps_align_with_the_completion_mask():
    rollouts = [Rollout(0, [5, 6], [7, 8, 2], [-0.1, -0.2, -0.3], True, 0),
                Rollout(0, [5], [9], [-0.5], False, 0)]
    batch = make_batch(rollouts, pad_id=0, device=torch.device("cpu"))
    old = behaviour_logps(rollouts, batch)
    expected = torch.tensor([[0.0, -0.1, -0.2, -0.3], [-0.5, 0.0, 0.0, 0.0]])
    assert torch.equal(old, expected)
    assert torch.equal(old != 0, batch.mask.bool())


def test_orchestration_settings_and_errors():
    sync = orchestration_of(RunConfig.from_scenario(_scenario("orchestration.mode=sync")))
    assert (sync.max_staleness, sync.label) == (0, "disaggregated-sync")
    asy = orchestration_of(RunConfig.from_scenario(_scenario("orchestration.mode=async",
                                                    "orchestration.max_staleness=2")), "drop")
    assert (asy.max_staleness, asy.stale_policy, asy.queue_batches) == (2, "drop", 2)
    with pytest.raises(UserError, match="stale_policy"):
        orchestration_of(RunConfig.from_scenario(_scenario()), "sometimes")
    from_spec = orchestration_of(RunConfig.from_scenario(_scenario("executor.stale_policy=drop")))
    assert from_spec.stale_policy == "drop"
    assert orchestration_of(RunConfig.from_scenario(_scenario())).stale_policy == "block"   # default
    with pytest.raises(ScenarioError, match="stale_policy"):
        _scenario("executor.stale_policy=sometimes")
    with pytest.raises(UserError, match="partial_rollout"):
        orchestration_of(RunConfig.from_scenario(_scenario("orchestration.partial_rollout=true")))


def _run(tmp_path, policy: str, *overrides: str):
    from executor.orchestrator import run_orchestrated

    scenario = _scenario("workload.steps=4", "orchestration.mode=async",
                         f"executor.stale_policy={policy}", *overrides)
    result = run_orchestrated(scenario, out_dir=str(tmp_path), progress=False)
    summary = json.loads((tmp_path / "orchestration.json").read_text())
    assert summary["stale_policy"] == policy
    trace = read_trace(result.trace_path)
    return result, summary, trace


def test_async_block_run_respects_the_bound_per_sample(tmp_path):
    result, summary, trace = _run(tmp_path, "block", "orchestration.max_staleness=1")
    assert result.steps == 4 and summary["dropped_batches"] == 0
    gen = trace[trace["phase"] == "generate"]
    assert extra_field(gen, "batch_index").tolist() == [0, 1, 2, 3]
    per_sample = [s for row in extra_field(gen, "staleness") for s in row]
    assert len(per_sample) == 4 * 8 and max(per_sample) <= 1 and min(per_sample) >= 0
    assert (gen["step"] - gen["policy_version"]).tolist() == [row[0] for row in extra_field(gen, "staleness")]
    assert sum(summary["staleness_hist"].values()) == 4 * 8
    syncs = trace[trace["phase"] == "weight_sync"]
    assert set(syncs[syncs["worker_pool"] == "trainer"]["policy_version"]) == {1, 2, 3, 4}
    assert {"generate", "verify", "forward_backward", "optimizer"} <= set(trace["phase"])


def test_async_drop_run_counts_what_it_discards(tmp_path):
    result, summary, trace = _run(tmp_path, "drop", "orchestration.max_staleness=0")
    gen = trace[trace["phase"] == "generate"]
    dropped = gen[extra_field(gen, "dropped")]
    kept = gen[~extra_field(gen, "dropped").astype(bool)]
    assert len(kept) == 4 and summary["dropped_batches"] == len(dropped)
    assert summary["dropped_samples"] == 8 * len(dropped)
    assert all(s == 0 for row in extra_field(kept, "staleness") for s in row)
    assert all(s > 0 for row in extra_field(dropped, "staleness") for s in row)
    assert extra_field(kept, "batch_index").is_monotonic_increasing


def test_execute_cli_dispatches_async_runs(tmp_path, capsys):
    """`rlvr-sim execute` runs async scenarios through the orchestrator, also with
    mini_batches=1 and num_iterations=1 (the behaviour log-probs go to GRPOTrainer.step)."""
    from rlvr_sim.cli import main

    args = ["execute", SCENARIO, "--steps", "2", "--json", "--out", str(tmp_path)]
    for override in SMALL + ["orchestration.mode=async", "orchestration.max_staleness=1",
                             "trainer.mini_batches=1", "executor.num_iterations=1"]:
        args += ["--set", override]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 2
    trace = read_trace(result["trace_path"])
    assert {"generate", "verify", "forward_backward", "optimizer", "weight_sync"} <= set(trace["phase"])
    assert "old_logprob" not in set(trace["phase"])          # behaviour log-probs, no forward
    assert trace[trace["phase"] == "forward_backward"].groupby("step").size().tolist() == [1, 1]
    gen = trace[trace["phase"] == "generate"]
    per_sample = [s for row in extra_field(gen, "staleness") for s in row]
    assert len(per_sample) == 2 * 8 and 0 <= min(per_sample) and max(per_sample) <= 1
    summary = json.loads((tmp_path / "orchestration.json").read_text())
    assert (summary["orchestration"], summary["stale_policy"]) == ("async(1,block)", "block")
    assert main(args + ["--resume"]) == 2
    assert capsys.readouterr().err.startswith("error: --resume is only supported")
