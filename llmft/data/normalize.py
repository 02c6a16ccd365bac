"""Turn one record of any supported format into an Example of chat messages, or issues.

Formats: chat `messages` (OpenAI/DeepSeek, with optional `reasoning_content` and `weight`),
ShareGPT `conversations`, alpaca (`instruction`/`input`/`output`, or `response`),
`prompt`/`completion`, and raw `text`. Reasoning may come as `reasoning_content` or inline
as `<think>...</think>` at the start of an assistant's content.
"""

import re
from dataclasses import dataclass, field

from llmft.bases.r1_tokenizer import THINK_CLOSE, THINK_OPEN
from llmft.data.issues import Issue, Location

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "system": "system", "tool": "tool", "function": "tool",
    "function_call": "assistant", "observation": "tool",
}
PASSTHROUGH_FIELDS = ("id", "metadata")  # carried through untouched, never trained on
FORMAT_FIELDS = {
    "chat": ("messages",),
    "sharegpt": ("conversations", "system"),
    "alpaca": ("instruction", "input", "output", "response", "system"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
MESSAGE_FIELDS = {"role", "content", "reasoning_content", "weight", "tool_calls", "tool_call_id", "name"}
_INLINE_THINK = re.compile(r"^\s*<think>(.*?)</think>(.*)$", re.DOTALL)


@dataclass
class Message:
    role: str
    content: str
    reasoning: str | None = None  # None: none given; "": an empty think block was given
    weight: int | None = None  # None: the default (assistant turns trained)
    tool_calls: list | None = None


def characters(messages: list[Message]) -> int:
    """The characters of the messages' text and reasoning: the bound checked before any tokenizing."""
    return sum(len(message.content) + len(message.reasoning or "") for message in messages)


@dataclass
class Example:
    messages: list[Message] = field(default_factory=list)
    text: str | None = None  # raw text for continued pre-training (then messages is empty)
    record: int = 0
    line: int | None = None
    extra: dict = field(default_factory=dict)  # passthrough fields

    @property
    def has_reasoning(self) -> bool:
        return any(m.reasoning for m in self.messages if m.role == "assistant")

    @property
    def has_empty_reasoning(self) -> bool:
        return any(m.reasoning == "" for m in self.messages if m.role == "assistant")


def to_example(value: object, loc: Location) -> tuple[Example | None, list[Issue]]:
    """Detect the record's format, check it, and return the Example (None when it has errors)."""
    if not isinstance(value, dict):
        return None, [loc.issue("not_an_object", f"expected a JSON object, got {kind_of(value)}")]
    value = {key: item for key, item in value.items() if item is not None}  # Parquet/CSV nulls mean absent
    if not is_valid_unicode(value):
        return None, [loc.issue("undecodable_bytes", "the record holds a lone surrogate (\\ud800-\\udfff): "
                                                     "not valid Unicode text")]
    formats = [name for name, keys in _FORMAT_KEYS.items() if keys & value.keys()]
    if not formats:
        keys = ", ".join(sorted(map(str, value))) or "none"
        return None, [loc.issue("missing_messages", f"no known format in this record (fields: {keys})")]
    if len(formats) > 1:
        return None, [loc.issue("ambiguous_format", f"fields of several formats ({', '.join(formats)}); keep one")]
    fmt = formats[0]
    issues = [
        loc.issue("unknown_field", f"field {key!r} is not part of the {fmt} format; it is ignored", field=str(key))
        for key in value
        if key not in FORMAT_FIELDS[fmt] and key not in PASSTHROUGH_FIELDS
    ]
    raw_messages, prefix, more = _FORMAT_TO_MESSAGES[fmt](value, loc)
    issues += more
    example = Example(record=loc.record, line=loc.line, extra={k: value[k] for k in PASSTHROUGH_FIELDS if k in value})
    if fmt == "text":
        text = value["text"]
        if not isinstance(text, str):
            issues.append(loc.issue("content_not_string", f"text must be a string, got {kind_of(text)}", "text"))
        elif not text.strip():
            issues.append(loc.issue("empty", "text is empty", "text"))
        else:
            example.text = text
    elif raw_messages is not None:
        example.messages, chat_issues = check_messages(raw_messages, loc, prefix)
        issues += chat_issues
    errors = any(issue.severity == "error" for issue in issues)
    return (None if errors else example), issues


_FORMAT_KEYS = {
    "chat": {"messages"},
    "sharegpt": {"conversations"},
    "alpaca": {"instruction", "output", "response"},
    "prompt_completion": {"prompt", "completion"},
    "text": {"text"},
}


def _chat(value: dict, loc: Location):
    messages = value["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None, "messages", [loc.issue("invalid_messages", "messages must be a list of objects", "messages")]
    return messages, "messages", []


def _sharegpt(value: dict, loc: Location):
    turns = value["conversations"]
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return None, "conversations", [loc.issue("invalid_messages", "conversations must be a list of objects", "conversations")]
    issues, messages = [], []
    if isinstance(value.get("system"), str):
        messages.append({"role": "system", "content": value["system"]})
    for index, turn in enumerate(turns):
        unknown = set(turn) - {"from", "value", "weight"}
        issues += [loc.issue("unknown_field", f"field {k!r} is not part of a ShareGPT turn; it is ignored",
                             f"conversations[{index}].{k}") for k in sorted(unknown)]
        source = turn.get("from")
        role = SHAREGPT_ROLES.get(source.lower()) if isinstance(source, str) else None
        message = {"role": role or source, "content": turn.get("value")}
        if "weight" in turn:
            message["weight"] = turn["weight"]
        messages.append(message)
    offset = 1 if messages and messages[0].get("role") == "system" and isinstance(value.get("system"), str) else 0
    return messages, ("conversations", offset), issues


def _alpaca(value: dict, loc: Location):
    if "output" in value and "response" in value:
        return None, None, [loc.issue("ambiguous_format", "both output and response are given; keep one", "response")]
    answer_key = "output" if "output" in value else "response"
    issues = []
    for key in ("instruction", answer_key, "input", "system"):
        if key in value and not isinstance(value[key], str):
            issues.append(loc.issue("content_not_string", f"{key} must be a string, got {kind_of(value[key])}", key))
    if "instruction" not in value:
        issues.append(loc.issue("missing_content", "alpaca records need an instruction", "instruction"))
    if answer_key not in value:
        issues.append(loc.issue("missing_content", "alpaca records need an output (or response)", "output"))
    if issues:
        return None, None, issues
    prompt = value["instruction"]
    if value.get("input", "").strip():
        prompt = f"{prompt}\n\n{value['input']}"
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": value[answer_key]}]
    if "system" in value:
        messages.insert(0, {"role": "system", "content": value["system"]})
    fields = (["system"] if "system" in value else []) + ["instruction", answer_key]
    return messages, fields, []


def _prompt_completion(value: dict, loc: Location):
    issues = []
    for key in ("prompt", "completion"):
        if key not in value:
            issues.append(loc.issue("missing_content", f"prompt/completion records need {key}", key))
        elif not isinstance(value[key], str):
            issues.append(loc.issue("content_not_string", f"{key} must be a string, got {kind_of(value[key])}", key))
    if issues:
        return None, None, issues
    return [{"role": "user", "content": value["prompt"]}, {"role": "assistant", "content": value["completion"]}], ["prompt", "completion"], []


def _text(value: dict, loc: Location):
    return None, "text", []


_FORMAT_TO_MESSAGES = {
    "chat": _chat, "sharegpt": _sharegpt, "alpaca": _alpaca, "prompt_completion": _prompt_completion, "text": _text,
}


def _field_name(prefix, index: int, key: str) -> str:
    """Where message `index`'s `key` lives in the user's record, in the user's own field names (`prefix`: the
    messages' field, a list of one field per message, a (field, offset) pair for ShareGPT, or a function of
    index and key for records whose turns come from several fields, as a preference pair's)."""
    if callable(prefix):
        return prefix(index, key)
    if isinstance(prefix, list):
        return prefix[index]
    if isinstance(prefix, tuple):
        name, offset = prefix
        if index < offset:
            return "system"
        sharegpt_key = {"role": "from", "content": "value"}.get(key, key)
        return f"{name}[{index - offset}].{sharegpt_key}"
    return f"{prefix}[{index}].{key}"


def check_messages(raw: list[dict], loc: Location, prefix) -> tuple[list[Message], list[Issue]]:
    issues: list[Issue] = []
    messages: list[Message] = []
    for index, item in enumerate(raw):
        where = lambda key, index=index: _field_name(prefix, index, key)  # noqa: E731
        if isinstance(prefix, str) or callable(prefix):
            issues += [loc.issue("unknown_field", f"field {k!r} is not part of a message; it is ignored", where(k))
                       for k in sorted(set(item) - MESSAGE_FIELDS, key=str)]
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            issues.append(loc.issue("unknown_role", f"role {role!r} is not one of {', '.join(ROLES)}", where("role")))
            continue
        tool_calls = item.get("tool_calls") if role == "assistant" else None
        if content is None and not tool_calls:
            issues.append(loc.issue("missing_content", f"the {role} message has no content", where("content")))
            continue
        if content is not None and not isinstance(content, str):
            issues.append(loc.issue("content_not_string", f"content must be a string, got {kind_of(content)}", where("content")))
            continue
        content = content or ""
        if not content.strip() and not tool_calls:
            issues.append(loc.issue("empty", f"the {role} message's content is empty", where("content")))
            continue
        message = Message(role=role, content=content, tool_calls=tool_calls)
        if item.get("weight") is not None:  # a Parquet struct gives absent fields as None
            weight = item["weight"]
            if role != "assistant" or isinstance(weight, str) or weight not in (0, 1):
                issues.append(loc.issue("invalid_weight", f"weight {weight!r}: use 0 or 1 on assistant turns", where("weight")))
                continue
            message.weight = int(weight)
        if role == "assistant":
            issues += _split_reasoning(message, item.get("reasoning_content"), loc, where)
        messages.append(message)
    if any(issue.severity == "error" for issue in issues):
        return messages, issues
    return messages, issues + _check_order(messages, loc, lambda i: _field_name(prefix, i, "role"))


def _split_reasoning(message: Message, reasoning_content, loc: Location, where) -> list[Issue]:
    content = message.content
    opens, closes = content.count(THINK_OPEN), content.count(THINK_CLOSE)
    if reasoning_content is not None and not isinstance(reasoning_content, str):
        return [loc.issue("content_not_string", f"reasoning_content must be a string, got {kind_of(reasoning_content)}",
                          where("reasoning_content"))]
    if opens or closes:
        match = _INLINE_THINK.match(content)
        if opens != 1 or closes != 1 or not match:
            hint = " (put <think> before the reasoning, or send it as reasoning_content)" if closes and not opens else ""
            return [loc.issue("unbalanced_think_tags",
                              f"{opens} <think> and {closes} </think>; expected one pair at the start{hint}",
                              where("content"))]
        if reasoning_content is not None:
            return [loc.issue("reasoning_twice", "reasoning given as reasoning_content and inline <think>",
                              where("content"))]
        reasoning_content, content = match.group(1), match.group(2)
        message.content = content.lstrip("\n")
        if not message.content.strip():
            return [loc.issue("empty", "the answer after </think> is empty", where("content"))]
    if reasoning_content is not None:
        message.reasoning = reasoning_content.strip("\n")
        if not message.reasoning.strip():
            message.reasoning = ""
            return [loc.issue("empty_reasoning", "the reasoning is empty; the empty block is handled by think_mode",
                              where("content"))]
    return []


def _check_order(messages: list[Message], loc: Location, where) -> list[Issue]:
    issues = []
    for index, message in enumerate(messages):
        if message.role == "system" and index > 0:
            issues.append(loc.issue("system_not_first", "a system message may only come first", where(index)))
    if issues:
        return issues
    turns = messages[1:] if messages and messages[0].role == "system" else messages
    offset = len(messages) - len(turns)
    allowed_after = {None: ("user",), "user": ("assistant",), "assistant": ("user", "tool"), "tool": ("tool", "assistant")}
    previous = None
    for index, message in enumerate(turns):
        if message.role not in allowed_after[previous]:
            expected = " or ".join(allowed_after[previous])
            return [loc.issue("roles_not_alternating", f"{message.role} turn where {expected} was expected",
                              where(index + offset))]
        previous = message.role
    if not any(m.role == "assistant" for m in turns):
        return [loc.issue("no_assistant_turn", "no assistant turn to learn from")]
    if previous != "assistant":
        return [loc.issue("roles_not_alternating", "the conversation must end with an assistant turn",
                          where(len(messages) - 1))]
    if all(m.weight == 0 for m in turns if m.role == "assistant"):
        return [loc.issue("no_trained_tokens", "every assistant turn has weight 0")]
    return []


def is_valid_unicode(value: dict) -> bool:
    """No lone surrogate in any string of the record (walked without recursion or a copy: records can be huge)."""
    stack: list = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple)):
            stack += item
    return True


def kind_of(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
