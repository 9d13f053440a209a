"""Run an untrusted function on given inputs in a contained subprocess; get back plain data.

The sandboxed process (`_sandbox_launcher.py`) only executes the candidate source, calls one
function on each argument list and writes the return values as typed JSON lines on a pipe. It
holds no expected value and no success token, so nothing it can do makes it "pass": the caller
(the trusted parent, e.g. `executor.tasks.code`) compares the values with expected values it
computed itself, with `executor.typed_json.strict_equal` on parsed JSON only (no object
of the candidate's ever reaches this process).

Containment (mechanics in the launcher):
- wall-clock limit (this process kills the process group), CPU seconds (RLIMIT_CPU), address
  space (RLIMIT_AS), no new processes or threads (RLIMIT_NPROC=0 as user `nobody`);
- isolation `os` (needs root / CAP_SYS_ADMIN): a fresh network namespace with no interface up
  (no network), a mount namespace with private tmpfs over /tmp, /var/tmp, /dev/shm, /run/lock;
  uid `nobody`, so nothing else is writable and root processes cannot be signalled;
- environment: only PATH, LANG and HOME; the work dir is a fresh empty dir;
- output: stdout/stderr go to files capped by RLIMIT_FSIZE; the result pipe is read up to
  `result_bytes` (more: reward 0, "result too large").
When OS isolation is unavailable the run is refused (`refused: ...`) unless
`SandboxLimits.allow_weak` is set: then an audit hook stands in for the namespaces (weaker: an
in-process hook, not an OS boundary; see the launcher). Every run reports the isolation it
actually had. Every failure is a `RunResult` with completed=False and a reason, never an
exception.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from executor.typed_json import JsonValue, is_json_tree

LAUNCHER = Path(__file__).with_name("_sandbox_launcher.py")
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
ISOLATIONS = ("auto", "python")


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed run.

    isolation: "auto" (OS namespaces; refused without them unless allow_weak) or "python" (the
    weak audit-hook mode on purpose; needs allow_weak). allow_weak: accept the audit-hook
    fallback where OS isolation is unavailable (`--allow-weak-sandbox`)."""

    wall_s: float = 2.0
    cpu_s: int = 2
    memory_bytes: int = 512 * 2**20
    output_bytes: int = 64 * 2**10
    result_bytes: int = 64 * 2**10
    tmpfs_bytes: int = 16 * 2**20
    isolation: str = "auto"
    allow_weak: bool = False

    def __post_init__(self):
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"sandbox isolation={self.isolation!r}: use one of {ISOLATIONS}")
        if self.isolation == "python" and not self.allow_weak:
            raise ValueError("sandbox isolation='python' is the weak mode: set allow_weak=True")


@dataclass(frozen=True)
class CaseResult:
    """One call's outcome: its return value as typed JSON, or the error it raised."""

    value: JsonValue = None
    error: str | None = None


