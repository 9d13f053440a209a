"""calibration.gpu_kernels: the summary is a hand-checkable median over large calls, and the CPU
path of the kernel benchmark runs end to end (the CUDA path ran on an H200: profiles/h200.kernels.csv)."""

import csv
from pathlib import Path

import pytest

from calibration.gpu_kernels import KernelRow, main, summarize


def _row(kernel: str, backend: str, bytes_moved: float, seconds: float) -> KernelRow:
    return KernelRow(kernel, backend, 1, 0, 0, 0, 0, 0, 0, bytes_moved, seconds,
                     bytes_moved / seconds)


def test_summary_is_the_median_fraction_over_calls_of_at_least_256_mib():
    big = 512 * 2**20
    rows = [_row("attention", "flash", big, big / 1e12),      # 1e12 B/s
            _row("attention", "flash", big, big / 2e12),      # 2e12
            _row("attention", "flash", big, big / 4e12),      # 4e12
            _row("attention", "flash", 1024, 1e-5),           # small call: ignored
            _row("gemm", "cublas", 1024, 1e-6)]               # only small calls: no entry
    out = summarize(rows, hbm_bytes_per_s=4e12)
    assert out == {"attention/flash": pytest.approx(0.5)}


def test_committed_h200_kernel_table_reads_back():
    path = Path(__file__).resolve().parents[1] / "profiles" / "h200.kernels.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["kernel"] for r in rows} == {"attention", "gemm"}
    assert all(float(r["seconds"]) > 0 for r in rows)


def test_cpu_run_writes_rows(tmp_path):
    out = tmp_path / "k.csv"
    assert main(["--device", "cpu", "--budget-s", "20", "--out", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert any(r["kernel"] == "gemm" for r in rows)
