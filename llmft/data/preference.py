"""Preference pairs for DPO, ORPO and SimPO: read, check and render `{prompt | messages, chosen, rejected}` records.

    llmft data validate pairs.jsonl --kind preference --model smollm2-135m

    checked = check_preference_file(Path("pairs.jsonl"), tokenizer=tokenizer, config=DataConfig())
    rows = preference_rows(tokenizer, checked.examples, reasoning_format=checked.reasoning_format,
                           think_mode="mask")   # [{"prompt": ..., "chosen": ..., "rejected": ...}], TRL's form

Record forms (JSONL, JSON, CSV or Parquet, read as SFT files are):
  {"prompt": "...", "chosen": X, "rejected": X}                       (prompt may also be a list of messages)
  {"messages": [..., {"role": "user", ...}], "chosen": X, "rejected": X}
  {"input": {"messages": [...]}, "preferred_output": [msg], "non_preferred_output": [msg]}   (OpenAI's DPO form)
where X is a string, an assistant message (`{"role": "assistant", "content": ..., "reasoning_content": ...}`) or a
list of one. Reasoning is allowed on both sides, as `reasoning_content` or inline `<think>...</think>`, and is
rendered as SFT renders it (render.py). Every problem is an Issue with the line and the field, the codes of
SFT files (issues.py) plus missing_chosen, missing_rejected, chosen_equals_rejected and no_prompt.

A row's prompt is the generation prompt exactly as serving builds it (`render.prompt_text`); its chosen and
rejected are the assistant turn as training renders it after that prompt, up to and including the EOS text (for
R1 and think_tags the prompt already opened `<think>\\n`, so a side continues `{reasoning}\\n</think>\\n\\n{answer}`).
Prompt plus side is the SFT render of the same conversation, token for token, up to its EOS.
"""

from dataclasses import dataclass, field
from pathlib import Path

from llmft.bases.r1_tokenizer import ASSISTANT, EOS, THINK_OPEN
from llmft.config import ConfigError
from llmft.data.clean import exact_key, normalize_example, normalize_text, normalized_key
from llmft.data.config import DataConfig
from llmft.data.issues import Issue, Location
from llmft.data.normalize import (
    PASSTHROUGH_FIELDS,
    Example,
    Message,
    characters,
    check_messages,
    is_valid_unicode,
    kind_of,
)
from llmft.data.read import ReadLimits
from llmft.data.render import Rendered, is_r1_tokenizer, prompt_text, render, renders_r1, resolve_format, typed_spans
from llmft.data.tokenize import encode, tokenize_many
from llmft.data.validate import Checked, read_candidates, too_long

SIDES = ("chosen", "rejected")
OPENAI_SIDES = {"chosen": "preferred_output", "rejected": "non_preferred_output"}
PLAIN_FIELDS = ("prompt", "messages", "chosen", "rejected")
OPENAI_FIELDS = ("input", "preferred_output", "non_preferred_output")


@dataclass
class PreferenceExample:
    messages: list[Message]  # the prompt turns, ending with a user (or tool) turn
    chosen: Message
    rejected: Message
    line: int | None = None
    record: int = 0
    extra: dict = field(default_factory=dict)  # passthrough fields (id, metadata)

    @property
    def has_reasoning(self) -> bool:
        return bool(self.chosen.reasoning or self.rejected.reasoning)

    @property
    def has_empty_reasoning(self) -> bool:
        return self.chosen.reasoning == "" or self.rejected.reasoning == ""

    def conversation(self, side: str) -> Example:
        """The prompt turns followed by the `side` ("chosen" or "rejected") answer, as an SFT example."""
        return Example([*self.messages, getattr(self, side)], record=self.record, line=self.line, extra=self.extra)


def check_preference_file(path: Path, *, tokenizer, config: DataConfig, limits: ReadLimits | None = None) -> Checked:
    """Every pair of `path` that survives (Checked.examples holds PreferenceExamples; Checked.tokenized the SFT
    tokens of each pair's longer side, prompt included), every issue by line, and the counts of the report."""
    checked, candidates = read_candidates(path, tokenizer=tokenizer, config=config, limits=limits,
                                          convert=to_preference, characters=_longest_characters, too_long=too_long)
    kept = _normalize_and_dedupe(candidates, checked, config)
    _tokenize_and_fit(kept, checked, tokenizer, config)
    return checked


