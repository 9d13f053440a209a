"""How sure is the recommendation? Re-evaluate the frontier under draws of what the model does not know.

A draw (`Perturbation`) multiplies each efficiency term of the hardware profile by a log-normal
factor exp(sigma x z), z ~ N(0, 1), with sigma the term's 1-sigma relative uncertainty from the
profile's calibration (`HardwareProfile.calibration.rel_uncertainty`); a term the calibration does
not cover, or a profile with no calibration (datasheet), gets `DEFAULT_REL_SPREAD` (stated in the
report). Fractions of peak stay at most 1. The workload's mean response length is scaled by a
factor uniform in [1 - `length_range`, 1 + `length_range`] (log-normal length distributions; other
kinds are left as they are and the report says so). Every plan sees the same draw (common random
numbers), so "which plan is best" is compared under one possible world at a time.

`assess` evaluates the candidate plans (the frontier, the closest runners-up and the recommended
one) under `draws`
draws and reports, for the recommended plan, the share of draws in which it is still the plan
the same choice rule picks among the candidates, and the 10th/50th/90th percentiles of its hours
and dollars. A recommendation is `robust` when it stays best in at least `ROBUST_SHARE` of draws.
Screening: with `bounds` (a draw -> that draw's plan bounds, rlvr_sim.sweep.bound), the
recommended plan is simulated under every draw first, then a candidate only in the draws where
its bound says it could still be picked over the best plan of that draw simulated so far
(fastest rule: its hours bound <= that plan's drawn hours; deadline rule: its dollar bound <=
that plan's drawn dollars; with a budget / deadline, its bounds within them); the others cannot
win that draw, so the share, the winners and the percentiles are those of simulating every
candidate. The simulations stream on the pool (`_screened_draws`): each worker takes the next
one as soon as it frees, screened with every result known by then. `Robustness.simulated`
counts the simulations run.
Limits: terms are drawn independently (correlations between fitted terms are not known); the
choice among candidates is not a new search under each draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Callable

    from rlvr_sim.hardware import HardwareProfile
    from rlvr_sim.sweep.bound import PlanBounds
    from rlvr_sim.scenario import Scenario
    from rlvr_sim.sweep.planner import Evaluator
    from rlvr_sim.sweep.space import Allocation

# efficiency terms drawn (those every step time depends on); fractions of peak are capped at 1
DRAWN_TERMS = ("decode_bw_eff", "decode_mfu", "prefill_mfu", "train_mfu", "link_eff",
               "decode_overhead_s", "train_overhead_s", "skew_coef", "kv_bw_eff")
FRACTIONS = ("decode_bw_eff", "decode_mfu", "prefill_mfu", "train_mfu", "link_eff", "kv_bw_eff")
DEFAULT_REL_SPREAD = 0.10      # 1-sigma relative spread of a term with no calibrated uncertainty
DEFAULT_LENGTH_RANGE = 0.15    # mean response length within +-15 %
ROBUST_SHARE = 0.8             # stays best in >= 80 % of draws
# not robust, yet never more than this much worse than a draw's best (the planner rule's own
# tolerance: its estimates are known to 2 %, so closer plans are not told apart): "near-equal"
NEAR_EQUAL = 0.02


@dataclass(frozen=True)
class Perturbation:
    """One draw: efficiency factors per term and the response-length scale."""

    draw: int
    efficiency_factors: tuple[tuple[str, float], ...]
    response_scale: float = 1.0

    def apply(self, sc: "Scenario") -> tuple["Scenario", "HardwareProfile"]:
        """The scenario with scaled response lengths, and the profile with scaled efficiencies."""
        prof = sc.hardware_profile
        eff = prof.efficiency
        updates: dict[str, float] = {}
        for name, factor in self.efficiency_factors:
            value = getattr(eff, name, None)
            if value is None:
                continue
            scaled = value * factor
            if name in FRACTIONS:
                scaled = min(scaled, 1.0)
            if name == "skew_coef":
                scaled = min(scaled, 0.99)
            updates[name] = scaled
        profile = prof.model_copy(update={"efficiency": eff.model_copy(update=updates)})
        rt = sc.workload.response_tokens
        if self.response_scale != 1.0 and hasattr(rt, "mean") and hasattr(rt, "sigma"):
            workload = sc.workload.model_copy(
                update={"response_tokens": rt.model_copy(update={"mean": rt.mean * self.response_scale})})
            sc = sc.model_copy(update={"workload": workload})
        return sc, profile


@dataclass(frozen=True)
class Spreads:
    """Where each term's spread comes from (for the report)."""

    rel_sigma: tuple[tuple[str, float], ...]
    defaulted: tuple[str, ...]          # terms with DEFAULT_REL_SPREAD
    length_range: float
    lengths_drawn: bool


