"""The policy: a causal LM + its tokenizer on an explicit device, dtype and thread count.

Two sources: a random-init model built from an HF-style config mapping (the scenario's
ModelSpec, with the vocabulary resized to the local character tokenizer), or a real checkpoint
(config + weights + tokenizer) from a local directory. Device "auto" is CUDA when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel,
                          PreTrainedTokenizerBase, PreTrainedTokenizerFast)

from executor.results import PolicyInfo
from executor.tokenizer import build_char_tokenizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# ModelSpec fields that only MoE / MLA families understand; dropped for dense families.
_SPARSE_KEYS = ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "n_shared_experts",
                "shared_expert_intermediate_size", "first_k_dense_replace", "moe_layer_freq",
                "mlp_only_layers", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim",
                "qk_nope_head_dim", "v_head_dim", "name", "qk_norm")


@dataclass
class Policy:
    """A model ready to sample/train, and the facts a trace records about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: str
    threads: int
    source: str           # "random-init:<name>" or the checkpoint path
    params: int

    def describe(self) -> PolicyInfo:
        return PolicyInfo(device=str(self.device), dtype=self.dtype, threads=self.threads,
                          source=self.source, params=self.params,
                          vocab_size=int(self.model.config.vocab_size), torch=torch.__version__)


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; an explicit cuda device without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"executor.device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def set_threads(threads: int) -> None:
    """Pin torch intra-op threads (and OMP for children) to `threads`."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)


def build_random_policy(config: dict[str, Any], device: str = "auto", dtype: str = "fp32",
                        threads: int = 2, seed: int = 0) -> Policy:
    """Random-init causal LM of `config` (HF config fields incl. model_type) + char tokenizer.

    The vocabulary is resized to the tokenizer's (the spec's vocab_size describes a real
    tokenizer that does not exist locally); the bos/eos/pad ids are the tokenizer's.
    """
    set_threads(threads)
    tok = build_char_tokenizer()
    cfg = {k: v for k, v in config.items() if v is not None}
    if not cfg.get("num_experts") and not cfg.get("kv_lora_rank"):
        cfg = {k: v for k, v in cfg.items() if k not in _SPARSE_KEYS}
    model_type = cfg.pop("model_type")
    cfg.update(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    hf_config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config, dtype=DTYPES[dtype])
    dev = resolve_device(device)
    model.to(dev)
    name = config.get("name", model_type)
    return Policy(model=model, tokenizer=tok, device=dev, dtype=dtype, threads=threads,
                  source=f"random-init:{name}", params=sum(p.numel() for p in model.parameters()))


def load_policy(path: str | Path, device: str = "auto", dtype: str = "fp32",
                threads: int = 2) -> Policy:
    """A real checkpoint from a local directory (config.json, weights, tokenizer files).

    Our own checkpoints use the character tokenizer saved as a plain fast tokenizer, which is
    loaded with `PreTrainedTokenizerFast`; anything else goes through `AutoTokenizer`.
    """
    set_threads(threads)
    path = Path(path)
    if not (path / "config.json").exists():
        raise ValueError(f"executor.model_path={str(path)!r} has no config.json; give a local "
                         "Hugging Face checkpoint directory")
    marker = path / "rlvr_char_tokenizer"
    tok = (PreTrainedTokenizerFast.from_pretrained(path) if marker.exists()
           else AutoTokenizer.from_pretrained(path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    dev = resolve_device(device)
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    # in place (nn.Module.to returns the module); transformers 5 types `.to` as a wrapped
    # decorator whose first argument is the model, which mypy then misreads
    model.to(dev)  # type: ignore[arg-type]
    return Policy(model=model, tokenizer=tok, device=dev, dtype=dtype, threads=threads,
                  source=str(path), params=sum(p.numel() for p in model.parameters()))


def save_policy(policy: Policy, path: str | Path) -> Path:
    """Save model + tokenizer so `load_policy(path)` (or any HF tool) loads them back."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(path)
    policy.tokenizer.save_pretrained(path)
    if policy.source.startswith("random-init"):
        (path / "rlvr_char_tokenizer").write_text("character tokenizer: load with PreTrainedTokenizerFast\n")
    return path
