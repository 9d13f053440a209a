"""Read the per-step metrics RL frameworks log, and name each framework's timing keys.

File formats (detected from the content, whatever the framework):
- JSON lines: one flat mapping per line with a step key (`step`, `_step`, `global_step`,
  `train/global_step`), or verl's file logger shape `{"step": N, "data": {...}}`;
- CSV: a wandb "export CSV" of the run history (`_step` or a step column, one metric per column);
- console text: verl's `step:N - key:value - key:value` lines; OpenRLHF's
  `Global step N: {python dict}` lines (the log line's `MM-DD HH:MM:SS` time stamp is kept as
  `_time_s` so step wall times can be taken from consecutive lines);
- JSON: TRL's `trainer_state.json` (`log_history` list) and NeMo-RL's metrics dump
  `{metric: {step: value}}`.

Key names, learnt from the frameworks' sources (public repositories, read for this purpose):
- verl `verl/trainer/ppo/metric_utils.py` and `ray_trainer.py`: `timing_s/<section>` for the
  `marked_timer` sections gen, reward, old_log_prob, ref, adv, update_actor, update_weights, step;
  `response_length/{mean,max}`, `prompt_length/{mean,max}`;
- NeMo-RL `nemo_rl/algorithms/grpo.py`: `timing/train/{generation, policy_and_reference_logprobs,
  policy_training, prepare_for_generation/total, total_step_time}`, `train/total_num_tokens`,
  `train/mean_prompt_length`;
- TRL `trl/extras/profiling.py` + `GRPOTrainer`: `profiling/Time taken: GRPOTrainer.<method>` (to
  wandb/mlflow only, each call its own history row), `completions/{mean,max}_length`, `num_tokens`
  (cumulative) in `log_history`;
- OpenRLHF `openrlhf/trainer/ppo_trainer.py`: the per-step status dict (`response_length`,
  `total_length`, ...; wandb prefixes `train/`) has no per-phase timing.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from rlvr_sim.errors import UserError

STEP_KEYS = ("step", "_step", "global_step", "train/global_step", "trainer/global_step")
FRAMEWORKS = ("verl", "trl", "nemo-rl", "openrlhf")


@dataclass(frozen=True)
class StepMetrics:
    """One logged training step: phase seconds (None: not logged) and batch token statistics."""

    step: int
    gen_s: float | None = None
    old_logprob_s: float | None = None
    ref_logprob_s: float | None = None
    logprob_s: float | None = None        # old + ref log-prob forwards timed together (NeMo-RL)
    train_s: float | None = None          # actor update: forward+backward+optimizer, all minis
    sync_s: float | None = None           # trainer -> sampler weights
    step_s: float | None = None
    prompt_tokens_mean: float | None = None
    response_tokens_mean: float | None = None
    response_tokens_max: float | None = None
    total_tokens: float | None = None     # prompt + response tokens of the step's batch


# ---------------------------------------------------------------------------------------------
# file readers -> list of {metric: value} rows with an integer "step"

def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _step_of(row: dict) -> int | None:
    for k in STEP_KEYS:
        step = _num(row[k]) if k in row else None
        if step is not None:
            return int(step)
    return None


_VERL_LINE = re.compile(r"(?:^|\s)step:(\d+)\s+-\s+(.*)$")
_ORLHF_LINE = re.compile(r"Global step (\d+):\s*(\{.*\})\s*$")
_STAMP = re.compile(r"(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?")


def _stamp_s(line: str) -> float | None:
    m = _STAMP.search(line)
    if not m:
        return None
    mo, d, h, mi, s, frac = m.groups()
    return (((int(mo) * 31 + int(d)) * 24 + int(h)) * 60 + int(mi)) * 60 + int(s) + \
        (float("0." + frac) if frac else 0.0)


def read_rows(path: str | Path) -> list[dict]:
    """Every row of a metrics file, in file order; each row has an int "step" when the file
    says which step it belongs to. UserError when the file is missing or unreadable."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"--from-log {str(p)!r} not found; give the metrics file of the run "
                        "(JSON lines, wandb CSV export, console log or trainer_state.json)")
    text = p.read_text(errors="replace")
    stripped = text.lstrip()
    if p.suffix.lower() == ".csv":
        return _csv_rows(text)
    if stripped.startswith("{") and not _is_jsonl(stripped):
        data = json.loads(stripped)
        if isinstance(data.get("log_history"), list):          # TRL trainer_state.json
            return [dict(r) for r in data["log_history"] if isinstance(r, dict)]
        if data and all(isinstance(v, dict) for v in data.values()):   # NeMo-RL {metric: {step: v}}
            steps: dict[int, dict] = {}
            for metric, series in data.items():
                for s, v in series.items():
                    steps.setdefault(int(float(s)), {"step": int(float(s))})[metric] = v
            return [steps[s] for s in sorted(steps)]
        return [data]
    rows: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                if isinstance(obj.get("data"), dict):
                    obj = {**obj["data"], "step": obj.get("step")}
                rows.append(obj)
                continue
        m = _ORLHF_LINE.search(line)
        if m:
            try:
                d = ast.literal_eval(m.group(2))
            except (ValueError, SyntaxError):
                continue
            row = {k: v for k, v in d.items() if _num(v) is not None}
            row["step"] = int(m.group(1))
            t = _stamp_s(line[:m.start()])
            if t is not None:
                row["_time_s"] = t
            rows.append(row)
            continue
        m = _VERL_LINE.search(line)
        if m:
            row = {"step": int(m.group(1))}
            for part in m.group(2).split(" - "):
                if ":" in part:
                    k, v = part.rsplit(":", 1)
                    if _num(v) is not None:
                        row[k.strip()] = _num(v)
            rows.append(row)
    if not rows:
        raise UserError(f"--from-log {str(p)!r}: no metric rows found; expected JSON lines, a "
                        "wandb CSV export, verl console lines (step:N - key:value ...), OpenRLHF "
                        "'Global step N: {...}' lines or a trainer_state.json")
    return rows


