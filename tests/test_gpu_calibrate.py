"""Budgeted calibration (`rlvr-sim calibrate --budget-s`): the budget is respected (fake clock),
the staged fit recovers known efficiency terms, the CPU run writes a loadable profile, and the
CUDA-only benchmarks run on a GPU (skipped without one)."""

from __future__ import annotations

import json
import random

import pytest

from calibration.budget import Budget, Point, run_points
from calibration.cli_calibrate import match_gpu_name
from calibration.gpu_fit import Measured, SyncRow, fit_gpu_profile
from calibration.harness import BenchKey
from calibration.predict import with_efficiency
from rlvr_sim.hardware import HardwareProfile, gpu_names
from rlvr_sim.model_spec import catalog_model


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _point(clock: FakeClock, name: str, est: float, cost: float, group: str = "g",
           requires: str = "", provides: str = "", fail: bool = False) -> Point:
    def run(deadline: float) -> list:
        clock.t += cost
        if fail:
            raise RuntimeError("boom")
        return [name]
    return Point(name, group, est, run, requires=requires, provides=provides)


def test_budget_runs_points_that_fit_and_skips_the_rest():
    clock = FakeClock()
    budget = Budget(100.0, reserve_s=10.0, clock=clock)
    pts = [_point(clock, f"p{i}", est=20.0, cost=20.0) for i in range(6)]
    out = run_points(pts, budget)
    # 90 s for points: 4 x 20 s fit (80 s), the 5th would end at 100 > 90
    assert [o.status for o in out] == ["ok"] * 4 + ["skipped_budget"] * 2
    assert budget.elapsed_s() == 80.0 <= budget.budget_s - budget.reserve_s


def test_budget_scales_estimates_after_an_overrun_and_keeps_going_after_errors():
    clock = FakeClock()
    budget = Budget(100.0, reserve_s=0.0, clock=clock)
    pts = [_point(clock, "a", est=10.0, cost=30.0),           # 3x over: group scale 3
           _point(clock, "b", est=10.0, cost=10.0, fail=True),  # scaled 30, fits, raises
           _point(clock, "c", est=25.0, cost=25.0),           # scaled 75 > 60 left: skip
           _point(clock, "d", est=5.0, cost=5.0, group="other")]
    out = run_points(pts, budget)
    st = {o.name: o for o in out}
    assert st["a"].status == "ok" and st["b"].status == "error" and "boom" in st["b"].error
    assert st["c"].status == "skipped_budget" and st["c"].scaled_est_s == 75.0
    assert st["d"].status == "ok"
    assert clock.t - 100.0 == 30 + 10 + 5


def test_budget_skips_points_whose_prerequisite_failed():
    clock = FakeClock()
    budget = Budget(100.0, clock=clock)
    pts = [_point(clock, "build", 1, 1, provides="m", fail=True),
           _point(clock, "use", 1, 1, requires="m"),
           _point(clock, "build2", 1, 1, provides="n"),
           _point(clock, "use2", 1, 1, requires="n")]
    out = run_points(pts, budget)
    assert [o.status for o in out] == ["error", "skipped_dependency", "ok", "ok"]


def test_point_gets_a_deadline_inside_the_budget():
    clock = FakeClock()
    budget = Budget(50.0, reserve_s=5.0, clock=clock)
    seen = []
    run_points([Point("x", "g", 10.0, lambda dl: seen.append(dl - clock()) or [])], budget,
               slack=1.5)
    assert seen == [15.0]


@pytest.mark.parametrize("device,expected", [
    ("NVIDIA H200", "h200"), ("NVIDIA H20", "h20"), ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA GeForce RTX 4090", None),
])
def test_catalog_gpu_matches_whole_words(device, expected):
    if expected is None:
        from rlvr_sim.errors import UserError
        with pytest.raises(UserError, match="pass --gpu"):
            match_gpu_name(device, gpu_names())
    else:
        assert match_gpu_name(device, gpu_names()) == expected


# ---------------------------------------------------------------------------------------------
# synthetic recovery of the staged fit

TRUTH = {"decode_bw_eff": 0.85, "kv_bw_eff": 0.6, "decode_mfu": 0.45, "decode_overhead_s": 4e-4,
         "layer_overhead_s": 3e-5, "decode_overlap": 1.0, "prefill_mfu": 0.55,
         "prefill_overhead_s": 2e-3, "train_mfu": 0.38, "train_pass_overhead_s": 0.02,
         "optimizer_s_per_param": 6e-12, "train_overhead_s": 0.0, "bucket_latency_s": 2e-4}


