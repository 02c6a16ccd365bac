"""Padding-free packing: best-fit-decreasing into rows of `max_length` tokens.

A packed row concatenates whole examples; `position_ids` restart at 0 for each, which is how
transformers' attention (SDPA with `use_cache=False`, FlashAttention) keeps examples from
attending to one another. The first label of each example is -100 so no example learns to
predict its first token from the one before it.
"""

import bisect
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from llmft.data.tokenize import IGNORE, Tokenized


def pack_best_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins of at most `capacity` (best-fit decreasing)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free space, bin index), sorted
    for index in order:
        size = lengths[index]
        if size > capacity:
            raise ValueError(f"example {index} has {size} tokens, more than the row size {capacity}")
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            space, bin_index = free.pop(slot)
        else:
            space, bin_index = capacity, len(bins)
            bins.append([])
        bins[bin_index].append(index)
        bisect.insort(free, (space - size, bin_index))
    return bins


def packing_efficiency(lengths: list[int], bins: list[list[int]], capacity: int) -> float:
    """Share of the rows' tokens that are real tokens (1.0: no padding at all)."""
    return sum(lengths) / (len(bins) * capacity) if bins else 0.0


@dataclass
class PackedCollator:
    """Concatenate examples into one padding-free row with restarting position ids."""

    def __call__(self, examples: list[Tokenized]) -> dict[str, torch.Tensor]:
        input_ids, labels, positions = [], [], []
        for example in examples:
            input_ids += example.input_ids
            labels += [IGNORE] + example.labels[1:]
            positions += range(len(example.input_ids))
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }


class PackedRows(Dataset):
    """Rows of examples: best-fit packed into `max_length` tokens, or one example per row."""

    def __init__(self, examples: list[Tokenized], *, max_length: int, pack: bool):
        self.examples = examples
        lengths = [len(e) for e in examples]
        self.rows = pack_best_fit(lengths, max_length) if pack else [[i] for i in range(len(examples))]
        self.tokens = sum(lengths)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> list[Tokenized]:
        return [self.examples[i] for i in self.rows[index]]


def collate_rows(rows: list[list[Tokenized]]) -> dict[str, torch.Tensor]:
    """A batch of rows flattened into one padding-free sequence (position ids restart per example)."""
    return PackedCollator()([example for row in rows for example in row])
