"""The input boundary: every bad file, value or output path ends in `error: <where>: <what> ; <fix>`
(exit 2), read with bounded memory and stack; `--json` is strict JSON; a closed pipe is quiet.

Each case of issue 16 is one test here (and its siblings next to it)."""

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rlvr_sim.cli import EXIT_BROKEN_PIPE, main
from rlvr_sim.cli_output import check_output_path, strict_json
from rlvr_sim.errors import ScenarioError, UserError
from rlvr_sim.safe_read import MAX_ALIASES, MAX_DEPTH, echo, load_user_yaml, read_user_text
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sweep.grid import load_plan_file
from rlvr_sim.sweep.pareto import pareto_front

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = ROOT / "scenarios" / "minimal.yaml"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_clean_error(rc: int, err: str, *needles: str) -> None:
    """Exit 2, one `error:` report with a fix (` ; `), no traceback, short, naming `needles`."""
    assert rc == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert " ; " in err or "\n  - " in err, err          # a fix, or the per-field list
    assert len(err) < 4000, len(err)                      # never the (expanded) input echoed
    for needle in needles:
        assert needle in err, (needle, err)


# --- files ---------------------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_before_expansion(tmp_path):
    levels = ["a: &a [" + ",".join(['"xxxxxxxx"'] * 9) + "]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")   # 9^9 leaves
    path = tmp_path / "bomb.yaml"
    path.write_text("model: llama-3.1-8b\n" + "\n".join(levels) + "\n")
    rc, _, err = run_cli(["describe", str(path)])
    assert_clean_error(rc, err, str(path), "aliases")


def test_many_aliases_are_refused(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("model: llama-3.1-8b\nx: &x 1\ny: [" + ",".join(["*x"] * (MAX_ALIASES + 1)) + "]\n")
    with pytest.raises(ScenarioError, match="aliases"):
        load_scenario(path)


def test_small_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("model: llama-3.1-8b\nsampler: &pool {gpus: 8}\ntrainer: *pool\n")
    assert load_scenario(path).trainer.gpus == 8


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_yaml_file_is_a_clean_error(tmp_path, depth):
    path = tmp_path / "deep.yaml"
    path.write_text("model: llama-3.1-8b\nx: " + "[" * depth + "]" * depth + "\n")
    rc, _, err = run_cli(["describe", str(path)])
    assert_clean_error(rc, err, "nested more than")


def test_deep_set_value_and_key_are_clean_errors():
    rc, _, err = run_cli(["describe", str(MINIMAL), "--set", "x=" + "[" * 5000 + "]" * 5000])
    assert_clean_error(rc, err, "override", "nested more than")
    rc, _, err = run_cli(["describe", str(MINIMAL), "--set", "a." * 5000 + "b=1"])
    assert_clean_error(rc, err, "override", "dotted field name")


def test_deep_mapping_given_as_data_is_a_clean_error():
    data: dict = {"model": "llama-3.1-8b"}
    node = data
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ScenarioError, match="nested more than"):
        load_scenario(data)


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("model: llama-3.1-8b\nsampler: {gpus: 8}\nmodel: qwen2.5-1.5b\n")
    rc, _, err = run_cli(["describe", str(path)])
    assert_clean_error(rc, err, "'model' appears twice", "line 3", "first on line 1")
    with pytest.raises(ScenarioError, match="appears twice"):
        load_scenario(MINIMAL, ["sampler={gpus: 8, gpus: 4}"])


@pytest.mark.parametrize("content, kind", [("[1, 2]", "list"), ('"abc"', "string"), ("3", "number"),
                                           ("null", "null")])
def test_config_json_that_is_not_an_object(tmp_path, content, kind):
    (tmp_path / "config.json").write_text(content)
    path = tmp_path / "s.yaml"
    path.write_text("model: config.json\n")
    rc, _, err = run_cli(["describe", str(path)])
    assert_clean_error(rc, err, "config.json", f"a JSON {kind}, not an object")