def _rows(hw: HardwareProfile, noise: float, seed: int = 0) -> list[Measured]:
    from calibration.gpu_fit import _predict
    rng = random.Random(seed)
    m7 = catalog_model("qwen2.5-7b")
    m15 = catalog_model("qwen2.5-1.5b")
    j7, j15 = (json.dumps(m.to_hf_config_dict(), sort_keys=True) for m in (m7, m15))
    rows: list[Measured] = []

    def add(key, engine, dtype="bf16"):
        r = Measured(key, engine, 1.0, dtype)
        t = _predict(r, hw) * (1 + rng.uniform(-noise, noise))
        rows.append(Measured(key, engine, t, dtype))

    for b in (1, 8, 32, 128, 256):
        for c in (512, 2048, 8192):
            if b * c > 1_100_000:
                continue
            k = BenchKey(kind="decode", model="q7", model_json=j7, sequences=b,
                         context_tokens_sum=b * c, context_tokens_max=c, iterations=1)
            add(k, "graph")
            add(k, "eager")
    for b, c in ((1, 2048), (32, 2048), (256, 512), (8, 8192), (128, 2048)):
        k = BenchKey(kind="decode", model="q15", model_json=j15, sequences=b,
                     context_tokens_sum=b * c, context_tokens_max=c, iterations=1)
        add(k, "graph")
        add(k, "eager")
    for s, n in ((1, 512), (1, 2048), (1, 8192), (8, 1024), (4, 4096), (32, 256)):
        add(BenchKey(kind="prefill", model="q7", model_json=j7, sequences=s, prompt_tokens=s * n),
            "eager")
    for t in (1024, 2048, 4096, 8192, 16384):
        base = dict(model="q15", model_json=j15, sequences=max(t // 2048, 1), prompt_tokens=t,
                    mini_batches=1)
        add(BenchKey(kind="train_fb", **base), "eager", "bf16-autocast")
        add(BenchKey(kind="logprob", **base), "eager", "bf16-autocast")
        add(BenchKey(kind="optimizer", **base), "eager", "fp32")
    from rlvr_sim.cost.params import param_counts
    n7 = param_counts(m7).total
    rate = 1.6e12
    for buckets in (15, 120, 950):
        t = n7 * 2 / rate + buckets * TRUTH["bucket_latency_s"]
        rows.append(SyncRow(BenchKey(kind="weight_sync", model="q7", model_json=j7, params=n7),
                            "eager", t * (1 + rng.uniform(-noise, noise)), "bfloat16",
                            bucket_count=buckets, payload_total_bytes=n7 * 2.0))
    return rows


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_staged_fit_recovers_known_terms(noise):
    base = HardwareProfile.from_catalog("h200")
    truth = with_efficiency(base, TRUTH)
    rows = _rows(truth, noise)
    fit = fit_gpu_profile(rows, base, held_out=False)
    eff = fit.profile.efficiency
    # tolerance: terms that set most of their rows' time move ~1:1 with the +-noise; overheads
    # and layer terms are small parts of the rows that inform them, so get a wider band
    tight = 0.01 + 2 * noise
    for t in ("decode_bw_eff", "prefill_mfu", "train_mfu", "optimizer_s_per_param"):
        assert getattr(eff, t) == pytest.approx(TRUTH[t], rel=tight), t
    loose = 0.02 + 15 * noise
    for t in ("kv_bw_eff", "decode_mfu"):
        assert getattr(eff, t) == pytest.approx(TRUTH[t], rel=loose), t
    if noise == 0.0:
        for t in ("layer_overhead_s", "decode_overhead_s", "train_pass_overhead_s",
                  "bucket_latency_s"):
            assert getattr(eff, t) == pytest.approx(TRUTH[t], rel=0.05), t
    assert {s.name for s in fit.stages} == {"decode", "prefill", "train", "optimizer"}


def test_held_out_error_is_small_on_noise_free_rows():
    base = HardwareProfile.from_catalog("h200")
    rows = [r for r in _rows(with_efficiency(base, TRUTH), 0.0) if r.key.kind == "prefill"]
    fit = fit_gpu_profile(rows, base, held_out=True)
    (st,) = fit.stages
    assert st.held_out_rows == len(rows) and st.mape_held_out_pct < 1.0


# ---------------------------------------------------------------------------------------------
# end to end on CPU (same code path as the GPU run)

def test_cpu_budgeted_run_writes_a_loadable_profile(tmp_path, monkeypatch):
    import calibration.gpu_run as gpu_run
    from calibration.gpu_run import run_budgeted

    # the budget counts the process's age (a device run pays its imports); pytest's process may
    # be many minutes old by this test, which would leave no budget: start the age at this test
    born = gpu_run.time.monotonic()
    monkeypatch.setattr(gpu_run, "process_age_s", lambda: gpu_run.time.monotonic() - born)
    out = tmp_path / "cpu.cpu.yaml"
    # a budget the tiny CPU plan never reaches (this shared machine can be slow): every point runs
    rc = run_budgeted("cpu", "cpu-2core", 900.0, out, None, None)
    assert rc == 0
    prof = HardwareProfile.load(out)
    assert prof.calibration is not None and "budgeted" in prof.source
    lines = [json.loads(x) for x in out.with_name("cpu.cpu.progress.jsonl").read_text().splitlines()]
    assert lines and all(x["status"] in ("ok", "error", "skipped_budget", "skipped_dependency")
                         for x in lines)
    side = json.loads(out.with_name("cpu.cpu.fit.json").read_text())
    ran = sum(x["status"] in ("ok", "error") for x in side["budget"]["points"])
    assert ran == sum(x["status"] in ("ok", "error") for x in lines)
    val = json.loads(out.with_name("cpu.cpu.validation.json").read_text())
    assert "decode" in val["mape_in_sample_pct"]
    import pandas as pd
    df = pd.read_parquet(out.with_name("cpu.cpu.bench.parquet"))
    assert {"decode", "peak_gemm"} <= set(df["kind"])
    # refit of the written table without measuring
    out2 = tmp_path / "refit.yaml"
    assert run_budgeted("cpu", "cpu-2core", 60.0, out2, None, None,
                        bench=[str(out.with_name("cpu.cpu.bench.parquet"))]) == 0
    assert HardwareProfile.load(out2).efficiency.decode_bw_eff == pytest.approx(
        prof.efficiency.decode_bw_eff, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# CUDA only

cuda = pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")


@cuda
def test_cuda_decode_graph_and_eager_rows_on_a_tiny_model():
    from calibration.gpu_bench import bench_decode, build_model
    bm = build_model("tiny-qwen2-4m", "cuda", "bf16")
    rows = bench_decode(bm, 4, 256, "bf16", "cuda", 3, deadline=float("inf"), try_graph=True)
    engines = [r.engine for r in rows]
    assert "eager" in engines and all(r.seconds > 0 for r in rows)


def test_cuda_plan_under_a_fake_clock_stops_inside_the_budget():
    """The real CUDA plan (nothing runs: each point only advances a fake clock by twice its
    estimate): points are admitted in priority order until the budget is spent; the overrun
    is at most one point's real cost, and the reserve for the fit is left."""
    from calibration.gpu_bench import CUDA_PLAN, Session, build_points

    clock = FakeClock()
    pts = build_points(Session(device="cuda", plan=CUDA_PLAN))
    for p in pts:
        p.run = (lambda est: (lambda dl: clock.__setattr__("t", clock.t + 2 * est) or []))(p.est_s)
    budget = Budget(150.0, reserve_s=20.0, clock=clock)
    out = run_points(pts, budget)
    ran = [o for o in out if o.status == "ok"]
    assert 0 < len(ran) < len(pts)
    assert [o.name for o in ran] == [p.name for p in pts if p.name in {o.name for o in ran}]
    assert ran[0].name == "peak_gemm" and any(o.name.startswith("decode") for o in ran)
    worst = max(2 * p.est_s for p in pts)
    assert budget.elapsed_s() <= 150.0 - 20.0 + worst
    # with the whole 480 s every planned point fits when estimates hold (margin for slow builds)
    clock2 = FakeClock()
    pts2 = build_points(Session(device="cuda", plan=CUDA_PLAN))
    for p in pts2:
        p.run = (lambda est: (lambda dl: clock2.__setattr__("t", clock2.t + est) or []))(p.est_s)
    out2 = run_points(pts2, Budget(480.0, reserve_s=57.6, clock=clock2))
    assert all(o.status == "ok" for o in out2)


def test_held_out_refits_stop_at_the_deadline():
    """A deadline already past: the fit still writes values, held-out rows 0 (reported None)."""
    import time
    base = HardwareProfile.from_catalog("h200")
    rows = _rows(with_efficiency(base, TRUTH), 0.0)
    fit = fit_gpu_profile(rows, base, held_out=True, deadline=time.monotonic() - 1.0)
    assert all(s.held_out_rows == 0 and s.mape_held_out_pct is None for s in fit.stages)
    assert fit.profile.efficiency.train_mfu == pytest.approx(TRUTH["train_mfu"], rel=0.01)
