"""Text normalization and de-duplication of Examples (pure functions, counted by the caller)."""

import hashlib
import json
import re
import unicodedata

from llmft.data.normalize import Example

_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u2060"), None)
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{4,}")
_ANY_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFC, LF line ends, no invisible characters, no trailing spaces, no runs of >2 blank lines."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n\n", text).strip()


def normalize_example(example: Example) -> bool:
    """Normalize every text of `example` in place; True when anything changed."""
    changed = False
    if example.text is not None:
        new = normalize_text(example.text)
        changed, example.text = new != example.text, new
    for message in example.messages:
        for attr in ("content", "reasoning"):
            old = getattr(message, attr)
            if old:
                new = normalize_text(old)
                changed |= new != old
                setattr(message, attr, new)
    return changed


def exact_key(example: Example) -> str:
    """Identity of the example's content exactly as given."""
    return _digest(_canonical(example))


def normalized_key(example: Example) -> str:
    """Identity up to case and whitespace: catches copies that differ only cosmetically."""
    return _digest(_canonical(example, fold=lambda text: _ANY_SPACE.sub(" ", text.casefold()).strip()))


def _canonical(example: Example, fold=lambda text: text) -> str:
    if example.text is not None:
        return json.dumps(["text", fold(example.text)], ensure_ascii=False)
    turns = [[m.role, fold(m.content), m.reasoning and fold(m.reasoning), m.weight, m.tool_calls]
             for m in example.messages]
    return json.dumps(turns, ensure_ascii=False, sort_keys=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
