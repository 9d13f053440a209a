"""A hand-computable cost model for exact-log tests and examples.

Every formula is linear and integer-friendly so a test can write the expected `(event, time)`
sequence in its comments: a decode iteration costs `decode_iter_s` (plus `decode_s_per_seq`
per running sequence), a prefill `prefill_s_fixed` per admission batch (plus
`prefill_s_per_token`), training `train_s_fixed` plus `train_s_per_token` per token.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FakeTrainBreakdown:
    ref_logprob_s: float
    old_logprob_s: float
    forward_backward_s: float
    optimizer_s: float

    @property
    def total_s(self) -> float:
        return self.ref_logprob_s + self.old_logprob_s + self.forward_backward_s + self.optimizer_s


@dataclass(frozen=True)
class FakeCostModel:
    """Linear costs; see the module docstring."""

    decode_iter_s: float = 1.0
    decode_s_per_seq: float = 0.0
    prefill_s_fixed: float = 0.5
    prefill_s_per_token: float = 0.0
    train_s_fixed: float = 10.0
    train_s_per_token: float = 0.0
    ref_logprob_s: float = 0.0
    old_logprob_s: float = 0.0
    optimizer_s: float = 0.0
    weight_sync_s: float = 0.0
    switch_s: float = 0.0
    tokens_per_iteration: float = 1.0
    call_s_fixed: float = 0.0           # one generate call (sync round), per replica
    call_s_per_seq: float = 0.0

    def sampler_call_s(self, sequences: int) -> float:
        if sequences <= 0:
            return 0.0
        return self.call_s_fixed + self.call_s_per_seq * sequences

    def prefill_s(self, new_tokens: int, sequences: int = 1) -> float:
        if sequences <= 0:
            return 0.0
        return self.prefill_s_fixed + self.prefill_s_per_token * new_tokens

    def decode_span_s(self, sequences: int, context_tokens_sum: float,
                      context_tokens_max: float, iterations: int) -> float:
        return iterations * (self.decode_iter_s + self.decode_s_per_seq * sequences)

    def train_step(self, sequences: int, prompt_tokens: int, output_tokens: int) -> FakeTrainBreakdown:
        fb = self.train_s_fixed + self.train_s_per_token * (prompt_tokens + output_tokens)
        return FakeTrainBreakdown(self.ref_logprob_s, self.old_logprob_s, fb, self.optimizer_s)

    def train_minibatch(self, sequences: int, prompt_tokens: int,
                        output_tokens: int) -> FakeTrainBreakdown:
        """Streaming: a mini-batch costs what train_step costs on its tokens (so train_s_fixed is
        paid per mini-batch)."""
        return self.train_step(sequences, prompt_tokens, output_tokens)
