"""GRPO: group-normalised advantages, the clipped surrogate loss, and the optimisation step.

`group_advantages` and `grpo_loss` are pure tensor functions that follow TRL 1.16's
`GRPOTrainer` formulas (advantages in `_generate_and_score_completions`, loss in
`_compute_loss`, token-level importance sampling, no delta clipping, no entropy masking):
    A = r - mean_group(r), divided by (std + 1e-4) unless scale_rewards="none"
        (std: unbiased, per group for "group", over the batch for "batch");
    ratio = exp(logp - old_logp); per-token loss = -min(ratio*A, clip(ratio, 1-eps_low, 1+eps_high)*A)
        + beta * (exp(ref - logp) - (ref - logp) - 1);
    grpo: mean over sequences of the per-sequence token mean; dr_grpo: token sum /
    (sequences * max_completion_length); dapo: token sum / (RL-batch tokens / mini_batches).
`GRPOTrainer.step` runs one RL step: optional reference and old-policy log-prob forwards, then
for each iteration and mini-batch a forward, backward and AdamW step, each timed.
"""

from __future__ import annotations

import math

import time
from dataclasses import dataclass, field

import torch

from executor.sampler import Rollout

STD_EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """Advantages of prompt-major rewards (k = group_size consecutive samples per prompt)."""
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1).repeat_interleave(group_size)
    adv = rewards - mean
    if scale == "none":
        return adv
    if scale == "group":
        std = grouped.std(dim=1).repeat_interleave(group_size) if group_size > 1 else torch.zeros_like(rewards)
    elif scale == "batch":
        std = rewards.std().expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    else:
        raise ValueError(f"scale_rewards={scale!r}: use 'group', 'batch' or 'none'")
    return adv / (std + STD_EPS)


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "dapo"
    beta: float = 0.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.28
    max_completion_length: int = 16


@dataclass
class LossStats:
    kl: float
    clip_fraction: float


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, cfg: LossConfig, ref_logps: torch.Tensor | None = None,
              dapo_normalizer: float | None = None) -> tuple[torch.Tensor, LossStats]:
    """The GRPO loss of one mini-batch. logps/old/ref/mask: [B, T]; advantages: [B].

    dapo_normalizer: token count dividing the dapo sum (TRL: RL-batch tokens / mini-batches);
    None uses this mini-batch's token count.
    """
    mask = mask.to(logps.dtype)
    adv = advantages[:, None]
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = torch.zeros((), dtype=logps.dtype, device=logps.device)
    if cfg.beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs ref_logps")
        diff = ref_logps - logps
        per_token_kl = torch.exp(diff) - diff - 1
        per_token = per_token + cfg.beta * per_token_kl
        kl = (per_token_kl * mask).sum() / mask.sum().clamp(min=1.0)
    if cfg.loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif cfg.loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.size(0) * cfg.max_completion_length)
    elif cfg.loss_type == "dapo":
        norm = mask.sum() if dapo_normalizer is None else torch.tensor(float(dapo_normalizer))
        loss = (per_token * mask).sum() / norm.clamp(min=1.0)
    else:
        raise ValueError(f"loss_type={cfg.loss_type!r}: use 'grpo', 'dr_grpo' or 'dapo'")
    is_clipped = ((ratio < 1 - cfg.epsilon_low) & (adv < 0)) | ((ratio > 1 + cfg.epsilon_high) & (adv > 0))
    clip_fraction = float((is_clipped.to(mask.dtype) * mask).sum() / mask.sum().clamp(min=1.0))
    return loss, LossStats(kl=float(kl.detach()), clip_fraction=clip_fraction)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-4
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    loss: LossConfig = field(default_factory=LossConfig)
    scale_rewards: str = "group"
    mini_batches: int = 1
    num_iterations: int = 1
    temperature: float = 1.0
    warmup_updates: int = 0       # optimizer updates of linear lr warm-up


@dataclass
class Phase:
    """One timed piece of a train step (perf_counter seconds)."""

    name: str                 # ref_logprob | old_logprob | forward_backward | optimizer
    start: float
    end: float
    sequences: int
    tokens: int
    extra: dict = field(default_factory=dict)


@dataclass
class TrainStats:
    loss: float
    kl: float
    entropy: float
    clip_fraction: float
    grad_norm: float
    sequences: int
    tokens: int
    phases: list[Phase]

    def seconds(self, name: str) -> float:
        return sum(p.end - p.start for p in self.phases if p.name == name)


@dataclass
class TokenBatch:
    """Right-padded prompt+completion ids; mask marks completion targets of the shifted ids.
    (Not the simulator's `rlvr_sim.sim.source.Batch`, which is the samples of one RL step.)"""

    input_ids: torch.Tensor   # [B, T]
    attention: torch.Tensor   # [B, T]
    mask: torch.Tensor        # [B, T-1] (target t+1 of position t is a completion token)

    def rows(self, sl: slice) -> "TokenBatch":
        return TokenBatch(self.input_ids[sl], self.attention[sl], self.mask[sl])


Batch = TokenBatch          # the older name, kept for one release


def make_batch(rollouts: list[Rollout], pad_id: int, device: torch.device) -> TokenBatch:
    width = max(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)
    ids = torch.full((len(rollouts), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rollouts), width), dtype=torch.long)
    mask = torch.zeros((len(rollouts), width - 1))
    for i, r in enumerate(rollouts):
        seq = r.prompt_ids + r.completion_ids
        ids[i, :len(seq)] = torch.tensor(seq)
        att[i, :len(seq)] = 1
        mask[i, len(r.prompt_ids) - 1:len(seq) - 1] = 1
    return TokenBatch(ids.to(device), att.to(device), mask.to(device))