def _is_jsonl(text: str) -> bool:
    lines = [x for x in text.splitlines() if x.strip()]
    if len(lines) < 2:
        return False
    try:
        json.loads(lines[0])
        return True
    except json.JSONDecodeError:
        return False


def _csv_rows(text: str) -> list[dict]:
    reader = csv.DictReader(text.splitlines())
    return [{k: v for k, v in r.items() if v not in ("", None)} for r in reader]


# ---------------------------------------------------------------------------------------------
# framework key maps -> StepMetrics

def _get(row: dict, *keys: str) -> float | None:
    for k in keys:
        if k in row:
            v = _num(row[k])
            if v is not None:
                return v
    return None


def _group(rows: list[dict]) -> list[dict]:
    """Merge rows of the same step (wandb logs several rows per step)."""
    out: dict[int, dict] = {}
    for r in rows:
        s = _step_of(r)
        if s is None:
            continue
        out.setdefault(s, {}).update(r)
    return [dict(out[s], step=s) for s in sorted(out)]


def verl_steps(rows: list[dict]) -> list[StepMetrics]:
    out = []
    for r in _group(rows):
        out.append(StepMetrics(
            step=r["step"], gen_s=_get(r, "timing_s/gen"),
            old_logprob_s=_get(r, "timing_s/old_log_prob"), ref_logprob_s=_get(r, "timing_s/ref"),
            train_s=_get(r, "timing_s/update_actor"), sync_s=_get(r, "timing_s/update_weights"),
            step_s=_get(r, "timing_s/step", "perf/time_per_step"),
            prompt_tokens_mean=_get(r, "prompt_length/mean"),
            response_tokens_mean=_get(r, "response_length/mean"),
            response_tokens_max=_get(r, "response_length/max"),
            total_tokens=_get(r, "perf/total_num_tokens")))
    return out


