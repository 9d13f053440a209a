"""The sampler side of the planner's lower bound (rlvr_sim.sweep.bound, whose module docstring
derives each term): what each step's seeded batch holds (`StepSamples`, `StepTokens`), how the
simulator's dispatch splits it over replicas (`replica_work`), the cost model's lower-bound
coefficients of a decode iteration (`SamplerRates`) and the resulting bound of a sync step's
generation and of a window of async batches (`SamplerBound`). Pure functions of the batch and
the cost model; no simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from rlvr_sim.sweep.space import COLOCATED

if TYPE_CHECKING:
    from rlvr_sim.cost import CostModel
    from rlvr_sim.sim.source import Group

# prefill lower bound: sequences per token large enough that the attention term is negligible
_NO_ATTENTION = 10 ** 6


@dataclass(frozen=True)
class StepTokens:
    """What step j of the seeded workload holds for the trainer (the same for every allocation)."""

    sequences: int
    prompt_tokens: int       # sum over samples (each carries its prompt)
    output_tokens: int


@dataclass(frozen=True)
class StepSamples:
    """Step j's prompt groups as the sampler sees them (the same for every allocation)."""

    groups: tuple["Group", ...]
    group_prompt: np.ndarray     # per group: prompt tokens
    group_of: np.ndarray         # per sample: index of its group
    target: np.ndarray           # per sample: output tokens
    # the verifier pool's share of the step: worker-seconds of its samples / workers (what the
    # pool needs at least, every worker busy), and a sync step's floor for its last reward:
    # max(that, the longest single check) + the RPC round trip (rlvr_sim.sim.verifier)
    verify_work_s: float = 0.0
    verify_floor_s: float = 0.0

    @cached_property
    def tokens(self) -> StepTokens:
        return StepTokens(len(self.target), int(self.group_prompt[self.group_of].sum()),
                          int(self.target.sum()))


@dataclass(frozen=True)
class ReplicaWork:
    """Per step (rows) and sampler replica (columns): the sums that bound that replica's
    generation of the step (module docstring); one column for the whole pool pooled."""

    seq_iterations: np.ndarray   # sum over samples of their decode iterations
    decode_tokens: np.ndarray    # sum of output tokens
    context: np.ndarray          # KV context read, summed over every sample's iterations
    held: np.ndarray             # tokens held in KV blocks summed over iterations (lower bound)
    longest: np.ndarray          # most decode iterations of one sample
    prefill_tokens: np.ndarray   # prompt tokens prefilled at least once
    samples: np.ndarray          # samples dispatched


@dataclass(frozen=True)
class SamplerRates:
    """Lower-bound coefficients of one replica's decode iteration (rlvr_sim.cost.sampler), taken
    from the cost model at one and two sequences and a zero / large KV context:
    iteration_s(b, c) >= max(compute_per_token_s b + attention_per_ctx_s c, weights_s + kv_per_ctx_s c)
                         + comm_per_token_s b + fixed_s
    (exact for dense models without speculative decoding, whose terms are linear; MoE reads more
    experts at b > 1, so weights_s at b = 1 is a lower bound). With speculative decoding the
    linear form is not used (`linear` False): `token_s` (cheapest seconds per token over the
    allowed batch sizes at zero context) and `iteration_s` (one sequence) bound it instead."""

    linear: bool
    compute_per_token_s: float
    attention_per_ctx_s: float
    weights_s: float
    kv_per_ctx_s: float
    comm_per_token_s: float
    fixed_s: float
    max_sequences: int
    kv_capacity_tokens: float     # tokens one replica's KV blocks can hold
    token_s: float
    iteration_s: float
    tokens_per_iteration: float
    switch_s: float

    def decode_s(self, w: ReplicaWork) -> np.ndarray:
        """Seconds of decoding each cell of `w` needs at least (module docstring)."""
        if not self.linear:
            return np.maximum(w.decode_tokens * self.token_s, w.longest * self.iteration_s)
        iterations = np.maximum(np.maximum(w.seq_iterations / self.max_sequences,
                                           w.held / self.kv_capacity_tokens), w.longest)
        out: np.ndarray = (np.maximum(self.compute_per_token_s * w.seq_iterations
                                      + self.attention_per_ctx_s * w.context,
                                      self.weights_s * iterations + self.kv_per_ctx_s * w.context)
                           + self.comm_per_token_s * w.seq_iterations + self.fixed_s * iterations)
        return out


