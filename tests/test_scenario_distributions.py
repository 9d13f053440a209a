"""Length/latency distributions: seeded sampling, closed-form means, caps."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from rlvr_sim.distributions import Distribution, Empirical, Fixed, LogNormal, Uniform
from rlvr_sim.scenario import load_scenario

DIST = TypeAdapter(Distribution)


def test_discriminated_by_dist_key():
    assert isinstance(DIST.validate_python({"dist": "fixed", "value": 3}), Fixed)
    assert isinstance(DIST.validate_python({"dist": "uniform", "low": 1, "high": 2}), Uniform)
    with pytest.raises(ValidationError):
        DIST.validate_python({"dist": "lognormal", "mean": 10, "sigma": 1, "extra": 1})
    with pytest.raises(ValidationError, match="swap"):
        DIST.validate_python({"dist": "uniform", "low": 5, "high": 1})


@given(mean=st.floats(1, 1e4), sigma=st.floats(0.05, 1.5), cap_factor=st.floats(0.5, 20),
       seed=st.integers(0, 2**32 - 1))
def test_lognormal_capped_mean_matches_samples(mean, sigma, cap_factor, seed):
    d = LogNormal(mean=mean, sigma=sigma, cap=mean * cap_factor)
    x = d.sample(np.random.default_rng(seed), 20_000)
    assert x.max() <= d.cap and x.min() > 0
    assert d.mean_value() <= min(mean, d.cap) + 1e-9
    # standard error of a capped log-normal mean with sigma <= 1.5 over 20k draws is < 3%
    assert x.mean() == pytest.approx(d.mean_value(), rel=0.06)


def test_seeded_and_integer_tokens():
    d = LogNormal(mean=1000, sigma=1.0, cap=4096)
    a = d.sample_tokens(np.random.default_rng(7), 100)
    b = d.sample_tokens(np.random.default_rng(7), 100)
    assert (a == b).all() and a.dtype == np.int64 and a.min() >= 1 and a.max() <= 4096
    assert Fixed(value=0).sample_tokens(np.random.default_rng(0), 3).tolist() == [1, 1, 1]
    assert LogNormal(mean=10, sigma=0).mean_value() == 10
    assert math.isinf(LogNormal(mean=10, sigma=1).max_value())


def test_empirical_values_and_bad_files(tmp_path):
    e = Empirical(values=[1, 2, 3])
    assert set(e.sample(np.random.default_rng(0), 50)) <= {1, 2, 3} and e.mean_value() == 2
    (tmp_path / "bad.csv").write_text("1\nfoo\n")
    with pytest.raises(ValidationError, match="not a number"):
        Empirical(path=str(tmp_path / "bad.csv"))
    with pytest.raises(ValidationError, match="not found"):
        Empirical(path=str(tmp_path / "missing.csv"))


def test_unbounded_response_uses_the_context_window():
    sc = load_scenario({"model": "qwen3-8b", "workload": {
        "response_tokens": {"dist": "lognormal", "mean": 1000, "sigma": 1.0}}}, check_fit=False)
    assert sc.max_context_tokens == 40960
