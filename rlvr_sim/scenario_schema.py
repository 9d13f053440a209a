"""The scenario schema: every section of a scenario file as a pydantic model (docs/contracts.md).

Every section forbids unknown keys and has defaults, so a 10-line file is a valid scenario.
Field validators check one field; `Scenario`'s model validator applies the numeric ranges
(`rlvr_sim.input_limits`) and the configuration rules (`rlvr_sim.rules` via
`rlvr_sim.scenario_checks`). Reading files, overrides and the memory-fit question are
`rlvr_sim.scenario` (loading); messages are `rlvr_sim.scenario_errors`.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, \
    model_validator

from rlvr_sim.distributions import Distribution, Fixed, LogNormal
from rlvr_sim import rules
from rlvr_sim.dynamic_sampling import RewardSpec
from rlvr_sim.errors import UserError
from rlvr_sim.executor_spec import ExecutorSpec  # pure pydantic, no torch
from rlvr_sim.hardware import HardwareProfile, catalog_gpu
from rlvr_sim.model_spec import ModelSpec, catalog_model
from rlvr_sim.scenario_errors import one_line
from rlvr_sim.step_schedules import LengthSchedule, PassRateSchedule
WeightDtype = Literal["bf16", "fp16", "fp8", "int4", "fp32"]
KvDtype = Literal["bf16", "fp16", "fp8", "fp32"]


DATASHEET_PROFILE = "datasheet"   # `profile: datasheet`: catalog datasheet + generic efficiencies


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Hardware(_Section):
    gpu: str = Field("h100-sxm", description="GPU catalog name (rlvr_sim/catalog/gpus.yaml)")
    gpus_per_node: int = Field(8, ge=1, le=64)
    usd_per_gpu_hour: float | None = Field(None, ge=0, description="override the catalog price")
    intra_node_bytes_per_s: float | None = Field(None, gt=0)
    inter_node_bytes_per_s: float | None = Field(None, gt=0)

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, v: str) -> str:
        try:
            catalog_gpu(v)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return v.lower()


class DynamicSampling(_Section):
    """DAPO dynamic sampling (verl `algorithm.filter_groups`): drop prompt groups whose k rewards
    are all equal and generate more rounds until the batch holds prompts_per_step groups."""

    enabled: bool = True
    oversample_factor: float = Field(1.0, ge=1.0, le=100, description="prompts generated per "
                                     "round / prompts_per_step (verl gen_batch_size ratio)")
    max_rounds: int = Field(10, ge=1, le=1000, description="generation rounds per step at most; "
                            "then the step trains on the groups it has")


class Workload(_Section):
    prompts_per_step: int = Field(64, ge=1)
    samples_per_prompt: int = Field(16, ge=1)
    steps: int = Field(100, ge=1)
    seed: int = 0
    prompt_tokens: Distribution = Field(default_factory=lambda: Fixed(value=512))
    response_tokens: Distribution = Field(
        default_factory=lambda: LogNormal(mean=1000, sigma=1.0, cap=4096))
    response_schedule: LengthSchedule | None = Field(
        None, description="response lengths as a function of the step (piecewise, growth or a "
        "logged table); None: `response_tokens` for the whole run")
    pass_rate: PassRateSchedule | None = Field(
        None, description="probability that a sample is rewarded 1, over the run; rewards are "
        "drawn from it (needed by dynamic_sampling)")
    dynamic_sampling: DynamicSampling | None = Field(
        None, description="DAPO/verl filter of groups whose k rewards are all equal")

    @model_validator(mode="after")
    def _schedule_checks(self) -> "Workload":
        ds = self.dynamic_sampling
        if ds is not None and ds.enabled and self.pass_rate is None:
            raise ValueError("workload.dynamic_sampling needs workload.pass_rate (the rewards it "
                             "filters on); add e.g. `pass_rate: {points: [{step: 0, rate: 0.5}]}`")
        if ds is not None and ds.enabled and self.samples_per_prompt < 2:
            raise ValueError(f"workload.dynamic_sampling with samples_per_prompt="
                             f"{self.samples_per_prompt}: every group of 1 is all-equal; use >= 2")
        return self

    @property
    def sequences_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt

    # --- schedules (issue 20; rlvr_sim.schedule integrates over them) -------------------------
    @property
    def has_schedule(self) -> bool:
        """True when the workload changes over the run (length or pass-rate schedule)."""
        return self.response_schedule is not None or (
            self.pass_rate is not None and len({p.rate for p in self.pass_rate.points}) > 1)

    def response_tokens_at(self, step: int) -> Distribution:
        """Response-length distribution of RL step `step` (0-based)."""
        return self.response_schedule.at(step) if self.response_schedule else self.response_tokens

    def pass_rate_at(self, step: int) -> float | None:
        return self.pass_rate.at(step) if self.pass_rate is not None else None

    def schedule_breakpoints(self) -> list[int]:
        """Steps (0 < s < steps) where the length or pass-rate schedule jumps or bends."""
        steps = set(self.response_schedule.breakpoints() if self.response_schedule else [])
        steps |= set(self.pass_rate.breakpoints() if self.pass_rate else [])
        return sorted(s for s in steps if 0 < s < self.steps)

    def reward_spec(self, step: int = 0) -> RewardSpec | None:
        """The simulator's rewards at `step`: pass rate + dynamic sampling (None: no pass rate)."""
        if self.pass_rate is None:
            return None
        ds = self.dynamic_sampling if (self.dynamic_sampling is not None
                                       and self.dynamic_sampling.enabled) else None
        return RewardSpec(pass_rate=self.pass_rate.at(step),
                          concentration=self.pass_rate.concentration, filter_groups=ds is not None,
                          oversample_factor=ds.oversample_factor if ds is not None else 1.0,
                          max_rounds=ds.max_rounds if ds is not None else 1)

    def at_step(self, step: int) -> "Workload":
        """This workload frozen at `step`: that step's lengths and pass rate, no schedule."""
        pr = self.pass_rate
        frozen = None if pr is None else PassRateSchedule(
            points=[{"step": 0, "rate": pr.at(step)}], concentration=pr.concentration)
        return self.model_copy(update={"response_tokens": self.response_tokens_at(step),
                                       "response_schedule": None, "pass_rate": frozen})


