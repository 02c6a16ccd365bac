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
Other models render through their own `apply_chat_template`, one assistant turn at a time, their
reasoning after `data.reasoning_format` (resolved by `resolve_format`):
  template    the chat template's own field: it renders `reasoning_content` (Qwen3-style templates)
  think_tags  `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` inline in the assistant turn's content
              (auto picks it for a template without a reasoning field, when the data has reasoning)
  drop        reasoning left out (only when asked; validate and prepare warn `reasoning_dropped`)
`think_mode` treats a trained turn without reasoning the same way in every format (an empty block,
masked or trained, or none). The serving prompt (`prompt_text`) is built by the same code, so its
ids are the training render's up to the first trained token (for R1 and think_tags the prompt also
opens the think block, as the trained turn does).
"""

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from llmft.bases.r1_tokenizer import ASSISTANT, BOS, EOS, THINK_CLOSE, THINK_OPEN, USER
from llmft.data.normalize import Example, Message

RENDERER_VERSION = "3"  # bump when the rendered text or spans of any example change (3: reasoning on every model)
ThinkMode = Literal["mask", "train", "omit"]
ReasoningFormat = Literal["auto", "template", "think_tags", "drop"]
RESOLVED_FORMATS = ("r1", "template", "think_tags", "drop")  # what a render and a contract record
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


def renders_r1(renderer: str, tokenizer) -> bool:
    """Whether data.renderer (`r1`, `template` or `auto`) renders the R1 format for this tokenizer."""
    return renderer == "r1" or (renderer == "auto" and is_r1_tokenizer(tokenizer))


def render(example: Example, *, r1: bool, tokenizer=None, think_mode: ThinkMode = "mask",
           train_on_inputs: bool = False, reasoning_format: str | None = None) -> Rendered:
    """`reasoning_format` is a resolved one (`resolve_format`); None: r1 for R1, else template."""
    if example.text is not None:
        bos = BOS if r1 else (tokenizer.bos_token or "")
        eos = EOS if r1 else tokenizer.eos_token
        return Rendered((Segment(bos, "bos", False), Segment(example.text, "answer", True), Segment(eos, "answer", True)))
    reasoning_format = reasoning_format or ("r1" if r1 else "template")
    messages = dropped(example.messages) if reasoning_format == "drop" else example.messages
    if r1:
        return Rendered(tuple(_r1_segments(messages, think_mode, train_on_inputs)))
    segments = tuple(_template_segments(messages, tokenizer, train_on_inputs, think_mode, reasoning_format))
    return Rendered(segments, typed_spans("".join(s.text for s in segments), messages))


def resolve_format(tokenizer, *, requested: ReasoningFormat = "auto", renderer: str = "auto",
                   has_reasoning: bool = True) -> str:
    """What `data.reasoning_format` means for this tokenizer: r1 (our R1 renderer writes the think block), template
    (the chat template renders `reasoning_content`), think_tags (inline in the content) or drop. auto picks
    think_tags only for data with reasoning, so data without any renders exactly as the template does."""
    if requested == "drop":
        return "drop"
    if renderer == "r1" or (renderer == "auto" and is_r1_tokenizer(tokenizer)):
        return "r1"
    if requested == "template":
        if not template_renders_reasoning(tokenizer):
            raise ValueError(f"{tokenizer.name_or_path}'s chat template does not render reasoning_content; set "
                             "data.reasoning_format to think_tags (or auto) to keep the reasoning")
        return "template"
    if requested == "think_tags":
        return "think_tags"
    if template_renders_reasoning(tokenizer):
        return "template"
    return "think_tags" if has_reasoning else "template"


def serving_format(tokenizer) -> str:
    """The format a base is served in as shipped: our R1 renderer for R1, otherwise its own chat template."""
    return "r1" if is_r1_tokenizer(tokenizer) else "template"


@lru_cache(maxsize=16)
def template_renders_reasoning(tokenizer) -> bool:
    """True when the chat template writes an assistant turn's `reasoning_content` (Qwen3-style): found by
    rendering a probe conversation."""
    if not tokenizer.chat_template:
        return False
    mark = "llmft-reasoning-probe-7f3a"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4", "reasoning_content": mark}],
        tokenize=False)
    return mark in text


def dropped(messages: list[Message]) -> list[Message]:
    """The messages without their reasoning (reasoning_format=drop)."""
    return [replace(m, reasoning=None) if m.reasoning is not None else m for m in messages]


def has_reasoning(example: Example) -> bool:
    return any(m.role == "assistant" and m.reasoning for m in example.messages)


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


def prompt_text(tokenizer, messages: list[Message], *, reasoning_format: str | None = None,
                think_mode: str | None = None) -> str:
    """The prompt that asks for the next assistant turn, rendered as training rendered the turns before it
    (`reasoning_format` resolved, None: how the base is served). Earlier assistant turns keep the reasoning
    they carry; one without reasoning gets no empty block (think_mode omit, as R1's prompt). R1 and trained
    think_tags prompts end inside an open `<think>` block, as their trained turns begin."""
    reasoning_format = reasoning_format or serving_format(tokenizer)
    if reasoning_format == "drop":
        messages = dropped(messages)
    if is_r1_tokenizer(tokenizer):
        return render_prompt(messages)
    dicts = [_as_dict(m, reasoning_format, "omit") for m in messages]
    text = tokenizer.apply_chat_template(dicts, tokenize=False, add_generation_prompt=True)
    opens = reasoning_format == "think_tags" and think_mode in ("mask", "train")
    return text + f"{THINK_OPEN}\n" if opens and messages[-1].role != "assistant" else text


def generation_prompt(tokenizer, messages: list[Message]) -> str:
    """The prompt that asks `tokenizer`'s model, as shipped, for the next assistant turn: our R1 renderer (it
    ends inside an open `<think>` block), or the model's own chat template."""
    return prompt_text(tokenizer, messages)


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


