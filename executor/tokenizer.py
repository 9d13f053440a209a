"""A character-level tokenizer for random-init tiny models, built locally (no hub download).

Every printable ASCII character plus newline is one token, after four specials
(<pad>=0, <bos>=1, <eos>=2, <unk>=3). It is wrapped in `PreTrainedTokenizerFast`, so it saves
and loads like any Hugging Face tokenizer; load it back with `PreTrainedTokenizerFast` (not
`AutoTokenizer`, which swaps in a model-specific class for qwen2 folders).
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # 95 printable + "\n"


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character; unknown characters map to <unk>. Deterministic vocabulary."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>")
    tok.padding_side = "left"
    return tok
