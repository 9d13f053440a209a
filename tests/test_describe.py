"""`rlvr-sim describe`: one fitting scenario per catalog model, JSON output, fit reporting."""

import json
from pathlib import Path

import pytest

from rlvr_sim.cli import main
from rlvr_sim.commands.describe import build_report
from rlvr_sim.model_spec import catalog_names
from rlvr_sim.scenario import load_scenario

MINIMAL = str(Path(__file__).resolve().parents[1] / "scenarios" / "minimal.yaml")

# A layout each model fits in (bf16 unless noted); the tiny model runs on the CPU pseudo-device.
LAYOUTS = {
    "tiny-qwen2-4m": dict(gpu="cpu-2core", gpus=1, tp=1, trainer_gpus=1, trainer_tp=1),
    "llama-3.1-405b": dict(gpu="h200", gpus=16, tp=8, pp=2, trainer_gpus=128, trainer_tp=8,
                           weight_dtype="fp8"),
    "deepseek-v3": dict(gpu="h200", gpus=16, tp=8, pp=2, trainer_gpus=256, trainer_tp=8,
                        weight_dtype="fp8"),
    "qwen3-235b-a22b": dict(gpu="h200", gpus=8, tp=4, trainer_gpus=64, trainer_tp=4),
    "llama-3.1-70b": dict(gpu="h100-sxm", gpus=8, tp=4, trainer_gpus=32),
    "qwen2.5-72b": dict(gpu="h100-sxm", gpus=8, tp=4, trainer_gpus=32),
    "qwen2.5-32b": dict(gpu="h100-sxm", gpus=8, tp=2, trainer_gpus=16),
    "deepseek-r1-distill-qwen-32b": dict(gpu="h100-sxm", gpus=8, tp=2, trainer_gpus=16),
    "qwen3-32b": dict(gpu="h100-sxm", gpus=8, tp=2, trainer_gpus=16),
    "mixtral-8x7b": dict(gpu="h100-sxm", gpus=8, tp=2, trainer_gpus=16),
}
DEFAULT = dict(gpu="h100-sxm", gpus=8, tp=2, trainer_gpus=8, trainer_tp=1)


def _scenario(tmp_path, name):
    lay = {**DEFAULT, **LAYOUTS.get(name, {})}
    text = f"""
model: {name}
hardware: {{gpu: {lay['gpu']}}}
workload:
  prompts_per_step: 16
  samples_per_prompt: 8
  prompt_tokens: {{dist: fixed, value: 256}}
  response_tokens: {{dist: lognormal, mean: 600, sigma: 0.8, cap: 1792}}
sampler: {{gpus: {lay['gpus']}, tp: {lay['tp']}, pp: {lay.get('pp', 1)},
          weight_dtype: {lay.get('weight_dtype', 'bf16')}}}
trainer: {{gpus: {lay['trainer_gpus']}, tp: {lay.get('trainer_tp', 1)}}}
orchestration: {{placement: disaggregated}}
"""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", catalog_names())
def test_describe_every_catalog_model(name, tmp_path, capsys):
    path = _scenario(tmp_path, name)
    assert main(["describe", str(path)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert name in out and "fits           yes" in out and "tokens/s" in out
    report = build_report(load_scenario(path))
    assert report.fits and report.params_total >= report.params_active > 0
    assert all(n > 0 for n in report.max_concurrent_sequences.values())
    assert report.train_tokens_per_s > 0 and report.weight_sync_s > 0
    # decode tokens/s grows with batch at a fixed context
    for ctx in {d.context_tokens for d in report.decode}:
        rates = [d.tokens_per_s for d in report.decode if d.context_tokens == ctx]
        assert rates == sorted(rates)


def test_describe_json_and_overrides(capsys):
    assert main(["describe", MINIMAL, "--json", "--set", "sampler.tp=2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params_total"] == 8_030_261_248 and data["kv_bytes_per_token"] == 131_072
    assert data["sampler_replicas"] == 4 and data["fits"] is True
    assert data["sampler_weight_bytes_per_gpu"] == pytest.approx(8_030_261_248)


def test_describe_reports_a_misfit_with_the_reason(capsys):
    rc = main(["describe", MINIMAL, "--set", "model=llama-3.1-70b"])
    out = capsys.readouterr().out
    assert rc == 1 and "fits           NO: sampler: model does not fit" in out


def test_describe_bad_field_is_a_clean_error(capsys):
    rc = main(["describe", MINIMAL, "--set", "sampler.tp=3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "sampler.tp=3" in err
