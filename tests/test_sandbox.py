"""The code sandbox: containment (each escape fails and is reported), the plain-data result
protocol, the judge outside the sandbox, the refusal without OS isolation, and the verifier
pool's per-item timeout. The full list of reward-hacking attacks is tests/test_reward_hacking.py.

OS-level isolation (network/mount namespaces, uid nobody) needs root; tests of what only the
weak audit-hook mode does are marked and skip where they cannot run.
"""

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from executor.sandbox import RunResult, SandboxLimits, _classify, probe_isolation, run_function
from executor.tasks import Problem, Verdict
from executor.tasks.code import CodeCase, CodeTask, judge
from executor.tracing import Tracer
from executor.verifier import VerifierPool, VerifyResult

ROOT = os.geteuid() == 0
LIMITS = SandboxLimits(wall_s=3.0, cpu_s=1, memory_bytes=256 * 2**20, output_bytes=32 * 2**10,
                       result_bytes=32 * 2**10, allow_weak=not ROOT)
WEAK = SandboxLimits(wall_s=3.0, cpu_s=1, memory_bytes=256 * 2**20, isolation="python",
                     allow_weak=True)
GOOD = "def add(a, b):\n    return a + b\n"
CASES = [(2, 3), (0, 0)]


def run(source: str, limits: SandboxLimits = LIMITS) -> RunResult:
    return run_function(source, "add", CASES, limits)


def failed(attack: str, limits: SandboxLimits = LIMITS) -> str:
    """The reason an attack (appended to a correct solution) did not complete or errored."""
    r = run(GOOD + attack, limits)
    if r.completed:
        errors = [c.error for c in r.cases if c.error]
        assert errors, r
        return "case error: " + errors[0]
    assert r.reason and r.reason != "ran"
    return r.reason


def test_correct_solution_reports_its_values():
    r = run(GOOD)
    assert r.completed and r.reason == "ran" and r.isolation == ("os" if ROOT else "python")
    assert [c.value for c in r.cases] == [5, 0] and all(c.error is None for c in r.cases)
    wrong = run("def add(a, b):\n    return a - b\n")
    assert wrong.completed and [c.value for c in wrong.cases] == [-1, 0]


def test_values_are_typed_json():
    src = ("def add(a, b):\n    return [(a, 1.5), {'k': True}, None, float('inf'), 'é']\n")
    r = run_function(src, "add", [(1, 2)], LIMITS)
    assert r.cases[0].value == [{"tuple": [1, 1.5]}, {"dict": {"k": True}}, None,
                                {"float": "inf"}, "é"]


