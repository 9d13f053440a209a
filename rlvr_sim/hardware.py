"""GPU datasheets (catalog) and hardware profiles: datasheet + efficiency terms + provenance.

A `HardwareProfile` is what the cost model reads. `HardwareProfile.from_catalog(gpu)` gives the
datasheet numbers with default efficiencies (`source: datasheet`); calibration fits the
efficiency terms on a real machine and writes a profile with `.save(path)`; a scenario's
`profile:` loads one with `HardwareProfile.load(path)` and it replaces the catalog efficiencies.

The default efficiencies are generic engineering guesses for a well-tuned GPU stack (not fitted
to any benchmark): decode reaches 80% of HBM bandwidth, prefill 60% and training 40% MFU.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlvr_sim.errors import UserError


class Datasheet(BaseModel):
    """Peak numbers of one GPU (dense tensor rates; per-GPU link bandwidths, one direction)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    peak_bf16_flop_per_s: float = Field(gt=0)
    peak_fp8_flop_per_s: float = Field(gt=0)
    hbm_bytes: float = Field(gt=0)
    hbm_bytes_per_s: float = Field(gt=0)
    intra_node_bytes_per_s: float = Field(gt=0)
    inter_node_bytes_per_s: float = Field(gt=0)
    host_bytes_per_s: float = Field(25e9, gt=0, description="PCIe to host memory (offload)")
    usd_per_gpu_hour: float = Field(ge=0)


