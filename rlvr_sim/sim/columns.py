"""Finished and verified samples of one step as columns (numpy arrays), for the whole-batch path.

The event engine hands samples around one `Finished` / `Verified` named tuple at a time; the
whole-batch sync path (rlvr_sim.sim.batch_sync) produces a step's samples as arrays and keeps them
as arrays through arrival ordering, the verifier pool and the recorder. The fields and their
meaning are those of `Finished` (rlvr_sim.sim.sampler) and `Verified` (rlvr_sim.sim.verifier);
`fields()` gives them by the named tuple's field index, as the recorder reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields as dc_fields
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from rlvr_sim.sim.sampler import Finished


@dataclass(frozen=True)
class FinishedColumns:
    """Samples of step `step` whose generation completed (one entry per sample)."""

    step: int
    sample: np.ndarray            # int64
    replica: np.ndarray           # int64
    prompt_tokens: np.ndarray     # int64
    output_tokens: np.ndarray     # int64
    version: np.ndarray           # int64: policy version when generation started
    versions_spanned: np.ndarray  # int64
    start_s: np.ndarray           # float64
    end_s: np.ndarray             # float64

    def __len__(self) -> int:
        return len(self.sample)

    @classmethod
    def from_finished(cls, step: int, finished: Sequence["Finished"]) -> "FinishedColumns":
        """Columns of a list of `Finished` of one step."""
        n = len(finished)
        cols = list(zip(*finished)) if n else [()] * 9
        ints = [np.fromiter(cols[i], dtype=np.int64, count=n) for i in (0, 2, 3, 4, 5, 6)]
        floats = [np.fromiter(cols[i], dtype=float, count=n) for i in (7, 8)]
        return cls(step, *ints, *floats)

    @classmethod
    def concat(cls, step: int, blocks: Sequence["FinishedColumns"]) -> "FinishedColumns":
        if len(blocks) == 1:
            return blocks[0]
        names = [f.name for f in dc_fields(cls)][1:]
        return cls(step, *(np.concatenate([getattr(b, name) for b in blocks]) for name in names))

    def take(self, index: np.ndarray) -> "FinishedColumns":
        names = [f.name for f in dc_fields(self)][1:]
        return FinishedColumns(self.step, *(getattr(self, name)[index] for name in names))

    def arrival_order(self) -> np.ndarray:
        """The order the verifier pool serves them in: (end_s, replica, sample), as
        rlvr_sim.sim.verifier.arrival_order. Blocks of one replica each, in replica order, each
        already in (end_s, sample) order (what the whole-batch path produces) are merged by a
        stable sort on end_s alone (sorted runs: cheap); anything else by the full key."""
        end, rep, sample = self.end_s, self.replica, self.sample
        if len(end) > 1:
            same = rep[1:] == rep[:-1]
            runs = (bool((rep[1:] >= rep[:-1]).all())
                    and bool((~same | (end[1:] > end[:-1])
                              | ((end[1:] == end[:-1]) & (sample[1:] > sample[:-1]))).all()))
            if runs:
                return np.argsort(end, kind="stable")
        return np.lexsort((sample, rep, end))

    def fields(self) -> dict[int, np.ndarray]:
        """`Finished` field index -> float array (the recorder's column view)."""
        n = len(self)
        return {0: self.sample.astype(float), 1: np.full(n, float(self.step)),
                2: self.replica.astype(float), 3: self.prompt_tokens.astype(float),
                4: self.output_tokens.astype(float), 5: self.version.astype(float),
                6: self.versions_spanned.astype(float), 7: self.start_s, 8: self.end_s}


@dataclass(frozen=True)
class VerifiedColumns:
    """Rewards of step `step`'s samples, in the order served."""

    step: int
    sample: np.ndarray      # int64
    worker: np.ndarray      # int64
    start_s: np.ndarray     # float64
    end_s: np.ndarray       # float64 (reward known: service end + rpc)
    timed_out: np.ndarray   # bool
    failed: np.ndarray      # bool

    def __len__(self) -> int:
        return len(self.sample)

    def fields(self) -> dict[int, np.ndarray]:
        """`Verified` field index -> float array (the recorder's column view)."""
        n = len(self)
        return {0: self.sample.astype(float), 1: np.full(n, float(self.step)),
                2: self.worker.astype(float), 3: self.start_s, 4: self.end_s,
                5: self.timed_out.astype(float), 6: self.failed.astype(float)}