@dataclass(frozen=True)
class RunResult:
    """completed: every case reported (values or errors). reason says why not otherwise.
    isolation: what the run really had ("os", "python", "none" when refused, "unknown" when
    the launcher died before saying)."""

    completed: bool
    reason: str
    isolation: str
    cases: tuple[CaseResult, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    wall_s: float


def _read_capped(path: Path, cap: int) -> tuple[str, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        return f.read(cap).decode("utf-8", "replace"), size


def _drain(fd: int, deadline: float, cap: int) -> tuple[bytes, int, bool]:
    """Read the result pipe until EOF or the deadline; keep at most cap+1 bytes, count all.
    Returns (data, total bytes, timed out)."""
    chunks: list[bytes] = []
    kept, total = 0, 0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), total, True
            if not sel.select(left):
                continue
            data = os.read(fd, 65536)
            if not data:
                return b"".join(chunks), total, False
            total += len(data)
            if kept <= cap:
                chunks.append(data[:cap + 1 - kept])
                kept += len(chunks[-1])


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _parse_line(line: bytes):
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _parse_cases(doc, n: int) -> tuple[CaseResult, ...] | None:
    """The cases of a results line, or None when it is not exactly n well-formed entries."""
    if type(doc) is not dict or set(doc) != {"cases"} or type(doc["cases"]) is not list:
        return None
    if len(doc["cases"]) != n:
        return None
    out = []
    for entry in doc["cases"]:
        if type(entry) is not dict or len(entry) != 1:
            return None
        if "value" in entry and is_json_tree(entry["value"]):
            out.append(CaseResult(value=entry["value"]))
        elif type(entry.get("error")) is str:
            out.append(CaseResult(error=entry["error"][:300]))
        else:
            return None
    return tuple(out)


def _classify(code: int | None, timed_out: bool, stream: bytes, stream_total: int,
              stderr: str, out_size: int, n_cases: int, limits: SandboxLimits
              ) -> tuple[bool, str, str, tuple[CaseResult, ...]]:
    """(completed, reason, isolation, cases) of a finished run; first match wins."""
    lines = stream.split(b"\n")
    header = _parse_line(lines[0]) if lines[0] else None
    isolation = "unknown"
    if type(header) is dict and type(header.get("isolation")) is str:
        isolation = header["isolation"]
    body = [ln for ln in lines[1:] if ln]
    if timed_out:
        return False, f"timeout: wall limit {limits.wall_s:g} s", isolation, ()
    if code == -signal.SIGXCPU:
        return False, f"cpu time limit {limits.cpu_s} s", isolation, ()
    if code == -signal.SIGXFSZ or out_size >= limits.output_bytes:
        return False, f"output limit {limits.output_bytes} bytes", isolation, ()
    if stream_total > limits.result_bytes:
        return False, f"result too large: over {limits.result_bytes} bytes", isolation, ()
    if type(header) is dict and type(header.get("refused")) is str:
        return False, f"refused: {header['refused'][:200]}", "none", ()
    if isolation == "unknown":
        return False, f"launcher failed before isolation: {_exit_text(code, stderr)}", isolation, ()
    if not body:
        if "MemoryError" in stderr:
            return False, f"memory limit {limits.memory_bytes} bytes", isolation, ()
        if code == 0:
            return False, "exited before the results were written", isolation, ()
        return False, f"crashed: {_exit_text(code, stderr)}", isolation, ()
    if len(body) > 1:
        return False, f"malformed results: {len(body)} result lines", isolation, ()
    doc = _parse_line(body[0])
    if type(doc) is dict and set(doc) == {"load_error"} and type(doc["load_error"]) is str:
        err = doc["load_error"][:200]
        if err.startswith("MemoryError"):
            return False, f"memory limit {limits.memory_bytes} bytes", isolation, ()
        return False, f"failed: {err}", isolation, ()
    cases = _parse_cases(doc, n_cases)
    if cases is None:
        return False, "malformed results", isolation, ()
    if code != 0:
        return False, f"crashed after the results: {_exit_text(code, stderr)}", isolation, ()
    return True, "ran", isolation, cases


def _exit_text(code: int | None, stderr: str) -> str:
    if code is not None and code < 0:
        return f"killed by {_signal_name(code)}"
    last = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
    return f"exit code {code}" + (f" ({last})" if last else "")


def run_function(source: str, function: str, cases: Sequence[Sequence[JsonValue]],
                 limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Exec `source` in the sandbox, call `function(*args)` for each args in `cases` (JSON
    values), and return what it reported. Never raises for bad code; never judges."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlvr-sandbox-") as tmp:
        d = Path(tmp)
        os.chmod(d, 0o711)           # `nobody` (weak mode as root) may enter, not list
        work = d / "work"
        work.mkdir()
        read_fd, write_fd = os.pipe()
        job = d / "job.json"
        job.write_text(json.dumps({
            "source": source, "function": function, "cases": [list(c) for c in cases],
            "limits": asdict(limits), "isolation": limits.isolation,
            "allow_weak": limits.allow_weak, "fallback_dir": str(work), "result_fd": write_fd}))
        os.chmod(job, 0o600)
        proc = None
        try:
            with open(d / "stdout", "wb") as out, open(d / "stderr", "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-B", str(LAUNCHER), str(job)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=CLEAN_ENV, cwd=d,
                    start_new_session=True, close_fds=True, pass_fds=(write_fd,))
                os.close(write_fd)
                write_fd = -1
                deadline = time.monotonic() + limits.wall_s + 0.5
                stream, total, timed_out = _drain(read_fd, deadline, limits.result_bytes)
                if not timed_out:
                    try:
                        code = proc.wait(timeout=max(0.05, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        timed_out = True
                if timed_out:
                    os.killpg(proc.pid, signal.SIGKILL)
                    code = proc.wait()
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
            if proc is not None and proc.returncode is None:   # interrupted (e.g. item timeout)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        stdout, out_size = _read_capped(d / "stdout", limits.output_bytes)
        stderr, err_size = _read_capped(d / "stderr", limits.output_bytes)
    completed, reason, isolation, results = _classify(
        code, timed_out, stream, total, stderr, max(out_size, err_size), len(cases), limits)
    return RunResult(completed=completed, reason=reason, isolation=isolation, cases=results,
                     exit_code=code, stdout=stdout[-2000:], stderr=stderr[-2000:],
                     wall_s=time.perf_counter() - start)


def probe_isolation(limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """One trivial run: which isolation code runs would get under `limits` (refused or not)."""
    return run_function("def f():\n    return 1\n", "f", [()], limits)
