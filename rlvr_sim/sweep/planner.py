"""`plan` search: the fastest allocation for each GPU type and GPU total, found without brute force.

With a bound (`Evaluator.bound`, rlvr_sim.sweep.bound: a lower bound of each plan's simulated
hours from the cost model alone), `search` is a branch and bound that equals the exhaustive sweep
whenever the bound holds: every allocation of the space gets its bound (cheap), each (GPU type,
total) simulates its plans in increasing bound order and stops as soon as the next bound exceeds
the best hours simulated in that group (no later plan can beat it). It streams: as many plans as
the pool has workers run at once, and when one finishes the next plan is chosen with its result
known (no rounds: a long plan never holds the other workers idle; `branch_and_bound`).
`SearchResult.bounded` counts the plans skipped that way. Without a bound (toy evaluators in
tests) the local search below is used.

Why per (GPU type, total): with both fixed, a run's dollars are hours x GPUs x price, so "fastest"
and "cheapest" agree and one scalar objective (hours) suffices. The hours-vs-dollars frontier then
comes from comparing the optima across totals and GPU types (plus every plan seen on the way).

Search, per (GPU type, total), all searches advancing together:
1. seeds: colocated at the base TP, and a disaggregated even split (sync), one parallel batch;
2. balance: from the even split's simulated busy time of each pool (GPU-seconds of sampling and
   of training per step) set the sampler share that makes both pools equally busy, rounded to
   whole TP groups, for each staleness option;
3. local search: move to the best neighbour (`space.neighbours`: split +-1/2 replicas, TP, staleness,
   mini-batches, placement) while it lowers hours; stop at a local optimum. With
   `Evaluator.prune_bound` (the `plan` default) a neighbour whose lower bound of hours is above
   the plan it would replace is not simulated: it cannot be the move, the group's optimum or on
   the frontier, so those stay the same (`_prune_moves`; tests/test_plan_real.py). The balanced
   starts and the walks stream on the pool (`_Walk`): a walk moves as soon as its own neighbours
   are simulated, so a long plan of one walk never holds the others' workers idle.
With `Evaluator.race` (the `plan` default) a plan also stops simulating once its hours are
certainly (3 standard errors) above the plan it is compared with (the plan a neighbour would
replace, the group's best in the branch and bound; rlvr_sim.sim.steady.slower_than): such a plan
cannot be chosen, so the answer stays the same while losers cost a few steps, not up to 32.
The search can miss a global optimum that no improving path reaches; `exhaustive` evaluates the
whole space for comparison (the tests check both agree on small spaces, and that the search visits
the exhaustive frontier of a 128-GPU space).

Each plan is simulated until its step time is steady (`Evaluator.steady`, rlvr_sim.sim.steady;
the table's `steps_simulated` / `warmup_steps` say how many steps each needed), unless a fixed
`steps` is given. Results are read through the typed `PlanMetrics`, never by column name.
"""

from __future__ import annotations

from rlvr_sim.sweep.branch_bound import branch_and_bound
from rlvr_sim.sweep.evaluator import Evaluator, SearchResult, best_per_group, search_result
from rlvr_sim.sweep.local_search import balanced_share, local_search, pool_busy_s
from rlvr_sim.sweep.space import Allocation, SearchSpace, enumerate_space

__all__ = ["Evaluator", "SearchResult", "balanced_share", "best_per_group", "branch_and_bound", "exhaustive",
           "local_search", "pool_busy_s", "search"]


def search(space: SearchSpace, base: Allocation, ev: Evaluator, max_rounds: int = 30, gap: float = 0.0,
           deadline: float | None = None, order: str = "auto") -> SearchResult:
    """Branch and bound when `ev.bound` is set (`gap`, `deadline`: stop earlier with a stated
    guarantee, rlvr_sim.sweep.branch_bound), else seeds, balance and best-improvement local
    search (module docstring)."""
    if ev.bound is not None:
        # with a deadline, only the asked total must finish a plan (the frontier's may not)
        return branch_and_bound(space, ev, gap=gap, deadline=deadline, order=order,
                                answer_totals=frozenset({base.total_gpus}))
    if gap or deadline is not None:
        raise ValueError("gap and deadline need the branch and bound (an evaluator with a bound)")
    return local_search(space, base, ev, max_rounds)


def exhaustive(space: SearchSpace, ev: Evaluator) -> SearchResult:
    """Simulate every allocation of the space (the brute-force baseline)."""
    every = enumerate_space(space)
    ev.evaluate(every, "plan: exhaustive")
    return search_result(ev, best_per_group(ev), 0, space, 0, len(every))
