"""Calibration harness, report and micro-benchmarks: medians over interleaved repeats, MAPE by
hand, the forced-length decode through the executor's sampler, and a tiny real grid."""

from dataclasses import replace

import numpy as np
import pytest

from calibration.harness import BenchCase, BenchKey, frame_to_keys, rows_to_frame, run_cases
from calibration.microbench import QUICK, FULL, Grid, plan
from calibration.report import Comparison, ValidationReport, plot_scatter
from rlvr_sim.cost.params import param_counts
from rlvr_sim.model_spec import ModelSpec
from calibration.models import BENCH_MODELS


def _counter_case(name: str, values: list[float], log: list[str]) -> BenchCase:
    it = iter(values)

    def run():
        log.append(name)
        return [next(it)]
    return BenchCase(keys=[BenchKey(kind="decode", model=name, sequences=1)], run=run)


def test_run_cases_warms_up_interleaves_and_takes_medians():
    log: list[str] = []
    a = _counter_case("a", [100.0, 3.0, 1.0, 2.0], log)     # 100 is the untimed warm-up
    b = _counter_case("b", [50.0, 10.0, 30.0, 20.0], log)
    rows = run_cases([a, b], repeats=3, threads=1, device="cpu", progress=False)
    assert [r.seconds for r in rows] == [2.0, 20.0]
    assert rows[0].samples_s == [3.0, 1.0, 2.0]            # warm-up excluded
    assert rows[0].seconds_p25 == pytest.approx(1.5) and rows[0].seconds_p75 == pytest.approx(2.5)
    assert log[:2] == ["a", "b"]                           # warm-up pass
    for r in range(3):                                     # every round runs every case once
        assert sorted(log[2 + 2 * r: 4 + 2 * r]) == ["a", "b"]
    assert all(r.repeats == 3 and r.threads == 1 and r.spin_slowdown_max >= 1.0 for r in rows)
    # CPU-share correction never inflates a time and the share is a fraction
    assert all(0.0 <= r.cpu_share <= 1.0 and r.seconds_cpu <= max(r.samples_s) for r in rows)


def test_multi_key_case_and_details_and_table_roundtrip():
    keys = [BenchKey(kind="train_fb", model="m", sequences=8, prompt_tokens=96, output_tokens=128,
                     mini_batches=2), BenchKey(kind="optimizer", model="m", sequences=8, mini_batches=2)]
    case = BenchCase(keys=keys, run=lambda: None)

    def run():
        case.details.append(0.5)
        return [0.2, 0.05]
    case.run = run
    rows = run_cases([case], repeats=2, threads=1, device="cpu", progress=False)
    assert [r.seconds for r in rows] == [0.2, 0.05]
    assert rows[0].details_json == "[0.5, 0.5]"            # warm-up's detail was cleared
    df = rows_to_frame(rows)
    back = frame_to_keys(df)
    assert [k for k, _ in back] == keys and [s for _, s in back] == [0.2, 0.05]


def test_case_returning_wrong_count_is_an_error():
    case = BenchCase(keys=[BenchKey(kind="decode")], run=lambda: [1.0, 2.0])
    with pytest.raises(RuntimeError, match="returned 2 times"):
        run_cases([case], repeats=1, threads=1, device="cpu", progress=False)


def test_plan_respects_flop_cap_and_covers_every_kind():
    for grid in (QUICK, FULL):
        specs = plan(grid)
        assert {s.kind for s in specs} == {"decode", "prefill", "train", "verify"}
        # every model's weight sync is timed (after its training steps, as in the loop)
        synced = {k.model for s in specs for k in s.keys() if k.kind == "weight_sync"}
        assert synced == set(grid.models)
        for s in specs:
            if s.kind == "prefill":
                p = param_counts(ModelSpec.from_hf_config_dict(BENCH_MODELS[s.model])).total
                assert 2 * p * s.prompts * s.prompt_len <= grid.flop_cap
        mixed = [k for s in specs for k in s.keys()
                 if k.kind == "decode" and k.context_tokens_max * k.sequences > k.context_tokens_sum]
        assert mixed, "the grid must include mixed-length decode rows (skew term)"


def test_report_mape_by_hand(tmp_path):
    rows = [Comparison("c1", "step_time", 1.0, 1.1), Comparison("c2", "step_time", 2.0, 1.8),
            Comparison("c1", "train", 0.5, 0.4), Comparison("c2", "train", 1.0, 1.0),
            Comparison("c1", "generate", 0.5, 0.55), Comparison("c2", "generate", 1.0, 1.0)]
    rep = ValidationReport(profile="p.yaml", rows=rows)
    assert rep.mape("step_time") == pytest.approx(10.0)
    assert rep.mape("train") == pytest.approx(10.0)
    assert rep.mape("generate") == pytest.approx(5.0)
    assert rep.worst_phase() == "train"
    d = rep.to_dict()
    assert d["mape_step_time"] == pytest.approx(10.0) and d["n_configs"] == 2
    assert d["mape_phase"]["generate"] == pytest.approx(5.0)
    assert rep.table().loc["c2", "step_time.error_pct"] == pytest.approx(-10.0)
    png = plot_scatter(rep, tmp_path / "v.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


TINY = Grid(models=("tiny-0.5m",), decode_rows=(4,), decode_contexts=(8,), decode_iterations=3,
            prefill_prompts=(2,), prefill_lens=(8,), train_sequences=(8,), train_completion_lens=(4,),
            train_mini_batches=(2,), verify_tasks=("math",), verify_workers=(1,), verify_items=(4,),
            repeats=1, flop_cap=1e9, train_prompt_len=4)


def test_forced_length_decode_through_the_executor_sampler():
    torch = pytest.importorskip("torch")
    from executor.policy import build_random_policy
    from executor.sampler import HFSampler, SamplingParams

    pol = build_random_policy(BENCH_MODELS["tiny-0.5m"], device="cpu", threads=1)
    s = HFSampler(pol.model, eos_id=-1, pad_id=pol.tokenizer.pad_token_id)
    out = s.generate([[5, 6, 7], [8, 9]], SamplingParams(samples_per_prompt=3, max_new_tokens=5), seed=0)
    assert out.timing.decode_iterations == 5 and out.timing.sequences == 6
    assert all(len(r.completion_ids) == 5 for r in out.rollouts)
    assert torch.get_num_threads() == 1


def test_tiny_real_grid_measures_every_kind():
    pytest.importorskip("torch")
    from calibration.microbench import run_grid

    df = run_grid(TINY, "cpu", threads=1, progress=False)
    assert set(df["kind"]) == {"decode", "prefill", "train_fb", "optimizer", "logprob",
                               "weight_sync", "verify"}
    assert (df["seconds"] > 0).all() and (df["threads"] == 1).all()
    ver = df[df["kind"] == "verify"].iloc[0]
    assert len(__import__("json").loads(ver["details_json"])) == 4   # one latency per item
    assert np.isfinite(df["loadavg_before"]).all()


@pytest.mark.gpu
def test_grid_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from calibration.microbench import run_grid

    df = run_grid(replace(TINY, verify_tasks=()), "cuda", threads=1, progress=False)
    assert (df["device"] == "cuda").all() and (df["seconds"] > 0).all()