def spreads(sc: "Scenario", length_range: float = DEFAULT_LENGTH_RANGE) -> Spreads:
    """Each drawn term's 1-sigma relative spread: calibrated, else the stated default."""
    prof = sc.hardware_profile
    known = dict(prof.calibration.rel_uncertainty) if prof.calibration is not None else {}
    rel, defaulted = [], []
    for name in DRAWN_TERMS:
        if getattr(prof.efficiency, name, None) is None:
            continue
        sigma = known.get(name)
        if sigma is None or not math.isfinite(sigma):
            sigma = DEFAULT_REL_SPREAD
            defaulted.append(name)
        rel.append((name, float(sigma)))
    rt = sc.workload.response_tokens
    return Spreads(tuple(rel), tuple(defaulted), length_range, hasattr(rt, "mean") and hasattr(rt, "sigma"))


def draw_perturbations(sp: Spreads, draws: int, seed: int = 0) -> list[Perturbation]:
    """`draws` independent draws (seeded: the same command gives the same report)."""
    rng = np.random.default_rng([seed, 1414])
    out = []
    for k in range(draws):
        z = rng.standard_normal(len(sp.rel_sigma))
        factors = tuple((name, float(math.exp(sigma * zi))) for (name, sigma), zi in zip(sp.rel_sigma, z))
        scale = float(rng.uniform(1 - sp.length_range, 1 + sp.length_range)) if sp.lengths_drawn else 1.0
        out.append(Perturbation(k, factors, scale))
    return out


@dataclass
class Robustness:
    """The recommended plan under the draws (see the module docstring)."""

    draws: int
    candidates: int
    share_best: float                  # share of draws where the recommended plan is still picked
    robust: bool                       # share_best >= ROBUST_SHARE
    hours_p10: float
    hours_p50: float
    hours_p90: float
    usd_p10: float
    usd_p50: float
    usd_p90: float
    winners: dict[str, int]            # plan label -> draws it was picked in
    spread_source: str                 # what was drawn and from where
    failed_draws: int = 0              # draws where the recommended plan did not simulate
    simulated: int = 0                 # plan simulations run (screened ones excluded)
    # regret: in the draws another plan is picked, how much worse the recommended plan is there
    # (fastest rule: hours / that plan's hours - 1; deadline rule: dollars; inf: it misses the
    # deadline or budget in that draw); 0 when it is picked in every draw, nan with no draw
    regret_max: float = math.nan
    regret_p50: float = math.nan
    recommended_label: str = ""

    @property
    def near_equal(self) -> bool:
        """Not robust, but never more than `NEAR_EQUAL` worse than a draw's pick: the plans that
        take its place are as good within the planner's own tolerance."""
        return not self.robust and self.regret_max <= NEAR_EQUAL

    def sentence(self) -> str:
        verdict = "robust" if self.robust else "NOT robust" + (", near-equal plans" if self.near_equal else "")
        regret = ""
        if math.isfinite(self.regret_max) and self.regret_max > 0:
            regret = (f"; in the draws another plan is picked, this one is at most {self.regret_max:.1%} worse "
                      f"(median {self.regret_p50:.1%})")
        elif self.regret_max == math.inf:
            regret = "; in some draws it misses the deadline or budget another plan meets"
        rival = ""
        if not self.robust and self.rival is not None:
            rival = f"; picked most often instead: {self.rival} ({self.winners[self.rival]} of {self.draws})"
        return (f"Robustness ({verdict}): recommended in {self.share_best:.0%} of {self.draws} draws "
                f"among {self.candidates} candidate plans; {self.hours_p10:,.1f}-{self.hours_p90:,.1f} h "
                f"(p10-p90, median {self.hours_p50:,.1f}), ${self.usd_p10:,.0f}-${self.usd_p90:,.0f}{regret}{rival}; "
                f"{self.simulated} simulations. Drawn: {self.spread_source}.")

    @property
    def rival(self) -> str | None:
        """The plan the draws pick most often when it is not the recommended one (None: the
        recommended plan is picked at least as often as any other)."""
        if not self.winners:
            return None
        label, count = max(self.winners.items(), key=lambda kv: kv[1])
        mine = self.winners.get(self.recommended_label, 0)
        return label if label != self.recommended_label and label != "none" and count > mine else None


