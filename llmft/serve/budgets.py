"""Loop control for one generated row: the thinking budget, and the repetition detector.

    thinking = Thinking(inside=True, budget=256, close_ids=tokenizer("\\n</think>\\n\\n")["input_ids"])
    token = thinking.forced()            # the close block's next token once the budget is spent, else None
    token = sampled if token is None else token
    thinking.add(token, decoded_text, forced=...)   # after each token, with the whole text decoded so far
    thinking.reasoning_tokens            # tokens spent in the think block, its closing tag included

    loop = Repetition(window=256)
    if loop.add(token): finish_reason = "repetition"

A thinking budget of N lets the model write N tokens inside its think block; then the engine feeds
the tokens of `\\n</think>\\n\\n` as if the model had written them (they are not sampled) and the
answer follows, as vLLM's `thinking_token_budget` and llama.cpp's reasoning budget do. The block is
found in the decoded text, so it works whether the prompt ends inside `<think>\\n` (DeepSeek-R1) or
the model opens `<think>` itself, and whatever pieces a tokenizer cuts the tags into.

The repetition detector ends a generation whose last `window` tokens are one block of 1 to 32 tokens
repeated: per period p it keeps how many tokens in a row equalled the token p before them, so each
new token costs 32 comparisons, whatever the length.
"""

from collections import deque

from llmft.bases.r1_tokenizer import THINK_CLOSE, THINK_OPEN

THINK_CLOSE_TEXT = "\n</think>\n\n"  # what the engine writes at the budget (DeepSeek-R1's own closing)
EFFORT_BUDGETS = {"low": 512, "medium": 2048, "high": 8192}  # reasoning_effort -> thinking tokens
MAX_PERIOD = 32  # longest repeated block the detector looks for, in tokens


def effort_budget(effort: str, max_tokens: int) -> int:
    """reasoning_effort's thinking budget: its tokens, and at most half of max_tokens (the answer keeps the rest)."""
    return min(EFFORT_BUDGETS[effort], max_tokens // 2)


class Thinking:
    """Where one row stands with its think block: before it ("maybe": the model may still open one), "inside"
    or "after"; how many tokens it spent there; the forced close once the budget is spent."""

    def __init__(self, *, inside: bool, budget: int | None, close_ids: list[int]):
        self.state = "inside" if inside else "maybe"
        self.budget, self.close_ids = budget, close_ids
        self.thought = 0            # tokens the model wrote inside the block: what the budget counts
        self.reasoning_tokens = 0   # every token of the block: the opening tag, thoughts, the closing tag
        self.waiting = 0            # tokens that may be the start of an opening tag (reasoning if it opens)
        self.scan = 0               # where in the decoded text to look for the closing tag next
        self.closing = False        # the close block is being (or was) fed
        self._forced: deque[int] = deque()
        self._check_budget()

    def forced(self) -> int | None:
        """The next token of the close block the engine feeds instead of sampling, if any."""
        return self._forced.popleft() if self._forced else None

    def add(self, token: int, text: str, *, forced: bool = False) -> None:
        """Account one token; `text` is everything decoded so far (a held-back half character may lag)."""
        counted = forced
        if forced:
            self.reasoning_tokens += 1
        if self.state == "maybe":
            stripped = text.lstrip()
            if stripped.startswith(THINK_OPEN):
                self.state, self.scan = "inside", len(text) - len(stripped) + len(THINK_OPEN)
                self.reasoning_tokens += self.waiting + (not counted)
                self._check_budget()
            elif THINK_OPEN.startswith(stripped):
                self.waiting += 1
            else:
                self.state = "after"
            return
        if self.state != "inside":
            return
        index = text.find(THINK_CLOSE, self.scan)
        if index >= 0:
            self.state = "after"
            self.reasoning_tokens += not counted
            return
        self.scan = max(self.scan, len(text) - len(THINK_CLOSE) + 1)
        if not counted:
            self.reasoning_tokens += 1
            self.thought += 1
        self._check_budget()

    def _check_budget(self) -> None:
        if self.state == "inside" and self.budget is not None and self.thought >= self.budget and not self.closing:
            self.closing = True
            self._forced.extend(self.close_ids)


class Repetition:
    """True from `add` once the last `window` tokens are one block of 1..32 tokens repeated (at least twice);
    a window of 0 never fires."""

    def __init__(self, window: int):
        self.window = window
        self.periods = range(1, min(MAX_PERIOD, window // 2) + 1)
        self.recent: deque[int] = deque(maxlen=MAX_PERIOD + 1)
        self.runs = [0] * (MAX_PERIOD + 1)  # runs[p]: tokens in a row equal to the token p before them

    def add(self, token: int) -> bool:
        self.recent.append(token)
        seen = len(self.recent)
        fired = False
        for period in self.periods:
            if seen > period and self.recent[-1 - period] == token:
                self.runs[period] += 1
                fired = fired or self.runs[period] + period >= self.window
            else:
                self.runs[period] = 0
        return fired
