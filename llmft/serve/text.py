"""Generated tokens to text deltas: incremental decoding, reasoning apart from the answer, stop strings.

    out = OutputText(tokenizer, reasoning_open=True)   # the R1 prompt ends inside `<think>\\n`
    for token in tokens:
        deltas = out.add(token)     # [("reasoning", "Let me"), ...], later [("content", "42")]
        if out.stopped: break       # a stop string ended the answer
    out.finish()                    # whatever was held back

A DeepSeek-R1 generation reads `reasoning</think>\\n\\nanswer`. Reasoning goes to the
`reasoning` channel, the answer to `content` (DeepSeek's API: `reasoning_content` apart from
`content`); the tags themselves go to neither. Text that may be the start of `</think>` or of a
stop string is held back until the next token settles it, so a stream never shows half a tag.
Stop strings apply to the answer only: a stop of "\\n" must not end a model that is still thinking.
"""

import threading

from transformers import AutoTokenizer

from llmft.bases.r1_tokenizer import THINK_CLOSE, THINK_OPEN
from llmft.bases.resolve import resolve_model

HELD_BLANKS = 8  # at most this much trailing whitespace waits to see whether `</think>` follows
Delta = tuple[str, str]  # (channel: "reasoning" | "content", text)


_tokenizers: dict[str, object] = {}
_tokenizers_lock = threading.Lock()


def tokenizer_for(base_model: str):
    """The base model's tokenizer, loaded once per process, for building prompts (the default engine's
    scheduler decodes with a copy of its own)."""
    with _tokenizers_lock:
        if base_model not in _tokenizers:
            _tokenizers[base_model] = AutoTokenizer.from_pretrained(resolve_model(base_model))
        return _tokenizers[base_model]


class OutputText:
    def __init__(self, tokenizer, *, reasoning_open: bool, split_reasoning: bool = True, stop: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""            # everything decoded so far (up to the last whole character)
        self.emitted = 0          # characters of the decoded text already handed to the splitter
        self.stop = tuple(s for s in stop if s)
        self.stopped = False
        self.reasoning: list[str] = []
        self.content: list[str] = []
        # "maybe": not yet known whether the model opens a think block itself; "reasoning"; "content".
        self.state = "reasoning" if reasoning_open else ("maybe" if split_reasoning else "content")
        self.pending = ""          # text received but not yet emitted (a possible tag or stop prefix)
        self.reasoning_started = False
        self.answer_started = False

    def add(self, token: int) -> list[Delta]:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the next token
            return []
        self.text = text
        new, self.emitted = text[self.emitted:], len(text)
        return self._feed(new, final=False)

    def finish(self) -> list[Delta]:
        """Release what was held back (the generation ended)."""
        return self._feed("", final=True)

    def _feed(self, new: str, *, final: bool) -> list[Delta]:
        if self.stopped:
            return []
        self.pending += new
        out: list[Delta] = []
        while self.pending:
            before = (self.state, self.pending)
            if self.state == "maybe":
                stripped = self.pending.lstrip()
                if stripped.startswith(THINK_OPEN):
                    self.pending, self.state = stripped[len(THINK_OPEN):], "reasoning"
                elif THINK_OPEN.startswith(stripped) and not final:
                    break
                else:
                    self.state = "content"
            elif self.state == "reasoning":
                if not self.reasoning_started:
                    self.pending = self.pending.lstrip()
                    if not self.pending:
                        break
                    self.reasoning_started = True
                index = self.pending.find(THINK_CLOSE)
                if index >= 0:
                    self._emit(out, "reasoning", self.pending[:index].rstrip())
                    self.pending, self.state = self.pending[index + len(THINK_CLOSE):], "content"
                    continue
                # Held back: a possible start of `</think>`, and trailing blanks (dropped if the tag follows).
                keep = 0 if final else max(_partial_suffix(self.pending, (THINK_CLOSE,)),
                                           min(len(self.pending) - len(self.pending.rstrip()), HELD_BLANKS))
                self._emit(out, "reasoning", self.pending[:len(self.pending) - keep])
                self.pending = self.pending[len(self.pending) - keep:]
                break
            else:
                if not self.answer_started:
                    self.pending = self.pending.lstrip()
                    if not self.pending:
                        break
                    self.answer_started = True
                hits = [(self.pending.find(s), s) for s in self.stop if s in self.pending]
                if hits:
                    self._emit(out, "content", self.pending[:min(hits)[0]])
                    self.pending, self.stopped = "", True
                    break
                keep = 0 if final else _partial_suffix(self.pending, self.stop)
                self._emit(out, "content", self.pending[:len(self.pending) - keep])
                self.pending = self.pending[len(self.pending) - keep:]
                break
            if (self.state, self.pending) == before:
                break
        if final and self.pending and not self.stopped:
            self._emit(out, "reasoning" if self.state == "reasoning" else "content", self.pending)
            self.pending = ""
        return out

    def _emit(self, out: list[Delta], channel: str, text: str) -> None:
        if text:
            (self.reasoning if channel == "reasoning" else self.content).append(text)
            out.append((channel, text))


def _partial_suffix(text: str, needles: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is a proper start of one of `needles`."""
    best = 0
    for needle in needles:
        for size in range(min(len(needle) - 1, len(text)), best, -1):
            if text.endswith(needle[:size]):
                best = size
                break
    return best
