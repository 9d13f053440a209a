"""Scenario loading: defaults, overrides, resolved YAML, paths, and error messages."""

import json
from pathlib import Path

import pytest
import yaml

from rlvr_sim.cost import CostModel
from rlvr_sim.errors import ScenarioError
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.scenario import Scenario, load_scenario

MINIMAL = str(Path(__file__).resolve().parents[1] / "scenarios" / "minimal.yaml")


def test_minimal_file_is_short_and_valid():
    lines = [ln for ln in open(MINIMAL).read().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) <= 10
    sc = load_scenario(MINIMAL)
    assert sc.model.name == "llama-3.1-8b" and sc.total_gpus == 8 and sc.sampler.replicas == 8
    assert sc.workload.sequences_per_step == 1024


def test_only_model_is_required():
    sc = load_scenario({"model": "qwen2.5-1.5b"})
    assert sc.hardware.gpu == "h100-sxm" and sc.orchestration.placement == "colocated"


def test_overrides_parse_yaml_scalars_and_fill_defaults():
    sc = load_scenario(MINIMAL, ["sampler.tp=2", "sampler.prefix_caching=false",
                                 "workload.prompt_tokens.value=256", "verifier.latency_s.cap=5",
                                 "orchestration.weight_sync.bucket_bytes=1e6",
                                 "workload.response_tokens={dist: fixed, value: 100}"])
    assert sc.sampler.tp == 2 and sc.sampler.prefix_caching is False
    assert sc.workload.prompt_tokens.value == 256 and sc.verifier.latency_s.cap == 5
    assert sc.workload.response_tokens.dist == "fixed"
    assert sc.orchestration.weight_sync.bucket_bytes == 1e6


@pytest.mark.parametrize("bad, expect", [
    ("sampler.tp", "not `dotted.key=value`"),
    ("model.hidden_size=4", "not a mapping"),
    ("sampler.tp=3", "sampler.tp=3 does not divide num_attention_heads=32 of llama-3.1-8b; "
                     "use 1, 2, 4 or 8"),
])
def test_bad_overrides(bad, expect):
    with pytest.raises(ScenarioError, match=expect.replace(".", r"\.").replace("`", ".")):
        load_scenario(MINIMAL, [bad])


def test_resolved_yaml_round_trips(tmp_path):
    sc = load_scenario(MINIMAL, ["model=deepseek-v3", "hardware.gpu=h200", "sampler.tp=8",
                                 "sampler.weight_dtype=fp8", "trainer.gpus=64",
                                 "orchestration.placement=disaggregated"], check_fit=False)
    p = tmp_path / "resolved.yaml"
    p.write_text(sc.resolved_yaml())
    again = load_scenario(p, check_fit=False)
    assert again == sc
    assert yaml.safe_load(sc.resolved_yaml())["model"]["n_routed_experts"] == 256


def test_model_from_config_json_relative_to_scenario(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
        "tie_word_embeddings": True, "torch_dtype": "float32"}))
    (tmp_path / "s.yaml").write_text("model: m/config.json\nhardware: {gpu: cpu-2core}\n"
                                     "sampler: {gpus: 1}\ntrainer: {gpus: 1}\n")
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.model.hidden_size == 256 and sc.model.attention_bias


