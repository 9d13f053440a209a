"""`rlvr-sim simulate`: JSON keys, trace/scenario/Perfetto files, overrides and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr_sim.cli import main
from rlvr_sim.scenario import load_scenario
from rlvr_sim.trace import TRACE_COLUMNS, read_trace

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "scenarios" / "tiny-cpu.yaml")


def run_json(capsys, *argv) -> dict:
    assert main(["simulate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_the_issue_keys(capsys):
    out = run_json(capsys, TINY, "--steps", "3")
    for key in ("mean", "p50", "p95"):
        assert out["step_time_s"][key] > 0
    assert {"generate", "verify", "train", "weight_sync"} <= set(out["phase_time_s"])
    assert out["tokens_per_s_per_gpu"] > 0
    assert set(out["utilization"]) == {"sampler", "verifier", "trainer"}
    assert {"mean", "max"} <= set(out["staleness"])
    assert {"usd_per_step", "usd_total", "gpu_hours_total"} <= set(out["cost"])
    assert out["hours_total"] > 0
    # critical path sums to the mean step time
    assert sum(out["phase_time_s"].values()) == pytest.approx(out["step_time_s"]["mean"])
    # 3 simulated steps extrapolate to the scenario's 60
    assert out["workload_steps"] == 60
    assert out["hours_total"] * 3600 == pytest.approx(out["step_time_s"]["mean"] * 60)


def test_trace_scenario_and_perfetto_files(tmp_path, capsys):
    trace = tmp_path / "run" / "trace.parquet"
    perfetto = tmp_path / "run" / "timeline.json"
    assert main(["simulate", TINY, "--steps", "2", "--trace", str(trace),
                 "--perfetto", str(perfetto)]) == 0
    text = capsys.readouterr().out
    assert "critical path" in text and "bottleneck" in text
    df = read_trace(trace)
    assert list(df.columns) == TRACE_COLUMNS
    assert set(df.worker_pool) == {"sampler", "verifier", "trainer"}
    assert df[df.phase == "generate"].sequences.sum() == 2 * 64 * 8
    saved = load_scenario(trace.with_name("trace.parquet.scenario.yaml"))
    assert saved == load_scenario(TINY)
    events = json.loads(perfetto.read_text())["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == len(df)
    assert {e["name"] for e in spans} >= {"generate", "verify", "forward_backward"}
    assert all(e["dur"] >= 0 for e in spans)


def test_set_seed_and_csv(tmp_path, capsys):
    base = run_json(capsys, TINY, "--steps", "2")
    more = run_json(capsys, TINY, "--steps", "2", "--set", "workload.samples_per_prompt=16")
    assert more["tokens_per_step"] > base["tokens_per_step"]
    other_seed = run_json(capsys, TINY, "--steps", "2", "--seed", "7")
    assert other_seed["tokens_per_step"] != base["tokens_per_step"]
    csv = tmp_path / "t.csv"
    assert main(["simulate", TINY, "--steps", "1", "--trace", str(csv), "--json"]) == 0
    assert len(read_trace(csv)) > 0


@pytest.mark.parametrize("argv, words", [
    (["--steps", "0"], ["--steps", "at least 1"]),
    (["--trace", "x.txt"], ["--trace", ".parquet"]),
    (["--set", "sampler.tp=3"], ["sampler.tp"]),
])
def test_bad_input_exits_2_naming_the_field(capsys, argv, words):
    assert main(["simulate", TINY, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    for w in words:
        assert w in err


def test_every_commands_help_prints(capsys):
    # argparse %-formats help strings: a bare '%' in one (e.g. "mean known to 5%") crashed
    # `rlvr-sim plan --help` with "unsupported format character"
    from rlvr_sim.cli import build_parser

    parser = build_parser()
    names = list(parser._subparsers._group_actions[0].choices)    # type: ignore[union-attr]
    assert "plan" in names and "simulate" in names
    for name in names:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([name, "--help"])
        assert exit_.value.code == 0, name
        assert "usage: rlvr-sim " + name in capsys.readouterr().out