# Per-method default acceptance rate (per drafted token) when a scenario gives none, with where
# the number comes from (a property of the draft method and model, not of any GPU timing).
ACCEPTANCE_DEFAULTS: dict[str, tuple[float, str]] = {
    "none": (0.7, "unused (no speculation)"),
    "draft": (0.6, "Leviathan et al. 2023 (Fast Inference from Transformers via Speculative "
                   "Decoding), measured alpha 0.5-0.9 over their draft/target pairs; low end"),
    "ngram": (0.7, "no published per-token rate found for prompt-lookup n-grams: the schema's "
                   "former default, unsourced; set acceptance_rate from your own runs"),
    "eagle": (0.75, "Li et al. 2024, EAGLE (ICML), per-position acceptance 0.7-0.8 of chain "
                    "drafts on MT-bench"),
    "mtp": (0.85, "DeepSeek-V3 technical report (2024), sec. 5.4.3: acceptance of the second "
                  "predicted token 85-90%"),
}


class SpeculativeSpec(_Section):
    method: Literal["none", "draft", "ngram", "eagle", "mtp"] = "none"
    draft_tokens: int = Field(4, ge=1, le=64, description="draft depth (tokens per chain)")
    acceptance_rate: float = Field(0.7, ge=0, le=1, description="per drafted token; when "
                                   "omitted, the method's default (ACCEPTANCE_DEFAULTS)")
    draft_cost_ratio: float = Field(0.05, ge=0, le=2, description="draft pass / target pass time")
    tree_width: int = Field(1, ge=1, le=16, description="EAGLE-style tree: candidates per draft "
                            "depth, verified in one pass of width tree_width x draft_tokens + 1; "
                            "1: a chain")

    @model_validator(mode="before")
    @classmethod
    def _method_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("acceptance_rate") is None:
            method = data.get("method", "none")
            if isinstance(method, str) and method in ACCEPTANCE_DEFAULTS:   # a list: reported below
                data = {**data, "acceptance_rate": ACCEPTANCE_DEFAULTS[method][0]}
        return data


