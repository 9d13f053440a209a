"""Run untrusted Python (a solution + its unit tests) in a contained subprocess.

Containment (see `_sandbox_launcher.py` for the mechanics):
- wall-clock limit (the parent kills the process group), CPU-seconds limit (RLIMIT_CPU),
  address-space limit (RLIMIT_AS), no new processes (RLIMIT_NPROC=0 as user nobody);
- no network: a fresh network namespace with no interface up (root / CAP_SYS_ADMIN);
- file system: fresh private tmpfs over /tmp, /var/tmp, /dev/shm, /run/lock; the work dir is a
  fresh tmpfs dir; running as `nobody`, nothing else is writable;
- environment: only PATH, LANG and HOME; `/proc/<pid>/environ` of root processes is unreadable;
- output: stdout/stderr go to files capped by RLIMIT_FSIZE; only `output_bytes` are read back.
Without root the same limits apply, and a Python audit hook replaces the namespaces (weaker:
documented, not OS-enforced). Every failure is a `SandboxResult` with ok=False and a reason,
never an exception.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_sandbox_launcher.py")
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed run. `isolation`: auto (OS when possible) | python (audit hook only)."""

    wall_s: float = 2.0
    cpu_s: int = 2
    memory_bytes: int = 512 * 2**20
    output_bytes: int = 64 * 2**10
    tmpfs_bytes: int = 16 * 2**20
    isolation: str = "auto"


@dataclass(frozen=True)
class SandboxResult:
    """ok: the solution and the tests ran to the end. reason says why not otherwise."""

    ok: bool
    reason: str
    exit_code: int | None
    stdout: str
    stderr: str
    wall_s: float


def _read_capped(path: Path, cap: int) -> tuple[str, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        return f.read(cap).decode("utf-8", "replace"), size


def _reason(code: int | None, timed_out: bool, stdout: str, stderr: str, out_size: int,
            nonce: str, limits: SandboxLimits) -> tuple[bool, str]:
    """Classify how the run ended (first match wins)."""
    if timed_out:
        return False, f"timeout: wall limit {limits.wall_s:g} s"
    if code == -signal.SIGXCPU or code == -signal.SIGKILL and "cpu" in stderr.lower():
        return False, f"cpu time limit {limits.cpu_s} s"
    if code == -signal.SIGXFSZ or out_size >= limits.output_bytes:
        return False, f"output limit {limits.output_bytes} bytes"
    if "MemoryError" in stderr:
        return False, f"memory limit {limits.memory_bytes} bytes"
    if code == 0 and stdout.rstrip().endswith(nonce):
        return True, "passed"
    if code == 0:
        return False, "exited before the tests ran"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
    return False, f"failed: {last[:200]}"


def run_python(solution: str, tests: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `solution` then `tests` (plain asserts) in the sandbox; never raises for bad code."""
    nonce = "SANDBOX-OK-" + secrets.token_hex(8)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlvr-sandbox-") as d:
        d = Path(d)
        job = d / "job.json"
        job.write_text(json.dumps({"solution": solution, "tests": tests, "nonce": nonce,
                                   "limits": asdict(limits), "isolation": limits.isolation,
                                   "fallback_dir": str(d / "work")}))
        (d / "work").mkdir()
        timed_out = False
        with open(d / "stdout", "wb") as out, open(d / "stderr", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(LAUNCHER), str(job)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=CLEAN_ENV, cwd=d,
                start_new_session=True, close_fds=True)
            try:
                code = proc.wait(timeout=limits.wall_s + 0.5)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait()
        stdout, out_size = _read_capped(d / "stdout", limits.output_bytes)
        stderr, err_size = _read_capped(d / "stderr", limits.output_bytes)
    ok, reason = _reason(code, timed_out, stdout, stderr, max(out_size, err_size), nonce, limits)
    return SandboxResult(ok=ok, reason=reason, exit_code=code, stdout=stdout[-2000:],
                         stderr=stderr[-2000:], wall_s=time.perf_counter() - start)