def describe_spreads(sp: Spreads) -> str:
    calibrated = [f"{n} {s:.0%}" for n, s in sp.rel_sigma if n not in sp.defaulted]
    parts = []
    if calibrated:
        parts.append("calibrated 1-sigma " + ", ".join(calibrated))
    if sp.defaulted:
        parts.append(f"default 1-sigma {DEFAULT_REL_SPREAD:.0%} (no calibrated uncertainty) for "
                     + ", ".join(sp.defaulted))
    parts.append(f"mean response length x U[{1 - sp.length_range:.2f}, {1 + sp.length_range:.2f}]"
                 if sp.lengths_drawn else "response lengths not drawn (not a log-normal distribution)")
    return "; ".join(parts)


def pick(values: dict["Allocation", tuple[float, float]], deadline_hours: float | None,
         budget_usd: float | None) -> "Allocation | None":
    """The choice rule of `recommend.choose` applied to (hours, dollars) per candidate."""
    ok = {a: hd for a, hd in values.items() if math.isfinite(hd[0])
          and (budget_usd is None or hd[1] <= budget_usd)
          and (deadline_hours is None or hd[0] <= deadline_hours)}
    if not ok:
        return None
    if deadline_hours is not None:
        return min(ok, key=lambda a: (ok[a][1], ok[a][0], a.label()))
    return min(ok, key=lambda a: (ok[a][0], ok[a][1], a.label()))


def _run_draws(base: "Evaluator", wanted: list[tuple[Perturbation, "Allocation"]], desc: str
               ) -> dict[tuple[int, "Allocation"], tuple[float, float]]:
    """(hours, dollars) of each (draw, plan), all in one parallel batch on `base`'s pool;
    (inf, inf) for a plan that did not simulate."""
    from rlvr_sim.sweep.grid import Plan
    from rlvr_sim.sweep.jobs import make_jobs
    from rlvr_sim.sweep.runner import evaluate_all

    jobs = []
    for pert, a in wanted:
        jobs += make_jobs(base.scenario, [Plan(base.fixed.settings + a.plan().settings)], base.steps, base.seed,
                          base.steady, pert)
    out = {}
    for (pert, a), outcome in zip(wanted, evaluate_all(base.pool, jobs, base.progress, desc)):
        m = outcome.metrics
        out[(pert.draw, a)] = (m.hours_total, m.usd_total) if m is not None else (math.inf, math.inf)
    return out


def _could_win(lb_hours: float, lb_usd: float, best: tuple[float, float] | None, deadline_hours: float | None,
               budget_usd: float | None) -> bool:
    """Whether a plan with these bounds could be picked (`pick`) over `best`, the drawn (hours,
    dollars) of the plan the draw picks so far (None: none qualifies yet). A plan's drawn values
    are at least its bounds, and `best` only improves as plans finish, so a plan ruled out here
    stays ruled out."""
    if budget_usd is not None and lb_usd > budget_usd:
        return False
    if deadline_hours is not None and lb_hours > deadline_hours:
        return False
    if best is None:
        return True
    h, d = best
    if deadline_hours is not None:
        return lb_usd <= d
    return lb_hours <= h


