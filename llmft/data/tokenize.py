"""Tokenize a rendered example once, as a whole, and derive its labels from the spans.

Tokenizing the full text (never piece by piece) guarantees the ids are exactly what the model
sees at inference. Each token takes the label of the span its first character falls in: its
own id where trained, -100 elsewhere. EOS is trained even though R1's pad token equals EOS,
because labels come from spans, never from `input_ids != pad_token_id`.
"""

import bisect
from dataclasses import dataclass

from llmft.data.render import PROMPT_KINDS, Rendered

IGNORE = -100


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    reasoning_tokens: int
    answer_tokens: int

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_rendered(rendered: Rendered, tokenizer, *, max_tokens: int | None = None) -> Tokenized:
    """Tokens and labels of `rendered`; with `max_tokens`, only the first that many (truncation)."""
    encoding = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"][:max_tokens], encoding["offset_mapping"][:max_tokens]
    return label_tokens(rendered, ids, offsets)


def tokenize_many(rendered: list[Rendered], tokenizer) -> list[Tokenized]:
    """Batch form of `tokenize_rendered` (the fast tokenizer encodes in parallel)."""
    if not rendered:
        return []
    encodings = tokenizer([r.text for r in rendered], add_special_tokens=False, return_offsets_mapping=True)
    return [label_tokens(r, ids, offsets)
            for r, ids, offsets in zip(rendered, encodings["input_ids"], encodings["offset_mapping"])]


def label_tokens(rendered: Rendered, input_ids: list[int], offsets: list[tuple[int, int]]) -> Tokenized:
    starts, position = [], 0
    for segment in rendered.segments:
        starts.append(position)
        position += len(segment.text)
    labels, counts = [], {"prompt": 0, "reasoning": 0, "answer": 0}
    for token_id, (start, _end) in zip(input_ids, offsets):
        segment = rendered.segments[max(bisect.bisect_right(starts, start) - 1, 0)]
        labels.append(token_id if segment.trained else IGNORE)
        counts["prompt" if segment.kind in PROMPT_KINDS else segment.kind] += 1
    return Tokenized(list(input_ids), labels, counts["prompt"], counts["reasoning"], counts["answer"])
