"""Runs inside the sandbox subprocess (started as `python -I -S -B _sandbox_launcher.py JOB`).

It runs the candidate and reports plain data; it decides nothing. There is no success token and
no expected value anywhere in this process: the trusted parent (`executor.sandbox`) compares the
reported values with the expected ones it computed itself.

Standalone on purpose (no imports from the package: `-I -S` hides site-packages). Steps:
1. read the job (source, function name, argument lists, limits) while still privileged;
2. isolation. `os`: new network namespace (no interface is up: no network at all) and new
   mount namespace with fresh private tmpfs over /tmp, /var/tmp, /dev/shm and /run/lock, then
   uid/gid `nobody` (no supplementary groups); needs root / CAP_SYS_ADMIN. `python` (weak, only
   when the job allows it): an audit hook denies sockets, process creation, ctypes,
   `_posixsubprocess`, signals to other processes, and writes, truncation, mode/owner changes
   outside the work dir; as root it also drops to `nobody`. When `os` is required and fails,
   the candidate never runs (the header says `refused`);
3. resource limits: address space, CPU seconds, file size (caps stdout/stderr), open files,
   no core dumps, and RLIMIT_NPROC=0 (no fork, no threads) once the uid is not root;
4. write the header line `{"isolation": ...}` on the result pipe (the job's `result_fd`) BEFORE any
   candidate code runs, so a candidate cannot rewrite it (a pipe cannot be rewound);
5. exec the source, call the function on each argument list, encode each return value as typed
   JSON (`encode`: exact types only, so no object of the candidate's survives), write one
   results line and `os._exit(0)`.
"""

import json
import os
import resource
import sys

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
NOBODY = 65534
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# Imported while privileged: where the interpreter lives in a directory `nobody` cannot read
# (e.g. pyenv under /root), solutions can still use these standard modules.
PRELOAD = ("math", "re", "collections", "itertools", "functools", "string", "heapq", "bisect",
           "json", "random", "socket", "time", "typing", "dataclasses", "fractions", "decimal",
           "statistics", "operator", "copy", "io", "struct", "array", "subprocess", "threading",
           "encodings.idna", "traceback", "signal", "inspect", "gc")
# Never importable in the weak mode (process creation without an audit event, raw memory).
WEAK_BLOCKED_MODULES = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "multiprocessing",
                                  "_multiprocessing"})
MAX_DEPTH = 32
MAX_INT_BITS = 4096
_type, _len, _repr, _str, _isinstance = type, len, repr, str, isinstance
_write, _exit = os.write, os._exit


def encode(value, depth=0):
    """Typed JSON of a return value. Only exact builtin types (never subclasses, never objects
    of the candidate's): None, bool, int, str, float (non-finite as {"float": repr}), list,
    tuple ({"tuple": [...]}), dict with str keys ({"dict": {...}}). TypeError otherwise."""
    if depth > MAX_DEPTH:
        raise TypeError(f"result nested deeper than {MAX_DEPTH}")
    t = _type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        if value.bit_length() > MAX_INT_BITS:
            raise TypeError(f"int result longer than {MAX_INT_BITS} bits")
        return value
    if t is float:
        return value if value - value == 0.0 else {"float": _repr(value)}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"tuple": [encode(v, depth + 1) for v in value]}
    if t is dict:
        out = {}
        for k, v in value.items():
            if _type(k) is not str:
                raise TypeError("result dict has a non-str key")
            out[k] = encode(v, depth + 1)
        return {"dict": out}
    raise TypeError(f"result of type {t.__name__!s:.60} is not serialisable")


