"""Render an Example to text with the spans the model learns from.

DeepSeek-R1 models get our own renderer: the shipped chat template deletes the reasoning of
every assistant turn (everything up to `</think>`), which would silently train without it.
Here a trained assistant turn keeps its reasoning:

    <｜Assistant｜><think>\\n{reasoning}\\n</think>\\n\\n{answer}<｜end▁of▁sentence｜>

An assistant turn without reasoning follows `think_mode`:
  mask  (default) `<think>\\n\\n</think>\\n\\n` is in the text but not trained, so the model
        sees the format serving uses and does not learn to skip reasoning;
  train the empty block is trained (the model learns to answer without reasoning);
  omit  no block: the text equals the shipped template's output exactly.
Turns with weight 0 render as the template does (reasoning dropped) and are not trained.
Other models render through their own `apply_chat_template`, one assistant turn at a time.
"""

import json
from dataclasses import dataclass
from typing import Literal

from llmft.bases.r1_tokenizer import ASSISTANT, BOS, EOS, THINK_CLOSE, THINK_OPEN, USER
from llmft.data.normalize import Example, Message

RENDERER_VERSION = "2"  # bump when the rendered text or spans of any example change
ThinkMode = Literal["mask", "train", "omit"]
EMPTY_THINK = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"
GENERATION_PROMPT = f"{ASSISTANT}{THINK_OPEN}\n"
TOOL_OUTPUTS_BEGIN, TOOL_OUTPUT_BEGIN = "<｜tool▁outputs▁begin｜>", "<｜tool▁output▁begin｜>"
TOOL_OUTPUT_END, TOOL_OUTPUTS_END = "<｜tool▁output▁end｜>", "<｜tool▁outputs▁end｜>"

# What a segment is, for the statistics: prompt side, reasoning, or answer.
PROMPT_KINDS = ("bos", "system", "user", "tool", "turn")
Kind = Literal["bos", "system", "user", "tool", "turn", "reasoning", "answer"]


@dataclass(frozen=True)
class Segment:
    text: str
    kind: Kind
    trained: bool
    typed: bool = False  # a message's own text (never the template's markers): special-token strings are plain


@dataclass(frozen=True)
class Rendered:
    segments: tuple[Segment, ...]
    found: tuple[tuple[int, int], ...] = ()  # typed spans located in a chat template's output

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)

    @property
    def typed(self) -> tuple[tuple[int, int], ...]:
        """(start, end) of the characters a user typed: tokenizing keeps special-token strings there plain."""
        spans, position = list(self.found), 0
        for segment in self.segments:
            if segment.typed:
                spans.append((position, position + len(segment.text)))
            position += len(segment.text)
        return tuple(spans)

    def cut(self, chars: int) -> "Rendered":
        """The first `chars` characters, spans kept (truncation tokenizes no more than it can keep)."""
        segments, left = [], chars
        for segment in self.segments:
            if left <= 0:
                break
            segments.append(Segment(segment.text[:left], segment.kind, segment.trained, segment.typed))
            left -= len(segment.text)
        return Rendered(tuple(segments), tuple((a, min(b, chars)) for a, b in self.found if a < chars))


def is_r1_tokenizer(tokenizer) -> bool:
    """True for tokenizers of the DeepSeek-R1 family (they carry `<｜Assistant｜>`)."""
    token_id = tokenizer.convert_tokens_to_ids(ASSISTANT)
    return token_id is not None and token_id != tokenizer.unk_token_id


def render(example: Example, *, r1: bool, tokenizer=None, think_mode: ThinkMode = "mask",
           train_on_inputs: bool = False) -> Rendered:
    if example.text is not None:
        bos = BOS if r1 else (tokenizer.bos_token or "")
        eos = EOS if r1 else tokenizer.eos_token
        return Rendered((Segment(bos, "bos", False), Segment(example.text, "answer", True), Segment(eos, "answer", True)))
    if r1:
        return Rendered(tuple(_r1_segments(example.messages, think_mode, train_on_inputs)))
    segments = tuple(_template_segments(example.messages, tokenizer, train_on_inputs))
    return Rendered(segments, typed_spans("".join(s.text for s in segments), example.messages))


