import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from llmft.data.pack import PackedCollator, PackedRows, collate_rows, pack_best_fit, packing_efficiency
from llmft.data.tokenize import IGNORE, Tokenized


def test_best_fit_decreasing_fills_bins_tightly():
    lengths = [7, 5, 4, 3, 3, 2, 1]
    bins = pack_best_fit(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 3  # 25 tokens need at least 3 rows of 10
    assert packing_efficiency(lengths, bins, 10) == pytest.approx(25 / 30)


def test_best_fit_is_deterministic_and_never_overflows():
    rng = random.Random(0)
    lengths = [rng.randint(1, 512) for _ in range(500)]
    bins = pack_best_fit(lengths, 512)
    assert bins == pack_best_fit(lengths, 512)
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    assert packing_efficiency(lengths, bins, 512) > 0.95


def test_an_example_longer_than_a_row_is_refused():
    with pytest.raises(ValueError, match="more than the row size"):
        pack_best_fit([3, 11], 10)


def test_collator_restarts_positions_and_masks_each_first_label():
    a = Tokenized([1, 2, 3], [IGNORE, 2, 3], 1, 0, 2)
    b = Tokenized([4, 5], [4, 5], 0, 0, 2)
    batch = PackedCollator()([a, b])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3, IGNORE, 5]]


def test_packed_logits_equal_each_example_alone(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    generator = torch.Generator().manual_seed(0)
    examples = [torch.randint(0, 151_000, (n,), generator=generator).tolist() for n in (9, 17, 4)]
    batch = PackedCollator()([Tokenized(ids, ids, 0, 0, len(ids)) for ids in examples])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for ids in examples:
            alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[start:start + len(ids)], alone, atol=1e-5, rtol=1e-4)
            start += len(ids)


def test_rows_pack_examples_or_hold_one_each_and_collate_into_one_sequence():
    examples = [Tokenized([i] * n, [i] * n, 0, 0, n) for i, n in enumerate((6, 5, 4, 3), start=1)]
    packed = PackedRows(examples, max_length=10, pack=True)
    assert len(packed) == 2 and packed.tokens == 18
    assert [[len(e) for e in packed[i]] for i in range(len(packed))] == [[6, 4], [5, 3]]
    single = PackedRows(examples, max_length=10, pack=False)
    assert [[len(e) for e in single[i]] for i in range(len(single))] == [[6], [5], [4], [3]]

    batch = collate_rows([packed[1], single[3]])
    assert batch["input_ids"].tolist() == [[2] * 5 + [4] * 3 + [4] * 3]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 2, 2, 2, IGNORE, 4, 4, IGNORE, 4, 4]]