def test_profile_relative_path_overrides_efficiencies(tmp_path):
    prof = HardwareProfile.from_catalog("h100-sxm")
    prof = prof.model_copy(update={"source": "calibrated test", "efficiency":
                                   prof.efficiency.model_copy(update={"decode_bw_eff": 0.4})})
    prof.save(tmp_path / "profiles" / "h100.yaml")
    (tmp_path / "s.yaml").write_text("model: llama-3.1-8b\nprofile: profiles/h100.yaml\n"
                                     "hardware: {usd_per_gpu_hour: 9.5}\n")
    sc = load_scenario(tmp_path / "s.yaml")
    hw = sc.hardware_profile
    assert hw.source == "calibrated test" and hw.efficiency.decode_bw_eff == 0.4
    assert hw.datasheet.usd_per_gpu_hour == 9.5
    slow = CostModel.from_scenario(sc).decode_breakdown(1, 100, 100)
    fast = CostModel.from_scenario(load_scenario({"model": "llama-3.1-8b"})).decode_breakdown(1, 100, 100)
    # the default h100-sxm profile (shipped public fit) reads HBM at its decode_bw_eff
    default_bw = HardwareProfile.default_for("h100-sxm").efficiency.decode_bw_eff
    assert slow.memory_s == pytest.approx(default_bw / 0.4 * fast.memory_s)
    assert HardwareProfile.load(tmp_path / "profiles" / "h100.yaml") == prof


def test_empirical_distribution_path(tmp_path):
    (tmp_path / "lens.csv").write_text("tokens\n100\n200\n300\n")
    (tmp_path / "s.yaml").write_text(
        "model: tiny-qwen2-4m\nhardware: {gpu: cpu-2core}\nsampler: {gpus: 1}\ntrainer: {gpus: 1}\n"
        "workload: {response_tokens: {dist: empirical, path: lens.csv}}\n")
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.workload.response_tokens.values == [100, 200, 300]
    assert sc.max_context_tokens == 512 + 300


def test_error_messages_name_field_value_and_fix():
    cases = {
        "sampler.tp=3 does not divide num_attention_heads=32": {"sampler": {"tp": 3}},
        "sampler.gpus=6 is not a multiple of sampler.tp x sampler.pp = 4": {
            "sampler": {"gpus": 6, "tp": 4}, "trainer": {"gpus": 6}},
        "trainer.gpus=4 differs from sampler.gpus=8": {"trainer": {"gpus": 4}},
        "model does not fit: 141.1 GB of weights per GPU at tp=1": {"model": "llama-3.1-70b"},
        "sampler.max_concurrent_sequences: Input should be greater than or equal to 1 (got -5)": {
            "sampler": {"max_concurrent_sequences": -5}},
        "sampler.speculative.bogus: Extra inputs are not permitted (got 1); unknown key": {
            "sampler": {"speculative": {"bogus": 1}}},
        "orchestration.mode: Input should be 'sync' or 'async' (got 'fast')": {
            "orchestration": {"mode": "fast"}},
        "hardware.gpu: unknown gpu 'h900'; use one of": {"hardware": {"gpu": "h900"}},
        "workload.response_tokens.high: Input should be greater than or equal to 0": {
            "workload": {"response_tokens": {"dist": "uniform", "low": 1, "high": -1}}},
        "executor.threads: Input should be greater than or equal to 1": {"executor": {"threads": 0}},
    }
    for expected, data in cases.items():
        with pytest.raises(ScenarioError) as info:
            load_scenario({"model": "llama-3.1-8b", **data})
        assert expected in str(info.value), str(info.value)


def test_check_fit_false_keeps_shape_rules():
    sc = load_scenario({"model": "llama-3.1-70b"}, check_fit=False)
    assert isinstance(sc, Scenario)
    with pytest.raises(ScenarioError, match="sampler.tp=3"):
        load_scenario({"model": "llama-3.1-70b", "sampler": {"tp": 3}}, check_fit=False)


def test_file_errors(tmp_path):
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ScenarioError, match="must be a YAML mapping"):
        load_scenario(tmp_path / "list.yaml")


def test_bad_profile_file_names_the_field(tmp_path):
    prof = HardwareProfile.from_catalog("h100-sxm").model_dump(mode="json")
    prof["efficiency"]["decode_bw_eff"] = 1.5
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(prof))
    with pytest.raises(ScenarioError, match=r"efficiency\.decode_bw_eff: Input should be less than"):
        load_scenario({"model": "llama-3.1-8b", "profile": str(tmp_path / "p.yaml")})
