"""Runs inside the sandbox subprocess (started as `python -I -S -B _sandbox_launcher.py JOB`).

Standalone on purpose (no imports from the package: `-I -S` hides site-packages). Steps:
1. read the job (solution, tests, nonce, limits) while still privileged;
2. OS isolation when possible (root / CAP_SYS_ADMIN): new network namespace (no interface is
   up: no network at all) and new mount namespace with fresh private tmpfs over /tmp, /var/tmp,
   /dev/shm and /run/lock; then drop to user `nobody` (no supplementary groups). Otherwise a
   Python audit hook blocks sockets, process creation, ctypes and writes outside the work dir;
3. resource limits: address space, CPU seconds, file size (caps output too), open files,
   no core dumps, and RLIMIT_NPROC=0 after the uid change (no fork, no threads-as-processes);
4. run the solution then the tests in one namespace; print the nonce only if both finished.
"""

import ctypes
import json
import os
import resource
import sys
import traceback

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
NOBODY = 65534
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# Imported while privileged: where the interpreter lives in a directory `nobody` cannot read
# (e.g. pyenv under /root), solutions can still use these standard modules.
PRELOAD = ("math", "re", "collections", "itertools", "functools", "string", "heapq", "bisect",
           "json", "random", "socket", "time", "typing", "dataclasses", "fractions", "decimal",
           "statistics", "operator", "copy", "io", "struct", "array", "subprocess", "threading",
           "encodings.idna", "traceback")


def os_isolation(tmpfs_bytes):
    """Network + mount namespaces, private tmpfs dirs, uid nobody. Returns the work dir or None."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    for name in PRELOAD:
        __import__(name)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        return None
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate / failed")
    opts = f"size={tmpfs_bytes},mode=1777".encode()
    for d in PRIVATE_TMPFS:
        if os.path.isdir(d) and libc.mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {d} failed")
    work = "/tmp/work"
    os.mkdir(work, 0o700)
    os.chown(work, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return work


def python_isolation(work):
    """Fallback without namespaces: an audit hook (cannot be removed) denies escapes."""
    work = os.path.realpath(work)
    denied = {"socket.__new__", "socket.connect", "socket.bind", "subprocess.Popen", "os.system",
              "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "ctypes.dlopen",
              "ctypes.dlsym", "os.remove", "os.rmdir", "os.rename", "shutil.rmtree"}

    def hook(event, args):
        if event in denied:
            if event in ("os.remove", "os.rmdir", "os.rename", "shutil.rmtree"):
                path = os.path.realpath(str(args[0]))
                if path.startswith(work + os.sep):
                    return
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            path = os.path.realpath(str(args[0]))
            writing = any(c in (args[1] or "r") for c in "wax+")
            if path.startswith("/proc") or (writing and not path.startswith(work + os.sep)):
                raise PermissionError(f"sandbox: open({path!r}, {args[1]!r}) is not allowed")

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


def flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    limits = job["limits"]
    work = os_isolation(limits["tmpfs_bytes"]) if job["isolation"] != "python" else None
    if work is None:
        work = job["fallback_dir"]
        python_isolation(work)
    os.chdir(work)
    set_limits(limits)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(job["solution"], "solution.py", "exec"), namespace)
        exec(compile(job["tests"], "tests.py", "exec"), namespace)
    except SystemExit as exc:
        print(f"SystemExit: exited with {exc.code!r} before the tests finished", file=sys.stderr)
        flush()
        os._exit(3)
    except BaseException:
        lines = traceback.format_exc().strip().splitlines()
        sys.stderr.write("\n".join(lines[-6:]) + "\n")
        flush()
        os._exit(1)
    sys.stdout.write("\n" + job["nonce"] + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