def to_preference(value: object, loc: Location) -> tuple[PreferenceExample | None, list[Issue]]:
    """Check one record of any preference form; the PreferenceExample, or None when it has errors."""
    if not isinstance(value, dict):
        return None, [loc.issue("not_an_object", f"expected a JSON object, got {kind_of(value)}")]
    value = {key: item for key, item in value.items() if item is not None}  # Parquet/CSV nulls mean absent
    if not is_valid_unicode(value):
        return None, [loc.issue("undecodable_bytes", "the record holds a lone surrogate (\\ud800-\\udfff): "
                                                     "not valid Unicode text")]
    openai = [key for key in OPENAI_FIELDS if key in value]
    plain = [key for key in PLAIN_FIELDS if key in value]
    if openai and plain:
        return None, [loc.issue("ambiguous_format", f"fields of OpenAI's form ({', '.join(openai)}) beside "
                                                    f"{', '.join(plain)}; keep one form")]
    if "prompt" in value and "messages" in value:
        return None, [loc.issue("ambiguous_format", "both prompt and messages are given; keep one", "messages")]
    known = (*OPENAI_FIELDS, *PASSTHROUGH_FIELDS) if openai else (*PLAIN_FIELDS, *PASSTHROUGH_FIELDS)
    issues = [loc.issue("unknown_field", f"field {key!r} is not part of a preference record; it is ignored", str(key))
              for key in value if key not in known]
    prompt, prompt_where, more = (_openai_prompt if openai else _plain_prompt)(value, loc)
    issues += more
    names = {side: OPENAI_SIDES[side] if openai else side for side in SIDES}
    sides = {}
    for side in SIDES:
        sides[side], more = _side(value, names[side], side, loc)
        issues += more
    if any(issue.severity == "error" for issue in issues):
        return None, issues
    answers, prompt_messages = {}, []
    for side, (raw, side_where) in sides.items():
        where = _joined(len(prompt), prompt_where, side_where)
        messages, found = check_messages([*prompt, raw], loc, where)
        if side == "chosen":
            issues += found
        else:  # the prompt's issues were reported with chosen's
            issues += [issue for issue in found if (issue.field or "").startswith(names[side])
                       or issue.field is None and issue not in issues]
        if len(messages) == len(prompt) + 1:
            answers[side], prompt_messages = messages[-1], messages[:-1]
    if any(issue.severity == "error" for issue in issues):
        return None, issues
    chosen, rejected = answers["chosen"], answers["rejected"]
    if _same(chosen, rejected):
        return None, issues + [loc.issue("chosen_equals_rejected", "the chosen and rejected answers are the same "
                                                                    "(reasoning included): nothing to prefer",
                                         names["rejected"])]
    extra = {key: value[key] for key in PASSTHROUGH_FIELDS if key in value}
    return PreferenceExample(prompt_messages, chosen, rejected, line=loc.line, record=loc.record, extra=extra), issues


def preference_rows(tokenizer, examples: list[PreferenceExample], *, reasoning_format: str,
                    think_mode: str) -> list[dict]:
    """TRL's non-conversational rows `{"prompt", "chosen", "rejected"}`: the prompt as serving builds it under the
    resolved `reasoning_format` and `think_mode`, each side as training renders it after that prompt, ending with
    the EOS text."""
    rows = []
    for example in examples:
        prompt = prompt_text(tokenizer, example.messages, reasoning_format=reasoning_format, think_mode=think_mode)
        rows.append({"prompt": prompt, **{side: completion_text(tokenizer, example.messages, getattr(example, side),
                                                                prompt=prompt, reasoning_format=reasoning_format,
                                                                think_mode=think_mode) for side in SIDES}})
    return rows