def typed_spans(text: str, messages: list[Message]) -> tuple[tuple[int, int], ...]:
    """Where each message's content and reasoning stand in a chat template's output, found in order (a template
    that rewrites a message's text leaves that message unmarked)."""
    spans, position = [], 0
    for message in messages:
        for part in (message.reasoning, message.content):
            start = text.find(part, position) if part else -1
            if start >= 0:
                spans.append((start, start + len(part)))
                position = start + len(part)
    return tuple(spans)


def render_prompt(messages: list[Message]) -> str:
    """The R1 prompt for generating the next assistant turn, exactly as serving sends it."""
    segments = list(_r1_segments(messages, "omit", False))
    if messages and messages[-1].role == "tool":
        return "".join(s.text for s in segments) + TOOL_OUTPUTS_END
    return "".join(s.text for s in segments) + GENERATION_PROMPT


def generation_prompt(tokenizer, messages: list[Message]) -> str:
    """The prompt that asks `tokenizer`'s model for the next assistant turn: our R1 renderer (it ends
    inside an open `<think>` block), or the model's own chat template."""
    if is_r1_tokenizer(tokenizer):
        return render_prompt(messages)
    return tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                         tokenize=False, add_generation_prompt=True)


def _r1_segments(messages: list[Message], think_mode: ThinkMode, train_on_inputs: bool):
    inputs = train_on_inputs
    yield Segment(BOS, "bos", False)
    if messages and messages[0].role == "system":
        yield Segment(messages[0].content, "system", inputs, typed=True)
    in_tools = False
    for message in messages:
        if message.role == "user":
            yield Segment(USER, "turn", inputs)
            yield Segment(message.content, "user", inputs, typed=True)
        elif message.role == "tool":
            opening = "\n" + TOOL_OUTPUT_BEGIN if in_tools else TOOL_OUTPUTS_BEGIN + TOOL_OUTPUT_BEGIN
            yield Segment(opening, "turn", inputs)
            yield Segment(message.content, "tool", inputs, typed=True)
            yield Segment(TOOL_OUTPUT_END, "turn", inputs)
            in_tools = True
        elif message.role == "assistant":
            yield Segment(TOOL_OUTPUTS_END if in_tools else ASSISTANT, "turn", inputs)
            in_tools = False
            yield from _r1_assistant(message, think_mode)


def _r1_assistant(message: Message, think_mode: ThinkMode):
    trained = message.weight != 0
    if message.tool_calls:
        calls = "\n".join(_tool_call_text(call) for call in message.tool_calls)
        yield Segment(f"<｜tool▁calls▁begin｜>{calls}<｜tool▁calls▁end｜>", "answer", trained)
        yield Segment(EOS, "answer", trained)
        return
    if trained and message.reasoning:
        yield Segment(f"{THINK_OPEN}\n", "reasoning", True)
        yield Segment(message.reasoning, "reasoning", True, typed=True)
        yield Segment(f"\n{THINK_CLOSE}\n\n", "reasoning", True)
    elif trained and think_mode != "omit":
        yield Segment(EMPTY_THINK, "turn", think_mode == "train")  # scaffolding, not reasoning
    yield Segment(message.content, "answer", trained, typed=True)
    yield Segment(EOS, "answer", trained)


def _tool_call_text(call) -> str:
    function = call.get("function", {}) if isinstance(call, dict) else {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return (f"<｜tool▁call▁begin｜>{call.get('type', 'function')}<｜tool▁sep｜>{function.get('name', '')}\n"
            f"```json\n{arguments}\n```<｜tool▁call▁end｜>")


def _template_segments(messages: list[Message], tokenizer, train_on_inputs: bool):
    """Spans from the model's own template: render the prefix before and after each assistant turn."""
    dicts = [_as_dict(m) for m in messages]
    done = ""
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        before = tokenizer.apply_chat_template(dicts[:index], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(dicts[: index + 1], tokenize=False)
        if not before.startswith(done) or not through.startswith(before):
            raise ValueError(
                f"{tokenizer.name_or_path}'s chat template rewrites earlier turns, so trained spans cannot be "
                "located; set data.renderer to r1 or pick a model whose template only appends"
            )
        yield Segment(before[len(done):], "user", train_on_inputs)
        yield Segment(through[len(before):], "answer", message.weight != 0)
        done = through


def _as_dict(message: Message) -> dict:
    out = {"role": message.role, "content": message.content}
    if message.reasoning:
        out["reasoning_content"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = message.tool_calls
    return out
