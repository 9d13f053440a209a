"""The paged KV pool of one sampler replica: blocks held, by group-shared prompts and sequences.

A replica holds `capacity` blocks of `block_tokens` tokens. A sequence holds its private tokens
(the prompt's tail past its last full block + everything generated, or the whole prompt without
prefix caching); with prefix caching a prompt's full blocks are held once per prompt group while
any of its samples runs. `blocks()` is the one formula of the pool's use; every check of the
engine (admission, the iterations a span may run, rlvr_sim.sim.batch_sync's fast path) goes
through it or its inverse `room_tokens()`.

Block rounding is taken in expectation: used = shared + (private tokens)/B + n (B-1)/(2B), exact
for B = 1.
"""

from __future__ import annotations

import math


class KVPool:
    """Blocks of one replica; which prompt groups hold shared blocks (`join` / `leave`)."""

    __slots__ = ("capacity", "limited", "block_tokens", "prefix", "frag", "shared_blocks", "groups")

    def __init__(self, blocks: int | None, block_tokens: int, prefix_caching: bool):
        self.capacity: float = math.inf if blocks is None else blocks
        self.limited = blocks is not None
        self.block_tokens = block_tokens
        self.prefix = prefix_caching
        self.frag = (block_tokens - 1) / (2 * block_tokens)   # a sequence's partly used block
        self.shared_blocks = 0
        self.groups: dict[int, list[int]] = {}    # group id -> [running samples, shared blocks]

    def shared_of(self, prompt_tokens: int) -> int:
        """Full prompt blocks a group shares (0 without prefix caching)."""
        return prompt_tokens // self.block_tokens if self.prefix else 0

    def blocks(self, shared: float, private_tokens: float, sequences: float) -> float:
        """Blocks used by `shared` shared blocks plus `sequences` sequences holding
        `private_tokens` private tokens between them."""
        return shared + private_tokens / self.block_tokens + sequences * self.frag

    def room_tokens(self, shared: float, sequences: float) -> float:
        """Private tokens `sequences` sequences may hold beside `shared` shared blocks (the
        inverse of `blocks` at the capacity)."""
        return (self.capacity - shared - sequences * self.frag) * self.block_tokens

    def join(self, group_id: int, shared: int) -> bool:
        """A sample of `group_id` starts running; True when its group was not held (its shared
        blocks are taken now and its whole prompt is prefilled)."""
        state = self.groups.get(group_id)
        if state is None:
            self.groups[group_id] = [1, shared]
            self.shared_blocks += shared
            return True
        state[0] += 1
        return False

    def leave(self, group_id: int) -> None:
        """A running sample of `group_id` stops; its group's shared blocks go with the last one."""
        state = self.groups[group_id]
        state[0] -= 1
        if state[0] == 0:
            self.shared_blocks -= state[1]
            del self.groups[group_id]

    def too_long(self, tokens: int) -> str:
        """The message of a sequence that cannot fit even alone."""
        return (f"a sequence of {tokens} tokens does not fit the KV pool of a sampler replica "
                f"({self.capacity} blocks of {self.block_tokens} tokens)")
