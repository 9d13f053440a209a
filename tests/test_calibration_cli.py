"""`rlvr-sim calibrate` / `rlvr-sim validate`: a refit from a benchmark table writes a profile the
simulator loads; validation scenarios are valid and carry the executed shape; bad input is a
clean error (exit 2)."""

import json
import math

import numpy as np
import pytest

from calibration.cli_calibrate import burst_fit
from calibration.harness import BenchKey, BenchRow, rows_to_frame
from calibration.microbench import QUICK, planned_keys
from calibration.predict import LSQ_KINDS, predict_s, with_efficiency
from calibration.validate import HELD_OUT, MeasuredRun, executor_scenario, sim_scenario, simulate_run
from rlvr_sim.cli import main
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.scenario import load_scenario

TRUTH = dict(decode_mfu=0.05, decode_bw_eff=0.1, decode_overhead_s=5e-3, prefill_mfu=0.1,
             prefill_overhead_s=3e-3, train_mfu=0.08, optimizer_s_per_param=8e-9,
             train_overhead_s=3e-3, bucket_latency_s=1e-4)


def _row(key: BenchKey, seconds: float, details=()) -> BenchRow:
    return BenchRow(key=key, seconds=seconds, seconds_p25=seconds, seconds_p75=seconds, repeats=3,
                    threads=1, device="cpu", loadavg_before=0.5, loadavg_after=0.6,
                    spin_slowdown_max=1.02, details_json=json.dumps(list(details)))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    hw = with_efficiency(HardwareProfile.from_catalog("cpu-2core"), TRUTH)
    rng = np.random.default_rng(0)
    rows = [_row(k, predict_s(k, hw) * math.exp(rng.normal(0, 0.02)))
            for k in planned_keys(QUICK) if k.kind in LSQ_KINDS]
    lat = list(rng.lognormal(math.log(2e-3), 0.3, 24))
    for task, w, makespan in (("math", 1, 0.06), ("math", 2, 0.04), ("code", 2, 3.0),
                              ("countdown", 1, 0.07)):
        rows.append(_row(BenchKey(kind="verify", task=task, workers=w, sequences=24), makespan, lat))
    path = tmp_path_factory.mktemp("bench") / "b.parquet"
    rows_to_frame(rows).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def profile(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("prof") / "cpu-test.yaml"
    assert main(["calibrate", "--bench", str(bench), "--out", str(out)]) == 0
    return out


def test_calibrate_refit_writes_loadable_profile_with_notes(profile):
    prof = HardwareProfile.load(profile)
    assert prof.source.startswith("calibrated") and "threads=1" in prof.source
    assert prof.efficiency.train_mfu == pytest.approx(TRUTH["train_mfu"], rel=0.1)
    assert prof.efficiency.switch_fixed_s == 0.0
    notes = json.loads(profile.with_name("cpu-test.fit.json").read_text())
    assert notes["provenance"]["torch_version"] and notes["provenance"]["threads"] == 1
    # one burst size per pool: no round trip, service = makespan / waves (24 items / 2 workers)
    math2 = notes["verifier"]["math"]["scenario_by_workers"]["2"]
    assert math2["latency_s"]["mean"] == pytest.approx(0.04 / 12) and math2["rpc_latency_s"] == 0
    assert notes["verifier"]["code"]["scenario"]["latency_s"]["dist"] == "lognormal"
    assert notes["fit"]["r2"] > 0.95


def test_refit_of_two_tables_merges_them(bench, profile, tmp_path):
    out = tmp_path / "merged.yaml"
    assert main(["calibrate", "--bench", str(bench), "--bench", str(bench), "--out", str(out)]) == 0
    import pandas as pd
    merged = pd.read_parquet(tmp_path / "merged.bench.parquet")
    assert len(merged) == 2 * len(pd.read_parquet(bench))
    # the same rows twice: the same fit
    assert HardwareProfile.load(out).efficiency.train_mfu == pytest.approx(
        HardwareProfile.load(profile).efficiency.train_mfu, rel=1e-6)
    assert json.loads((tmp_path / "merged.fit.json").read_text())["bench_sources"] == [bench.name] * 2


def test_burst_fit_separates_round_trip_from_service():
    # T(n) = 2 ms + 5 ms x ceil(n / 2): bursts of 4, 16, 48 items -> 2, 8, 24 waves
    rpc, service = burst_fit([4, 16, 48], 2, [0.012, 0.042, 0.122])
    assert rpc == pytest.approx(0.002) and service == pytest.approx(0.005)
    # one burst size cannot separate them: all of it is service
    assert burst_fit([24], 2, [0.04]) == pytest.approx((0.0, 0.04 / 12))
    # a negative intercept (noise) falls back to service only, through the origin
    rpc, service = burst_fit([4, 16], 1, [0.004, 0.020])
    assert rpc == 0.0 and service == pytest.approx((4 * 0.004 + 16 * 0.020) / (16 + 256))


def test_verify_burst_scales_the_simulated_service_time(profile):
    cfg = HELD_OUT[0]          # 8 x 4 = 32 samples, 2 workers
    m = MeasuredRun(steps=3, step_s=1.0, phase_s={}, decode_iterations=30.0, prompt_width=4.0,
                    wall_s=1.0, loadavg_1m=0.0, verify_burst=24.0)
    sc = load_scenario(sim_scenario(cfg, m, profile))
    assert sc.verifier.latency_s.mean_value() == pytest.approx(0.04 / 12 * 12 / 16)


def test_profile_is_used_by_the_simulator_through_the_scenario(profile):
    cfg = HELD_OUT[0]
    measured = MeasuredRun(steps=3, step_s=1.0, phase_s={}, decode_iterations=30.0,
                           prompt_width=4.0, wall_s=1.0, loadavg_1m=0.0)
    sc = load_scenario(sim_scenario(cfg, measured, profile))
    assert sc.profile == str(profile.resolve())
    assert sc.hardware_profile.efficiency.train_mfu == pytest.approx(
        HardwareProfile.load(profile).efficiency.train_mfu)
    # executed shape, not the cap: 30 sampled tokens = 29 decode forwards after the prefill's
    assert sc.workload.response_tokens.mean_value() == 29.0
    assert sc.workload.prompt_tokens.mean_value() == 5.0
    assert sc.verifier.latency_s.mean_value() == pytest.approx(0.04 / 12)
    assert sc.orchestration.offload_on_switch is False
    step, phases = simulate_run(cfg, measured, profile)
    assert step > 0 and step == pytest.approx(sum(phases.values()), rel=1e-6)
    assert {"generate", "verify", "train", "weight_sync"} <= set(phases)


@pytest.mark.parametrize("cfg", HELD_OUT, ids=lambda c: c.name)
def test_every_held_out_executor_scenario_validates(cfg, tmp_path):
    sc = load_scenario(executor_scenario(cfg, threads=1, out_dir=tmp_path))
    assert sc.executor.threads == 1 and sc.executor.eval_problems == 0
    assert sc.trainer.reference_model == (cfg.beta > 0)


def test_held_out_configs_are_not_benchmark_points():
    bench = {(k.model, k.sequences) for k in planned_keys(QUICK) if k.kind == "decode"}
    assert len(HELD_OUT) >= 6
    assert any(c.model == "tiny-7m" for c in HELD_OUT)          # a size never benchmarked
    for c in HELD_OUT:
        assert (c.model, c.prompts_per_step * c.samples_per_prompt) not in bench or \
            c.max_new_tokens != QUICK.decode_iterations


def test_cli_errors_are_clean(profile, bench, tmp_path, capsys):
    assert main(["validate", "--profile", str(profile), "--only", "nope"]) == 2
    assert "--only 'nope' is not a validation configuration" in capsys.readouterr().err
    assert main(["calibrate", "--bench", str(bench), "--out", str(tmp_path / "p.txt")]) == 2
    assert "must end in .yaml" in capsys.readouterr().err
    assert main(["validate", "--profile", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["calibrate", "--bench", str(tmp_path / "none.parquet"),
                 "--out", str(tmp_path / "p.yaml")]) == 2


@pytest.mark.slow
def test_validate_quick_runs_the_executor_for_real(profile, tmp_path, capsys):
    rc = main(["validate", "--profile", str(profile), "--quick", "--json",
               "--report", str(tmp_path / "v")])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_configs"] == 2 and math.isfinite(data["mape_step_time"])
    assert set(data["mape_phase"]) == {"generate", "verify", "train", "weight_sync"}
    assert (tmp_path / "v.validation.png").exists()


def test_compare_scales_cpu_bound_phases_only():
    from calibration import validate as v

    cfg = HELD_OUT[0]
    m = MeasuredRun(steps=3, step_s=2.0, phase_s={"generate": 0.8, "verify": 0.2, "train": 0.9,
                                                  "weight_sync": 0.1}, decode_iterations=32,
                    prompt_width=4, wall_s=10, loadavg_1m=0, cpu_share=0.5)
    sim = {"generate": 0.4, "verify": 0.2, "train": 0.45, "weight_sync": 0.05, "switch": 0.0}
    raw = {r.quantity: r for r in v.compare(cfg, m, 1.1, sim)}
    assert raw["step_time"].measured_s == 2.0 and raw["train"].error == pytest.approx(-0.5)
    eq = {r.quantity: r for r in v.compare(cfg, m, 1.1, sim, scale=0.5)}
    assert eq["train"].measured_s == pytest.approx(0.45) and eq["verify"].measured_s == 0.2
    assert eq["step_time"].measured_s == pytest.approx(0.4 + 0.2 + 0.45 + 0.05)
    asyn = next(c for c in HELD_OUT if not c.colocated_sync)
    assert [r.quantity for r in v.compare(asyn, m, 1.0, sim)] == ["step_time", "train"]


def test_measure_keeps_the_least_disturbed_attempt(monkeypatch, tmp_path):
    from calibration import validate as v

    shares = iter([0.3, 0.6, 0.9])

    def fake_run(cfg, work_dir, threads):
        s = next(shares)
        return MeasuredRun(steps=3, step_s=1 / s, phase_s={}, decode_iterations=1, prompt_width=1,
                           wall_s=1, loadavg_1m=0, cpu_share=s)
    monkeypatch.setattr(v, "run_executor", fake_run)
    best, seen = v.measure(HELD_OUT[0], tmp_path, 1, attempts=2, min_cpu_share=0.75)
    assert seen == [0.3, 0.6] and best.cpu_share == 0.6      # gave up after 2 attempts
    best, seen = v.measure(HELD_OUT[0], tmp_path, 1, attempts=3, min_cpu_share=0.75)
    assert seen == [0.9] and best.cpu_share == 0.9           # first good run is enough


def test_passes_run_every_config_each_pass_and_combine_the_runs(monkeypatch, tmp_path, profile):
    from calibration import validate as v

    order = []

    def fake_run(cfg, work_dir, threads):
        order.append(cfg.name)
        k = order.count(cfg.name)               # pass 1: steps 1, 2, 3 s; pass 2: 2, 3, 4 s
        return MeasuredRun(steps=3, step_s=k + 1.0, step_times_s=[k, k + 1.0, k + 2.0],
                           phase_s={p: float(k) for p in v.PHASES}, decode_iterations=10 * k,
                           prompt_width=4, wall_s=1, loadavg_1m=0, verify_burst=float(k))
    monkeypatch.setattr(v, "run_executor", fake_run)
    cfgs = HELD_OUT[:2]
    report = v.validate(profile, cfgs, tmp_path, progress=False, passes=2)
    assert order == [cfgs[0].name, cfgs[1].name] * 2          # interleaved passes
    m = report.configs[0]["measured"]
    assert m["step_s"] == 2.5                                  # median of 1, 2, 3, 2, 3, 4
    assert m["phase_s"]["train"] == 1.5 and m["decode_iterations"] == 15.0
    assert report.configs[0]["runs"] == [2.0, 3.0]
    with pytest.raises(Exception, match="passes"):
        v.validate(profile, cfgs, tmp_path, progress=False, passes=0)


def test_verify_burst_counts_rewards_arriving_after_generation():
    import pandas as pd

    from calibration.validate import _verify_burst

    def row(step, phase, start, end, **extra):
        return {"step": step, "phase": phase, "start_s": start, "end_s": end,
                "extra": json.dumps(extra)}
    trace = pd.DataFrame([
        row(2, "generate", 0.0, 1.0),
        row(2, "verify", 0.4, 1.3, ends_s=[0.5, 0.9, 1.1]),   # worker 0: one after gen end
        row(2, "verify", 0.6, 1.2, ends_s=[1.2, 1.25]),       # worker 1: two after
        row(3, "generate", 2.0, 3.0),
        row(3, "verify", 3.0, 3.1, ends_s=[3.05]),
    ])
    assert _verify_burst(trace, [2, 3]) == pytest.approx((3 + 1) / 2)
    # a trace without per-sample reward times (older executor): unknown
    old = trace.assign(extra=json.dumps({}))
    assert _verify_burst(old, [2, 3]) is None        # not measured, never a stand-in 0


def test_cpu_equivalent_scales_by_the_per_process_share_once():
    from calibration import validate as v

    asyn = next(c for c in HELD_OUT if not c.colocated_sync)      # 2 processes
    m = MeasuredRun(steps=3, step_s=1.0, phase_s={"generate": 0.6, "verify": 0.01, "train": 0.8,
                                                  "weight_sync": 0.01}, decode_iterations=32,
                    prompt_width=4, wall_s=10, loadavg_1m=0, cpu_share=0.8)
    rows = {r.quantity: r for r in v.cpu_equivalent(asyn, m, 0.9, {"train": 0.7})}
    assert rows["step_time"].measured_s == pytest.approx(0.8)      # 1.0 x 0.8, not x 0.4
    assert rows["train"].measured_s == pytest.approx(0.64)