def emit(fd, obj):
    """One JSON line on the result pipe."""
    data = (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()
    while data:
        data = data[_write(fd, data):]


def preload():
    for name in PRELOAD:
        __import__(name)


def drop_to_nobody(work):
    os.chown(work, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def os_isolation(tmpfs_bytes):
    """Network + mount namespaces, private tmpfs dirs, uid nobody. (work dir, None) or
    (None, why OS isolation is unavailable)."""
    if os.geteuid() != 0:
        return None, "not root (namespaces need CAP_SYS_ADMIN)"
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    preload()
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        return None, f"unshare failed: {os.strerror(ctypes.get_errno())}"
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate / failed")
    opts = f"size={tmpfs_bytes},mode=1777".encode()
    for d in PRIVATE_TMPFS:
        if os.path.isdir(d) and libc.mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {d} failed")
    work = "/tmp/work"
    os.mkdir(work, 0o700)
    drop_to_nobody(work)
    return work, None


def python_isolation(work):
    """Weak fallback without namespaces: an audit hook (it cannot be removed) denies escapes;
    as root the process also becomes `nobody`, so RLIMIT_NPROC and file permissions apply."""
    work = os.path.realpath(work)
    if os.geteuid() == 0:
        preload()
        drop_to_nobody(work)
    for name in list(sys.modules):
        if name.split(".")[0] in WEAK_BLOCKED_MODULES or name == "subprocess":
            del sys.modules[name]
    import gc
    gc.collect()
    own_pid = os.getpid()
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    denied = {"socket.__new__", "socket.connect", "socket.bind", "subprocess.Popen", "os.system",
              "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "ctypes.dlopen",
              "ctypes.dlsym", "ctypes.cdata", "os.setxattr", "os.removexattr", "os.chflags",
              "os.lchflags", "os.chown", "os.lchown", "os.link", "os.symlink", "pty.spawn"}
    in_work = {"os.remove", "os.rmdir", "os.rename", "shutil.rmtree", "os.truncate", "os.chmod",
               "os.lchmod", "os.utime", "os.mkdir"}
    realpath, deny_prefix = os.path.realpath, work + os.sep

    def inside(path):
        if _isinstance(path, int):
            return True   # an fd the process already holds
        return realpath(os.fsdecode(path)).startswith(deny_prefix)

    def hook(event, args):
        if event in denied:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event in in_work:
            if not inside(args[0]) or (event == "os.rename" and not inside(args[1])):
                raise PermissionError(f"sandbox: {event} outside the work dir is not allowed")
        elif event in ("os.kill", "os.killpg"):
            if args[0] not in (own_pid, 0) or event == "os.killpg":
                raise PermissionError(f"sandbox: {event} of another process is not allowed")
        elif event == "import" and _str(args[0]).split(".")[0] in WEAK_BLOCKED_MODULES:
            raise PermissionError(f"sandbox: import {args[0]} is not allowed")
        elif event == "open" and args[0] is not None and not _isinstance(args[0], int):
            path = realpath(os.fsdecode(args[0]))
            flags = args[2] if _len(args) > 2 and _isinstance(args[2], int) else 0
            mode = args[1] if _isinstance(args[1], str) else ""
            writing = bool(flags & write_flags) or any(c in mode for c in "wax+")
            if path.startswith("/proc") or (writing and not path.startswith(deny_prefix)):
                raise PermissionError(f"sandbox: open({path!r}) for writing is not allowed"
                                      if writing else f"sandbox: open({path!r}) is not allowed")

    sys.addaudithook(hook)


def set_limits(limits):
    def cap(kind, value):
        resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_AS, limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    cap(resource.RLIMIT_FSIZE, limits["output_bytes"])
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_NPROC, 0)


def describe(exc):
    """`Type: message` of an exception, robust to a candidate's hostile __str__."""
    name = _type(exc).__name__
    try:
        msg = _str(exc)
    except BaseException:
        msg = "<unprintable>"
    return f"{name!s:.80}: {msg!s:.200}" if msg else name


def run_cases(fn, cases):
    out = []
    for args in cases:
        try:
            value = fn(*args)
        except BaseException as exc:
            out.append({"error": describe(exc)})
            continue
        try:
            out.append({"value": encode(value)})
        except BaseException as exc:
            out.append({"error": "unserialisable: " + describe(exc)})
    return out


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    limits, fd = job["limits"], job["result_fd"]
    isolation, why = "os", None
    work = None
    if job["isolation"] != "python":
        work, why = os_isolation(limits["tmpfs_bytes"])
    if work is None:
        if not job["allow_weak"]:
            emit(fd, {"isolation": "none", "refused": f"OS isolation unavailable: {why}"})
            _exit(4)
        isolation, work = "python", job["fallback_dir"]
        python_isolation(work)
    os.chdir(work)
    set_limits(limits)
    emit(fd, {"isolation": isolation})
    namespace = {"__name__": "__candidate__", "__builtins__": __builtins__}
    cases = [tuple(args) for args in job["cases"]]
    try:
        exec(compile(job["source"], "solution.py", "exec"), namespace)
        fn = namespace.get(job["function"])
        if not callable(fn):
            raise NameError(f"no function {job['function']!r} defined")
        results = run_cases(fn, cases)
    except BaseException as exc:
        try:
            emit(fd, {"load_error": describe(exc)})
        except BaseException:
            pass
        _exit(1)
    emit(fd, {"cases": results})
    _exit(0)


if __name__ == "__main__":
    main()