def preference_ids(tokenizer, examples: list[PreferenceExample], *, reasoning_format: str,
                   think_mode: str) -> list[dict]:
    """The rows as ids, `{"prompt_ids", "chosen_ids", "rejected_ids"}`, tokenized as training tokenizes (prompt and
    side as one text, so prompt plus side is the SFT render's ids up to its EOS; special-token strings a user typed
    stay plain text; BOS once) for a trainer that takes ids instead of strings. Where the prompt's last token merges
    with a side's first, the side starts at the merged token (the prompt ends where both sides still agree)."""
    out = []
    rows = preference_rows(tokenizer, examples, reasoning_format=reasoning_format, think_mode=think_mode)
    for example, row in zip(examples, rows):
        prompt = encode(tokenizer, row["prompt"], typed_spans(row["prompt"], example.messages))[0]
        full = {side: encode(tokenizer, row["prompt"] + row[side],
                             typed_spans(row["prompt"] + row[side], [*example.messages, getattr(example, side)]))[0]
                for side in SIDES}
        cut = min(_common_prefix(prompt, ids) for ids in full.values())
        out.append({"prompt_ids": prompt[:cut], **{f"{side}_ids": ids[cut:] for side, ids in full.items()}})
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def completion_text(tokenizer, messages: list[Message], turn: Message, *, prompt: str, reasoning_format: str,
                    think_mode: str) -> str:
    """The assistant `turn` as training renders it after `messages`, continuing `prompt` (which may have opened the
    think block), up to and including the EOS text. Under R1 the served prompt always opens `<think>`, so a turn
    without reasoning continues it with an empty block whatever think_mode says."""
    r1 = is_r1_tokenizer(tokenizer)
    mode = "mask" if r1 and think_mode == "omit" else think_mode
    rendered = render(Example([*messages, turn]), r1=r1, tokenizer=tokenizer, think_mode=mode,
                      reasoning_format=reasoning_format)
    text = _last_turn(rendered, r1)
    opener = f"{THINK_OPEN}\n"
    if prompt.endswith(opener):
        if not text.startswith(opener):
            raise ValueError(f"the prompt opens {THINK_OPEN} but the rendered turn does not begin with it "
                             f"(reasoning_format {reasoning_format}, think_mode {think_mode})")
        text = text[len(opener):]
    eos = EOS if r1 else tokenizer.eos_token
    return text[:text.rindex(eos) + len(eos)] if eos in text else text + eos


def _last_turn(rendered: Rendered, r1: bool) -> str:
    """The text of the rendered conversation's last assistant turn, after its role marker (R1's `<｜Assistant｜>`, a
    chat template's generation prompt)."""
    segments = rendered.segments
    if r1:
        start = max(i for i, s in enumerate(segments) if s.kind == "turn" and s.text == ASSISTANT)
    else:
        start = max(i for i, s in enumerate(segments) if s.kind == "user")
    return "".join(segment.text for segment in segments[start + 1:])


def _plain_prompt(value: dict, loc: Location):
    """The prompt turns of a {prompt | messages, chosen, rejected} record, a function naming their fields, issues."""
    if "messages" in value:
        return _prompt_messages(value["messages"], "messages", loc)
    if "prompt" not in value:
        return [], None, [loc.issue("no_prompt", "give prompt (a string) or messages ending with a user turn",
                                    "prompt")]
    prompt = value["prompt"]
    if isinstance(prompt, list):  # TRL's conversational form
        return _prompt_messages(prompt, "prompt", loc)
    if not isinstance(prompt, str):
        return [], None, [loc.issue("content_not_string", f"prompt must be a string or a list of messages, got "
                                                          f"{kind_of(prompt)}", "prompt")]
    if not prompt.strip():
        return [], None, [loc.issue("no_prompt", "the prompt is empty", "prompt")]
    return [{"role": "user", "content": prompt}], lambda index, key: "prompt", []


def _openai_prompt(value: dict, loc: Location):
    """The prompt turns of OpenAI's form: input.messages (input's other fields, as tools, are not used)."""
    given = value.get("input")
    if given is None:
        return [], None, [loc.issue("no_prompt", "OpenAI's form needs input: {messages: [...]}", "input")]
    if not isinstance(given, dict) or "messages" not in given:
        return [], None, [loc.issue("no_prompt", "input must be an object with messages", "input")]
    issues = [loc.issue("unknown_field", f"input.{key} is not used; it is ignored", f"input.{key}")
              for key in given if key != "messages"]
    prompt, where, more = _prompt_messages(given["messages"], "input.messages", loc)
    return prompt, where, issues + more


def _prompt_messages(messages, name: str, loc: Location):
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return [], None, [loc.issue("invalid_messages", f"{name} must be a list of objects", name)]
    roles = [m.get("role") for m in messages]
    if "user" not in roles:
        return [], None, [loc.issue("no_prompt", f"{name} has no user turn", name)]
    if roles[-1] != "user":
        return [], None, [loc.issue("roles_not_alternating", f"{name} must end with a user turn: the answers go in "
                                                             "chosen and rejected", f"{name}[{len(roles) - 1}].role")]
    return messages, lambda index, key: f"{name}[{index}].{key}", []