def token_logps(model: torch.nn.Module, batch: TokenBatch, temperature: float,
                with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs [B, T-1] of the next token under logits / temperature (+ entropy)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention).logits[:, :-1]
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    logps = logp_all.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logps, entropy


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class GRPOTrainer:
    """Owns the policy's optimiser; `step` turns one rewarded RL batch into parameter updates.

    The reference model (frozen) is only run when beta > 0. Old log-probs: the caller's
    `old_logps` when given (the behaviour policy's, for off-policy data: no forward); otherwise
    recomputed when the batch is reused (mini_batches > 1 or num_iterations > 1), and otherwise
    the ratio is exactly 1 at the single update (TRL's `per_token_logps.detach()` shortcut).
    """

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, pad_id: int,
                 ref_model: torch.nn.Module | None = None):
        if cfg.loss.beta > 0 and ref_model is None:
            raise ValueError("beta > 0 needs a reference model")
        self.model, self.cfg, self.pad_id, self.ref_model = model, cfg, pad_id, ref_model
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _set_lr(self) -> None:
        """Linear warm-up by optimizer update count (kept in the optimizer state: resume-safe)."""
        if not self.cfg.warmup_updates:
            return
        first = next(iter(self.model.parameters()))
        done = int(self.optimizer.state.get(first, {}).get("step", 0))
        scale = min(1.0, (done + 1) / self.cfg.warmup_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * scale

    def _timed_logps(self, name: str, model: torch.nn.Module | None, batch: TokenBatch,
                     phases: list[Phase]) -> torch.Tensor:
        if model is None:
            raise ValueError(f"{name}: no model (beta > 0 needs the reference model)")
        _sync(self.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            logps, _ = token_logps(model, batch, self.cfg.temperature)
        _sync(self.device)
        phases.append(Phase(name, t0, time.perf_counter(), batch.input_ids.shape[0],
                            int(batch.attention.sum())))
        return logps

    def step(self, rollouts: list[Rollout], rewards: list[float], group_size: int,
             old_logps: torch.Tensor | None = None) -> TrainStats:
        """One RL step over prompt-major `rollouts` with their `rewards`.

        old_logps: [B, T-1] behaviour log-probs aligned with `make_batch(rollouts).mask` (values
        off the mask are ignored); used as the importance ratio's denominator at every update.
        """
        cfg = self.cfg
        self.model.train()
        batch = make_batch(rollouts, self.pad_id, self.device)
        adv = group_advantages(torch.tensor(rewards, dtype=torch.float32), group_size,
                               cfg.scale_rewards).to(self.device)
        phases: list[Phase] = []
        ref = self._timed_logps("ref_logprob", self.ref_model, batch, phases) if cfg.loss.beta > 0 else None
        reuse = cfg.mini_batches > 1 or cfg.num_iterations > 1
        if old_logps is not None:
            if old_logps.shape != batch.mask.shape:
                raise ValueError(f"old_logps has shape {tuple(old_logps.shape)}; the batch's "
                                 f"completion mask has {tuple(batch.mask.shape)}")
            old: torch.Tensor | None = old_logps.to(self.device, torch.float32)
        else:
            old = self._timed_logps("old_logprob", self.model, batch, phases) if reuse else None
        n = len(rollouts)
        bounds = [round(i * n / cfg.mini_batches) for i in range(cfg.mini_batches + 1)]
        dapo_norm = float(batch.mask.sum()) / cfg.mini_batches
        losses, kls, clips, ents, norms = [], [], [], [], []
        for _ in range(cfg.num_iterations):
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                if hi <= lo:
                    continue
                sl = slice(lo, hi)
                mb = batch.rows(sl)
                _sync(self.device)
                t0 = time.perf_counter()
                logps, entropy = token_logps(self.model, mb, cfg.temperature, with_entropy=True)
                assert entropy is not None        # with_entropy=True
                old_mb = old[sl] if old is not None else logps.detach()
                loss, stats = grpo_loss(logps, old_mb, adv[sl], mb.mask, cfg.loss,
                                        ref[sl] if ref is not None else None, dapo_norm)
                _sync(self.device)
                t1 = time.perf_counter()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _sync(self.device)
                t2 = time.perf_counter()
                self._set_lr()
                # the pre-clip norm; without clipping (max_grad_norm None) an infinite bound
                # measures it without scaling anything, so it is never a stand-in 0
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                           cfg.max_grad_norm or math.inf)
                self.optimizer.step()
                _sync(self.device)
                t3 = time.perf_counter()
                tokens = int(mb.attention.sum())
                phases.append(Phase("forward_backward", t0, t2, hi - lo, tokens,
                                    {"forward_s": t1 - t0, "backward_s": t2 - t1}))
                phases.append(Phase("optimizer", t2, t3, hi - lo, tokens))
                losses.append(float(loss.detach()))
                kls.append(stats.kl)
                clips.append(stats.clip_fraction)
                norms.append(float(grad_norm))
                ents.append(float((entropy * mb.mask).sum() / mb.mask.sum().clamp(min=1.0)))
        mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
        return TrainStats(loss=mean(losses), kl=mean(kls), entropy=mean(ents),
                          clip_fraction=mean(clips), grad_norm=mean(norms), sequences=n,
                          tokens=int(batch.attention.sum()), phases=phases)
