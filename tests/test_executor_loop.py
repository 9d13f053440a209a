"""The executor loop end to end on a tiny model: CLI, trace schema, metrics, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rlvr_sim.cli import main as cli_main
from rlvr_sim.trace import TRACE_COLUMNS, read_trace

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "vocab_size": 64, "tie_word_embeddings": True, "max_position_embeddings": 128}


def write_scenario(tmp_path: Path, steps: int, **executor) -> Path:
    scenario = {
        "name": "tiny-test", "model": TINY_MODEL, "hardware": {"gpu": "cpu-2core", "gpus_per_node": 1},
        "workload": {"prompts_per_step": 4, "samples_per_prompt": 4, "steps": steps, "seed": 3,
                     "prompt_tokens": {"dist": "fixed", "value": 4},
                     "response_tokens": {"dist": "uniform", "low": 2, "high": 4}},
        "sampler": {"gpus": 1, "weight_dtype": "fp32", "kv_dtype": "fp32"},
        "verifier": {"workers": 2}, "trainer": {"gpus": 1, "mini_batches": 2, "dtype": "fp32"},
        "orchestration": {"placement": "colocated", "mode": "sync"},
        "executor": {"threads": 1, "sft_steps": 2, "sft_batch_size": 8, "eval_problems": 8,
                     "out_dir": str(tmp_path / "out"), **executor},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def test_execute_cli_writes_a_trace_the_simulator_reader_loads(tmp_path, capsys):
    path = write_scenario(tmp_path, steps=3, beta=0.05)
    assert cli_main(["execute", str(path), "--json", "--trace", str(tmp_path / "t.csv")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 3 and result["policy"]["threads"] == 1
    df = read_trace(tmp_path / "t.csv")
    assert list(df.columns) == TRACE_COLUMNS
    grpo = df[df.step >= 0]
    assert sorted(grpo.step.unique()) == [0, 1, 2]
    phases = set(df.phase)
    assert {"generate", "verify", "ref_logprob", "old_logprob", "forward_backward", "optimizer",
            "weight_sync", "sft"} <= phases
    gen = grpo[grpo.phase == "generate"]
    assert gen.sequences.tolist() == [16, 16, 16] and (gen.output_tokens > 0).all()
    assert gen.policy_version.tolist() == [0, 1, 2]
    ver = grpo[grpo.phase == "verify"]
    assert ver.groupby("step").sequences.sum().tolist() == [16, 16, 16]
    lat = [json.loads(e)["latencies_s"] for e in ver.extra]
    assert sum(len(x) for x in lat) == 48 and all(v > 0 for x in lat for v in x)
    assert (df.end_s >= df.start_s).all()
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2]
    assert all(0 <= m["mean_reward"] <= 1 and m["kl"] >= 0 and m["entropy"] > 0 for m in metrics)
    assert (tmp_path / "out" / "scenario.resolved.yaml").exists()


def test_execute_rejects_modes_it_does_not_run(tmp_path, capsys):
    path = write_scenario(tmp_path, steps=1)
    assert cli_main(["execute", str(path), "--set", "orchestration.mode=async"]) == 2
    assert "orchestration" in capsys.readouterr().err
    assert cli_main(["execute", str(path), "--set", "executor.lr=-1"]) == 2


@pytest.mark.parametrize("overrides, field", [
    (["executor.backend=trl"], "executor.backend"),
    (["orchestration.placement=disaggregated", "orchestration.mode=async"], "orchestration"),
    (["orchestration.placement=disaggregated"], "orchestration")])
def test_config_resolves_every_mode_and_run_grpo_rejects_others(tmp_path, overrides, field):
    """RunConfig resolves any backend/orchestration; only run_grpo insists on hf colocated sync."""
    from executor.config import RunConfig
    from executor.loop import run_grpo
    from rlvr_sim.errors import UserError
    from rlvr_sim.scenario import load_scenario

    scenario = load_scenario(write_scenario(tmp_path, steps=1), overrides=overrides)
    cfg = RunConfig.from_scenario(scenario, out_dir=str(tmp_path / "o"))
    assert cfg.scenario is scenario and cfg.run_id == "execute-tiny-test"
    with pytest.raises(UserError, match=field):
        run_grpo(cfg, progress=False)
    assert not (tmp_path / "o").exists()          # rejected before anything is written


def _steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["step"] for x in path.read_text().splitlines() if x.strip()]


def test_resume_after_sigkill_has_no_lost_or_duplicated_step(tmp_path):
    steps = 10
    path = write_scenario(tmp_path, steps=steps, checkpoint_every=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rlvr_sim.cli", "execute", str(path), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 400
    while len(_steps(out)) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = _steps(out)
    assert 3 <= len(done_at_kill) < steps, "the run must be killed mid-way"
    latest = (out / "checkpoints" / "latest").read_text().strip()
    resumed = subprocess.run(cmd + ["--resume", "--json"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout)
    assert result["resumed_from_step"] == int(latest.split("_")[1])
    assert result["steps"] == steps
    assert _steps(out) == list(range(steps))
    df = read_trace(out / "trace.parquet")
    gen = df[df.phase == "generate"]
    assert sorted(gen.step.tolist()) == list(range(steps))          # one generate row per step
    assert gen.policy_version.tolist() == list(range(steps))
    assert (df[df.phase == "sft"].shape[0]) == 1
    assert df.start_s.is_monotonic_increasing
    cursors = [json.loads(x)["data_cursor"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert cursors == [4 * (s + 1) for s in range(steps)]
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step_{steps:06d}"


def test_execute_from_a_local_checkpoint_path(tmp_path, capsys):
    """executor.model_path: a real HF checkpoint directory (here one we saved) instead of a spec."""
    from executor.policy import build_random_policy, save_policy

    ckpt = save_policy(build_random_policy({**TINY_MODEL, "name": "saved"}, threads=1, seed=1),
                       tmp_path / "ckpt")
    path = write_scenario(tmp_path, steps=1, model_path=str(ckpt), sft_steps=0, eval_problems=4)
    assert cli_main(["execute", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"]["source"] == str(ckpt) and result["steps"] == 1


@pytest.mark.parametrize("task", ["countdown", "code"])
def test_execute_other_tasks(tmp_path, capsys, task):
    path = write_scenario(tmp_path, steps=1, task=task, sft_steps=1, eval_problems=2,
                          max_new_tokens=8)
    assert cli_main(["execute", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 1
    df = read_trace(tmp_path / "out" / "trace.parquet")
    ver = df[(df.phase == "verify") & (df.step == 0)]
    assert ver.sequences.sum() == 16
