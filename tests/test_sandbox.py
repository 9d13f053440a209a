"""One test per attack on the code sandbox: each is contained, scores 0 with a reason, and the
verifier pool keeps scoring correct solutions afterwards.

OS-level isolation (network/mount namespaces, uid nobody) needs root; without it the sandbox
falls back to an audit hook, and the tests still check containment and the reward.
"""

import os
import socket
import threading
import time

import pytest

from executor.sandbox import SandboxLimits, run_python
from executor.tasks import Problem
from executor.tasks.code import CodeTask
from executor.verifier import VerifierPool

LIMITS = SandboxLimits(wall_s=3.0, cpu_s=1, memory_bytes=256 * 2**20, output_bytes=32 * 2**10)
TESTS = "assert add(2, 3) == 5"
GOOD = "def add(a, b):\n    return a + b\n"


def check(attack: str, tests: str = TESTS):
    result = run_python(GOOD + attack, tests, LIMITS)
    assert not result.ok
    assert result.reason and result.reason != "passed"
    return result


def test_correct_solution_passes():
    r = run_python(GOOD, TESTS, LIMITS)
    assert r.ok and r.reason == "passed"
    assert not run_python("def add(a, b):\n    return a - b\n", TESTS, LIMITS).ok


def test_infinite_loop_hits_cpu_limit():
    r = check("while True:\n    pass\n")
    # the CPU limit fires first on an idle machine; on a loaded one the wall limit may
    assert r.reason.startswith(("cpu time limit", "timeout"))


def test_sleeping_forever_hits_wall_limit():
    t0 = time.monotonic()
    r = check("import time\ntime.sleep(60)\n")
    assert r.reason.startswith("timeout")
    assert time.monotonic() - t0 < 30


def test_fork_bomb_cannot_fork():
    r = check("import os\nwhile True:\n    os.fork()\n")
    assert "BlockingIOError" in r.reason or "not allowed" in r.reason


def test_subprocess_cannot_start():
    r = check("import subprocess\nsubprocess.run(['/bin/true'])\n")
    assert "failed" in r.reason


def test_ten_gigabyte_allocation_hits_memory_limit():
    r = check("x = bytearray(10 * 2**30)\n")
    assert r.reason.startswith("memory limit")


def test_cannot_write_or_delete_outside_work_dir(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    attack = (f"import os\nopen({str(tmp_path / 'new.txt')!r}, 'w').write('x')\n"
              f"os.remove({str(victim)!r})\n")
    r = check(attack)
    assert "failed" in r.reason
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "new.txt").exists()
    r = check("import os\nos.remove('/work/main/pyproject.toml' if os.path.exists('/work') else '/etc/hostname')\n")
    assert "failed" in r.reason


def test_writes_inside_work_dir_are_allowed():
    r = run_python(GOOD + "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n",
                   TESTS, LIMITS)
    assert r.ok, r.reason


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
    r = check(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
              "s.sendall(b'leak')\n")
    server.close()
    t.join()
    assert got == []
    assert "failed" in r.reason


def test_parent_environment_secrets_are_not_readable(monkeypatch):
    monkeypatch.setenv("RLVR_TEST_SECRET", "hunter2-secret")
    attack = ("import os\n"
              "print(dict(os.environ))\n"
              "print(open('/proc/%d/environ' % os.getppid()).read())\n"
              "assert 'hunter2-secret' in str(os.environ)\n")
    r = check(attack)
    assert "hunter2-secret" not in r.stdout + r.stderr
    assert "RLVR_TEST_SECRET" not in r.stdout


def test_printing_a_gigabyte_is_capped():
    t0 = time.monotonic()
    r = check("import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2**20)\n")
    assert r.reason.startswith("output limit")
    assert len(r.stdout) <= LIMITS.output_bytes
    assert time.monotonic() - t0 < 30


def test_exiting_early_does_not_pass():
    r = check("import os\nos._exit(0)\n")
    assert r.reason == "exited before the tests ran"
    r = check("raise SystemExit(0)\n")
    assert "SystemExit" in r.reason


ATTACKS = {
    "loop": "    while True: pass",
    "fork": "    import os\n    while True: os.fork()",
    "alloc": "    x = bytearray(10 * 2**30)",
    "print": "    import sys\n    while True: sys.stdout.write('x' * 2**20)",
    "net": "    import socket; socket.create_connection(('1.1.1.1', 53), timeout=1)",
}


def test_verifier_pool_scores_attacks_zero_and_keeps_working():
    task = CodeTask(limits=LIMITS)
    problem = Problem(index=0, prompt="# return a plus b\ndef add(a, b):\n", answer=TESTS,
                      reference="    return a + b")
    with VerifierPool(task, 2) as pool:
        items = [(problem, body) for body in ATTACKS.values()] + [(problem, problem.reference)]
        results = pool.score(items)
        assert [r.reward for r in results] == [0.0] * len(ATTACKS) + [1.0]
        assert all(r.reason for r in results)
        assert all(r.latency_s > 0 and r.worker_id >= 0 for r in results)
        again = pool.score([(problem, problem.reference)] * 4)
        assert [r.reward for r in again] == [1.0] * 4
    assert os.path.exists(__file__)


class CrashingTask:
    """A checker that kills its own worker process on the completion 'crash'."""

    name = "crash"

    def check(self, problem, completion):
        from executor.tasks import Verdict
        if completion == "crash":
            os._exit(1)
        return Verdict(1.0, "ok")


def test_verifier_pool_survives_a_dying_worker():
    problem = Problem(index=0, prompt="", answer="", reference="")
    with VerifierPool(CrashingTask(), 2) as pool:
        results = pool.score([(problem, "fine"), (problem, "crash")])
        crashed = [r for r in results if r.reason.startswith("verifier worker crashed")]
        assert crashed and all(r.reward == 0.0 for r in crashed)
        assert pool.restarts == 1
        assert [r.reward for r in pool.score([(problem, "fine")] * 3)] == [1.0] * 3


@pytest.mark.skipif(os.geteuid() != 0, reason="the python-only fallback is what runs without root")
def test_python_fallback_isolation_also_contains():
    limits = SandboxLimits(wall_s=3.0, cpu_s=1, memory_bytes=256 * 2**20, isolation="python")
    assert run_python(GOOD, TESTS, limits).ok
    for attack in ("import os\nos.fork()\n", "import socket\nsocket.socket()\n",
                   "open('/work/escape.txt', 'w')\n", "import subprocess\nsubprocess.run(['true'])\n"):
        r = run_python(GOOD + attack, TESTS, limits)
        assert not r.ok and "not allowed" in r.reason, (attack, r.reason)
