"""Length and latency distributions of a scenario (prompt/response tokens, verifier seconds).

Each spec is a small pydantic model chosen by its `dist` key and draws seeded samples with
`sample(rng, n)`. Token distributions are sampled with `sample_tokens` (integers >= 1).

- `fixed{value}`: always `value`.
- `uniform{low, high}`: uniform on [low, high].
- `lognormal{mean, sigma, cap}`: log-normal whose *uncapped* mean is `mean` (mu = ln(mean) -
  sigma^2/2), then clipped at `cap` (None: no cap). Long-tailed RL response lengths.
- `empirical{values | path}`: resamples the given values with replacement; `path` is a text or
  CSV file of numbers, one per line (first column), resolved against the scenario's folder.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator


class _Dist(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` seeded draws."""

    def sample_tokens(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Integer token counts (rounded, at least 1)."""
        counts: np.ndarray = np.maximum(np.rint(self.sample(rng, n)), 1).astype(np.int64)
        return counts

    @abstractmethod
    def mean_value(self) -> float:
        """Expected value of a draw."""

    @abstractmethod
    def max_value(self) -> float:
        """Largest value a sample can take (inf when unbounded)."""


class Fixed(_Dist):
    dist: Literal["fixed"] = "fixed"
    value: float = Field(ge=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))

    def mean_value(self) -> float:
        return float(self.value)

    def max_value(self) -> float:
        return float(self.value)


class Uniform(_Dist):
    dist: Literal["uniform"] = "uniform"
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _order(self) -> "Uniform":
        if self.high < self.low:
            raise ValueError(f"high={self.high} is below low={self.low}; swap them")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def mean_value(self) -> float:
        return (self.low + self.high) / 2

    def max_value(self) -> float:
        return float(self.high)


class LogNormal(_Dist):
    dist: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0, description="mean of the uncapped distribution")
    sigma: float = Field(ge=0, le=5, description="std of log(x)")
    cap: float | None = Field(None, gt=0, description="values above are clipped to cap")

    @property
    def mu(self) -> float:
        return math.log(self.mean) - self.sigma**2 / 2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.lognormal(self.mu, self.sigma, n)
        return np.minimum(x, self.cap) if self.cap is not None else x

    def mean_value(self) -> float:
        """E[min(X, cap)] in closed form (partial expectation of the log-normal)."""
        if self.cap is None or self.sigma == 0:
            return min(self.mean, self.cap) if self.cap is not None else self.mean
        z = (math.log(self.cap) - self.mu) / self.sigma

        def phi(t: float) -> float:
            return 0.5 * (1 + math.erf(t / math.sqrt(2)))
        below = self.mean * phi(z - self.sigma)
        return below + self.cap * (1 - phi(z))

    def max_value(self) -> float:
        return float(self.cap) if self.cap is not None else math.inf


class Empirical(_Dist):
    dist: Literal["empirical"] = "empirical"
    values: list[float] | None = Field(None, description="the sample to resample")
    path: str | None = Field(None, description="file of numbers, one per line (first CSV column)")

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> "Empirical":
        if self.values is None and self.path is None:
            raise ValueError("give `values: [...]` or `path: file.csv`")
        if self.values is None and self.path is not None:
            path = Path(self.path).expanduser()
            base = (info.context or {}).get("base_dir") if info is not None else None
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            self.path = str(path)
            self.values = _read_numbers(path)
        if not self.values:
            raise ValueError("empirical distribution has no values")
        if min(self.values) < 0:
            raise ValueError(f"negative value {min(self.values)}; lengths and latencies are >= 0")
        return self

    @property
    def sample_values(self) -> list[float]:
        """The values (given, or read from `path` at validation)."""
        if self.values is None:
            raise ValueError("empirical distribution was not validated (no values)")
        return self.values

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self.sample_values, dtype=float), size=n, replace=True)

    def mean_value(self) -> float:
        return float(np.mean(self.sample_values))

    def max_value(self) -> float:
        return float(np.max(self.sample_values))


def _read_numbers(path: Path) -> list[float]:
    """Numbers of a text/CSV file (first column; `#` comments, blank lines and one header line
    skipped). ValueError naming `file:line` for a cell that is not a finite number, and the
    limits of `rlvr_sim.safe_read.read_user_text` (size, regular file, UTF-8)."""
    from rlvr_sim.errors import UserError
    from rlvr_sim.safe_read import echo, read_user_text

    try:
        text = read_user_text(path, "file", "give a path relative to the scenario file")
    except UserError as exc:
        raise ValueError(str(exc)) from None
    out: list[float] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        cell = line.split(",")[0].strip()
        if not cell or cell.startswith("#"):
            continue
        try:
            value = float(cell)
        except ValueError:
            if out or line_no > 1:  # a header line is allowed
                raise ValueError(f"{path}:{line_no}: {echo(cell)} is not a number ; fix or "
                                 "delete that line") from None
            continue
        if not math.isfinite(value):
            raise ValueError(f"{path}:{line_no}: {cell} is not a finite number ; fix or delete "
                             "that line")
        out.append(value)
    return out


Distribution = Annotated[Union[Fixed, Uniform, LogNormal, Empirical], Field(discriminator="dist")]
