"""Prompts for reinforcement fine-tuning (GRPO): read and check prompt records with their reference answers and the
fields their graders read.

    llmft data validate data/sample/business_math.jsonl --kind prompts --model smollm2-135m

    checked = check_prompt_file(Path("prompts.jsonl"), tokenizer=tokenizer, config=DataConfig(), spec=spec)
    rows = prompt_rows(tokenizer, checked.examples, reasoning_format=checked.reasoning_format, think_mode="mask")
    # [{"prompt": "<|im_start|>user\\n...<think>\\n", "reference": "The late fee is $35.00.", "record": {...},
    #   "line": 1}]

Record forms (JSONL, JSON, CSV or Parquet):
  {"messages": [..., {"role": "user", ...}], "reference_answer": ..., any other fields}   (OpenAI's reinforcement form)
  {"prompt": "...", "reference_answer"?: ..., ...}                 (a `completion` is the reference too; a list
                                                                   of messages as prompt is TRL's form)
  {"messages": [..., {"role": "assistant", ...}], ...}             (an SFT record: its last assistant turn's answer,
                                                                   reasoning removed, is the reference)
`reference_answer` wins over a trailing assistant turn. Every other field stays in the record for the graders
(`reference_field: metadata.answer`, `facts_field`, `{{item.FIELD}}`): with a grader spec, a record that lacks a
field a grader reads is missing_grader_field, and one without a reference for a grader that compares with it is
missing_reference, each naming the line.
"""

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from llmft.config import ConfigError
from llmft.data.clean import exact_key, normalize_example, normalized_key
from llmft.data.config import DataConfig
from llmft.data.issues import Issue, Location
from llmft.data.normalize import Example, Message, characters, check_messages, is_valid_unicode, kind_of
from llmft.data.read import ReadLimits
from llmft.data.render import prompt_text, resolve_format
from llmft.data.tokenize import IGNORE, Tokenized, prompt_ids
from llmft.data.validate import Checked, read_candidates

REFERENCE_FIELD = "reference_answer"
_PLACEHOLDER = {"role": "assistant", "content": "."}  # closes a prompt so the SFT turn checks apply; never kept


@dataclass
class PromptExample:
    messages: list[Message]  # the prompt turns, ending with a user (or tool) turn
    reference: str | None  # the reference answer graders compare with (reasoning removed); None: none given
    record: dict  # the whole record, for the graders' fields
    line: int | None = None
    number: int = 0  # 1-based record number
    reference_reasoning: str | None = None  # the reasoning of an SFT record's reference turn

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reference_reasoning)

    @property
    def has_empty_reasoning(self) -> bool:
        return False


def check_prompt_file(path: Path, *, tokenizer, config: DataConfig, spec=None,
                      limits: ReadLimits | None = None) -> Checked:
    """Every prompt of `path` that survives (Checked.examples holds PromptExamples; Checked.tokenized each prompt's
    tokens, none trained), every issue by line, and the counts of the report. With `spec`, each record is checked
    for the fields and the reference its graders read."""
    checked, candidates = read_candidates(path, tokenizer=tokenizer, config=config, limits=limits,
                                          convert=partial(_to_graded_prompt, spec=spec),
                                          characters=lambda example: characters(example.messages),
                                          too_long=_too_long, may_cut=False)
    kept = _normalize_and_dedupe(candidates, checked, config)
    _tokenize_and_fit(kept, checked, tokenizer, config)
    return checked


def _to_graded_prompt(value: object, loc: Location, *, spec) -> tuple[PromptExample | None, list[Issue]]:
    """`to_prompt`, then (with `spec`) the fields and the reference the graders read."""
    example, issues = to_prompt(value, loc)
    if example is not None and spec is not None:
        issues += grader_issues(spec, example, loc)
    return example, issues


