"""`rlvr-sim calibrate/validate --backend vllm` on the recorded engine runs (no vLLM needed), the
weight-update replay against hand-computed finishes, and the recorded vLLM-backend GRPO report
re-simulated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration import engine_cli
from calibration.engine_records import (EngineRun, EngineWorkload, RequestRecord,
                                        WeightUpdateRecord)
from calibration.engine_update import simulate_with_update, update_instant
from rlvr_sim.cli import main as cli_main
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.sim.fake_cost import FakeCostModel

RUNS = engine_cli.RUNS_ROOT
PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "vllm-cpu.yaml"


# ----------------------------------------------------------------- weight update, by hand
def _update_run(mode: str, lengths=(10, 20)) -> EngineRun:
    w = EngineWorkload(name="t", prompts=1, k=len(lengths), prompt_tokens=8, block_tokens=1,
                       weight_update_after_step=5, weight_update_mode=mode)
    reqs = tuple(RequestRecord(request=i, group=0, prompt_tokens=8, target_tokens=n,
                               output_tokens=n, arrival_s=0.0, first_token_s=None, finish_s=None,
                               preemptions=0) for i, n in enumerate(lengths))
    u = WeightUpdateRecord(after_step=5, mode=mode, start_s=5.0, duration_s=3.0, start_cpu_s=4.0,
                           duration_cpu_s=1.0, running=2, interrupted=0)
    return EngineRun(workload=w, engine="test", model={}, threads=1, load_avg_before=0.0,
                     load_avg_after=0.0, wall_s=1.0, requests=reqs, steps=(),
                     preemptions_total=0, kv_blocks_engine=1000, weight_updates=(u,))


@pytest.mark.parametrize("mode, prefill_s, finishes, interrupted", [
    # 1 s per iteration: prefill ends at p, the update at t = 5 stops after 5 - p iterations,
    # the load takes 3 s; keep_kv goes on where it was ...
    ("keep_kv", 0.0, (13.0, 23.0), 0),
    ("keep_kv", 2.0, (15.0, 25.0), 0),
    # ... recompute sends both back: a second prefill (2 s), then the same iterations left
    ("recompute", 0.0, (13.0, 23.0), 2),
    ("recompute", 2.0, (17.0, 27.0), 2),
])
def test_weight_update_replay_by_hand(mode, prefill_s, finishes, interrupted):
    rep = simulate_with_update(_update_run(mode), None, "wall",
                               FakeCostModel(decode_iter_s=1.0, prefill_s_fixed=prefill_s))
    assert rep.sim.finish_s == finishes
    assert rep.update_at_s == 5.0 and rep.load_s == 3.0
    assert rep.interrupted == interrupted and rep.running_at_update == 2
    assert rep.sim.prefill_s == pytest.approx(prefill_s * (2 if mode == "recompute" else 1))


def test_update_instant_per_clock():
    u = _update_run("keep_kv").weight_updates[0]
    assert update_instant(u, "step") == (5.0, 0.0)
    assert update_instant(u, "wall") == (5.0, 3.0)
    assert update_instant(u, "cpu") == (4.0, 1.0)


def test_recorded_weight_update_runs_keep_every_request():
    """The recorded vLLM runs: one update after step 40, every request at its forced length,
    recompute interrupts what was running (and those are not counted as preemptions)."""
    for mode in ("keep", "recompute"):
        for path in sorted((RUNS / "cpu-2core-t1-wu").glob(f"wu-{mode}.r*.run.json.gz")):
            run = engine_cli.load_run(path)
            (u,) = run.weight_updates
            assert u.after_step == 40 and u.mode == run.workload.weight_update_mode
            assert all(r.output_tokens == r.target_tokens for r in run.requests)
            assert u.interrupted == (u.running if mode == "recompute" else 0) and u.running > 0
            assert run.preemptions_total == 0


# ----------------------------------------------------------------- the CLI on recorded runs
def test_calibrate_vllm_from_recorded_runs(tmp_path, capsys):
    out = tmp_path / "vllm-cpu.yaml"
    rc = cli_main(["calibrate", "--backend", "vllm", "--out", str(out),
                   "--runs", str(RUNS / "cpu-2core-t1"), "--runs", str(RUNS / "cpu-2core-t1-13m")])
    assert rc == 0
    prof = HardwareProfile.load(out)
    notes = json.loads((tmp_path / "vllm-cpu.fit.json").read_text())
    assert notes["backend"] == "vllm" and prof.calibration is not None
    assert prof.calibration.vllm_version == "0.32.0" and prof.calibration.threads == 1
    # two model depths (4 and 6 layers): layer_overhead_s is among the fitted terms
    assert "layer_overhead_s" in notes["fit"]["terms"]
    assert {r["model"] for r in notes["runs"]} == {"tiny-4m", "tiny-13m"}
    # runs that did not have their core are left out of the fit, and listed
    assert all(r["cpu_share"] >= 0.7 for r in notes["runs"])
    assert notes["runs_left_out"]
    for t in notes["fit"]["terms"]:
        assert getattr(prof.efficiency, t) == pytest.approx(notes["fit"]["values"][t])
    kept = HardwareProfile.load(engine_cli.DEFAULT_BASE).efficiency
    assert prof.efficiency.prefill_mfu == kept.prefill_mfu      # not measured here: kept
    assert notes["verifier"]                                   # the GRPO validation needs them
    assert "vLLM engine fit" in capsys.readouterr().out


def test_calibrate_vllm_one_depth_leaves_layer_overhead(tmp_path):
    out = tmp_path / "p.yaml"
    assert cli_main(["calibrate", "--backend", "vllm", "--out", str(out),
                     "--runs", str(RUNS / "cpu-2core-t1")]) == 0
    notes = json.loads((tmp_path / "p.fit.json").read_text())
    assert "layer_overhead_s" not in notes["fit"]["terms"]
    assert HardwareProfile.load(out).efficiency.layer_overhead_s == pytest.approx(
        HardwareProfile.load(engine_cli.DEFAULT_BASE).efficiency.layer_overhead_s)


def test_vllm_backend_without_the_venv_says_how_to_get_it(tmp_path, capsys):
    rc = cli_main(["calibrate", "--backend", "vllm", "--out", str(tmp_path / "p.yaml"),
                   "--vllm-venv", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2 and "make venv-vllm" in err and "--vllm-venv" in err
    rc = cli_main(["validate", "--backend", "vllm", "--profile", str(PROFILE), "--run-engine",
                   "--vllm-venv", str(tmp_path / "nowhere")])
    assert rc == 2 and "make venv-vllm" in capsys.readouterr().err


def test_bad_runs_path_is_a_user_error(tmp_path, capsys):
    rc = cli_main(["validate", "--backend", "vllm", "--profile", str(PROFILE),
                   "--runs", str(tmp_path / "missing")])
    assert rc == 2 and "--runs" in capsys.readouterr().err


def test_validate_vllm_json_on_recorded_runs(tmp_path, capsys):
    rc = cli_main(["validate", "--backend", "vllm", "--profile", str(PROFILE), "--json",
                   "--report", str(tmp_path / "r")])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads((tmp_path / "r.engine-validation.json").read_text())
    assert data["held_out_workloads"] >= 6 and data["held_out_runs"] >= 24
    # no held-in run is counted as held out
    held_out = [r for r in data["rows"] if not r["held_in"]]
    assert not any(r["run"].split("/")[1].startswith("fit-") for r in held_out)
    # step clock: with no KV pressure and no speculation the replay is exact, the in-flight
    # weight update (keep_kv) included
    for r in data["step_clock_rows"]:
        name = r["run"].split("/")[1].rsplit(".", 1)[0]
        if name in ("s0.5-k4", "s1.0-k4", "s1.5-k4", "s1.0-k16", "wu-keep", "wu-recompute"):
            assert r["measured"]["generate_s"] == r["simulated"]["generate_s"], r["run"]
            assert r["measured"]["finish_p50_s"] == r["simulated"]["finish_p50_s"], r["run"]
    # the worst workload is named and is the largest median generate error
    worst = data["worst"]
    assert abs(worst["generate_error_pct"]) == max(
        abs(v["generate_s"]) for v in data["by_workload_pct"].values())
    # the GRPO step with the vLLM backend: sync (all phases) and async-1 (step, train)
    grpo = data["grpo"]["rows"]
    assert {r["config"] for r in grpo} == {"4m-vllm-sync-p8k4-r32", "4m-vllm-async1-p8k4-r32"}
    sync = {r["quantity"] for r in grpo if r["config"] == "4m-vllm-sync-p8k4-r32"}
    assert sync >= {"step_time", "generate", "train"}


def test_validate_vllm_text_names_the_worst_dynamic(tmp_path, capsys):
    assert cli_main(["validate", "--backend", "vllm", "--profile", str(PROFILE), "--no-grpo",
                     "--only", "wu-keep", "--only", "wu-recompute",
                     "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "wu-recompute" in out and "misses most" in out and "step clock" in out


def test_only_unknown_workload_is_a_user_error(tmp_path, capsys):
    rc = cli_main(["validate", "--backend", "vllm", "--profile", str(PROFILE), "--only", "nope",
                   "--report", str(tmp_path / "r")])
    assert rc == 2 and "--only" in capsys.readouterr().err


@pytest.mark.vllm
def test_run_engine_through_the_vllm_venv(tmp_path):
    """The subprocess path of `calibrate/validate --backend vllm`: a two-request workload run by
    calibration.vllm_engine in the vLLM venv (skipped where that venv does not exist)."""
    try:
        python = engine_cli.vllm_python(None)
    except Exception:  # UserError: no .venv-vllm here
        pytest.skip("no vLLM venv (make venv-vllm)")
    w = EngineWorkload(name="tiny", prompts=1, k=2, prompt_tokens=20, median_tokens=6,
                       sigma=0.5, cap_tokens=12, block_tokens=32)
    (tmp_path / "tiny.json").write_text(json.dumps(w.__dict__))
    paths = engine_cli.run_engine(python, [str(tmp_path / "tiny.json")], "tiny-0.5m", 1, 1,
                                  tmp_path / "runs", progress=False)
    (run,) = [engine_cli.load_run(p) for p in paths]
    assert [r.output_tokens for r in run.requests] == w.response_lengths()
    assert (tmp_path / "runs" / "engine.log").stat().st_size > 0


def test_generate_probe_replay_grows_with_lengths():
    """engine_generate_probe.replay_s: the simulator's generate of one sampler call; the last
    finish grows with the longest sample and does not depend on the order of the samples."""
    from calibration.engine_generate_probe import replay_s
    from calibration.models import BENCH_MODELS

    model = BENCH_MODELS["tiny-4m"]
    short = replay_s(10, [16] * 8, 4, model, str(PROFILE))
    long = replay_s(10, [16] * 7 + [32], 4, model, str(PROFILE))
    assert 0 < short < long
    assert replay_s(10, [32] + [16] * 7, 4, model, str(PROFILE)) == pytest.approx(long)
    # the recorded probe's simulated times are the committed profile's replay of its lengths
    probe = json.loads((RUNS / "grpo-probe" / "generate-probe.json").read_text())
    assert len(probe["rows"]) >= 5 and all(r["cpu_s"] > 0 for r in probe["rows"])
    for r in probe["rows"]:
        assert replay_s(probe["shape"]["prompt_tokens"], r["lengths"], probe["shape"]["k"], model,
                        str(PROFILE)) == pytest.approx(r["simulated_s"])


def test_prefill_fit_recovers_known_terms():
    """fit_prefill_terms on prefill times generated by the cost model from known terms gives the
    terms back (three model sizes, four prompt lengths; the base starts elsewhere)."""
    from calibration.models import BENCH_MODELS
    from rlvr_sim.model_spec import ModelSpec

    base = HardwareProfile.load(engine_cli.DEFAULT_BASE)
    truth = base.model_copy(update={"efficiency": base.efficiency.model_copy(
        update={"prefill_mfu": 0.21, "prefill_overhead_s": 0.004})})
    samples = []
    for name in ("tiny-0.5m", "tiny-4m", "tiny-13m"):
        m = ModelSpec.from_hf_config_dict(BENCH_MODELS[name])
        for n in (32, 128, 512, 1024):
            s = engine_cli.PrefillSample(m, 8 * n, 8, 0.0)
            samples.append(engine_cli.PrefillSample(m, 8 * n, 8,
                                                    engine_cli.prefill_model_s(s, truth)))
    _, values, r2 = engine_cli.fit_prefill_terms(samples, base)
    assert values["prefill_mfu"] == pytest.approx(0.21, rel=1e-3)
    assert values["prefill_overhead_s"] == pytest.approx(0.004, rel=1e-3)
    assert r2 == pytest.approx(1.0, abs=1e-6)