def _side(value: dict, name: str, side: str, loc: Location):
    """(the side as an assistant message dict, a function naming its fields), issues."""
    missing = f"missing_{side}"
    if name not in value:
        return None, [loc.issue(missing, f"no {name}", name)]
    given, field = value[name], name
    if isinstance(given, str) and not given.strip():  # an empty CSV cell too
        return None, [loc.issue(missing, f"{name} is empty", name)]
    if isinstance(given, str):
        return ({"role": "assistant", "content": given}, lambda key: name), []
    if isinstance(given, list):
        if not given:
            return None, [loc.issue(missing, f"{name} is an empty list", name)]
        if len(given) > 1 or not isinstance(given[0], dict):
            return None, [loc.issue("invalid_messages", f"{name} must hold one assistant message, got "
                                                        f"{len(given)} items", name)]
        given, field = given[0], f"{name}[0]"
    if not isinstance(given, dict):
        return None, [loc.issue("invalid_messages", f"{name} must be a string, an assistant message or a list of "
                                                    f"one, got {kind_of(given)}", name)]
    if given.get("tool_calls"):
        return None, [loc.issue("invalid_messages", f"{name} calls tools: a side of a pair is a text answer",
                                f"{field}.tool_calls")]
    return ({"role": "assistant", **given}, lambda key: f"{field}.{key}"), []


def _joined(count: int, prompt_where, side_where):
    """Field names for the checked conversation: the prompt's `count` turns, then the side."""
    return lambda index, key: prompt_where(index, key) if index < count else side_where(key)


def _same(chosen: Message, rejected: Message) -> bool:
    return all(normalize_text(getattr(chosen, attr) or "") == normalize_text(getattr(rejected, attr) or "")
               for attr in ("content", "reasoning"))


def _normalize_and_dedupe(examples: list[PreferenceExample], checked: Checked,
                          config: DataConfig) -> list[PreferenceExample]:
    seen: dict[str, int] = {}
    kept = []
    for example in examples:
        whole = Example([*example.messages, example.chosen, example.rejected])  # the same Message objects
        if config.normalize and normalize_example(whole):
            checked.counts["normalized"] += 1
        key = {"none": None, "exact": exact_key, "normalized": normalized_key}[config.dedupe]
        digest = key(whole) if key else None
        if digest is not None and digest in seen:
            checked.counts["duplicates_exact" if config.dedupe == "exact" else "duplicates_normalized"] += 1
            loc = Location(record=example.record, line=example.line)
            checked.add(loc.issue("duplicate", f"same pair as record {seen[digest]}; left out"))
            continue
        if digest is not None:
            seen[digest] = example.record
        kept.append(example)
    return kept


def _tokenize_and_fit(examples: list[PreferenceExample], checked: Checked, tokenizer, config: DataConfig) -> None:
    r1 = renders_r1(config.renderer, tokenizer)
    try:
        reasoning_format = resolve_format(tokenizer, requested=config.reasoning_format, renderer=config.renderer,
                                          has_reasoning=any(e.has_reasoning for e in examples))
    except ValueError as error:
        raise ConfigError(f"data.reasoning_format: {error}") from None
    rendered = [render(e.conversation(side), r1=r1, tokenizer=tokenizer, think_mode=config.think_mode,
                       reasoning_format=reasoning_format) for e in examples for side in SIDES]
    tokens = tokenize_many(rendered, tokenizer)
    for index, example in enumerate(examples):
        chosen, rejected = tokens[2 * index], tokens[2 * index + 1]
        longer = max(chosen, rejected, key=len)
        if len(longer) > config.max_length:
            too_long(checked, example, config, f"{len(longer)} tokens (prompt and the longer side)")
            if config.on_overlength != "truncate":  # the trainer cuts a kept pair at max_length
                checked.counts["dropped_overlength"] += 1
                continue
            checked.counts["truncated"] += 1
        checked.examples.append(example)
        checked.tokenized.append(longer)
        checked.counts["chosen_tokens"] += chosen.trained_tokens
        checked.counts["rejected_tokens"] += rejected.trained_tokens
        checked.counts["chosen_shorter"] += chosen.trained_tokens < rejected.trained_tokens
    checked.counts["renderer_r1"] = int(r1)
    checked.reasoning_format = reasoning_format


def _longest_characters(example: PreferenceExample) -> int:
    return characters(example.messages) + max(characters([example.chosen]), characters([example.rejected]))