def test_objects_and_builtin_subclasses_are_not_serialisable():
    for ret in ("object()", "{1, 2}", "type('I', (int,), {})(5)", "iter([5])", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"):
        r = run_function(f"def f():\n    return {ret}\n", "f", [()], LIMITS)
        assert r.completed and r.cases[0].error.startswith("unserialisable"), (ret, r)


def test_exceptions_are_per_case():
    r = run_function("def f(x):\n    return 10 // x\n", "f", [(2,), (0,)], LIMITS)
    assert r.cases[0].value == 5 and r.cases[1].error.startswith("ZeroDivisionError")


def test_missing_function_and_syntax_error_fail():
    assert run_function("x = 1\n", "f", [()], LIMITS).reason.startswith("failed: NameError")
    assert run_function("def f(:\n", "f", [()], LIMITS).reason.startswith("failed: SyntaxError")


def test_infinite_loop_hits_cpu_limit():
    reason = failed("while True:\n    pass\n")
    # the CPU limit fires first on an idle machine; on a loaded one the wall limit may
    assert reason.startswith(("cpu time limit", "timeout", "crashed: killed by SIGKILL"))


def test_sleeping_forever_hits_wall_limit():
    t0 = time.monotonic()
    assert failed("import time\ntime.sleep(60)\n").startswith("timeout")
    assert time.monotonic() - t0 < 30


def test_fork_bomb_cannot_fork():
    reason = failed("import os\nwhile True:\n    os.fork()\n")
    assert "BlockingIOError" in reason or "not allowed" in reason


def test_subprocess_cannot_start():
    assert failed("import subprocess\nsubprocess.run(['/bin/true'])\n").startswith("failed")


def test_ten_gigabyte_allocation_hits_memory_limit():
    assert failed("x = bytearray(10 * 2**30)\n").startswith("memory limit")


def test_cannot_write_or_delete_outside_work_dir(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    attack = (f"import os\nopen({str(tmp_path / 'new.txt')!r}, 'w').write('x')\n"
              f"os.remove({str(victim)!r})\n")
    assert failed(attack).startswith("failed")
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "new.txt").exists()


def test_writes_inside_work_dir_are_allowed():
    r = run(GOOD + "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n")
    assert r.completed, r.reason


def test_network_socket_cannot_reach_parent():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    got = []

    def accept():
        try:
            conn, _ = server.accept()
            got.append(conn.recv(100))
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    reason = failed(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                    "s.sendall(b'leak')\n")
    server.close()
    t.join()
    assert got == [] and reason.startswith("failed")


def test_parent_environment_secrets_are_not_readable(monkeypatch):
    monkeypatch.setenv("RLVR_TEST_SECRET", "hunter2-secret")
    src = ("import os\ndef add(a, b):\n"
           "    try:\n        parent = open('/proc/%d/environ' % os.getppid()).read()\n"
           "    except OSError:\n        parent = ''\n"
           "    return str(dict(os.environ)) + parent\n")
    r = run_function(src, "add", [(1, 2)], LIMITS)
    assert r.completed and "hunter2-secret" not in r.cases[0].value
    assert "RLVR_TEST_SECRET" not in r.cases[0].value


def test_printing_a_gigabyte_is_capped():
    t0 = time.monotonic()
    r = run(GOOD + "import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2**20)\n")
    assert r.reason.startswith("output limit")
    assert len(r.stdout) <= LIMITS.output_bytes
    assert time.monotonic() - t0 < 30


def test_oversized_result_is_rejected():
    r = run_function("def f():\n    return 'x' * 10**6\n", "f", [()], LIMITS)
    assert not r.completed and r.reason.startswith("result too large")


def test_exiting_early_does_not_complete():
    assert failed("import os\nos._exit(0)\n") == "exited before the results were written"
    assert failed("raise SystemExit(0)\n").startswith("failed: SystemExit")


def test_forged_result_lines_are_malformed():
    """A candidate writing its own result line (the pipe fd is inherited) cannot add a line."""
    # every inherited descriptor, whatever its number (a parent with many open files hands the
    # pipe over as a high fd)
    src = GOOD + ("import os\nfor fd in sorted(int(x) for x in os.listdir('/proc/self/fd')):\n"
                  "    if fd < 3:\n        continue\n    try:\n"
                  "        os.write(fd, b'{\"cases\":[{\"value\":5},{\"value\":0}]}\\n')\n"
                  "    except OSError:\n        pass\n")
    assert run(src).reason == "malformed results: 2 result lines"


# --- the judge (trusted parent) --------------------------------------------------------------

def _run(*cases, completed=True, reason="ran"):
    from executor.sandbox import CaseResult
    return RunResult(completed, reason, "os", tuple(CaseResult(**c) for c in cases), 0, "", "", 0.1)


def test_judge_is_strict_about_types():
    exp = (CodeCase((2, 3), 5), CodeCase((1,), True))
    assert judge(_run({"value": 5}, {"value": True}), exp) == Verdict(1.0, "passed", "os")
    assert judge(_run({"value": 5.0}, {"value": True}), exp).reason.startswith("wrong answer: case 0")
    assert judge(_run({"value": 5}, {"value": 1}), exp).reason.startswith("wrong answer: case 1")
    assert judge(_run({"value": 5}, {"error": "TypeError: x"}), exp).reason == "failed: case 1: TypeError: x"
    assert judge(_run({"value": 5}), exp).reason == "malformed results"
    assert judge(_run(completed=False, reason="timeout: wall limit 2 s"), exp).reward == 0.0


def test_classify_refused_header_and_garbage_streams():
    lim = SandboxLimits()
    refused = b'{"isolation":"none","refused":"OS isolation unavailable: not root"}\n'
    ok, reason, iso, _ = _classify(4, False, refused, len(refused), "", 0, 1, lim)
    assert (ok, iso) == (False, "none") and reason.startswith("refused: OS isolation unavailable")
    head = b'{"isolation":"os"}\n'
    for body, want in ((b"", "exited before the results were written"),
                       (b"[" * 100000 + b"\n", "malformed results"),
                       (b'{"cases":[{"value":1,"error":"x"}]}\n', "malformed results"),
                       (b'{"cases":[{"value":1},{"value":2}]}\n', "malformed results"),
                       (b'{"cases":[{"value":1}]}\n', "ran")):
        assert _classify(0, False, head + body, 100, "", 0, 1, lim)[1] == want, body[:40]
    assert _classify(0, False, b"garbage\n", 8, "", 0, 1, lim)[1].startswith("launcher failed")
    assert _classify(-signal.SIGSEGV, False, head, 20, "", 0, 1, lim)[1] == "crashed: killed by SIGSEGV"


def test_weak_mode_must_be_asked_for():
    with pytest.raises(ValueError):
        SandboxLimits(isolation="python")


@pytest.mark.skipif(ROOT, reason="as root OS isolation is available, so nothing is refused")
def test_without_os_isolation_code_is_refused_unless_allowed():
    r = run_function(GOOD, "add", CASES, SandboxLimits(allow_weak=False))
    assert r.isolation == "none" and r.reason.startswith("refused: OS isolation unavailable")
    assert run_function(GOOD, "add", CASES, SandboxLimits(allow_weak=True)).isolation == "python"


NONROOT_SCRIPT = """
import json, os
from executor.sandbox import SandboxLimits, run_function
src = "import os\\ndef add(a, b):\\n    return a + b\\n"
strict = run_function(src, "add", [(1, 2)], SandboxLimits())
weak = run_function(src, "add", [(1, 2)], SandboxLimits(allow_weak=True))
kill = run_function("import os\\ndef add(a, b):\\n    os.kill(os.getppid(), 9)\\n", "add", [(1, 2)],
                    SandboxLimits(allow_weak=True))
print(json.dumps([os.geteuid(), strict.isolation, strict.reason, weak.isolation,
                  weak.cases[0].value, kill.cases[0].error]))
"""


@pytest.mark.skipif(not ROOT or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_a_non_root_parent_is_refused_unless_weak_is_allowed():
    """A real non-root run: the parent in a fresh user namespace (euid 65534, no CAP_SYS_ADMIN)."""
    import json
    import subprocess
    import sys
    proc = subprocess.run(["unshare", "-U", sys.executable, "-c", NONROOT_SCRIPT],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("user namespaces are not permitted here")
    euid, iso, reason, weak_iso, value, kill_error = json.loads(proc.stdout.splitlines()[-1])
    assert euid != 0 and iso == "none" and reason.startswith("refused: OS isolation unavailable")
    assert (weak_iso, value) == ("python", 3)
    assert "not allowed" in kill_error


def test_make_task_refuses_code_without_isolation(monkeypatch):
    import executor.sandbox as sandbox
    from rlvr_sim.errors import UserError
    from rlvr_sim.executor_spec import ExecutorSpec
    from executor.tasks import make_task

    refused = RunResult(False, "refused: OS isolation unavailable: not root", "none", (), 4, "", "", 0.1)
    monkeypatch.setattr(sandbox, "probe_isolation", lambda limits: refused)
    with pytest.raises(UserError, match="--allow-weak-sandbox"):
        make_task(ExecutorSpec(task="code"))


def test_probe_reports_the_isolation_runs_get():
    assert probe_isolation(LIMITS).isolation == ("os" if ROOT else "python")


@pytest.mark.skipif(not ROOT, reason="forcing the weak mode next to OS isolation needs root")
def test_weak_mode_closes_the_known_holes(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.chmod(tmp_path, 0o755)
    assert run(GOOD, WEAK).completed and run(GOOD, WEAK).isolation == "python"
    attacks = (
        "import os\nos.fork()\n", "import socket\nsocket.socket()\n",
        "open('/work/escape.txt', 'w')\n", "import subprocess\nsubprocess.run(['true'])\n",
        f"import os\nos.close(os.open({str(victim)!r}, os.O_WRONLY | os.O_TRUNC))\n",
        f"import os\nos.truncate({str(victim)!r}, 0)\n",
        f"import os\nos.chmod({str(victim)!r}, 0o777)\n",
        "import _posixsubprocess\n", "import ctypes\n",
        "import os\nos.kill(os.getppid(), 9)\n", "import os\nos.killpg(os.getpgid(os.getppid()), 9)\n",
        "open('/proc/self/environ').read()\n",
    )
    for attack in attacks:
        reason = failed(attack, WEAK)
        assert reason.startswith("failed"), (attack, reason)
    assert victim.read_text() == "keep me" and oct(victim.stat().st_mode & 0o777) == "0o644"
    assert not os.path.exists("/work/escape.txt")


# --- the verifier pool ------------------------------------------------------------------------

ADD = Problem(index=0, prompt="# return a plus b\ndef add(a, b):\n",
              answer='{"function": "add", "cases": [[[2, 3], 5], [[0, 0], 0]]}',
              reference="    return a + b", data=(CodeCase((2, 3), 5), CodeCase((0, 0), 0)))
ATTACKS = {
    "loop": "    while True: pass",
    "fork": "    import os\n    while True: os.fork()",
    "alloc": "    x = bytearray(10 * 2**30)",
    "print": "    import sys\n    while True: sys.stdout.write('x' * 2**20)",
    "net": "    import socket; socket.create_connection(('1.1.1.1', 53), timeout=1)",
}


def test_verifier_pool_scores_attacks_zero_and_keeps_working():
    task = CodeTask(limits=LIMITS)
    with VerifierPool(task, 2) as pool:
        items = [(ADD, body) for body in ATTACKS.values()] + [(ADD, ADD.reference)]
        results = pool.score(items)
        assert [r.reward for r in results] == [0.0] * len(ATTACKS) + [1.0]
        assert all(r.reason for r in results)
        assert all(r.latency_s > 0 and r.worker_id >= 0 for r in results)
        assert {r.isolation for r in results} == {"os" if ROOT else "python"}
        again = pool.score([(ADD, ADD.reference)] * 4)
        assert [r.reward for r in again] == [1.0] * 4


def test_trace_records_the_isolation_of_each_check():
    tracer = Tracer("t")
    rs = [VerifyResult(i, 1.0, "passed", 0, 1.0, 2.0, iso) for i, iso in enumerate(["os", "os", "python"])]
    tracer.verify_events(0, 0, rs)
    assert tracer.events[0].extra["isolation"] == {"os": 2, "python": 1}
    tracer.verify_events(1, 0, [VerifyResult(0, 1.0, "correct", 0, 1.0, 2.0)])
    assert "isolation" not in tracer.events[1].extra


class CrashingTask:
    """A checker that kills its own worker process on 'crash' and spins on 'hang'."""

    name = "crash"

    def check(self, problem, completion):
        if completion == "crash":
            os._exit(1)
        if completion == "hang":
            while True:
                pass
        if completion == "ignore-alarm":
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
            time.sleep(60)
        return Verdict(1.0, "ok")


def test_verifier_pool_survives_a_dying_worker():
    problem = Problem(index=0, prompt="", answer="", reference="")
    with VerifierPool(CrashingTask(), 2) as pool:
        results = pool.score([(problem, "fine"), (problem, "crash")])
        crashed = [r for r in results if r.reason.startswith("verifier worker crashed")]
        assert crashed and all(r.reward == 0.0 for r in crashed)
        assert pool.restarts == 1
        assert [r.reward for r in pool.score([(problem, "fine")] * 3)] == [1.0] * 3


def test_verifier_pool_item_timeout():
    problem = Problem(index=0, prompt="", answer="", reference="")
    with VerifierPool(CrashingTask(), 2, item_timeout_s=0.5) as pool:
        results = pool.score([(problem, "hang"), (problem, "fine"), (problem, "hang"), (problem, "fine")])
        assert [r.reward for r in results] == [0.0, 1.0, 0.0, 1.0]
        assert results[0].reason.startswith("verifier timeout")
        assert pool.restarts == 0
        assert [r.reward for r in pool.score([(problem, "fine")] * 2)] == [1.0] * 2


def test_verifier_pool_hard_timeout_kills_a_worker_that_blocks_the_alarm(monkeypatch):
    import executor.verifier as verifier
    monkeypatch.setattr(verifier, "HARD_GRACE_S", 2.0)   # window 2.5 s: room for a loaded machine
    problem = Problem(index=0, prompt="", answer="", reference="")
    with VerifierPool(CrashingTask(), 1, item_timeout_s=0.5) as pool:
        pool.warm_up()
        futures = [pool.submit(0, problem, "ignore-alarm")]
        time.sleep(0.3)            # the stuck item reaches the worker before the next is queued
        futures += [pool.submit(1, problem, "fine"), pool.submit(2, problem, "fine")]
        results = pool.gather(futures)
        assert [r.reward for r in results] == [0.0, 1.0, 1.0]      # the queued ones are rerun
        assert results[0].reason.startswith("verifier hard timeout")
        assert pool.restarts == 1
        assert [r.reward for r in pool.score([(problem, "fine")] * 2)] == [1.0] * 2
