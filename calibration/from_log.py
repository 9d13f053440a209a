"""`rlvr-sim calibrate --from-log FILE --framework verl|trl|nemo-rl|openrlhf`: fit a profile from
the per-step timings a real RL run logged, with the run's layout from its config.

Each logged phase of each step is predicted by the cost model's own functions for the run's
layout (`RunLayout`) and that step's token statistics, and the efficiency terms the phase
depends on are fitted (robust least squares in log space, `calibration.lsq.fit_positive`):
  generation (verl timing_s/gen, NeMo-RL timing/train/generation, TRL vLLM.generate)
      -> decode_bw_eff (the per-iteration overheads stay at the base profile's values: with one
         model and one batch size per replica, a weight read and a fixed cost per iteration are
         the same function of the logged lengths; measure them with `calibrate --budget-s` and
         pass that profile as --base-profile)
  log-prob forwards (old_log_prob, ref, policy_and_reference_logprobs) and the actor update
      (update_actor, policy_training: forward+backward+optimizer) -> train_mfu
  weight sync (update_weights, prepare_for_generation, _move_model_to_vllm)
      -> link_eff (across GPUs) or bucket_latency_s (one GPU)
A phase the framework does not log is not fitted (OpenRLHF logs no phase times: its step wall
times are only compared with the prediction). The whole step (`timing_s/step`, total_step_time)
is never fitted: it is the check, predicted as the sum of the modelled phases.

Generation of one step on a replica: prefill of its sequences, then decode with a length
profile built from the logged mean and max response length: every sequence runs for
a = max(2 mean - max, 0) iterations, then the running batch falls linearly to 0 at `max`
(whose mean is `mean` whenever max <= 2 mean). Without a logged max, every response has the
mean length. Sequences are spread evenly over sampler_gpus / sampler_tp replicas.

Limits: one layout for the whole run; no overlap between phases (synchronous GRPO, as these
timers measure); the reference model's forward is taken as one more policy-sized forward.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calibration.fit import TERM_BOUNDS, finite
from calibration.log_formats import StepMetrics, read_steps
from calibration.lsq import ParamSpec, fit_positive
from calibration.predict import with_efficiency
from rlvr_sim.cost.sampler import DecodeCoeffs, SamplerShape, Speculative, decode_span_s, prefill
from rlvr_sim.cost.trainer import TrainerShape, train_step
from rlvr_sim.cost.weight_sync import SyncLayout, weight_sync
from rlvr_sim.errors import UserError
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec, catalog_model, catalog_names

NO_SPEC = Speculative()
BOUNDS = dict(TERM_BOUNDS, link_eff=(0.7, 1e-3, 1.0))
PHASE_TERMS = {"gen": ("decode_bw_eff",), "logprob": ("train_mfu",),
               "train": ("train_mfu",), "sync_multi": ("link_eff",),
               "sync_single": ("bucket_latency_s",)}


@dataclass(frozen=True)
class RunLayout:
    """How the logged run was laid out (from its config and/or command-line overrides)."""

    model: str                    # catalog name or config.json path (what ModelSpec loads)
    gpu: str                      # catalog GPU
    gpus: int                     # all GPUs of the run
    sampler_tp: int = 1
    sequences: int = 0            # responses trained per step (prompts x samples per prompt)
    mini_batches: int = 1         # optimizer steps per RL step
    colocated: bool = True        # samplers and trainer share the GPUs
    sampler_gpus: int = 0         # 0: all GPUs (colocated)
    trainer_gpus: int = 0
    reference_model: bool = True
    gpus_per_node: int = 8

    def spec(self) -> ModelSpec:
        p = Path(self.model)
        if p.suffix == ".json" or p.is_dir():
            return ModelSpec.from_hf_config(p)
        return catalog_model(self.model)


# ---------------------------------------------------------------------------------------------
# config -> layout

def _flatten(d, prefix: str = "") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


CONFIG_KEYS = {
    "verl": {"model": ("actor_rollout_ref.model.path",),
             "nodes": ("trainer.nnodes",), "gpus_per_node": ("trainer.n_gpus_per_node",),
             "sampler_tp": ("actor_rollout_ref.rollout.tensor_model_parallel_size",),
             "prompts": ("data.train_batch_size",), "samples": ("actor_rollout_ref.rollout.n",),
             "mini_prompts": ("actor_rollout_ref.actor.ppo_mini_batch_size",),
             "kl": ("actor_rollout_ref.actor.use_kl_loss", "algorithm.use_kl_in_reward")},
    "nemo-rl": {"model": ("policy.model_name",), "nodes": ("cluster.num_nodes",),
                "gpus_per_node": ("cluster.gpus_per_node",),
                "sampler_tp": ("policy.generation.vllm_cfg.tensor_parallel_size",),
                "prompts": ("grpo.num_prompts_per_step",),
                "samples": ("grpo.num_generations_per_prompt",),
                "mini_sequences": ("policy.train_global_batch_size",),
                "kl": ("loss_fn.reference_policy_kl_penalty",)},
    "trl": {"model": ("model_name_or_path", "model"), "gpus": ("num_processes", "world_size"),
            "sampler_tp": ("vllm_tensor_parallel_size",),
            "per_device": ("per_device_train_batch_size",),
            "accum": ("gradient_accumulation_steps",), "samples": ("num_generations",),
            "kl": ("beta",)},
    "openrlhf": {"model": ("pretrain",), "nodes": ("actor_num_nodes",),
                 "gpus_per_node": ("actor_num_gpus_per_node",),
                 "sampler_tp": ("vllm_tensor_parallel_size",),
                 "prompts": ("rollout_batch_size",), "samples": ("n_samples_per_prompt",),
                 "mini_sequences": ("train_batch_size",), "kl": ("init_kl_coef", "use_kl_loss")},
}


def _catalog_model_name(value: str) -> str | None:
    """A catalog name for a config's model value: a catalog name, a hub id whose last part is
    one (Qwen/Qwen2.5-7B-Instruct -> qwen2.5-7b), or a local dir/config.json path."""
    p = Path(str(value))
    if p.is_dir() and (p / "config.json").exists():
        return str(p / "config.json")
    if p.suffix == ".json" and p.exists():
        return str(p)
    base = str(value).rstrip("/").split("/")[-1].lower()
    names = catalog_names()
    for cand in (base, re.sub(r"-(instruct|chat|base|it)$", "", base)):
        if cand in names:
            return cand
    return None


def layout_from_config(framework: str, config: dict, overrides: dict) -> RunLayout:
    """RunLayout from a framework config mapping; `overrides` (non-None values) win."""
    flat = _flatten(config or {})
    keys = CONFIG_KEYS[framework]

    def get(name):
        for k in keys.get(name, ()):
            if k in flat and flat[k] is not None:
                return flat[k]
        return None

    model = overrides.get("model") or (get("model") and _catalog_model_name(get("model")))
    gpus = overrides.get("gpus") or get("gpus")
    if gpus is None and get("gpus_per_node") is not None:
        gpus = int(get("gpus_per_node")) * int(get("nodes") or 1)
    prompts, samples = get("prompts"), get("samples")
    sequences = overrides.get("sequences")
    if sequences is None and framework == "trl" and get("per_device") is not None:
        sequences = int(get("per_device")) * int(get("accum") or 1) * int(gpus or 1)
    if sequences is None and prompts is not None:
        sequences = int(prompts) * int(samples or 1)
    minis = overrides.get("mini_batches")
    if minis is None and sequences:
        if get("mini_prompts"):
            minis = max(int(prompts or 0) // int(get("mini_prompts")), 1)
        elif get("mini_sequences"):
            minis = max(int(sequences) // int(get("mini_sequences")), 1)
    kl = get("kl")
    missing = [n for n, v in (("model", model), ("gpus", gpus), ("sequences", sequences),
                              ("gpu", overrides.get("gpu"))) if not v]
    if missing or gpus is None or sequences is None:   # (None is in `missing`; for the checker)
        raise UserError(
            f"--from-log: the run's {', '.join(missing)} not known from --config; pass "
            + " ".join(f"--{m.replace('_', '-')} VALUE" for m in missing)
            + " (model: a catalog name such as qwen2.5-7b or a config.json; gpu: a catalog GPU)")
    return RunLayout(model=str(model), gpu=str(overrides["gpu"]).lower(), gpus=int(gpus),
                     sampler_tp=int(overrides.get("sampler_tp") or get("sampler_tp") or 1),
                     sequences=int(sequences), mini_batches=int(minis or 1),
                     reference_model=bool(kl) if kl is not None else True)


def read_config(path: str | None) -> dict:
    if not path:
        return {}
    import yaml

    p = Path(path)
    if not p.exists():
        raise UserError(f"--config {path!r} not found; give the run's config (YAML or JSON)")
    data = yaml.safe_load(p.read_text())
    if not isinstance(data, dict):
        raise UserError(f"--config {path!r} must be a mapping (the framework's config file)")
    return data


# ---------------------------------------------------------------------------------------------
# phase predictions (the cost model's functions for the run's layout)

def _trainer_shape(lay: RunLayout, reference: bool) -> TrainerShape:
    return TrainerShape(gpus=lay.gpus if lay.colocated else (lay.trainer_gpus or lay.gpus),
                        tp=1, pp=1, fsdp=True, mini_batches=lay.mini_batches,
                        reference_model=reference, old_logprob=True,
                        recompute_activations=False, dtype="bf16",
                        gpus_per_node=lay.gpus_per_node)


def _tokens(s: StepMetrics, lay: RunLayout) -> tuple[float, float]:
    """(prompt tokens per sequence, response tokens per sequence) of one step."""
    prompt = s.prompt_tokens_mean
    resp = s.response_tokens_mean
    if resp is None and s.total_tokens is not None and prompt is not None:
        resp = s.total_tokens / lay.sequences - prompt
    if prompt is None and s.total_tokens is not None and resp is not None:
        prompt = s.total_tokens / lay.sequences - resp
    return max(prompt or 0.0, 0.0), max(resp or 0.0, 0.0)


def generation_s(m: ModelSpec, hw: HardwareProfile, lay: RunLayout, s: StepMetrics) -> float:
    """Prefill + decode of one step on one replica (see module docstring for the profile)."""
    prompt, mean = _tokens(s, lay)
    mx = max(s.response_tokens_max or mean, mean)
    replicas = max((lay.sampler_gpus or lay.gpus) // lay.sampler_tp, 1)
    n = max(math.ceil(lay.sequences / replicas), 1)
    shape = SamplerShape(tp=lay.sampler_tp)
    total = prefill(m, hw, shape, int(round(n * prompt)), n).total_s
    c = DecodeCoeffs.build(m, hw, shape)
    a = int(round(max(2 * mean - mx, 0.0)))
    p = int(round(prompt))
    if a:
        total += decode_span_s(c, NO_SPEC, n, n * p, p, a)
    rest = int(round(mx)) - a
    chunks = 4
    done = a
    for j in range(chunks):
        it = rest // chunks + (1 if j < rest % chunks else 0)
        if it <= 0:
            continue
        b = max(int(round(n * (1 - (j + 0.5) / chunks))), 1)
        total += decode_span_s(c, NO_SPEC, b, b * (p + done), p + done, it)
        done += it
    return total


def phase_s(phase: str, m: ModelSpec, hw: HardwareProfile, lay: RunLayout,
            s: StepMetrics) -> float:
    """Predicted seconds of one logged phase of one step."""
    if phase == "gen":
        return generation_s(m, hw, lay, s)
    prompt, resp = _tokens(s, lay)
    n = lay.sequences
    if phase in ("old_logprob", "ref_logprob", "logprob", "train"):
        br = train_step(m, hw, _trainer_shape(lay, lay.reference_model), n,
                        int(round(n * prompt)), int(round(n * resp)))
        if phase == "train":
            return br.forward_backward_s + br.optimizer_s
        if phase == "logprob":
            return br.old_logprob_s + br.ref_logprob_s
        return br.old_logprob_s
    if phase.startswith("sync"):
        sg = lay.sampler_gpus or lay.gpus
        sl = SyncLayout(placement="colocated" if lay.colocated else "disaggregated",
                        sampler_gpus=sg, sampler_tp=lay.sampler_tp,
                        trainer_gpus=lay.trainer_gpus or lay.gpus, gpus_per_node=lay.gpus_per_node)
        return weight_sync(m, hw, sl).total_s
    if phase == "step":
        parts = ["gen", "logprob", "train", "sync"]
        return sum(phase_s(x, m, hw, lay, s) for x in parts)
    raise ValueError(f"unknown phase {phase!r}")


# ---------------------------------------------------------------------------------------------
# rows and fit

@dataclass(frozen=True)
class PhaseRow:
    phase: str            # gen | old_logprob | ref_logprob | logprob | train | sync | step
    step: StepMetrics
    seconds: float


def phase_rows(steps: list[StepMetrics], skip_first: int = 1) -> list[PhaseRow]:
    """Every logged phase time of every step (the first `skip_first` steps are warm-up: CUDA
    graphs, allocator growth, compilation)."""
    rows = []
    for s in steps[skip_first:] if len(steps) > skip_first + 1 else steps:
        for phase, v in (("gen", s.gen_s), ("old_logprob", s.old_logprob_s),
                         ("ref_logprob", s.ref_logprob_s), ("logprob", s.logprob_s),
                         ("train", s.train_s), ("sync", s.sync_s), ("step", s.step_s)):
            if v is not None and v > 0:
                rows.append(PhaseRow(phase, s, float(v)))
    return rows


@dataclass
class LogFit:
    profile: HardwareProfile
    terms: dict[str, dict]          # term -> {value, rel_stderr, rows, phase}
    mape_pct: dict[str, float]      # per phase (fitted phases in sample; step: the check)
    rows: int
    not_fitted: list[str]


def _stage(rows: list[PhaseRow], base: HardwareProfile, m: ModelSpec, lay: RunLayout,
           terms: tuple[str, ...], phase_of) -> dict:
    specs = [ParamSpec.inside(t, getattr(base.efficiency, t, None) or BOUNDS[t][0], *BOUNDS[t][1:])
             for t in terms]
    meas = np.array([r.seconds for r in rows])

    def pred(values):
        hw = with_efficiency(base, values)
        return np.array([phase_s(phase_of(r), m, hw, lay, r.step) for r in rows])

    res = fit_positive(specs, pred, meas, loss="soft_l1", f_scale=0.1)
    return {"values": res.values, "rel_stderr": res.rel_stderr}


def fit_from_log(steps: list[StepMetrics], lay: RunLayout, base: HardwareProfile | None = None,
                 skip_first: int = 1, passes: int = 6) -> LogFit:
    """Fit the terms the logged phases inform; see the module docstring."""
    base = base or HardwareProfile.from_catalog(lay.gpu)
    m = lay.spec()
    rows = phase_rows(steps, skip_first)
    if not rows:
        raise UserError("--from-log: no positive phase times in the log; nothing to fit")
    values: dict[str, float] = {}
    terms: dict[str, dict] = {}
    sg = lay.sampler_gpus or lay.gpus
    sync_kind = "sync_multi" if sg > 1 else "sync_single"
    groups = [("gen", ["gen"], PHASE_TERMS["gen"]),
              ("train", ["old_logprob", "ref_logprob", "logprob", "train"], PHASE_TERMS["train"]),
              ("sync", ["sync"], PHASE_TERMS[sync_kind])]
    not_fitted: list[str] = []
    # block coordinate descent: phases share terms through the cost model (decode under TP
    # pays all-reduces at link_eff; the optimizer's default rate reads decode_bw_eff), so the
    # stages are repeated until the values settle
    for _ in range(passes):
        before = dict(values)
        not_fitted = []
        for name, phases, tnames in groups:
            sub = [r for r in rows if r.phase in phases]
            tn = tuple(tnames[:max(min(len(tnames), len(sub) - 1), 0)]) if sub else ()
            if not tn:
                not_fitted.append(name)
                continue
            hw = with_efficiency(base, {k: v for k, v in values.items() if k not in tn})
            st = _stage(sub, hw, m, lay, tn, lambda r: r.phase)
            values.update(st["values"])
            for t in tn:
                terms[t] = {"value": st["values"][t], "rel_stderr": st["rel_stderr"][t],
                            "rows": len(sub), "phase": name}
        if before and all(abs(values[k] / before[k] - 1) < 1e-6 for k in before):
            break
    profile = HardwareProfile.model_validate(with_efficiency(base, values).model_dump(mode="json"))
    mape: dict[str, float] = {}
    for phase in sorted({r.phase for r in rows}):
        sub = [r for r in rows if r.phase == phase]
        mape[phase] = 100 * float(np.mean([abs(phase_s(phase, m, profile, lay, r.step)
                                                / r.seconds - 1) for r in sub]))
    return LogFit(profile=profile, terms=terms, mape_pct=mape, rows=len(rows),
                  not_fitted=not_fitted)


def run(args) -> int:
    """CLI entry: read the log and config, fit, write PROFILE.yaml + PROFILE.fit.json."""
    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        out = out.with_name(out.name + ".yaml")
    if not args.framework:
        raise UserError("--from-log needs --framework verl|trl|nemo-rl|openrlhf")
    steps = read_steps(args.from_log, args.framework)
    gpu = None if args.gpu == "auto" else args.gpu
    lay = layout_from_config(args.framework, read_config(args.config), {
        "model": args.model, "gpus": args.gpus, "gpu": gpu, "sequences": args.sequences,
        "sampler_tp": args.sampler_tp, "mini_batches": args.mini_batches})
    base = HardwareProfile.load(args.base_profile) if args.base_profile else None
    if base is not None and base.gpu != lay.gpu:
        raise UserError(f"--base-profile {args.base_profile!r} is for gpu {base.gpu!r} but the "
                        f"run used {lay.gpu!r}; pass a profile of the same GPU or --gpu {base.gpu}")
    fit = fit_from_log(steps, lay, base=base, skip_first=args.skip_steps)
    source = (f"calibrated from {args.framework} log {Path(args.from_log).name} "
              f"({lay.gpus}x {lay.gpu}, {lay.model})")
    prof = fit.profile.model_copy(update={"source": source})
    prof.save(out)
    side = out.with_name(out.stem + ".fit.json")
    side.write_text(json.dumps(finite({
        "source": source, "layout": asdict(lay), "steps": len(steps), "rows": fit.rows,
        "terms": fit.terms, "mape_pct": fit.mape_pct, "not_fitted_phases": fit.not_fitted,
        "note": "step rows are the check (sum of modelled phases), never fitted"}),
        indent=1) + "\n")
    print(f"profile {out} from {len(steps)} {args.framework} steps ({fit.rows} phase rows)")
    for t, v in fit.terms.items():
        rel = v["rel_stderr"]
        print(f"  {t:<20}{v['value']:11.4g}  +- "
              + (f"{100 * rel:.0f}%" if math.isfinite(rel) else "n/i") + f"   ({v['phase']})")
    for ph, e in fit.mape_pct.items():
        print(f"  {ph:<12} MAPE {e:6.1f}%" + ("  (check: not fitted)" if ph == "step" else ""))
    if fit.not_fitted:
        print(f"  not logged / not fitted: {', '.join(fit.not_fitted)}")
    return 0