def to_prompt(value: object, loc: Location) -> tuple[PromptExample | None, list[Issue]]:
    """Check one record of any prompt form; the PromptExample, or None when it has errors."""
    if not isinstance(value, dict):
        return None, [loc.issue("not_an_object", f"expected a JSON object, got {kind_of(value)}")]
    record = value
    value = {key: item for key, item in value.items() if item is not None}  # Parquet/CSV nulls mean absent
    if not is_valid_unicode(value):
        return None, [loc.issue("undecodable_bytes", "the record holds a lone surrogate (\\ud800-\\udfff): "
                                                     "not valid Unicode text")]
    if "prompt" in value and "messages" in value:
        return None, [loc.issue("ambiguous_format", "both prompt and messages are given; keep one", "messages")]
    if "messages" in value or isinstance(value.get("prompt"), list):  # a list prompt: TRL's conversational form
        name = "messages" if "messages" in value else "prompt"
        raw, where = value[name], lambda index, key: f"{name}[{index}].{key}"
        if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
            return None, [loc.issue("invalid_messages", f"{name} must be a list of objects", name)]
    elif isinstance(value.get("prompt"), str):
        name = "prompt"
        if not value["prompt"].strip():
            return None, [loc.issue("no_prompt", "the prompt is empty", "prompt")]
        raw, where = [{"role": "user", "content": value["prompt"]}], lambda index, key: "prompt"
        if isinstance(value.get("completion"), str):
            raw.append({"role": "assistant", "content": value["completion"]})
            where = lambda index, key: "prompt" if index == 0 else "completion"  # noqa: E731
    elif "prompt" in value:
        return None, [loc.issue("content_not_string", f"prompt must be a string or a list of messages, got "
                                                      f"{kind_of(value['prompt'])}", "prompt")]
    else:
        keys = ", ".join(sorted(map(str, value))) or "none"
        return None, [loc.issue("no_prompt", f"give messages ending with a user turn, or prompt (fields: {keys})")]
    if not any(m.get("role") == "user" for m in raw):
        return None, [loc.issue("no_prompt", f"{name} has no user turn", name)]
    closed = raw[-1].get("role") == "assistant"  # an SFT record: its last turn is the reference
    if not closed and raw[-1].get("role") != "user":
        return None, [loc.issue("roles_not_alternating", f"{name} must end with a user turn (or the reference "
                                                         "assistant turn)", where(len(raw) - 1, "role"))]
    messages, issues = check_messages(raw if closed else [*raw, _PLACEHOLDER], loc, where)
    if any(issue.severity == "error" for issue in issues):
        return None, issues
    last = messages.pop()
    reference, reasoning = (last.content, last.reasoning) if closed else (None, None)
    if REFERENCE_FIELD in value:
        reference = _as_text(value[REFERENCE_FIELD])
    return PromptExample(messages, reference, record, line=loc.line, number=loc.record,
                         reference_reasoning=reasoning), issues


def grader_issues(spec, example: PromptExample, loc: Location) -> list[Issue]:
    """A missing_grader_field for each record field the spec (a llmft.evaluate.graders.GraderSpec, passed in by
    the layers above: data does not import evaluation) reads that the record lacks, and missing_reference when
    a grader compares with the reference answer and the record gives none."""
    issues = [loc.issue("missing_grader_field", f"{where} reads {path!r}; the record has no such field", path)
              for path, where in spec.missing_fields(example.record)]
    if example.reference is None:
        needing = spec.reference_graders()
        if needing:
            issues.append(loc.issue("missing_reference", f"grader {needing[0]!r} compares with the reference answer: "
                                                         f"give {REFERENCE_FIELD} or end messages with the "
                                                         "reference assistant turn", REFERENCE_FIELD))
    return issues


def prompt_rows(tokenizer, examples: list[PromptExample], *, reasoning_format: str, think_mode: str) -> list[dict]:
    """`{"prompt", "reference", "record", "line"}` for each example: the prompt as serving builds it under the
    resolved `reasoning_format` and `think_mode`; `line` the record's line in its file (a GRPO reward that fails
    names it)."""
    return [{"prompt": prompt_text(tokenizer, example.messages, reasoning_format=reasoning_format,
                                   think_mode=think_mode),
             "reference": example.reference, "record": example.record, "line": example.line} for example in examples]


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _normalize_and_dedupe(examples: list[PromptExample], checked: Checked, config: DataConfig) -> list[PromptExample]:
    seen: dict[str, int] = {}
    kept = []
    key = {"none": None, "exact": exact_key, "normalized": normalized_key}[config.dedupe]
    for example in examples:
        conversation = Example(example.messages)  # the same Message objects
        if config.normalize and normalize_example(conversation):
            checked.counts["normalized"] += 1
        digest = key(conversation) + json.dumps(example.reference) if key else None
        if digest is not None and digest in seen:
            checked.counts["duplicates_exact" if config.dedupe == "exact" else "duplicates_normalized"] += 1
            loc = Location(record=example.number, line=example.line)
            checked.add(loc.issue("duplicate", f"same prompt and reference as record {seen[digest]}; left out"))
            continue
        if digest is not None:
            seen[digest] = example.number
        kept.append(example)
    return kept


def _tokenize_and_fit(examples: list[PromptExample], checked: Checked, tokenizer, config: DataConfig) -> None:
    try:
        reasoning_format = resolve_format(tokenizer, requested=config.reasoning_format, renderer=config.renderer,
                                          has_reasoning=any(e.has_reasoning for e in examples))
    except ValueError as error:
        raise ConfigError(f"data.reasoning_format: {error}") from None
    for example in examples:
        ids, _ = prompt_ids(tokenizer, example.messages, reasoning_format=reasoning_format,
                            think_mode=config.think_mode)
        if len(ids) >= config.max_length:
            _too_long(checked, example, config, f"{len(ids)} tokens, leaving none to generate")
            checked.counts["dropped_overlength"] += 1
            continue
        checked.examples.append(example)
        checked.tokenized.append(Tokenized(ids, [IGNORE] * len(ids), len(ids), 0, 0))
        checked.counts["with_reference"] += example.reference is not None
    checked.reasoning_format = reasoning_format


def _too_long(checked: Checked, example: PromptExample, config: DataConfig, size: str) -> None:
    """Report a prompt that leaves no room to generate (it is left out: a prompt is never cut)."""
    checked.counts["too_long"] += 1
    loc = Location(record=example.number, line=example.line)
    checked.add(loc.issue("too_long", f"the prompt is {size} >= max_length {config.max_length} tokens"))
