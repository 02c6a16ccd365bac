"""Prefix caching: the KV of prompt prefixes kept between requests, so a prompt that starts as an earlier one did
(a long shared system prompt, the turns of a conversation so far) only runs its new tokens.

    prefixes = PrefixCache(budget=512 << 20)
    length, past = prefixes.match(("base:smollm2-135m", "__base__"), prompt_ids)   # (0, None) on a miss
    ...run prompt_ids[length:] on top of `past` (a list of (keys, values) per layer)...
    prefixes.store(("base:smollm2-135m", "__base__"), prompt_ids, keys, values)       # per layer [heads, len, dim]

Prompts are cut into blocks of BLOCK tokens; a block is known by a hash of everything before it and its own tokens
(and the model and adapter it was computed with), so two prompts share exactly the blocks of their common full-block
prefix. A match is the longest run of known blocks from the start, and always leaves at least one token of the prompt
to run (its logits choose the first new token). Blocks are kept least recently used first within `budget` bytes: a
block used again moves to the back, and storing past the budget drops from the front. The KV of one adapter is never
reused for another (a LoRA changes every layer's keys and values), nor across models, nor across tenants (the
caller's namespace holds all three: a hit is faster, so a shared block would tell one tenant another's prompt). One engine thread uses it: no
locks.
"""

import hashlib
from collections import OrderedDict

import torch

BLOCK = 32  # tokens per block


class PrefixCache:
    def __init__(self, *, budget: int, block: int = BLOCK):
        self.budget, self.block = budget, block
        self._blocks: OrderedDict[bytes, tuple[list[torch.Tensor], list[torch.Tensor], int]] = OrderedDict()
        self.used = 0
        self.stats = {"lookups": 0, "hits": 0, "tokens_reused": 0, "blocks_stored": 0, "blocks_dropped": 0}

    def match(self, namespace: tuple, ids: list[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """(the tokens of `ids` whose KV is known, that KV per layer as (keys, values) of shape [1, heads, length,
        dim]); (0, None) when not even the first block is known."""
        if self.budget <= 0:
            return 0, None
        self.stats["lookups"] += 1
        found = []
        for digest in self._digests(namespace, ids[:len(ids) - 1]):
            entry = self._blocks.get(digest)
            if entry is None:
                break
            self._blocks.move_to_end(digest)
            found.append(entry)
        if not found:
            return 0, None
        layers = len(found[0][0])
        past = [(torch.cat([keys[layer] for keys, _, _ in found], dim=1).unsqueeze(0),
                 torch.cat([values[layer] for _, values, _ in found], dim=1).unsqueeze(0)) for layer in range(layers)]
        length = len(found) * self.block
        self.stats["hits"] += 1
        self.stats["tokens_reused"] += length
        return length, past

    def store(self, namespace: tuple, ids: list[int], keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Keep the full blocks of `ids` not kept yet; `keys` and `values`: per layer, [heads, len(ids), dim]."""
        if self.budget <= 0:
            return
        for index, digest in enumerate(self._digests(namespace, ids)):
            if digest in self._blocks:
                self._blocks.move_to_end(digest)
                continue
            span = slice(index * self.block, (index + 1) * self.block)
            block_keys = [k[:, span].clone() for k in keys]
            block_values = [v[:, span].clone() for v in values]
            size = sum(t.numel() * t.element_size() for t in (*block_keys, *block_values))
            if size > self.budget:
                return
            while self.used + size > self.budget:
                self._drop_oldest()
            self._blocks[digest] = (block_keys, block_values, size)
            self.used += size
            self.stats["blocks_stored"] += 1

    def drop(self) -> None:
        """Forget every block (the weights they were computed with changed)."""
        self._blocks.clear()
        self.used = 0

    def _drop_oldest(self) -> None:
        _, (_, _, size) = self._blocks.popitem(last=False)
        self.used -= size
        self.stats["blocks_dropped"] += 1

    def _digests(self, namespace: tuple, ids: list[int]):
        """The hash of each full block of `ids`, chained: block i's hash covers blocks 0..i and the namespace."""
        chain = hashlib.blake2b(repr(namespace).encode(), digest_size=16).digest()
        for start in range(0, len(ids) - self.block + 1, self.block):
            block = ",".join(map(str, ids[start:start + self.block])).encode()
            chain = hashlib.blake2b(chain + block, digest_size=16).digest()
            yield chain