def _screened_draws(base: "Evaluator", perts: list[Perturbation], recommended: "Allocation",
                    others: list["Allocation"], bounds: "Callable[[Perturbation], PlanBounds]",
                    deadline_hours: float | None, budget_usd: float | None, speculate: bool = True
                    ) -> dict[tuple[int, "Allocation"], tuple[float, float]]:
    """(hours, dollars) of the recommended plan under every draw and of each other candidate in
    the draws where its bound could still beat that draw's best so far (`_could_win`), streamed
    on `base`'s pool (rlvr_sim.sweep.pools.Streaming) with every worker kept busy: the
    recommended plan's draws first, then a draw's candidates in increasing bound order once its
    recommended plan is known, each screened against the draw's best when a worker frees.
    A draw with nothing in flight goes first (its next candidate is needed whatever finishes);
    with `speculate`, a worker that would idle takes a candidate of a draw with plans in flight.
    With `base.race` (and no deadline rule) a candidate other than the recommended plan stops
    once it certainly takes longer than the draw's best so far (it cannot win that draw; the
    recommended plan always runs to the end: its hours are the reported spread)."""
    from rlvr_sim.sweep.grid import Plan
    from rlvr_sim.sweep.jobs import make_jobs
    from rlvr_sim.sweep.pools import streaming

    stream = streaming(base.pool)
    width = max(stream.workers, 1)
    values: dict[tuple[int, "Allocation"], tuple[float, float]] = {}
    flying: dict[str, tuple[Perturbation, "Allocation"]] = {}
    running = {p.draw: 0 for p in perts}
    queues: dict[int, list["Allocation"]] = {}          # draw -> candidates still to decide
    drawn: dict[int, "PlanBounds"] = {}
    pending = list(perts)

    def submit(p: Perturbation, a: "Allocation") -> None:
        job = make_jobs(base.scenario, [Plan(base.fixed.settings + a.plan().settings)], base.steps, base.seed,
                        base.steady, p)[0]
        best = best_of(p.draw)
        if base.race and a != recommended and deadline_hours is None and best is not None:
            job = job.raced(best[0])     # stops once it certainly cannot be this draw's fastest
        flying[job.plan_id] = (p, a)
        running[p.draw] += 1
        stream.submit(job)

    def best_of(draw: int) -> tuple[float, float] | None:
        mine = {a: hd for (k, a), hd in values.items() if k == draw}
        winner = pick(mine, deadline_hours, budget_usd)
        return None if winner is None else mine[winner]

    def next_candidate() -> tuple[Perturbation, "Allocation"] | None:
        options = []
        for p in perts:
            if p.draw not in queues:
                continue
            b, best = drawn[p.draw], best_of(p.draw)
            queues[p.draw] = [a for a in queues[p.draw]
                              if _could_win(b.hours(a), b.usd(a), best, deadline_hours, budget_usd)]
            if queues[p.draw] and (speculate or running[p.draw] == 0):
                options.append((running[p.draw], p.draw, p))
        if not options:
            return None
        p = min(options, key=lambda o: o[:2])[2]
        return p, queues[p.draw].pop(0)

    while True:
        while len(flying) < width:
            if pending:
                submit(pending.pop(0), recommended)
                continue
            nxt = next_candidate()
            if nxt is None:
                break
            submit(*nxt)
        if not flying:
            break
        outcome = stream.next_done()
        p, a = flying.pop(outcome.plan_id)
        running[p.draw] -= 1
        m = outcome.metrics
        values[(p.draw, a)] = (m.hours_total, m.usd_total) if m is not None else (math.inf, math.inf)
        if a == recommended:
            b = drawn[p.draw] = bounds(p)
            order = b.usd if deadline_hours is not None else b.hours
            queues[p.draw] = sorted(others, key=lambda c: (order(c), c.label()))
    return values