@dataclass(frozen=True)
class SamplerBound:
    """The sampler side of a plan: per simulated step, a lower bound of a sync step's generation
    (the busiest replica), and the pooled work of each step's batch (`window_s`)."""

    generate_s: tuple[float, ...]
    pooled: ReplicaWork              # per step (rows), the whole pool (one column)
    rates: SamplerRates
    prefill_per_token_s: float       # the prefill's compute seconds per prompt token (a floor)
    switch_s: float

    def window_s(self, first: np.ndarray, end: int) -> np.ndarray:
        """Replica-seconds, summed over the pool, that generating the batches of steps
        [first, end) needs at least (one value per entry of `first`), bounded as ONE schedule:
        in async runs batches overlap and share decode iterations (their weight reads and fixed
        costs), so the batches' own bounds do not add up; their sums do (sequence-iterations,
        context, KV held, prompt tokens; longest: the window's longest sample)."""
        p = self.pooled

        def summed(x: np.ndarray) -> np.ndarray:
            c = np.concatenate([[0.0], np.cumsum(x[:, 0])])
            out: np.ndarray = c[end] - c[first]
            return out

        longest = np.maximum.accumulate(p.longest[:end, 0][::-1])[::-1][first]
        w = ReplicaWork(summed(p.seq_iterations), summed(p.decode_tokens), summed(p.context), summed(p.held),
                        longest, summed(p.prefill_tokens), summed(p.samples))
        out: np.ndarray = self.rates.decode_s(w) + self.prefill_per_token_s * w.prefill_tokens
        return out

    @cached_property
    def windows_s(self) -> np.ndarray:
        """`window_s(d, n)` at [d, n] for every 0 <= d < n <= simulated steps (0 elsewhere)."""
        cap = len(self.generate_s)
        out = np.zeros((cap + 1, cap + 1))
        for n in range(1, cap + 1):
            out[:n, n] = self.window_s(np.arange(n), n)
        return out


class _Slot:
    """A replica as `rlvr_sim.sim.orchestrator.dispatch` sees it (load, replica id, submit)."""

    __slots__ = ("replica", "load", "groups")

    def __init__(self, replica: int):
        self.replica, self.load = replica, 0
        self.groups: list[int] = []

    def submit(self, group: "Group") -> None:
        self.groups.append(group.group_id)


def replica_of_groups(groups: tuple["Group", ...], replicas: int) -> np.ndarray:
    """The replica each group of a sync step goes to: the simulator's own `dispatch` run on
    empty stand-ins (every replica starts a sync step idle); groups of one size go round-robin
    (least loaded, ties to the lowest id), which is what `dispatch` does with them."""
    if len({len(g.response_tokens) for g in groups}) <= 1:
        return np.arange(len(groups), dtype=np.int64) % replicas
    return dispatched(groups, replicas)


def dispatched(groups: tuple["Group", ...], replicas: int) -> np.ndarray:
    """`replica_of_groups` by running `rlvr_sim.sim.orchestrator.dispatch` itself."""
    from rlvr_sim.sim.orchestrator import dispatch

    slots = [_Slot(r) for r in range(replicas)]
    dispatch(groups, slots)
    where = {gid: s.replica for s in slots for gid in s.groups}
    return np.array([where[g.group_id] for g in groups], dtype=np.int64)


