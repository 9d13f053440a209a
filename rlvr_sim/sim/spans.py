"""Span costing: the seconds of `iterations` decode iterations of a fixed batch, and the inverse
(how many iterations fit in some seconds, for a span cut short).

A span's batch is described by `sequences`, the context sum and max at its first iteration;
every iteration adds `tpi` tokens to each sequence. `span_function(cm, rule)` picks the costing:
"cost_model" (cm.decode_span_s, the cost model's own quadrature) or "simpson3" (three
cm.decode_step_s calls, Simpson's rule); `is_simpson_span` tells the second apart (the sync
fast path, rlvr_sim.sim.batch_sync, mirrors it on arrays).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, cast

from rlvr_sim.sim.protocols import SamplerCostLike

SpanFn = Callable[[float, float, float, int], float]
# one decode iteration's seconds from (sequences, context sum, context max): cm.decode_step_s
StepFn = Callable[[float, float, float], float]
# simpson3 spans call the cost model's fused step function (cm.decode_step_function: the per-
# replica constants folded in, same floating-point operations); off: cm.decode_step_s
FUSED_STEP = True


class Segment(NamedTuple):
    """A planned decode span: `iterations` iterations of the current batch from `t0_s`."""

    t0_s: float
    iterations: int
    span_s: float
    sequences: float       # mean running sequences over the span (coalesced finishes leave early)
    context_sum: float
    context_max: float

    @property
    def end_s(self) -> float:
        return self.t0_s + self.span_s


def simpson_span(step: StepFn, tpi: float) -> SpanFn:
    """`iterations` iterations from three `step` (cm.decode_step_s) calls (first, middle and last
    iteration, Simpson's rule): exact for iteration times quadratic in the index; a cheaper
    stand-in for cm.decode_span_s (its 9-point rule); worst case seen on random spans of the
    shipped scenarios 1.9 % (skew term with a 4x max/mean context), typical < 0.01 %."""
    def span(sequences: float, context_sum: float, context_max: float, iterations: int) -> float:
        first = step(sequences, context_sum, context_max)
        if iterations == 1:
            return first
        last_i = iterations - 1
        last = step(sequences, context_sum + last_i * tpi * sequences, context_max + last_i * tpi)
        if iterations == 2:
            return first + last
        mid_i = last_i / 2
        mid = step(sequences, context_sum + mid_i * tpi * sequences, context_max + mid_i * tpi)
        return iterations * (first + 4 * mid + last) / 6

    return span


def _no_step(sequences: float, context_sum: float, context_max: float) -> float:
    return 0.0


_SIMPSON_CODE = simpson_span(_no_step, 1.0).__code__


def is_simpson_span(span: object) -> bool:
    """Whether `span` is a `simpson_span` rule (rlvr_sim.sim.batch_sync mirrors it on arrays)."""
    return getattr(span, "__code__", None) is _SIMPSON_CODE


def span_function(cm: SamplerCostLike, rule: str, tpi: float) -> SpanFn:
    """The span costing of `rule` ("simpson3" needs cm.decode_step_s, else cm.decode_span_s).
    Simpson's steps come from cm.decode_step_function() when the cost model has it and
    FUSED_STEP is on (the same function with its constants folded in: same results)."""
    # decode_step_s is optional: the facade has it, a hand-computable fake may not
    step: StepFn | None = getattr(cm, "decode_step_s", None)
    if rule == "simpson3" and step is not None:
        fused: Callable[[], StepFn] | None = getattr(cm, "decode_step_function", None)
        if FUSED_STEP and fused is not None:
            step = fused()
        return simpson_span(step, tpi)
    return cast(SpanFn, cm.decode_span_s)     # called with a fractional mean batch (coalescing)


def iterations_within(span: SpanFn, seg: Segment, elapsed_s: float) -> int:
    """The smallest i in [1, seg.iterations] with span(i) >= elapsed_s (binary search; span is
    increasing in i): the iteration boundary at or after `elapsed_s` into the segment."""
    lo, hi = 1, seg.iterations
    while lo < hi:
        mid = (lo + hi) // 2
        if span(seg.sequences, seg.context_sum, seg.context_max, mid) >= elapsed_s:
            hi = mid
        else:
            lo = mid + 1
    return lo
