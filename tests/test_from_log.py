"""`rlvr-sim calibrate --from-log`: logs written here in each framework's own format (key names
and file shapes from the frameworks' sources, see calibration/log_formats.py) from a synthetic
run of the cost model with known efficiency terms; the fit recovers the terms.

Noise: every logged phase time is the cost model's time x (1 + u), u uniform in +-3%
(std 1.73%). A term that scales its phase alone is then estimated from n = 11 steps to about
1.73% / sqrt(11) = 0.5% (1 sigma); the tests allow 2% (4 sigma). A bandwidth term scales only
part of its phase (the fixed per-iteration cost does not move), so its error is larger by the
inverse of that share; fitting bandwidth and overhead together from one run's steps
would need wider bands; only the bandwidth term is fitted from logs (see from_log.py), the
overhead comes from the base profile. At 0 noise every term is recovered to 0.5%.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from calibration.from_log import RunLayout, fit_from_log, layout_from_config, phase_s
from calibration.log_formats import StepMetrics, read_steps
from calibration.predict import with_efficiency
from rlvr_sim.errors import UserError
from rlvr_sim.hardware import HardwareProfile

TRUTH = {"train_mfu": 0.33, "decode_bw_eff": 0.62, "link_eff": 0.55}
# per-iteration decode overhead: not separable from the bandwidth term in one run's logs; it comes
# from the base profile (here the same for truth and fit, as a `--base-profile` from a GPU run)
BASE_EFF = {"decode_overhead_s": 0.012}
LAYOUT = RunLayout(model="qwen2.5-7b", gpu="h100-sxm", gpus=8, sampler_tp=2, sequences=512,
                   mini_batches=4)
STEPS = 12


def _base() -> HardwareProfile:
    return with_efficiency(HardwareProfile.from_catalog("h100-sxm"), BASE_EFF)


def _truth() -> HardwareProfile:
    return with_efficiency(_base(), TRUTH)


def _shapes(with_max: bool = True) -> list[StepMetrics]:
    rng = random.Random(7)
    out = []
    for i in range(1, STEPS + 1):
        mean = rng.uniform(250, 1500)
        out.append(StepMetrics(step=i, prompt_tokens_mean=rng.uniform(150, 400),
                               response_tokens_mean=mean,
                               response_tokens_max=min(mean * rng.uniform(1.3, 2.0), 4096)
                               if with_max else None))
    return out


def _timed(shapes: list[StepMetrics], phases: tuple[str, ...], noise: float,
           lay: RunLayout = LAYOUT, seed: int = 1) -> list[dict]:
    """Per step: {phase: seconds} from the cost model under TRUTH, times (1 + U(-noise, noise))."""
    rng = random.Random(seed)
    hw, m = _truth(), lay.spec()
    out = []
    for s in shapes:
        t = {p: phase_s(p, m, hw, lay, s) * (1 + rng.uniform(-noise, noise)) for p in phases}
        out.append(t)
    return out


def _check(fit, noise: float, terms=("train_mfu", "decode_bw_eff", "link_eff")):
    tol = 0.005 if noise == 0 else 0.02
    for t in terms:
        got = fit.terms[t]["value"]
        assert got == pytest.approx(TRUTH[t], rel=tol), (t, got)


# ---------------------------------------------------------------------------------------------
# verl: console lines, JSON lines (file logger), wandb CSV export

def _verl_metrics(noise: float) -> list[dict]:
    shapes = _shapes()
    times = _timed(shapes, ("gen", "old_logprob", "ref_logprob", "train", "sync"), noise)
    rows = []
    for s, t in zip(shapes, times):
        rows.append({"timing_s/gen": t["gen"], "timing_s/old_log_prob": t["old_logprob"],
                     "timing_s/ref": t["ref_logprob"], "timing_s/update_actor": t["train"],
                     "timing_s/update_weights": t["sync"], "timing_s/step": sum(t.values()),
                     "response_length/mean": s.response_tokens_mean,
                     "response_length/max": s.response_tokens_max,
                     "prompt_length/mean": s.prompt_tokens_mean, "actor/pg_loss": -0.01})
    return rows


def write_verl_console(path: Path, rows: list[dict]) -> Path:
    with path.open("w") as f:
        f.write("(TaskRunner pid=1) Training Progress:   0%|          | 0/12\n")
        for i, r in enumerate(rows, 1):  # verl's concat_dict_to_str: step:N - k:v - k:v
            f.write(f"(TaskRunner pid=1) step:{i} - " + " - ".join(f"{k}:{v!r}" for k, v in r.items())
                    + "\n")
    return path


def write_verl_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"step": i, "data": r}) + "\n" for i, r in enumerate(rows, 1)))
    return path


def write_wandb_csv(path: Path, rows: list[dict], step_key: str = "_step") -> Path:
    keys = sorted({k for r in rows for k in r})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[step_key] + keys)
        w.writeheader()
        for i, r in enumerate(rows, 1):
            w.writerow({step_key: i, **r})
    return path


@pytest.mark.parametrize("writer", [write_verl_console, write_verl_jsonl, write_wandb_csv])
@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_verl_logs_recover_terms(tmp_path, writer, noise):
    path = writer(tmp_path / f"verl.{'csv' if writer is write_wandb_csv else 'log'}",
                  _verl_metrics(noise))
    steps = read_steps(path, "verl")
    assert len(steps) == STEPS and steps[3].gen_s is not None and steps[3].sync_s is not None
    fit = fit_from_log(steps, LAYOUT, base=_base())
    _check(fit, noise)
    assert fit.mape_pct["step"] < (0.5 if noise == 0 else 3.0)   # the unfitted check


def test_verl_config_gives_the_layout():
    cfg = {"actor_rollout_ref": {"model": {"path": "Qwen/Qwen2.5-7B-Instruct"},
                                 "rollout": {"n": 8, "tensor_model_parallel_size": 2},
                                 "actor": {"ppo_mini_batch_size": 16, "use_kl_loss": True}},
           "data": {"train_batch_size": 64}, "trainer": {"n_gpus_per_node": 8, "nnodes": 1}}
    lay = layout_from_config("verl", cfg, {"gpu": "h100-sxm"})
    assert lay == replace(LAYOUT, reference_model=True)


def test_missing_layout_is_a_user_error_naming_the_flags():
    with pytest.raises(UserError, match="--gpus VALUE.*--sequences VALUE"):
        layout_from_config("verl", {"actor_rollout_ref": {"model": {"path": "qwen2.5-7b"}}},
                           {"gpu": "h100-sxm"})


# ---------------------------------------------------------------------------------------------
# NeMo-RL: {metric: {step: value}} dump; no max response length, old+ref log-probs together

def test_nemo_rl_metrics_json_recovers_terms(tmp_path):
    shapes = _shapes(with_max=False)
    times = _timed(shapes, ("gen", "logprob", "train", "sync"), 0.03)
    metrics: dict[str, dict] = {}
    for s, t in zip(shapes, times):
        vals = {"timing/train/generation": t["gen"],
                "timing/train/policy_and_reference_logprobs": t["logprob"],
                "timing/train/policy_training": t["train"],
                "timing/train/prepare_for_generation/total": t["sync"],
                "timing/train/total_step_time": sum(t.values()),
                "train/total_num_tokens": LAYOUT.sequences * (s.prompt_tokens_mean
                                                              + s.response_tokens_mean),
                "train/mean_prompt_length": s.prompt_tokens_mean}
        for k, v in vals.items():
            metrics.setdefault(k, {})[str(s.step)] = v
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    steps = read_steps(path, "nemo-rl")
    assert steps[2].logprob_s is not None and steps[2].response_tokens_mean is None
    fit = fit_from_log(steps, LAYOUT, base=_base())
    _check(fit, 0.03)


# ---------------------------------------------------------------------------------------------
# TRL: wandb history with one row per profiled call and trainer log rows

def test_trl_wandb_history_recovers_generation_and_sync_terms(tmp_path):
    shapes = _shapes()
    times = _timed(shapes, ("gen", "sync"), 0.0)
    rows, tokens = [], 0.0
    for s, t in zip(shapes, times):
        half = t["gen"] / 2          # two generate calls per step, summed by the parser
        rows.append({"profiling/Time taken: GRPOTrainer.vLLM.generate": half})
        rows.append({"profiling/Time taken: GRPOTrainer.vLLM.generate": half})
        rows.append({"profiling/Time taken: GRPOTrainer._move_model_to_vllm": t["sync"]})
        rows.append({"profiling/Time taken: GRPOTrainer.compute_loss": 1.0})
        tokens += LAYOUT.sequences * (s.prompt_tokens_mean + s.response_tokens_mean)
        rows.append({"train/global_step": s.step, "completions/mean_length": s.response_tokens_mean,
                     "completions/max_length": s.response_tokens_max, "num_tokens": tokens})
    path = write_wandb_csv(tmp_path / "trl.csv", rows)
    steps = read_steps(path, "trl")
    assert [s.step for s in steps] == list(range(1, STEPS + 1))
    assert steps[4].train_s is None          # TRL does not time the backward pass
    fit = fit_from_log(steps, LAYOUT, base=_base())
    _check(fit, 0.0, terms=("decode_bw_eff", "link_eff"))
    assert "train" in fit.not_fitted


# ---------------------------------------------------------------------------------------------
# OpenRLHF: console status lines, no phase timings: the step time is only a check

def test_openrlhf_console_steps_are_checked_not_fitted(tmp_path):
    shapes = _shapes(with_max=False)          # OpenRLHF logs no maximum response length
    times = _timed(shapes, ("step",), 0.0)
    lines, t = [], 3600.0 * 5
    for s, tt in zip(shapes, times):
        t += tt["step"]
        hh, mm, ss = int(t // 3600), int(t % 3600 // 60), t % 60
        status = {"policy_loss": 0.01, "response_length": s.response_tokens_mean,
                  "total_length": s.response_tokens_mean + s.prompt_tokens_mean, "kl": 0.001}
        lines.append(f"(PPOTrainer pid=9) [2026-11-30 {hh:02d}:{mm:02d}:{ss:06.3f}] INFO "
                     f"ppo_trainer.py:201] \u2728 Global step {s.step}: {status}")
    path = tmp_path / "openrlhf.log"
    path.write_text("\n".join(lines) + "\n")
    steps = read_steps(path, "openrlhf")
    assert steps[0].step_s is None and steps[5].step_s == pytest.approx(times[5]["step"], abs=2e-3)
    fit = fit_from_log(steps, LAYOUT, base=_truth())
    assert fit.terms == {} and set(fit.not_fitted) == {"gen", "train", "sync"}
    assert fit.mape_pct["step"] < 0.1            # time stamps keep milliseconds


def test_cli_from_log_writes_a_loadable_profile(tmp_path):
    from rlvr_sim.cli import main

    path = write_verl_console(tmp_path / "verl.log", _verl_metrics(0.0))
    out = tmp_path / "fromlog.yaml"
    base = _base().model_copy(update={"source": "test base"})
    base.save(tmp_path / "base.yaml")
    rc = main(["calibrate", "--from-log", str(path), "--framework", "verl", "--model", "qwen2.5-7b",
               "--base-profile", str(tmp_path / "base.yaml"),
               "--gpu", "h100-sxm", "--gpus", "8", "--sequences", "512", "--sampler-tp", "2",
               "--mini-batches", "4", "--out", str(out)])
    assert rc == 0
    prof = HardwareProfile.load(out)
    assert prof.efficiency.train_mfu == pytest.approx(TRUTH["train_mfu"], rel=0.005)
    side = json.loads(out.with_name("fromlog.fit.json").read_text())
    assert side["layout"]["sequences"] == 512 and "step" in side["mape_pct"]