def replica_work(steps: tuple[StepSamples, ...], replicas: int | None, tpi: float, block_tokens: int,
                 prefix_caching: bool) -> ReplicaWork:
    """`ReplicaWork` of `steps` split as `dispatch` splits them over `replicas` (None: pooled)."""
    cols = replicas or 1
    shape = (len(steps), cols)
    out = {k: np.zeros(shape) for k in ("seq_iterations", "decode_tokens", "context", "held",
                                        "longest", "prefill_tokens", "samples")}
    for j, st in enumerate(steps):
        g_rep = (replica_of_groups(st.groups, replicas) if replicas
                 else np.zeros(len(st.groups), dtype=np.int64))
        rep = g_rep[st.group_of]
        p = st.group_prompt[st.group_of].astype(float)
        t = st.target.astype(float)
        its = np.maximum(np.ceil(t / tpi - 1e-9), 1.0)
        shared = (st.group_prompt // block_tokens) * block_tokens if prefix_caching \
            else np.zeros(len(st.groups), dtype=np.int64)
        private = p - shared[st.group_of]
        growth = tpi * its * (its - 1) / 2
        # shared prompt blocks are held while any sample of the group runs: its longest one
        group_longest = np.zeros(len(st.groups))
        np.maximum.at(group_longest, st.group_of, its)
        sizes = np.bincount(st.group_of, minlength=len(st.groups))
        group_prefill = st.group_prompt + (sizes - 1) * (st.group_prompt - shared)
        for key, values, by in (("seq_iterations", its, rep), ("decode_tokens", t, rep),
                                ("context", its * p + growth, rep), ("held", its * private + growth, rep),
                                ("samples", np.ones(len(t)), rep),
                                ("held", group_longest * shared, g_rep),
                                ("prefill_tokens", group_prefill.astype(float), g_rep)):
            out[key][j] += np.bincount(by, weights=values, minlength=cols)
        np.maximum.at(out["longest"][j], rep, its)
    return ReplicaWork(**out)


def _sampler_bound(cm: "CostModel", split: ReplicaWork, pooled: ReplicaWork) -> SamplerBound:
    """`SamplerBound` of a cost model and the step's work split over its replicas and pooled."""
    rates = _sampler_rates(cm)
    call = cm.sampler_call_s(1) > 0

    def busy(w: ReplicaWork) -> np.ndarray:
        out = rates.decode_s(w)
        prefill = np.vectorize(lambda tokens: cm.prefill_s(int(tokens), int(tokens) * _NO_ATTENTION)
                               if tokens > 0 else 0.0, otypes=[float])(w.prefill_tokens)
        out = out + prefill
        if call:
            out = out + np.vectorize(lambda n: cm.sampler_call_s(int(n)), otypes=[float])(w.samples)
        result: np.ndarray = np.where(w.samples > 0, out, 0.0)
        return result

    pc = cm.prefill_coeffs
    return SamplerBound(tuple(busy(split).max(axis=1).tolist()), pooled, rates,
                        pc.linear_flop_per_token / pc.tp / pc.flop_per_s, rates.switch_s)


def _sampler_rates(cm: "CostModel") -> SamplerRates:
    """The coefficients of `SamplerRates` read off the cost model (see its docstring)."""
    tpi = cm.tokens_per_iteration
    most = max(int(cm.max_num_seqs), 1)
    sizes = sorted({most, *(min(most, 2 ** k) for k in range(0, most.bit_length() + 1))})
    token_s = min(cm.decode_step_s(b, 0.0, 0.0) / (b * tpi) for b in sizes)
    big = 1e6
    one, two, wide = cm.decode_breakdown(1, 0.0, 0.0), cm.decode_breakdown(2, 0.0, 0.0), cm.decode_breakdown(1, big, 1.0)
    comm_per_token = max(two.comm_s - one.comm_s, 0.0)
    plan = cm.sampler_plan
    capacity = float(plan.kv_blocks * plan.block_tokens) if plan.kv_blocks else math.inf
    return SamplerRates(
        linear=tpi == 1.0, compute_per_token_s=one.compute_s,
        attention_per_ctx_s=max(wide.compute_s - one.compute_s, 0.0) / big,
        weights_s=one.memory_s, kv_per_ctx_s=max(wide.memory_s - one.memory_s, 0.0) / big,
        comm_per_token_s=comm_per_token, fixed_s=max(one.comm_s - comm_per_token, 0.0) + one.overhead_s,
        max_sequences=most, kv_capacity_tokens=capacity if capacity > 0 else math.inf,
        token_s=token_s, iteration_s=cm.decode_step_s(1, 0.0, 0.0), tokens_per_iteration=tpi,
        switch_s=float(cm.switch_s) if cm.placement == COLOCATED else 0.0)