def test_config_json_broken_or_binary(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 8,')
    path = tmp_path / "s.yaml"
    path.write_text("model: config.json\n")
    assert_clean_error(*run_cli(["describe", str(path)])[::2], "not valid JSON", "line 1")
    (tmp_path / "config.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert_clean_error(*run_cli(["describe", str(path)])[::2], "not UTF-8")


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_device_files_are_not_read(special):
    if not Path(special).exists():
        pytest.skip(f"{special} absent")
    rc, _, err = run_cli(["describe", special])
    assert_clean_error(rc, err, "not a regular file")


def test_unreadable_proc_file_is_a_clean_error():
    rc, _, err = run_cli(["describe", "/proc/self/mem"])     # a "regular" file that fails to read
    assert_clean_error(rc, err, "/proc/self/mem", "cannot be read")


def test_directory_missing_binary_and_oversized_scenarios(tmp_path):
    assert_clean_error(*run_cli(["describe", str(tmp_path)])[::2], "is a directory")
    assert_clean_error(*run_cli(["describe", str(tmp_path / "nope.yaml")])[::2], "not found")
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    assert_clean_error(*run_cli(["describe", str(tmp_path / "bin.yaml")])[::2], "not UTF-8", "offset")
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:      # sparse: no disk used
        handle.truncate(11 * 2**20)
    assert_clean_error(*run_cli(["describe", str(big)])[::2], "byte limit")


def test_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    import os
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        read_user_text(fifo, "scenario file", "fix")     # would block forever if opened


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_line_in_length_file_names_file_and_line(tmp_path, bad):
    (tmp_path / "lens.txt").write_text(f"100\n200\n{bad}\n300\n")
    path = tmp_path / "s.yaml"
    path.write_text("model: llama-3.1-8b\nworkload: {response_tokens: {dist: empirical, path: lens.txt}}\n")
    rc, _, err = run_cli(["describe", str(path)])
    assert_clean_error(rc, err, "lens.txt:3", "not a finite number")
    assert "131072" not in err


def test_binary_length_file(tmp_path):
    (tmp_path / "lens.csv").write_bytes(b"\xff\xfe\x00garbage")
    path = tmp_path / "s.yaml"
    path.write_text("model: llama-3.1-8b\nworkload: {response_tokens: {dist: empirical, path: lens.csv}}\n")
    assert_clean_error(*run_cli(["describe", str(path)])[::2], "lens.csv", "not UTF-8")


# --- numbers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, field", [
    (f"workload.prompts_per_step={2**64}", "workload.prompts_per_step"),
    ("workload.samples_per_prompt=1e9", "workload.samples_per_prompt"),
    ("workload.response_tokens={dist: fixed, value: 1e308}", "workload.response_tokens.value"),
    ("workload.prompt_tokens={dist: uniform, low: 1, high: 1e300}", "workload.prompt_tokens.high"),
    ("workload.response_tokens={dist: lognormal, mean: 1e200, sigma: 1}", "workload.response_tokens.mean"),
    ("workload.seed=-1", "workload.seed"),
    (f"workload.seed={2**32}", "workload.seed"),
    ("executor.seed=-5", "executor.seed"),
    ("hardware.usd_per_gpu_hour=1e308", "hardware.usd_per_gpu_hour"),
    ("hardware.inter_node_bytes_per_s=1e300", "hardware.inter_node_bytes_per_s"),
    ("verifier.timeout_s=1e300", "verifier.timeout_s"),
    ("verifier.latency_s={dist: fixed, value: 1e20}", "verifier.latency_s.value"),
    (f"verifier.workers={2**40}", "verifier.workers"),
    ("model={hidden_size: 4096, num_hidden_layers: 1e12, num_attention_heads: 32, "
     "intermediate_size: 8192, vocab_size: 1000}", "model.num_hidden_layers"),
    ("workload.steps=1e300", "workload.steps"),
])
def test_out_of_range_numbers_are_named(override, field):
    rc, out, err = run_cli(["simulate", str(MINIMAL), "--steps", "2", "--set", override])
    assert_clean_error(rc, err, field)
    assert out == ""


def test_sequences_per_step_product_is_bounded():
    rc, _, err = run_cli(["simulate", str(MINIMAL), "--steps", "1", "--set", "workload.prompts_per_step=65536",
                          "--set", "workload.samples_per_prompt=1024"])
    assert_clean_error(rc, err, "sequences per step")


def test_simulated_steps_are_bounded_before_any_work():
    rc, out, err = run_cli(["simulate", str(MINIMAL), "--steps", "10000000"])
    assert_clean_error(rc, err, "--steps", "10,000,000")
    assert out == ""
    rc, _, err = run_cli(["simulate", str(MINIMAL), "--set", "workload.steps=10000000"])
    assert_clean_error(rc, err, "workload.steps")


