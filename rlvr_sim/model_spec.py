"""Transformer shapes, read from Hugging Face `config.json` fields (dense, GQA, MoE, MLA).

`ModelSpec` keeps the HF field names so a catalog entry, an inline scenario mapping and a real
`config.json` all go through one loader (`ModelSpec.from_hf_config_dict`). It only describes
shapes; parameter counts, bytes and FLOPs live in `rlvr_sim.cost`.

Field mapping from the different HF families:
- GQA: `num_key_value_heads` (absent -> MHA); `head_dim` (absent -> hidden/heads).
- MoE: routed experts from `num_experts` (Qwen), `num_local_experts` (Mixtral) or
  `n_routed_experts` (DeepSeek); `num_experts_per_tok`; `moe_intermediate_size`; shared experts
  from `n_shared_experts` (DeepSeek, size moe_intermediate_size each) or
  `shared_expert_intermediate_size` (Qwen2-MoE); which layers are MoE from
  `first_k_dense_replace` / `moe_layer_freq` (DeepSeek) or `decoder_sparse_step` /
  `mlp_only_layers` (Qwen).
- MLA (DeepSeek-V2/V3): `kv_lora_rank`, `q_lora_rank`, `qk_rope_head_dim`, `qk_nope_head_dim`,
  `v_head_dim`.
Limits: sliding-window / hybrid attention layers are counted as full attention; DeepSeek's
multi-token-prediction layers (`num_nextn_predict_layers`) are not counted (as in the 671B).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlvr_sim.errors import UserError

# HF fields we read; everything else in a config.json is ignored.
_EXPERT_COUNT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")


@dataclass(frozen=True)
class MLADims:
    """The multi-head latent attention dimensions of an MLA model (all present once validated)."""

    kv_lora_rank: int
    q_lora_rank: int | None
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


class ModelSpec(BaseModel):
    """Shape of a decoder-only transformer in HF config.json field names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    model_type: str = "llama"
    hidden_size: int = Field(ge=1)
    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int | None = Field(None, ge=1, description="None: = num_attention_heads")
    head_dim: int | None = Field(None, ge=1, description="None: hidden_size // num_attention_heads")
    intermediate_size: int = Field(ge=1, description="dense MLP width (SwiGLU: 3 matrices)")
    vocab_size: int = Field(ge=1)
    tie_word_embeddings: bool = False
    attention_bias: bool = Field(False, description="bias on q/k/v projections (Qwen2 has it)")
    qk_norm: bool = Field(False, description="RMSNorm on q and k per head (Qwen3)")
    max_position_embeddings: int = Field(131072, ge=1)
    # MoE
    num_experts: int = Field(0, ge=0, description="routed experts per MoE layer (0: dense)")
    num_experts_per_tok: int = Field(0, ge=0)
    moe_intermediate_size: int | None = Field(None, ge=1)
    n_shared_experts: int = Field(0, ge=0)
    shared_expert_intermediate_size: int = Field(0, ge=0)
    first_k_dense_replace: int = Field(0, ge=0, description="first k layers use the dense MLP")
    moe_layer_freq: int = Field(1, ge=1, description="every n-th layer (after the dense ones) is MoE")
    mlp_only_layers: tuple[int, ...] = ()
    # MLA
    kv_lora_rank: int | None = Field(None, ge=1)
    q_lora_rank: int | None = Field(None, ge=1)
    qk_rope_head_dim: int | None = Field(None, ge=0)
    qk_nope_head_dim: int | None = Field(None, ge=0)
    v_head_dim: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            heads, hidden = data.get("num_attention_heads"), data.get("hidden_size")
            if data.get("num_key_value_heads") is None and heads is not None:
                data = {**data, "num_key_value_heads": heads}
            if data.get("head_dim") is None and isinstance(heads, int) and isinstance(hidden, int) \
                    and heads > 0:
                data = {**data, "head_dim": max(hidden // heads, 1)}
        return data

    @model_validator(mode="after")
    def _check_shape(self) -> "ModelSpec":
        if self.num_attention_heads % self.kv_heads:
            raise ValueError(
                f"num_key_value_heads={self.kv_heads} does not divide "
                f"num_attention_heads={self.num_attention_heads}")
        if self.num_experts:
            if not 1 <= self.num_experts_per_tok <= self.num_experts:
                raise ValueError(
                    f"num_experts_per_tok={self.num_experts_per_tok} must be in 1..num_experts="
                    f"{self.num_experts}")
            if self.moe_intermediate_size is None:
                raise ValueError("MoE model (num_experts > 0) needs moe_intermediate_size")
        if self.is_mla and None in (self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim):
            raise ValueError("MLA model (kv_lora_rank set) needs qk_rope_head_dim, "
                             "qk_nope_head_dim and v_head_dim")
        return self

    # --- derived shape facts -------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def kv_heads(self) -> int:
        return int(self.num_key_value_heads or self.num_attention_heads)

    @property
    def attn_head_dim(self) -> int:
        """Width of one attention head (`head_dim`, else hidden_size // num_attention_heads)."""
        if self.head_dim is not None:
            return self.head_dim
        return max(self.hidden_size // self.num_attention_heads, 1)

    @property
    def mla(self) -> MLADims:
        """The MLA dimensions; ValueError for a model without MLA (`is_mla` False)."""
        rank, rope, nope, v = (self.kv_lora_rank, self.qk_rope_head_dim, self.qk_nope_head_dim,
                               self.v_head_dim)
        if rank is None or rope is None or nope is None or v is None:
            raise ValueError(f"{self.name} has no multi-head latent attention (kv_lora_rank, "
                             "qk_rope_head_dim, qk_nope_head_dim, v_head_dim)")
        return MLADims(kv_lora_rank=rank, q_lora_rank=self.q_lora_rank, qk_rope_head_dim=rope,
                       qk_nope_head_dim=nope, v_head_dim=v)

    @property
    def q_dim(self) -> int:
        """Width of the concatenated attention heads (query side)."""
        if self.is_mla:
            return self.num_attention_heads * self.mla.qk_head_dim
        return self.num_attention_heads * self.attn_head_dim

    def is_moe_layer(self, layer: int) -> bool:
        """Whether decoder layer `layer` (0-based) has a routed-expert MLP."""
        if not self.is_moe or layer < self.first_k_dense_replace or layer in self.mlp_only_layers:
            return False
        if self.model_type.startswith("deepseek"):  # HF DeepseekV3: layer_idx % moe_layer_freq
            return layer % self.moe_layer_freq == 0
        return (layer + 1) % self.moe_layer_freq == 0  # HF Qwen-MoE: decoder_sparse_step

    @property
    def moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.num_hidden_layers))

    # --- loaders ------------------------------------------------------------------------------
    @classmethod
    def hf_fields(cls, cfg: dict[str, Any], keep_unknown: bool = False) -> dict[str, Any]:
        """Map config.json keys onto ModelSpec fields (HF aliases included). Unknown keys are
        dropped, or kept with `keep_unknown` so that validation reports them (inline specs)."""
        cfg = dict(cfg)
        out: dict[str, Any] = {k: cfg[k] for k in cls.model_fields if k in cfg and cfg[k] is not None}
        for key in _EXPERT_COUNT_KEYS:
            if cfg.get(key):
                out["num_experts"] = cfg[key]
        if cfg.get("decoder_sparse_step"):
            out["moe_layer_freq"] = cfg["decoder_sparse_step"]
        model_type = str(cfg.get("model_type", out.get("model_type", "llama")))
        out["model_type"] = model_type
        if "attention_bias" not in cfg and model_type in ("qwen2", "qwen2_moe"):
            out["attention_bias"] = True  # Qwen2 always has q/k/v biases
        if "qk_norm" not in cfg and model_type in ("qwen3", "qwen3_moe"):
            out["qk_norm"] = True
        if out.get("num_experts") and "moe_intermediate_size" not in out:
            out["moe_intermediate_size"] = cfg.get("intermediate_size")
        if keep_unknown:
            known = set(cls.model_fields) | set(_EXPERT_COUNT_KEYS) | {"decoder_sparse_step"}
            out.update({k: v for k, v in cfg.items() if k not in known})
        return out

    @classmethod
    def from_hf_config_dict(cls, cfg: dict[str, Any], name: str | None = None) -> "ModelSpec":
        """Build from a config.json mapping; unknown HF keys are ignored."""
        out = cls.hf_fields(cfg)
        if name is not None:
            out["name"] = name
        elif "name" not in out:
            out["name"] = str(cfg.get("_name_or_path") or out["model_type"])
        return cls.model_validate(out)

    @classmethod
    def from_hf_config(cls, path: str | Path, name: str | None = None) -> "ModelSpec":
        """Read a Hugging Face `config.json` (or a folder holding one)."""
        from rlvr_sim.safe_read import load_user_json, read_user_text

        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        text = read_user_text(path, "model config", "give a catalog name "
                              f"({', '.join(catalog_names())}) or a path to config.json")
        cfg = load_user_json(text, f"model config {str(path)!r}")
        if not isinstance(cfg, dict):
            raise UserError(f"model config {str(path)!r}: a JSON {_json_type(cfg)}, not an object "
                            "; give a Hugging Face config.json ({\"hidden_size\": ..., ...})")
        if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers
            cfg = {**cfg["text_config"], "model_type": cfg["text_config"].get("model_type", "")}
        return cls.from_hf_config_dict(cfg, name=name or path.parent.name or None)

    def to_hf_config_dict(self) -> dict[str, Any]:
        """HF-style config mapping (for `transformers.AutoConfig.for_model(**d)` and YAML dumps).

        Includes every field of this spec, plus the HF aliases (`num_local_experts`,
        `n_routed_experts`, `decoder_sparse_step`) that the model family expects.
        """
        d = self.model_dump(exclude_none=True)
        if self.is_moe:
            if self.model_type.startswith("deepseek"):
                d["n_routed_experts"] = self.num_experts
            elif self.model_type == "mixtral":
                d["num_local_experts"] = self.num_experts
            else:
                d["decoder_sparse_step"] = self.moe_layer_freq
        return d


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, Any]]:
    text = resources.files("rlvr_sim.catalog").joinpath("models.yaml").read_text()
    return {k.lower(): v for k, v in yaml.safe_load(text).items()}


def catalog_names() -> list[str]:
    return sorted(_catalog())


def catalog_model(name: str) -> ModelSpec:
    """A catalog model by (case-insensitive) name; UserError listing the names if unknown."""
    entry = _catalog().get(name.lower())
    if entry is None:
        raise UserError(f"unknown model {name!r}; use one of {', '.join(catalog_names())}, "
                        "a path to a config.json, or an inline mapping of config.json fields")
    fields = {k: v for k, v in entry.items() if k != "source"}
    return ModelSpec.from_hf_config_dict(fields, name=name.lower())