class Efficiency(BaseModel):
    """Achieved fractions of peak and fixed overheads (fitted by calibration)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    decode_bw_eff: float = Field(0.8, gt=0, le=1, description="achieved HBM fraction in decode")
    decode_mfu: float = Field(0.5, gt=0, le=1, description="achieved FLOP fraction in decode")
    prefill_mfu: float = Field(0.6, gt=0, le=1)
    train_mfu: float = Field(0.4, gt=0, le=1)
    decode_overhead_s: float = Field(0.003, ge=0, description="per decode iteration (scheduler)")
    prefill_overhead_s: float = Field(0.002, ge=0, description="per prefill call")
    train_overhead_s: float = Field(0.02, ge=0, description="per mini-batch optimizer step")
    optimizer_s_per_param: float | None = Field(
        None, ge=0, description="Adam update seconds per parameter held by one GPU; None: "
        "memory-bound estimate 32 bytes / (hbm_bytes_per_s x decode_bw_eff)")
    skew_coef: float = Field(0.3, ge=0, lt=1, description="attention slowdown of mixed-length "
                             "batches per unit (max - mean)/max of KV length")
    link_eff: float = Field(0.7, gt=0, le=1, description="achieved fraction of link bandwidth")
    collective_latency_s: float = Field(1e-5, ge=0, description="fixed cost of one all-reduce")
    bucket_latency_s: float = Field(1e-3, ge=0, description="fixed cost per weight-sync bucket")
    disk_bytes_per_s: float = Field(2e9, gt=0, description="checkpoint write/read (disk sync)")
    switch_fixed_s: float = Field(1.0, ge=0, description="colocated phase switch fixed cost "
                                  "(wake/sleep, cache reallocation)")
    kv_bw_eff: float | None = Field(
        None, gt=0, le=1, description="achieved memory-bandwidth fraction on KV-cache reads in "
        "decode (None: decode_bw_eff); lower where the engine re-copies the cache, as HF on CPU")
    decode_overlap: float = Field(
        1.0, ge=0, le=1, description="fraction of the smaller of compute and memory time hidden "
        "under the larger, in decode and prefill (1: roofline max, GPU-like; 0: serial sum, as one "
        "CPU thread that does not overlap memory traffic and math)")
    layer_overhead_s: float = Field(
        0.0, ge=0, description="fixed seconds per decoder layer per forward pass (kernel launch, "
        "Python dispatch; what CUDA graphs remove); a backward pass counts twice")
    train_pass_overhead_s: float = Field(
        0.0, ge=0, description="fixed seconds per training pass (each mini-batch forward+backward "
        "and each log-prob forward): kernel launch / dispatch floor that MFU cannot express")
    train_mfu_half_tokens: float | None = Field(
        None, gt=0, description="tokens per GPU per micro-batch at which training MFU reaches half "
        "of train_mfu: MFU(t) = train_mfu x t / (t + half). None: flat train_mfu at every size "
        "(the cost model's shape of this curve is the contract; calibration fits its value)")
    grouped_gemm_eff: float | None = Field(
        None, gt=0, le=1, description="efficiency of expert (grouped-GEMM) matmuls relative to "
        "dense matmuls at the same phase's MFU; None: same as dense (1.0)")
    # --- mechanisms of issue 12 (None / 0: neutral, the model without the term) --------------
    all_to_all_eff: float | None = Field(
        None, gt=0, le=1, description="achieved fraction of link bandwidth in expert-parallel and "
        "Ulysses all-to-alls; None: link_eff")
    moe_imbalance: float | None = Field(
        None, ge=1, description="expert load imbalance: busiest expert-parallel rank's tokens / "
        "mean (expert matmul time and all-to-all volume scale by it); None: 1.0 (balanced)")
    train_step_overhead_s: float = Field(
        0.0, ge=0, description="fixed seconds per RL training step (data collation, scheduling, "
        "logging) beside the per-mini-batch train_overhead_s")
    cpu_adam_s_per_param: float | None = Field(
        None, gt=0, description="CPU Adam seconds per parameter held by one GPU's host share "
        "(optimizer offload); None: 32 bytes / host_bytes_per_s (streaming the fp32 states once "
        "over the host link: a lower bound until measured)")
    sync_per_tensor_s: float = Field(
        0.0, ge=0, description="weight sync: fixed seconds per tensor (gather launch, name lookup, "
        "engine load_weights call); 0: not modelled")
    load_weights_bytes_eff: float | None = Field(
        None, gt=0, le=1, description="sampler engine load_weights: achieved fraction of HBM "
        "bandwidth copying received weights into the engine's layout; None: decode_bw_eff")
    # --- speculative decoding host cost (issue 19; None: not measured, not modelled) ----------
    ngram_draft_fixed_s: float | None = Field(
        None, ge=0, description="host seconds per ngram speculative step (prompt-lookup proposer "
        "and spec bookkeeping), fixed part; fitted from engine steps (calibration."
        "engine_validate); None: not modelled (0)")
    ngram_draft_s_per_seq: float | None = Field(
        None, ge=0, description="host seconds per ngram speculative step per running sequence; "
        "None: not modelled (0)")


class CalibrationInfo(BaseModel):
    """Provenance and fit diagnostics written by `rlvr-sim calibrate`; never read by the cost
    model (it reads only `efficiency`)."""

    model_config = ConfigDict(extra="forbid")

    device: str
    date: str
    torch_version: str = ""
    vllm_version: str | None = None
    threads: int = Field(1, ge=1)
    rows: int = Field(0, ge=0, description="measurements the fit used")
    r2: dict[str, float] = Field(default_factory=dict, description="R^2 per measured phase")
    rel_uncertainty: dict[str, float] = Field(
        default_factory=dict, description="1-sigma relative uncertainty per fitted efficiency term")
    verifier_latency_s: dict[str, float] = Field(
        default_factory=dict, description="median verification latency per task type")
    notes: str = ""


class HardwareProfile(BaseModel):
    """Datasheet + efficiency of one device kind, with where the efficiencies came from."""

    model_config = ConfigDict(extra="forbid")

    gpu: str
    source: str = Field("datasheet", description='"datasheet" or "calibrated <date> <device> ..."')
    citation: str = Field("", description="where the datasheet numbers come from")
    datasheet: Datasheet
    efficiency: Efficiency = Field(default_factory=Efficiency)
    calibration: CalibrationInfo | None = None

    @property
    def optimizer_s_per_param(self) -> float:
        eff = self.efficiency
        if eff.optimizer_s_per_param is not None:
            return eff.optimizer_s_per_param
        return 32.0 / (self.datasheet.hbm_bytes_per_s * eff.decode_bw_eff)

    def peak_flop_per_s(self, dtype: str) -> float:
        """Tensor-core peak for a weight dtype: fp8 runs W8A8 at the fp8 rate; int4 is weight-only
        (dequantised, W4A16) and every other dtype runs at the bf16 rate."""
        ds = self.datasheet
        return ds.peak_fp8_flop_per_s if dtype == "fp8" else ds.peak_bf16_flop_per_s

    @classmethod
    def from_catalog(cls, gpu: str) -> "HardwareProfile":
        entry = catalog_gpu(gpu)
        eff = entry.pop("efficiency", {}) or {}
        source = entry.pop("source", "")
        return cls(gpu=gpu.lower(), source="datasheet", citation=source,
                   datasheet=Datasheet(**entry), efficiency=Efficiency(**eff))

    @classmethod
    def default_for(cls, gpu: str) -> "HardwareProfile":
        """The default profile of a catalog GPU: its shipped public-measurement profile
        (rlvr_sim/catalog/profiles/<gpu>.public.yaml, fitted by `python -m calibration.public_fit`)
        when there is one, else the datasheet with the generic efficiencies (`source: datasheet`).
        The datasheet numbers always come from the catalog; the public profile gives only the
        efficiencies (and its provenance)."""
        base = cls.from_catalog(gpu)
        shipped = public_profile_path(base.gpu)
        if shipped is None:
            return base
        prof = cls.load(shipped)
        return prof.model_copy(update={"datasheet": base.datasheet, "citation": base.citation})

    @property
    def efficiency_origin(self) -> str:
        """One plain phrase saying where the efficiency terms came from."""
        if self.source.startswith("public-fit"):
            return "public-measurement fit (see calibration/public/)"
        if self.source.startswith("calibrated"):
            return "calibrated on the device"
        if self.source == "datasheet":
            return "datasheet guesses (not measured)"
        return self.source

    @classmethod
    def load(cls, path: str | Path) -> "HardwareProfile":
        """Read a profile YAML; UserError naming the file and field when it does not validate."""
        from rlvr_sim.safe_read import load_user_yaml, read_user_text

        path = Path(path)
        data = load_user_yaml(read_user_text(path, "profile", "give a path relative to the scenario "
                                             "file, or remove `profile:` to use datasheet values"),
                              f"profile {str(path)!r}")
        if not isinstance(data, dict):
            raise UserError(f"profile {str(path)!r} must be a mapping with gpu, source, "
                            "datasheet and efficiency")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            from rlvr_sim.safe_read import echo

            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}"
                                 f" (got {echo(e.get('input'))})" for e in exc.errors())
            raise UserError(f"profile {str(path)!r} is invalid: {problems}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return path

    def with_overrides(self, **datasheet: float | None) -> "HardwareProfile":
        """A copy with some datasheet numbers replaced (None values are ignored)."""
        changes = {k: v for k, v in datasheet.items() if v is not None}
        if not changes:
            return self
        return self.model_copy(update={"datasheet": self.datasheet.model_copy(update=changes)})


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, Any]]:
    text = resources.files("rlvr_sim.catalog").joinpath("gpus.yaml").read_text()
    return {k.lower(): v for k, v in yaml.safe_load(text).items()}


def public_profile_path(gpu: str) -> Path | None:
    """Path of the shipped public-measurement profile of a catalog GPU, None when none ships."""
    ref = resources.files("rlvr_sim.catalog") / "profiles" / f"{gpu.lower()}.public.yaml"
    return Path(str(ref)) if ref.is_file() else None


def gpu_names() -> list[str]:
    return sorted(_catalog())


def catalog_gpu(name: str) -> dict[str, Any]:
    """A copy of one catalog entry; UserError listing the names if unknown."""
    entry = _catalog().get(str(name).lower())
    if entry is None:
        raise UserError(f"unknown gpu {name!r}; use one of {', '.join(gpu_names())}")
    return dict(entry)
