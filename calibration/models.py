"""The tiny model family benchmarked and validated on CPU (Qwen2 shapes, random init).

Sizes span ~0.5M to ~32M parameters so per-parameter and per-token terms separate from fixed
overheads. `VALIDATION_ONLY` sizes are never benchmarked: validation on them is held out in
model size too. The vocabulary is the executor's character tokenizer (100 tokens), so the cost
model counts the parameters the executor really builds.
"""

from __future__ import annotations

import json

CHAR_VOCAB = 100  # executor.tokenizer: 4 specials + 96 characters


def qwen2_config(name: str, hidden: int, layers: int, heads: int, kv_heads: int) -> dict:
    """HF-style qwen2 config mapping (the scenario's inline `model:` accepts the same keys)."""
    return {"name": name, "model_type": "qwen2", "hidden_size": hidden,
            "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "vocab_size": CHAR_VOCAB, "tie_word_embeddings": True,
            "max_position_embeddings": 2048}


BENCH_MODELS: dict[str, dict] = {
    "tiny-0.5m": qwen2_config("tiny-0.5m", 128, 2, 4, 2),
    "tiny-4m": qwen2_config("tiny-4m", 256, 4, 4, 2),
    "tiny-13m": qwen2_config("tiny-13m", 384, 6, 6, 2),
    "tiny-32m": qwen2_config("tiny-32m", 512, 8, 8, 4),
}
VALIDATION_ONLY: dict[str, dict] = {
    "tiny-7m": qwen2_config("tiny-7m", 320, 5, 5, 1),
}
QUICK_MODELS = ("tiny-0.5m", "tiny-4m", "tiny-13m")


def model_json(config: dict) -> str:
    """Canonical JSON of a config (the key benchmark rows carry)."""
    return json.dumps(config, sort_keys=True)
