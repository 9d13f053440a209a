"""Faults: crashes at every stage of a checkpoint write, damaged files, SIGKILL/SIGINT at random
points of a real executor run (scenarios/tiny-cpu-execute.yaml made small) and of a sweep.

After every fault: resume works, no completed step and no valid checkpoint is lost, no process
of the run is left alive (its whole process group is checked), no temp folder is left, and no
output has a traceback. `FAULT_SEED` picks the random kill points (printed on failure); the
`slow` tests inject more faults of the same kinds.

THE data-loss case of issue 16 (`latest` names a missing folder while a valid older checkpoint
exists: resume must continue from the older one and never delete it) is
`test_resume_when_latest_names_a_missing_folder_uses_the_older_checkpoint` (real CLI run), with
the unit version `test_find_resume_point_skips_a_latest_pointing_at_nothing`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from executor.checkpoint import (RunState, checkpoint_identity, find_resume_point, load_checkpoint,
                                 save_checkpoint, verify_checkpoint)
from executor.tracing import read_metrics, truncate_metrics
from rlvr_sim.errors import UserError
from rlvr_sim.lifecycle import QuietSpawnContext

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "tiny-cpu-execute.yaml"
SMALL = ["workload.prompts_per_step=4", "workload.samples_per_prompt=4", "executor.sft_steps=2",
         "executor.sft_batch_size=8", "executor.eval_problems=8", "executor.threads=1",
         "verifier.workers=2"]
SEED = int(os.environ.get("FAULT_SEED", "16"))
RUN_TIMEOUT_S = 900


# --- helpers -------------------------------------------------------------------------------------
def execute_cmd(out: Path, steps: int, *extra: str, every: int = 1) -> list[str]:
    sets = [*SMALL, f"workload.steps={steps}", f"executor.checkpoint_every={every}"]
    return [sys.executable, "-m", "rlvr_sim.cli", "execute", str(SCENARIO), "--out", str(out),
            "--no-progress", *[a for s in sets for a in ("--set", s)], *extra]


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                  if p)}


def _as_foreground_job() -> None:
    """In the child, before exec: SIGINT as a terminal's foreground job gets it (default action,
    not blocked), whatever pytest itself inherited. A shell without job control starts a
    background command (`make test > log &`) with SIGINT ignored; an ignored (or blocked) signal
    stays so across fork and exec, Python then installs no KeyboardInterrupt handler, and the
    run never sees the test's Ctrl-C: it finishes and exits 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def start(cmd: list[str]) -> subprocess.Popen:
    """A command in its own process group (pgid = its pid), like a shell's foreground job."""
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, preexec_fn=_as_foreground_job,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def orphans_after(pgid: int, wait_s: float = 30.0) -> list[int]:
    """Processes of the group still alive `wait_s` after its leader died (then killed, so a
    failing test leaves nothing behind)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        left = group_members(pgid)
        if not left:
            return []
        time.sleep(0.2)
    left = group_members(pgid)
    if left:
        os.killpg(pgid, signal.SIGKILL)
    return left


def metric_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps


def newest_valid_step(out: Path) -> int | None:
    root = out / "checkpoints"
    if not root.is_dir():
        return None
    steps = [int(p.name.split("_")[1]) for p in root.glob("step_*") if verify_checkpoint(p) is None]
    return max(steps, default=None)


def temp_leftovers(out: Path) -> list[str]:
    names = [p.name for p in (out / "checkpoints").iterdir()] if (out / "checkpoints").is_dir() else []
    names += [p.name for p in out.iterdir()] if out.is_dir() else []
    return [n for n in names if ".tmp" in n or ".old-" in n]


def wait_for_steps(proc: subprocess.Popen, out: Path, count: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while len(metric_steps(out)) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for_workers(proc: subprocess.Popen, timeout_s: float = 600) -> None:
    """Until the run has started its worker processes (so it is past interpreter start-up, where a
    Ctrl-C can only give Python's own traceback)."""
    deadline = time.monotonic() + timeout_s
    while len(group_members(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def assert_resumes_without_loss(out: Path, steps: int, valid_before: int | None) -> dict:
    """Resume to the end: exit 0, continues from the newest checkpoint that was valid at the
    fault (none lost), every step exactly once, no temp folder, no traceback."""
    resumed = run(execute_cmd(out, steps, "--resume", "--json"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["resumed_from_step"] == valid_before, (result["resumed_from_step"], valid_before)
    assert metric_steps(out) == list(range(steps))
    assert newest_valid_step(out) == steps
    assert temp_leftovers(out) == []
    return result


# --- checkpoint unit faults ----------------------------------------------------------------------
IDENTITY = {"model.hidden_size": "64", "executor.lr": "0.0002"}


def tiny_model(width: int = 4) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(width, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.ones(2, width)).sum().backward()
    opt.step()
    return model, opt


def save(root: Path, step: int, identity=IDENTITY, keep: int = 10) -> Path:
    model, opt = tiny_model()
    return save_checkpoint(root, RunState(step, 4 * step, step, True), model, opt, keep=keep,
                           identity=identity)


def test_find_resume_point_skips_a_latest_pointing_at_nothing(tmp_path):
    save(tmp_path, 2)
    shutil.rmtree(save(tmp_path, 4))            # `latest` now names a missing folder
    assert (tmp_path / "latest").read_text().strip() == "step_000004"
    point = find_resume_point(tmp_path, IDENTITY)
    assert point.path == tmp_path / "step_000002" and point.steps_done == 2
    assert any("latest" in s and "step_000004" in s for s in point.skipped), point.skipped
    assert verify_checkpoint(tmp_path / "step_000002") is None     # still there, intact


def test_truncated_newest_state_is_skipped_for_the_older_one(tmp_path):
    save(tmp_path, 2)
    state = save(tmp_path, 4) / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    point = find_resume_point(tmp_path, IDENTITY)
    assert point.steps_done == 2
    assert any("step_000004" in s and "truncated" in s for s in point.skipped)
    assert "skipped step_000004" in "\n".join(point.explain())


def test_no_valid_checkpoint_is_an_error_and_deletes_nothing(tmp_path):
    state = save(tmp_path, 2) / "state.pt"
    state.write_bytes(b"\0" * state.stat().st_size)       # same size, wrong content
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(UserError, match=r"no valid checkpoint.*SHA-256.*nothing was deleted"):
        find_resume_point(tmp_path, IDENTITY)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_checkpoint_of_another_scenario_is_refused(tmp_path):
    save(tmp_path, 2)
    with pytest.raises(UserError, match=r"different scenario \(executor.lr 0.0002 -> 0.001\)"):
        find_resume_point(tmp_path, {**IDENTITY, "executor.lr": "0.001"})


def test_damaged_state_and_shape_mismatch_are_user_errors(tmp_path):
    path = save(tmp_path, 2)
    model, opt = tiny_model(width=5)
    with pytest.raises(UserError, match=r"state.pt: holds a model of another shape.*size mismatch"):
        load_checkpoint(path, model, opt)
    (path / "state.pt").write_bytes((path / "state.pt").read_bytes()[:300])
    model, opt = tiny_model()
    with pytest.raises(UserError, match=r"state.pt: cannot be read .* damaged"):
        load_checkpoint(path, model, opt)


def test_legacy_checkpoint_without_manifest_is_skipped(tmp_path):
    save(tmp_path, 2)
    (save(tmp_path, 4) / "manifest.json").unlink()
    point = find_resume_point(tmp_path, IDENTITY)
    assert point.steps_done == 2 and any("no manifest.json" in s for s in point.skipped)


class Crash(Exception):
    """Stands for the process dying at that instant."""


CRASH_EVENTS = ["fsync state.pt", "write manifest", "fsync temp folder", "fsync after rename",
                "write latest", "fsync after latest"]


@pytest.mark.parametrize("crash_at", range(len(CRASH_EVENTS)), ids=CRASH_EVENTS)
@pytest.mark.parametrize("replacing", [False, True], ids=["new-step", "same-step-again"])
def test_crash_at_every_stage_of_a_checkpoint_write(tmp_path, monkeypatch, crash_at, replacing):
    """Die before each durable step of save_checkpoint: the previous checkpoint stays valid, resume
    takes the newest complete one, and the next write cleans the leftovers."""
    import executor.checkpoint_store as ck

    save(tmp_path, 2)
    if replacing:
        save(tmp_path, 4)                     # the crashed write replaces an existing step_4
    events = []

    def hook(real):
        def wrapped(*args, **kwargs):
            if len(events) == crash_at:
                raise Crash(CRASH_EVENTS[crash_at])
            events.append(1)
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(ck, "_fsync", hook(ck._fsync))
    monkeypatch.setattr(ck, "_write_synced", hook(ck._write_synced))
    with pytest.raises(Crash):
        save(tmp_path, 4)
    monkeypatch.undo()
    point = find_resume_point(tmp_path, IDENTITY)          # also removes our dead temp folders
    renamed = crash_at >= CRASH_EVENTS.index("fsync after rename")
    assert point.steps_done == (4 if renamed or replacing else 2)
    assert verify_checkpoint(tmp_path / "step_000002") is None
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name or ".old-" in p.name]
    save(tmp_path, 6)
    assert find_resume_point(tmp_path, IDENTITY).steps_done == 6


def test_old_folder_left_mid_replace_is_restored(tmp_path):
    """A kill between `step_N -> .step_N.old-PID` and `.tmp -> step_N` leaves no step_N: the
    .old copy is a complete checkpoint and is put back."""
    save(tmp_path, 2)
    dead_pid = 2**22 + 12345                   # above pid_max on most systems: never alive
    (tmp_path / "step_000004").parent.mkdir(exist_ok=True)
    save(tmp_path, 4).rename(tmp_path / f".step_000004.old-{dead_pid}")
    point = find_resume_point(tmp_path, IDENTITY)
    assert point.steps_done == 4 and (tmp_path / "step_000004").is_dir()
    assert any("restored step_000004" in s for s in point.skipped)


def test_temp_folder_of_a_live_writer_is_left_alone(tmp_path):
    save(tmp_path, 2)
    live = tmp_path / f".step_000004.tmp-{os.getppid()}"
    live.mkdir()
    find_resume_point(tmp_path, IDENTITY)
    assert live.is_dir()


def test_identity_ignores_run_control_fields():
    from rlvr_sim.scenario import load_scenario

    base = checkpoint_identity(load_scenario(SCENARIO))
    same = checkpoint_identity(load_scenario(SCENARIO, ["workload.steps=99", "executor.threads=1",
                                                        "executor.out_dir=/tmp/x"]))
    assert base == same
    other = checkpoint_identity(load_scenario(SCENARIO, ["executor.lr=0.1"]))
    assert {k for k in base if base[k] != other[k]} == {"executor.lr"}


# --- metrics.jsonl -------------------------------------------------------------------------------
def test_torn_metrics_line_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    row = {"step": 0, "policy_version": 0, "mean_reward": 0.5, "accuracy": 0.5, "kl": 0.0,
           "entropy": 1.0, "loss": 0.1, "clip_fraction": 0.0, "grad_norm": 1.0,
           "response_tokens_mean": 3.0, "finished_fraction": 1.0, "step_s": 1.0, "generate_s": 0.5,
           "verify_s": 0.1, "train_s": 0.3, "weight_sync_s": 0.1, "data_cursor": 4}
    lines = [json.dumps({**row, "step": s}) for s in range(3)]
    path.write_text("\n".join(lines) + "\n" + lines[0][:25])            # a kill mid-append
    with pytest.raises(UserError, match=rf"{path}:4: Unterminated string.*cut by a kill"):
        read_metrics(path)
    assert [m.step for m in truncate_metrics(path, 1)] == [0, 1]         # resume drops the tail
    assert [m.step for m in read_metrics(path)] == [0, 1]
    path.write_text(lines[0] + "\n{garbage\n" + lines[1] + "\n")
    with pytest.raises(UserError, match=rf"{path}:2: "):
        truncate_metrics(path, 5)                                        # not a torn tail: refuse


# --- Ctrl-C around a command's own work ----------------------------------------------------------
def test_ctrl_c_during_the_interpreter_shutdown_is_one_line_and_exit_130():
    """A Ctrl-C after the command's work, while the process shuts down (here: in an atexit
    callback), is an interrupt like any other. Before `cli._exit` it printed an "Exception
    ignored in atexit callback ... KeyboardInterrupt" traceback and exited 0 (or, later in the
    shutdown, the process died by SIGINT without a word): what the real-run SIGINT test hit when
    its signal came at the end of the run."""
    minimal = str(ROOT / "scenarios" / "minimal.yaml")
    code = ("import atexit, os, signal, sys\n"
            "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
            "from rlvr_sim.cli import main\n"
            f"sys.argv = ['rlvr-sim', 'describe', {minimal!r}]\n"
            "sys.exit(main())\n")
    late = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV,
                          preexec_fn=_as_foreground_job, capture_output=True, text=True, timeout=120)
    assert late.returncode == 130 and late.stderr == "interrupted\n", (late.returncode, late.stderr[-2000:])
    plain = run([sys.executable, "-m", "rlvr_sim.cli", "describe", minimal])
    assert plain.returncode == 0 and late.stdout == plain.stdout != ""     # its output is complete


def _sigint_blocked(pid: int) -> bool:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    raise AssertionError(f"no SigBlk line for {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_pool_workers_start_with_ctrl_c_blocked():
    """Verifier workers are started from QuietSpawnContext: with SIGINT blocked until their
    become_worker() ignores it, so a Ctrl-C during their start-up (~1 s of imports) is dropped
    instead of printing a KeyboardInterrupt traceback per worker. The starting process's own
    mask is left as it was."""
    ctx = QuietSpawnContext()
    proc = ctx.Process(target=time.sleep, args=(60,), daemon=True)
    proc.start()
    try:
        assert proc.pid is not None and _sigint_blocked(proc.pid)
        assert not _sigint_blocked(os.getpid())
    finally:
        proc.kill()
        proc.join(30)


def _record_start_mask(path: str) -> None:
    """A pool initializer: write whether SIGINT is blocked as the worker starts, then the real one."""
    from rlvr_sim.lifecycle import become_worker

    Path(path, str(os.getpid())).write_text(str(_sigint_blocked(os.getpid())))
    become_worker()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_sweep_pool_workers_start_with_ctrl_c_blocked(tmp_path, monkeypatch):
    """The planner's process pool (rlvr_sim.sweep.pools.LocalPool) forks its workers at the first
    submit with SIGINT blocked (until become_worker ignores it), like the verifier workers."""
    import functools

    from rlvr_sim.sweep import pools
    from rlvr_sim.sweep.jobs import make_jobs
    from rlvr_sim.sweep.grid import Plan

    monkeypatch.setattr(pools, "become_worker", functools.partial(_record_start_mask, str(tmp_path)))
    pool = pools.LocalPool(2, evaluate=_no_simulation)
    try:
        pool.submit(make_jobs({"name": "x"}, [Plan(())], 1, 0)[0])
        assert pool.next_done().status == "error"
    finally:
        pool.close()
    masks = [f.read_text() for f in tmp_path.iterdir()]
    assert masks and set(masks) == {"True"}
    assert not _sigint_blocked(os.getpid())


def _no_simulation(job):
    from rlvr_sim.sweep.jobs import PlanOutcome

    return PlanOutcome(job.index, job.plan_id, {}, "error", "not simulated")


# --- real runs: SIGKILL / SIGINT at random points ------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One real 4-step run with checkpoints at steps 2 and 4 (copied by each test that uses it)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    done = run(execute_cmd(out, 4, every=2))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_resume_when_latest_names_a_missing_folder_uses_the_older_checkpoint(finished_run, tmp_path):
    """Issue 16's worst case: `latest` -> step_000004 is gone, step_000002 is valid. Before the
    fix, `execute --resume` exited 0, started over and deleted step_000002."""
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    shutil.rmtree(out / "checkpoints" / "step_000004")
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000004"
    older = (out / "checkpoints" / "step_000002" / "state.pt").read_bytes()
    found = find_resume_point(out / "checkpoints")
    assert found.steps_done == 2 and (out / "checkpoints" / "step_000002" / "state.pt").read_bytes() == older
    resumed = run(execute_cmd(out, 4, "--resume", "--json", every=2))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["resumed_from_step"] == 2
    assert "`latest` names 'step_000004', which does not exist" in resumed.stderr
    assert "continuing from" in resumed.stderr and "step_000002" in resumed.stderr
    assert metric_steps(out) == [0, 1, 2, 3]
    assert newest_valid_step(out) == 4


def test_resume_refuses_other_scenario_and_damaged_only_checkpoint(finished_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    other = run(execute_cmd(out, 4, "--resume", "--set", "executor.lr=0.01", every=2))
    assert other.returncode == 2 and other.stderr.startswith("error: "), other.stderr[-2000:]
    assert "different scenario (executor.lr" in other.stderr and "Traceback" not in other.stderr
    shutil.rmtree(out / "checkpoints" / "step_000002")
    state = out / "checkpoints" / "step_000004" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    damaged = run(execute_cmd(out, 4, "--resume", every=2))
    assert damaged.returncode == 2 and "Traceback" not in damaged.stderr, damaged.stderr[-2000:]
    assert "no valid checkpoint" in damaged.stderr and "truncated" in damaged.stderr
    assert state.exists()                                            # nothing deleted


def inject(proc: subprocess.Popen, how: str) -> tuple[int, list[int], str]:
    """Send the fault `how` (sigkill-leader: the main process only, workers must follow it;
    sigkill-group; sigint: a terminal Ctrl-C reaches the whole group), wait for the exit and
    return (exit code, processes of the group still alive, stderr)."""
    if how == "sigkill-leader":
        os.kill(proc.pid, signal.SIGKILL)
    elif how == "sigkill-group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    _resume_group(proc.pid)        # a group stopped by stop_if_running gets the fault as it resumes
    rc = proc.wait(timeout=300)
    return rc, orphans_after(proc.pid), proc.stderr.read()


def _resume_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGCONT)
    except ProcessLookupError:     # nothing of the group is left
        pass


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, D, T stopped, Z zombie ...), "" when gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def stop_if_running(proc: subprocess.Popen, timeout_s: float = 30.0) -> bool:
    """Stop (SIGSTOP) the process group of a run that has not ended; False if it has. A stopped run
    cannot finish between this check and the fault that `inject` sends next (then SIGCONT: a
    SIGINT reaches every process of the group at once, as a terminal's Ctrl-C does). SIGSTOP
    takes effect asynchronously and not at all on a process already inside its exit, so the
    leader counts as running only once /proc shows it stopped."""
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGSTOP)      # the leader is alive or an unreaped zombie: no error
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _resume_group(proc.pid)
            return False
        if _state(proc.pid) in ("T", "t"):
            return True
        time.sleep(0.001)
    _resume_group(proc.pid)
    pytest.fail(f"run {proc.pid} neither stopped nor ended {timeout_s:g} s after SIGSTOP")


def assert_completed(proc: subprocess.Popen, out: Path, steps: int) -> None:
    """A run that ended before its fault may only have done so by completing: exit 0, every step
    once, the last checkpoint valid, nothing left running."""
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, \
        (f"run ended before the fault (FAULT_SEED={SEED})", proc.returncode, err[-2000:])
    assert metric_steps(out) == list(range(steps)) and newest_valid_step(out) == steps
    assert orphans_after(proc.pid) == []


FAULT_ATTEMPTS = 3


def _kill_and_resume(tmp_path: Path, rng: random.Random, steps: int, how: str) -> dict:
    """Start a run, wait for a random number of finished steps plus a random delay, inject the
    fault, then resume. Returns counts for the closing note.

    A fast run can complete during the random delay (steps take ~0.3 s here): it must then have
    completed cleanly, and a fresh run gets the fault with no delay, so the fault is always
    injected into a run with work left (its last steps, final checkpoint and evaluation)."""
    for attempt in range(FAULT_ATTEMPTS):
        out = tmp_path / f"out-{how}-{rng.random():.6f}"
        proc = start(execute_cmd(out, steps))
        if how == "sigint":
            wait_for_workers(proc)
        wait_for_steps(proc, out, rng.randrange(0, steps - 1))
        delay = rng.uniform(0.0, 1.5)
        time.sleep(delay if attempt == 0 else 0.0)
        if stop_if_running(proc):
            break
        assert_completed(proc, out, steps)
    else:
        pytest.fail(f"every one of {FAULT_ATTEMPTS} runs ended before its fault (FAULT_SEED={SEED})")
    rc, left, err = inject(proc, how)
    valid_before = newest_valid_step(out)
    assert left == [], f"orphan processes {left} after {how} (FAULT_SEED={SEED})"
    assert "Traceback" not in err, err[-3000:]
    if how == "sigint":
        assert rc == 130, (rc, err[-2000:])
        assert err.count("interrupted") == 1 and "KeyboardInterrupt" not in err, err[-2000:]
    assert_resumes_without_loss(out, steps, valid_before)
    return {"faults": 1, "orphans": len(left)}


@pytest.mark.parametrize("how", ["sigkill-leader", "sigint"])
def test_fault_at_a_random_point_of_a_real_run(tmp_path, how):
    _kill_and_resume(tmp_path, random.Random(f"{SEED}-{how}"), steps=4, how=how)


@pytest.mark.slow
def test_many_faults_at_random_points_of_real_runs(tmp_path):
    rng = random.Random(SEED)
    kinds = ["sigkill-leader", "sigkill-group", "sigint"] * 3
    for how in kinds:
        _kill_and_resume(tmp_path, rng, steps=6, how=how)


# --- sweeps --------------------------------------------------------------------------------------
def sweep_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "rlvr_sim.cli", "sweep", str(ROOT / "scenarios" / "tiny-cpu.yaml"),
            "--grid", "sampler.max_concurrent_sequences=8,16,32,64,128,256",
            "--grid", "workload.seed=1,2,3,4", "--steps", "3", "--workers", "2", "--out", str(out)]


def _sweep_fault(tmp_path: Path, rng: random.Random, how: str) -> None:
    out = tmp_path / f"sweep-{how}-{rng.random():.6f}.csv"
    proc = start(sweep_cmd(out))
    if how == "sigint":
        wait_for_workers(proc)
    time.sleep(rng.uniform(0.0, 3.0))
    rc, left, err = inject(proc, how)
    assert left == [], f"orphan sweep workers {left} after {how} (FAULT_SEED={SEED})"
    assert "Traceback" not in err, err[-3000:]
    if how == "sigint" and rc != 0:                   # 0: it finished before the signal
        assert rc == 130 and "interrupted" in err, (rc, err[-2000:])
    again = run(sweep_cmd(out) + ["--json"])
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["planned"] == 24 and sum(summary["counts"].values()) == 24, summary


@pytest.mark.parametrize("how", ["sigkill-leader", "sigint"])
def test_sweep_fault_then_rerun_finishes_without_orphans(tmp_path, how):
    _sweep_fault(tmp_path, random.Random(f"{SEED}-sweep-{how}"), how)


@pytest.mark.slow
def test_many_sweep_faults(tmp_path):
    rng = random.Random(SEED)
    for how in ["sigkill-leader", "sigint"] * 4:
        _sweep_fault(tmp_path, rng, how)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "sigkill-leader"])
def test_async_run_fault_leaves_no_orphans(tmp_path, how):
    """Disaggregated async run (trainer + sampler process + two verifier pools): Ctrl-C is one
    line, and a SIGKILL of the trainer takes the sampler and every worker with it. (Async runs
    cannot resume; only the processes are checked.)"""
    out = tmp_path / "out"
    proc = start(execute_cmd(out, 30, "--set", "orchestration.placement=disaggregated",
                             "--set", "orchestration.mode=async", "--set", "sampler.gpus=1",
                             "--set", "trainer.gpus=1"))
    wait_for_workers(proc)
    wait_for_steps(proc, out, 2)
    assert len(group_members(proc.pid)) >= 4 and proc.poll() is None   # trainer, sampler, workers
    rc, left, err = inject(proc, how)
    assert left == [], f"orphan processes {left} after {how}"
    assert "Traceback" not in err, err[-3000:]
    if how == "sigint":
        assert rc == 130 and err.strip() == "interrupted", (rc, err[-2000:])