# --- output --------------------------------------------------------------------------------------
def _walk_floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_floats(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_floats(v)


def test_strict_json_writes_null_for_non_finite():
    text = strict_json({"a": math.inf, "b": [math.nan, 1.5, -math.inf], "c": {"d": 2}})
    assert json.loads(text) == {"a": None, "b": [None, 1.5, None], "c": {"d": 2}}
    assert "Infinity" not in text and "NaN" not in text


@pytest.mark.parametrize("command", [["simulate", "--steps", "2"], ["describe"]])
def test_json_output_is_strict(command):
    rc, out, err = run_cli([command[0], str(MINIMAL), *command[1:], "--json",
                            "--set", "hardware.usd_per_gpu_hour=1e15"])
    assert rc in (0, 1), err
    parsed = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert all(math.isfinite(v) for v in _walk_floats(parsed))


@pytest.mark.parametrize("flag", ["--trace", "--perfetto"])
def test_output_path_that_is_a_directory(tmp_path, flag):
    rc, out, err = run_cli(["simulate", str(MINIMAL), "--steps", "2", flag, str(tmp_path)])
    assert_clean_error(rc, err, flag, "is a directory")
    assert out == ""


def test_output_path_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output_path(tmp_path / "f" / "t.parquet", "--trace")
    assert check_output_path(tmp_path / "new" / "t.parquet", "--trace") == tmp_path / "new" / "t.parquet"


@pytest.mark.parametrize("argv", [["simulate", "scenarios/minimal.yaml", "--steps", "3", "--json"],
                                  ["describe", "scenarios/minimal.yaml"]])
def test_closed_pipe_is_quiet(argv):
    """`rlvr-sim ... | head -1`: no BrokenPipeError traceback, exit 141 like other tools."""
    proc = subprocess.Popen([sys.executable, "-m", "rlvr_sim.cli", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    proc.stdout.readline()
    proc.stdout.close()                                 # the reader goes away, like `head -1`
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert rc in (0, EXIT_BROKEN_PIPE), (rc, err)


# --- sweep inputs --------------------------------------------------------------------------------
def test_binary_plan_files(tmp_path):
    for name in ("plans.yaml", "plans.csv"):
        (tmp_path / name).write_bytes(b"\x00\xff\xfe" * 100)
        with pytest.raises(UserError, match="not UTF-8"):
            load_plan_file(tmp_path / name)
    (tmp_path / "bomb.yaml").write_text("- &a {sampler.gpus: 8}\n" + "".join("- *a\n" for _ in range(MAX_ALIASES + 1)))
    with pytest.raises(UserError, match="aliases"):
        load_plan_file(tmp_path / "bomb.yaml")


def test_sweep_where_every_plan_is_invalid(tmp_path):
    out = tmp_path / "s.csv"
    rc, stdout, err = run_cli(["sweep", str(ROOT / "scenarios" / "tiny-cpu.yaml"), "--grid", "sampler.tpp=1,2",
                               "--workers", "1", "--out", str(out)])
    assert rc == 0 and "Traceback" not in err, err
    assert "0 ok, 2 invalid" in stdout and "sampler.tpp" in err
    rc, stdout, _ = run_cli(["sweep", str(ROOT / "scenarios" / "tiny-cpu.yaml"), "--grid", "sampler.tpp=1,2",
                             "--workers", "1", "--out", str(tmp_path / "s2.csv"), "--json"])
    assert rc == 0 and json.loads(stdout)["frontier"] == []


def test_pareto_front_of_a_table_without_results():
    frame = pd.DataFrame({"plan_index": [0, 1], "status": ["invalid", "invalid"]})
    assert pareto_front(frame).empty


def test_echo_is_bounded_for_shared_containers():
    row = ["x" * 10] * 10
    for _ in range(30):       # 10^30 leaves if expanded
        row = [row] * 10
    shown = echo(row)
    assert len(shown) <= 83 and shown.endswith("...")


def test_yaml_errors_name_the_line():
    with pytest.raises(UserError, match=r"scenario.yaml is not valid YAML \(line 3, column 1: expected ',' or '\]'"):
        load_user_yaml("a: 1\nb: [1, 2\n", "scenario.yaml")


def test_seed_flags_are_range_checked():
    for command in (["simulate", str(MINIMAL)], ["sweep", str(MINIMAL)],
                    ["plan", str(MINIMAL), "--total-gpus", "8"]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
            main([*command, "--seed", "-1"])
        assert exit_info.value.code == 2 and "--seed: -1 is outside 0..4,294,967,295" in err.getvalue()


def test_grid_cross_product_is_bounded():
    from rlvr_sim.sweep.grid import MAX_GRID_PLANS, grid_plans

    values = ",".join(str(v) for v in range(1000))
    with pytest.raises(UserError, match=f"1,000,000 plans in the cross product is over {MAX_GRID_PLANS:,}"):
        grid_plans([f"a={values}", f"b={values}"])


@pytest.mark.parametrize("row, needle", [("20, nan", "nan/inf"), ("x, y", "is not `step, length`")])
def test_schedule_table_rows_are_named_by_line(tmp_path, row, needle):
    from rlvr_sim.step_schedules import read_step_table

    path = tmp_path / "table.csv"
    path.write_text(f"step,length\n0, 100\n10, 200\n{row}\n")
    with pytest.raises(ValueError, match=rf"table.csv:4: .*{needle}"):
        read_step_table(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_step_table(path)


def test_speculative_method_of_the_wrong_type_is_a_clean_error():
    """Found by the fuzz suite: a list as `sampler.speculative.method` raised TypeError."""
    with pytest.raises(ScenarioError, match="sampler.speculative.method"):
        load_scenario({"model": "qwen2.5-1.5b", "sampler": {"speculative": {"method": []}}})


def test_plan_refuses_an_absurd_pool_instead_of_hanging(capsys):
    from rlvr_sim.cli import main

    assert main(["plan", "scenarios/minimal.yaml", "--total-gpus", str(10**12)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --total-gpus 1,000,000,000,000") and "--total-gpus 1024" in err
