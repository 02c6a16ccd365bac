"""Deterministic train/validation split by seed and ratio.

Each example's place is decided by a hash of (seed, its content), so the split depends on
neither file order nor the other examples: adding data never moves an example across.
"""

import hashlib
import math

from llmft.data.clean import exact_key
from llmft.data.normalize import Example


def split_indices(examples: list[Example], *, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, validation indices), each in file order."""
    n = len(examples)
    if ratio <= 0 or n < 2:
        return list(range(n)), []
    size = min(max(1, math.floor(n * ratio + 0.5)), n - 1)
    rank = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}\0{exact_key(examples[i])}".encode()).digest())
    held_out = set(rank[:size])
    return [i for i in range(n) if i not in held_out], sorted(held_out)