def _template_segments(messages: list[Message], tokenizer, train_on_inputs: bool, think_mode: ThinkMode,
                       reasoning_format: str):
    """Spans from the model's own template: render the prefix before and after each assistant turn."""
    dicts = [_as_dict(m, reasoning_format, think_mode) for m in messages]
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
        yield from _assistant_piece(through[len(before):], message, think_mode, dicts[index], tokenizer)
        done = through


def _assistant_piece(piece: str, message: Message, think_mode: ThinkMode, rendered: dict, tokenizer):
    """An assistant turn from the template: its think block (reasoning, or the empty block under think_mode)
    apart from the answer, so spans and counts match R1's."""
    trained = message.weight != 0
    block = "reasoning_content" in rendered or rendered["content"].startswith(THINK_OPEN)
    if not block or message.tool_calls:
        yield Segment(piece, "answer", trained)
        return
    start = piece.find(THINK_OPEN)
    close = piece.find(THINK_CLOSE, start)
    if (start < 0 or close < 0) and not template_renders_reasoning(tokenizer):
        yield Segment(piece, "answer", trained)  # a template without a reasoning field, as shipped (no data reasoning)
        return
    if start < 0 or close < 0:
        raise ValueError(f"{tokenizer.name_or_path}'s chat template left out an assistant turn's think block; "
                         "set data.reasoning_format to think_tags or drop")
    end = close + len(THINK_CLOSE)
    while piece[end:end + 1] == "\n":
        end += 1
    if start:
        yield Segment(piece[:start], "answer", trained)
    if message.reasoning:
        yield Segment(piece[start:end], "reasoning", trained)
    else:
        yield Segment(piece[start:end], "turn", trained and think_mode == "train")  # scaffolding, not reasoning
    yield Segment(piece[end:], "answer", trained)


def _as_dict(message: Message, reasoning_format: str, think_mode: ThinkMode) -> dict:
    """The message for `apply_chat_template`: reasoning as `reasoning_content` (template), inline in the content
    (think_tags), or not at all (drop); a trained assistant turn without reasoning gets an empty one unless omit."""
    out = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = message.tool_calls
    if message.role != "assistant" or reasoning_format == "drop":
        return out
    trained = message.weight != 0
    reasoning = message.reasoning or ("" if trained and think_mode != "omit" else None)
    if reasoning_format == "think_tags":
        if trained and reasoning is not None and not message.tool_calls:
            out["content"] = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{message.content}"
    elif reasoning is not None:
        out["reasoning_content"] = reasoning
    return out
