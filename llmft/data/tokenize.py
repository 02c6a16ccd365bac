"""Tokenize a rendered example once, as a whole, and derive its labels from the spans.

Tokenizing the full text (never piece by piece) guarantees the ids are exactly what the model
sees at inference. The one exception is text a user typed that spells a special token
(`<｜Assistant｜>`, `<|im_start|>`): inside the rendered example's typed spans such a string is
tokenized as plain text, so a message cannot forge a turn; the template's own markers stay special. Each token takes the label of the span its first character falls in: its
own id where trained, -100 elsewhere. EOS is trained even though R1's pad token equals EOS,
because labels come from spans, never from `input_ids != pad_token_id`.
"""

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache

from llmft.data.render import PROMPT_KINDS, Rendered, prompt_text, typed_spans

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
    """Tokens and labels of `rendered`; with `max_tokens`, only the first that many (truncation: the text is
    cut first at the most characters that many tokens can hold, so a huge example is never tokenized whole)."""
    if max_tokens is not None:
        rendered = rendered.cut(max_tokens * max_token_chars(tokenizer) + 1)
    ids, offsets = encode(tokenizer, rendered.text, rendered.typed)
    return label_tokens(rendered, ids[:max_tokens], offsets[:max_tokens])


def tokenize_many(rendered: list[Rendered], tokenizer) -> list[Tokenized]:
    """Batch form of `tokenize_rendered` (the fast tokenizer encodes in parallel)."""
    if not rendered:
        return []
    encodings = tokenizer([r.text for r in rendered], add_special_tokens=False, return_offsets_mapping=True)
    return [label_tokens(r, ids, offsets) if not forged_tokens(tokenizer, r.text, r.typed)
            else tokenize_rendered(r, tokenizer)
            for r, ids, offsets in zip(rendered, encodings["input_ids"], encodings["offset_mapping"])]


def encode(tokenizer, text: str, typed: tuple[tuple[int, int], ...] = ()) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and character offsets of `text`; a special token's string inside a `typed` span is plain text."""
    forged = forged_tokens(tokenizer, text, typed)
    if not forged:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoding["input_ids"]), list(encoding["offset_mapping"])
    # Cut before each forged string and after its first character: no piece then holds the whole token string.
    cuts = sorted({0, len(text), *(start for start, _ in forged), *(start + 1 for start, _ in forged)})
    ids, offsets = [], []
    for start, end in zip(cuts, cuts[1:]):
        encoding = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True)
        ids += encoding["input_ids"]
        offsets += [(a + start, b + start) for a, b in encoding["offset_mapping"]]
    return ids, offsets


def forged_tokens(tokenizer, text: str, typed: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """(start, end) of every added-token string (`<｜Assistant｜>`, `<|im_start|>`...) inside a typed span."""
    first_chars, pattern = _added_tokens(tokenizer)
    found = []
    for start, end in typed:
        if pattern is None or not any(char in text[start:end] for char in first_chars):
            continue
        found += [match.span() for match in pattern.finditer(text, start, end)]
    return found


def max_token_chars(tokenizer) -> int:
    """The most characters one token can stand for (its longest vocabulary entry): an example of more than
    `n * max_token_chars` characters has more than `n` tokens, which is known without tokenizing it."""
    return _vocabulary_bounds(tokenizer)


@lru_cache(maxsize=16)
def _vocabulary_bounds(tokenizer) -> int:
    return max(len(token) for token in tokenizer.get_vocab())


@lru_cache(maxsize=16)
def _added_tokens(tokenizer) -> tuple[frozenset[str], re.Pattern | None]:
    strings = sorted((token for token in tokenizer.get_added_vocab() if token), key=len, reverse=True)
    if not strings:
        return frozenset(), None
    return frozenset(token[0] for token in strings), re.compile("|".join(map(re.escape, strings)))


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


def prompt_ids(tokenizer, messages: list, *, reasoning_format: str | None = None,
               think_mode: str | None = None) -> tuple[list[int], str]:
    """Ids of the generation prompt for `messages` (and its text), rendered as training did under `reasoning_format`
    and `think_mode` (None: as the base is served); the messages' own text tokenized as plain text."""
    text = prompt_text(tokenizer, messages, reasoning_format=reasoning_format, think_mode=think_mode)
    return encode(tokenizer, text, typed_spans(text, messages))[0], text


def strip_added_bos(tokenizer, text: str) -> str:
    """`text` without its leading BOS string when `tokenizer(text)` adds BOS itself (R1's tokenizer does): for trainers
    that tokenize rendered rows with special tokens (TRL's DPOTrainer and GRPOTrainer), so the ids hold BOS once, as
    serving's and training's do. Unchanged for a tokenizer that adds none (ChatML's)."""
    bos = tokenizer.bos_token
    adds = bos is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return text[len(bos):] if adds and text.startswith(bos) else text
