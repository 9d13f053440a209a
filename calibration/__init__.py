"""Calibration: micro-benchmarks through the executor, a fitted hardware profile, validation."""
