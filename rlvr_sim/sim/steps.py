"""Step state of a simulated run: one `StepRecord` per RL step, kept in a `StepLog`.

The orchestrators own it (they set a step's start, train and end times and read its batch size
and generate / verify ends); the recorder (rlvr_sim.sim.recorder) only listens: when a step is
closed it reduces the step's samples to a `StepSamples` that the orchestrator applies to its
record. `StepLog` keeps memory flat on long runs: records created on first use, the first `keep`
kept, later ones folded into running totals once finished (8 bytes per step time remain).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepSamples:
    """What a closed step's samples say (seconds from the run's start): first start and last end
    of generation, last reward, and the batch generated."""

    gen_start_s: float
    gen_end_s: float
    verify_end_s: float
    sequences: int
    prompt_tokens: int
    output_tokens: int


@dataclass
class StepRecord:
    """Times of one RL step (seconds from the run's start)."""

    step: int
    start_s: float = 0.0           # previous step's end: trainer ready for this step
    gen_start_s: float = float("inf")
    gen_end_s: float = 0.0
    verify_end_s: float = 0.0
    train_start_s: float = 0.0
    train_end_s: float = 0.0
    end_s: float = 0.0             # trainer done with weight sync (and switch back)
    switch_s: float = 0.0          # colocated: both switches of this step
    weight_sync_s: float = 0.0
    sequences: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    train_parts_s: dict[str, float] = field(default_factory=dict)

    @property
    def time_s(self) -> float:
        return self.end_s - self.start_s

    def take(self, s: "StepSamples") -> None:
        """Set the generate / verify times and batch size from the closed step's samples."""
        self.gen_start_s, self.gen_end_s, self.verify_end_s = s.gen_start_s, s.gen_end_s, s.verify_end_s
        self.sequences, self.prompt_tokens, self.output_tokens = (s.sequences, s.prompt_tokens,
                                                                  s.output_tokens)

@dataclass
class StepTotals:
    """Sums over finished steps, for means without keeping their records (see `StepLog`)."""

    steps: int = 0
    time_s: float = 0.0
    path_s: dict[str, float] = field(default_factory=dict)     # critical path parts
    span_s: dict[str, float] = field(default_factory=dict)     # phase durations
    train_parts_s: dict[str, float] = field(default_factory=dict)
    tokens: float = 0.0
    output_tokens: float = 0.0
    trainer_busy_s: float = 0.0

    def add(self, r: StepRecord) -> None:
        self.steps += 1
        self.time_s += r.time_s
        for table, values in ((self.path_s, critical_path(r)), (self.span_s, phase_spans(r)),
                              (self.train_parts_s, r.train_parts_s)):
            for k, v in values.items():
                table[k] = table.get(k, 0.0) + v
        self.tokens += r.prompt_tokens + r.output_tokens
        self.output_tokens += r.output_tokens
        # parts, not the train span: a streaming trainer's span includes waits for samples
        self.trainer_busy_s += sum(r.train_parts_s.values()) + r.weight_sync_s

    def merged(self, other: "StepTotals") -> "StepTotals":
        out = StepTotals()
        for part in (self, other):
            out.steps += part.steps
            out.time_s += part.time_s
            for mine, theirs in ((out.path_s, part.path_s), (out.span_s, part.span_s),
                                 (out.train_parts_s, part.train_parts_s)):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0.0) + v
            out.tokens += part.tokens
            out.output_tokens += part.output_tokens
            out.trainer_busy_s += part.trainer_busy_s
        return out


def critical_path(r: StepRecord) -> dict[str, float]:
    """Split one step's time into the parts the trainer waited for; they sum to r.time_s."""
    switch_in = r.switch_s / 2 if r.switch_s else 0.0
    pre = r.train_start_s - r.start_s
    generate = min(max(r.gen_end_s - r.start_s, 0.0), max(pre - switch_in, 0.0))
    return {"generate": generate, "verify": max(pre - switch_in - generate, 0.0),
            "switch": r.switch_s, "train": r.train_end_s - r.train_start_s,
            "weight_sync": r.weight_sync_s}


def phase_spans(r: StepRecord) -> dict[str, float]:
    """Each phase's own duration in one step (phases overlap)."""
    return {"generate": r.gen_end_s - r.gen_start_s,
            "verify_after_generate": max(r.verify_end_s - r.gen_end_s, 0.0),
            "train": r.train_end_s - r.train_start_s, "weight_sync": r.weight_sync_s}


class StepLog:
    """Step records by step number: the orchestrators' state (`steps[j]`) and the summary's input.

    A record is created when first used. `finish(j)` (steps finish in order) appends its time to
    `times_s` and when its batch was ready (last reward) to `ready_s`; records of steps below `keep` stay in `kept` (the warm-up window the steady-state
    detection looks at, and what tests read), later ones are folded into `tail` and dropped."""

    def __init__(self, keep: int):
        self.keep = keep
        self.kept: list[StepRecord] = []
        self.tail = StepTotals()
        self.times_s = array("d")
        self.ready_s = array("d")      # per finished step: when its batch's last reward was in
        self._live: dict[int, StepRecord] = {}

    @property
    def finished(self) -> int:
        return len(self.times_s)

    def __getitem__(self, step: int) -> StepRecord:
        r = self._live.get(step)
        if r is None:
            if step < len(self.kept):
                return self.kept[step]
            if step < self.finished:
                raise IndexError(f"step {step} is finished and folded into the totals")
            r = self._live[step] = StepRecord(step)
        return r

    def finish(self, step: int) -> StepRecord:
        r = self._live.pop(step) if step in self._live else self[step]
        self.times_s.append(r.time_s)
        self.ready_s.append(max(r.verify_end_s, r.gen_end_s))
        if step < self.keep:
            self.kept.append(r)
        else:
            self.tail.add(r)
        return r

    def totals(self, first: int = 0) -> StepTotals:
        """Sums over finished steps from `first` (at most `keep`) on."""
        head = StepTotals()
        for r in self.kept[min(first, len(self.kept)):]:
            head.add(r)
        return head.merged(self.tail)