class Sampler(_Section):
    gpus: int = Field(8, ge=1)
    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    max_concurrent_sequences: int = Field(256, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    weight_dtype: WeightDtype = "bf16"
    kv_dtype: KvDtype = "bf16"
    block_tokens: int = Field(16, ge=1, le=4096)
    prefix_caching: bool = True
    speculative: SpeculativeSpec = Field(default_factory=SpeculativeSpec)
    ep: int = Field(1, ge=1, description="expert-parallel degree inside a replica (MoE): routed "
                    "experts split over ep of the replica's tp x pp GPUs (vLLM "
                    "--enable-expert-parallel), dispatch + combine all-to-all per MoE layer")
    pp_overlap: bool = Field(False, description="pipeline-parallel decode overlaps micro-batches "
                             "(one per stage in flight, as vLLM's PP virtual engines) instead of "
                             "running the stages one after another")

    @property
    def replicas(self) -> int:
        return max(self.gpus // (self.tp * self.pp), 1)


class Verifier(_Section):
    workers: int = Field(64, ge=1)
    latency_s: Distribution = Field(default_factory=lambda: LogNormal(mean=0.5, sigma=0.5, cap=30))
    timeout_s: float = Field(30.0, gt=0)
    failure_rate: float = Field(0.0, ge=0, le=1)
    rpc_latency_s: float = Field(0.0, ge=0, description="round trip to hand a trace over and get "
                                 "its reward back (network/IPC); does not occupy a worker")


class Trainer(_Section):
    gpus: int = Field(8, ge=1)
    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    fsdp: bool = True
    mini_batches: int = Field(4, ge=1, description="optimizer steps per RL step")
    reference_model: bool = True
    old_logprob: bool = True
    recompute_activations: bool = True
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    cp: int = Field(1, ge=1, description="context (sequence) parallel degree (Ulysses all-to-all); "
                    "gpus = dp x tp x pp x cp")
    ep: int = Field(1, ge=1, description="expert-parallel degree (MoE): routed experts split over "
                    "ep GPUs")
    fsdp_shard_size: int | None = Field(None, ge=1, description="FSDP hybrid shard: data-parallel "
                                        "ranks per shard group (None: shard over all)")
    micro_batch_tokens: int | None = Field(None, ge=1, description="token budget of one "
                                           "micro-batch per data-parallel rank (verl "
                                           "ppo_max_token_len_per_gpu); None: a whole mini-batch")
    packing: bool = Field(True, description="sequence packing / dynamic batching balanced across "
                          "ranks; false: fixed micro-batches of micro_batch_sequences padded to "
                          "their longest sequence")
    micro_batch_sequences: int = Field(1, ge=1, description="sequences per padded micro-batch "
                                       "(packing: false)")
    fp8: bool = Field(False, description="fp8 linear layers in training (Transformer Engine "
                      "recipe): matmuls at the fp8 peak, attention and master weights stay bf16/fp32")
    offload_optimizer: bool = Field(False, description="Adam states in host memory, CPU Adam "
                                    "(DeepSpeed/FSDP optimizer offload)")
    offload_params: bool = Field(False, description="parameters in host memory, streamed to the "
                                 "GPU every pass")
    streaming: bool = Field(False, description="async: train each mini-batch as soon as its "
                            "samples are verified (verl fully_async require_batches=1) instead of "
                            "waiting for the whole step's batch")
    stream_batches: int = Field(1, ge=1, description="streaming: mini-batches fetched and trained "
                                "together once all their samples are rewarded (verl "
                                "async_training.require_batches)")


class WeightSyncSpec(_Section):
    method: Literal["nccl", "nixl", "ipc", "disk"] = Field(
        "nccl", description="nccl: gather on the trainer, broadcast to samplers; nixl: RDMA reads "
        "of the trainer's shards straight into each sampler rank (no gather); ipc: colocated CUDA "
        "IPC handles (no copy over a link); disk: checkpoint written and read back")
    bucket_bytes: float = Field(512 * 2**20, ge=1)


class Orchestration(_Section):
    placement: Literal["colocated", "disaggregated"] = "colocated"
    mode: Literal["sync", "async"] = "sync"
    inference_only: bool = Field(False, description="sampler pool alone (no trainer, no weight "
                                 "sync): a decode benchmark or serving run; needs placement: "
                                 "disaggregated")
    max_staleness: int = Field(1, ge=0, description="async only; 0 behaves as sync")
    staleness_threshold: float | None = Field(
        None, ge=0, description="async: verl's fractional staleness, in batches; samples up to "
        "(published version + 1 + threshold) x batch may start; replaces max_staleness when set")
    partial_rollout: bool = False
    weight_update: Literal["drain", "recompute", "keep_kv"] | None = Field(
        None, description="async, what a replica does with running sequences when new weights "
        "arrive: drain (finish them, then load), recompute (interrupt, load, re-prefill their "
        "tokens: partial rollout), keep_kv (pause at the next iteration, load, continue with the "
        "KV cache as is: in-flight update); None: recompute if partial_rollout else drain")
    arrival_qps: float | None = Field(
        None, gt=0, description="inference_only: prompt groups arrive as a Poisson process at this "
        "rate (per second); None: each step's batch arrives at once (closed batch)")
    offload_on_switch: bool = Field(True, description="colocated: offload the sampler's weights "
                                    "to host memory for training and reload them each step "
                                    "(vLLM sleep mode); false when both copies stay resident")
    weight_sync: WeightSyncSpec = Field(default_factory=WeightSyncSpec)

    @property
    def staleness(self) -> float:
        """The async staleness bound in batches (fractional with staleness_threshold)."""
        if self.staleness_threshold is not None:
            return float(self.staleness_threshold)
        return float(self.max_staleness)

    @property
    def update_mode(self) -> str:
        if self.weight_update is not None:
            return self.weight_update
        return "recompute" if self.partial_rollout else "drain"


class Scenario(_Section):
    """A validated scenario. `model` is always a resolved ModelSpec (catalog name, config.json
    path and inline mapping all end here); `profile` is an absolute path or None."""

    name: str | None = None
    model: ModelSpec
    hardware: Hardware = Field(default_factory=Hardware)
    workload: Workload = Field(default_factory=Workload)
    sampler: Sampler = Field(default_factory=Sampler)
    verifier: Verifier = Field(default_factory=Verifier)
    trainer: Trainer = Field(default_factory=Trainer)
    orchestration: Orchestration = Field(default_factory=Orchestration)
    profile: str | None = Field(None, description="hardware profile YAML (calibrated or public-measurement efficiencies); `datasheet`: the catalog datasheet with generic efficiency guesses; none: the GPU's default (its shipped public profile, else datasheet guesses)")
    executor: ExecutorSpec | None = None

    @field_validator("model", mode="before")
    @classmethod
    def _resolve_model(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, ModelSpec):
            return v
        if isinstance(v, dict):
            return ModelSpec.hf_fields(v, keep_unknown=True)
        if not isinstance(v, str):
            raise ValueError("give a catalog name, a path to a config.json, or a mapping of "
                             "config.json fields")
        try:
            if v.endswith(".json") or "/" in v or "\\" in v:
                path = Path(v).expanduser()
                base = (info.context or {}).get("base_dir")
                if not path.is_absolute() and base is not None:
                    path = Path(base) / path
                return ModelSpec.from_hf_config(path)
            return catalog_model(v)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        except ValidationError as exc:
            raise ValueError(f"config.json does not describe a model: {one_line(exc)}") from None

    @field_validator("profile", mode="after")
    @classmethod
    def _resolve_profile(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or v == DATASHEET_PROFILE:
            return v
        path = Path(v).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        if not path.is_file():
            raise ValueError(f"profile file {str(path)!r} not found; give a path relative to the "
                             "scenario file, `profile: datasheet` for datasheet guesses, or remove "
                             "`profile:` for the GPU's default profile")
        return str(path.resolve())

    @model_validator(mode="after")
    def _cross_checks(self) -> "Scenario":
        from rlvr_sim.input_limits import limit_problems
        from rlvr_sim.scenario_checks import check_scenario, raise_problems

        raise_problems(limit_problems(self))   # before the rules, which compute with them
        check_scenario(self)
        return self

    # --- derived ------------------------------------------------------------------------------
    @property
    def total_gpus(self) -> int:
        return rules.run_gpus(self.orchestration.placement, self.orchestration.inference_only,
                              self.sampler.gpus, self.trainer.gpus)

    @property
    def max_context_tokens(self) -> int:
        """Longest sequence a step can hold: max prompt + max response (the model's context
        window, max_position_embeddings, when a distribution is unbounded)."""
        top = self.workload.prompt_tokens.max_value() + self.workload.response_tokens.max_value()
        return int(top) if math.isfinite(top) else self.model.max_position_embeddings

    @cached_property
    def hardware_profile(self) -> HardwareProfile:
        """The profile file's datasheet and efficiencies (else the catalog GPU's default: its
        shipped public-measurement profile, or datasheet guesses), with the
        scenario's `hardware.*` overrides applied."""
        if self.profile == DATASHEET_PROFILE:
            prof = HardwareProfile.from_catalog(self.hardware.gpu)
        elif self.profile:
            prof = HardwareProfile.load(self.profile)
        else:
            prof = HardwareProfile.default_for(self.hardware.gpu)
        hw = self.hardware
        return prof.with_overrides(usd_per_gpu_hour=hw.usd_per_gpu_hour,
                                   intra_node_bytes_per_s=hw.intra_node_bytes_per_s,
                                   inter_node_bytes_per_s=hw.inter_node_bytes_per_s)

    def resolved_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["model"] = self.model.to_hf_config_dict()
        return d

    def resolved_yaml(self) -> str:
        """The fully defaulted scenario (model as an inline spec): save it next to results;
        `load_scenario` reads it back to an equal Scenario."""
        return str(yaml.safe_dump(self.resolved_dict(), sort_keys=False))