def nemo_rl_steps(rows: list[dict]) -> list[StepMetrics]:
    out = []
    for r in _group(rows):
        out.append(StepMetrics(
            step=r["step"], gen_s=_get(r, "timing/train/generation"),
            logprob_s=_get(r, "timing/train/policy_and_reference_logprobs"),
            train_s=_get(r, "timing/train/policy_training"),
            sync_s=_get(r, "timing/train/prepare_for_generation/total",
                        "timing/train/prepare_for_generation"),
            step_s=_get(r, "timing/train/total_step_time"),
            prompt_tokens_mean=_get(r, "train/mean_prompt_length", "mean_prompt_length"),
            total_tokens=_get(r, "train/total_num_tokens", "total_num_tokens")))
    return out


TRL_PROFILE = "profiling/Time taken: "


def trl_steps(rows: list[dict]) -> list[StepMetrics]:
    """TRL: profiling rows (one per call, no step) are summed into the next trainer log row
    (the one that carries `train/global_step` or `completions/mean_length`), divided by the
    optimizer steps since the previous one. Generation: `<Trainer>.vLLM.generate` or
    `.transformers.generate`; weight sync: `._move_model_to_vllm`. TRL does not time the
    backward pass, so no training row comes from TRL logs."""
    acc: dict[str, float] = {}
    last_step = 0
    last_tokens: float | None = None
    out = []
    for r in rows:
        for k, v in r.items():
            x = _num(v) if k.startswith(TRL_PROFILE) else None
            if x is not None:
                name = k[len(TRL_PROFILE):].split(".", 1)[-1]
                acc[name] = acc.get(name, 0.0) + x
        mean_len = _get(r, "completions/mean_length", "train/completions/mean_length")
        gs = _get(r, "train/global_step", "step", "global_step")
        step = int(gs) if gs is not None else None
        if mean_len is None or step is None:
            continue
        n = max(step - last_step, 1)
        tokens = _get(r, "num_tokens", "train/num_tokens")
        total = (tokens - last_tokens) / n if tokens is not None and last_tokens is not None else None
        gen = sum(v for k, v in acc.items() if k in ("vLLM.generate", "transformers.generate"))
        sync = acc.get("_move_model_to_vllm")
        out.append(StepMetrics(
            step=step, gen_s=gen / n if gen else None, sync_s=sync / n if sync else None,
            response_tokens_mean=mean_len,
            response_tokens_max=_get(r, "completions/max_length", "train/completions/max_length"),
            total_tokens=total))
        acc = {}
        last_step, last_tokens = step, tokens
    return out


def openrlhf_steps(rows: list[dict]) -> list[StepMetrics]:
    """OpenRLHF: no per-phase timing in its status; the step wall time is the difference of the
    time stamps of consecutive `Global step` console lines (None for the first step)."""
    out = []
    prev_t = None
    for r in _group(rows):
        t = _get(r, "_time_s")
        resp = _get(r, "response_length", "train/response_length")
        total = _get(r, "total_length", "train/total_length")
        out.append(StepMetrics(
            step=r["step"], step_s=(t - prev_t) if t is not None and prev_t is not None else None,
            response_tokens_mean=resp,
            prompt_tokens_mean=(total - resp) if total is not None and resp is not None else None))
        prev_t = t if t is not None else prev_t
    return out


PARSERS = {"verl": verl_steps, "nemo-rl": nemo_rl_steps, "trl": trl_steps,
           "openrlhf": openrlhf_steps}


def read_steps(path: str | Path, framework: str) -> list[StepMetrics]:
    """The steps of a run's metrics file in the framework's key names."""
    if framework not in PARSERS:
        raise UserError(f"--framework {framework!r} is not supported; use one of "
                        f"{', '.join(FRAMEWORKS)}")
    steps = PARSERS[framework](read_rows(path))
    if not steps:
        raise UserError(f"--from-log {str(path)!r}: no {framework} steps found (no row has a "
                        f"step and the {framework} metric names); check --framework")
    return steps