def assess(base: "Evaluator", recommended: "Allocation", candidates: list["Allocation"], sc: "Scenario",
           draws: int, deadline_hours: float | None = None, budget_usd: float | None = None,
           length_range: float = DEFAULT_LENGTH_RANGE, seed: int = 0,
           bounds: "Callable[[Perturbation], PlanBounds] | None" = None) -> Robustness:
    """Evaluate `candidates` (with `recommended`) under `draws` draws on `base`'s pool and
    settings; with `bounds`, screened (module docstring)."""
    cands = list(dict.fromkeys([recommended, *candidates]))
    sp = spreads(sc, length_range)
    perts = draw_perturbations(sp, draws, seed)
    others = [a for a in cands if a != recommended]
    if bounds is None:
        values = _run_draws(base, [(p, a) for p in perts for a in cands], "plan: robustness draws")
    else:
        values = _screened_draws(base, perts, recommended, others, bounds, deadline_hours, budget_usd)
    hours: list[float] = []
    usd: list[float] = []
    winners: dict[str, int] = {}
    failed = 0
    regrets: list[float] = []
    for pert in perts:
        drawn = {a: values[(pert.draw, a)] for a in cands if (pert.draw, a) in values}
        h, d = drawn[recommended]
        if not math.isfinite(h):
            failed += 1
        else:
            hours.append(h)
            usd.append(d)
        best = pick(drawn, deadline_hours, budget_usd)
        label = best.label() if best is not None else "none"
        winners[label] = winners.get(label, 0) + 1
        if best is not None and best != recommended:
            regrets.append(regret(drawn[recommended], drawn[best], deadline_hours, budget_usd))
    share = winners.get(recommended.label(), 0) / draws if draws else math.nan

    def q(xs: list[float], p: float) -> float:
        return float(np.percentile(xs, p)) if xs else math.nan

    picked = draws - failed - len(regrets)        # draws the recommended plan was picked in
    regret_max = max(regrets) if regrets else (0.0 if picked > 0 else math.nan)
    regret_p50 = float(np.median(regrets)) if regrets else regret_max
    return Robustness(draws, len(cands), share, share >= ROBUST_SHARE, q(hours, 10), q(hours, 50), q(hours, 90),
                      q(usd, 10), q(usd, 50), q(usd, 90), dict(sorted(winners.items(), key=lambda kv: -kv[1])),
                      describe_spreads(sp), failed, len(values), regret_max, regret_p50, recommended.label())


def prefer_rival(nominal: Robustness, rival: Robustness) -> bool:
    """The robust choice (`plan --choose robust`): recommend the rival instead of the nominal pick
    when, over the same draws, its worst regret is smaller by more than `NEAR_EQUAL` (closer
    than that, the planner's own tolerance cannot tell them apart and the nominal pick stays).
    Minimax regret over the draws: the plan that loses least in the world that is worst for it.
    Limits: the draws are few (12 by default), so a worst case is a noisy statistic; both reports
    must come from the same draws (`assess` with the same seed and candidates)."""
    if nominal.robust or nominal.near_equal or not math.isfinite(rival.regret_max):
        return False
    if nominal.draws != rival.draws or nominal.spread_source != rival.spread_source:
        raise ValueError("prefer_rival: the two reports are not over the same draws")
    return rival.regret_max + NEAR_EQUAL < nominal.regret_max


def regret(mine: tuple[float, float], best: tuple[float, float], deadline_hours: float | None,
           budget_usd: float | None) -> float:
    """How much worse (hours, dollars) `mine` is than the draw's pick `best`: relative hours under
    the fastest rule, relative dollars under the deadline rule; inf when `mine` did not simulate
    or breaks the deadline / budget the pick meets."""
    hours, usd = mine
    if not math.isfinite(hours) or (deadline_hours is not None and hours > deadline_hours) \
            or (budget_usd is not None and usd > budget_usd):
        return math.inf
    if deadline_hours is not None:
        return usd / best[1] - 1 if best[1] > 0 else math.inf
    return hours / best[0] - 1 if best[0] > 0 else math.inf
