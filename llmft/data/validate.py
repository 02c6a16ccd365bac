"""Check a data file end to end: parse, validate, normalize, de-duplicate, render, tokenize.

    llmft data validate FILE --model tiny-r1 [--max-length N] [--json]

Returns every example that survives with its tokens, every issue with its line or record,
and the counts the report is built from. Prepare (prepare.py) builds on this.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from llmft.config import ConfigError
from llmft.data.clean import exact_key, normalize_example, normalized_key
from llmft.data.config import DataConfig
from llmft.data.issues import CODES, Issue, Location
from llmft.data.normalize import Example, characters, to_example
from llmft.data.read import ReadLimits, read_records
from llmft.data.render import has_reasoning, render, renders_r1, resolve_format
from llmft.data.tokenize import Tokenized, max_token_chars, tokenize_many, tokenize_rendered

MAX_ISSUES_PER_CODE = 1000  # beyond this an issue is counted, not kept


@dataclass
class Checked:
    examples: list[Example] = field(default_factory=list)
    tokenized: list[Tokenized] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    issue_counts: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    reasoning_format: str | None = None  # data.reasoning_format as resolved for this tokenizer and data (render.py)

    def add(self, issue: Issue) -> None:
        self.issue_counts[issue.code] += 1
        if self.issue_counts[issue.code] <= MAX_ISSUES_PER_CODE:
            self.issues.append(issue)

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.issue_counts.items() if CODES[code][0] == "error")

    @property
    def warnings(self) -> int:
        return sum(self.issue_counts.values()) - self.errors


def check_file(path: Path, *, tokenizer, config: DataConfig, limits: ReadLimits | None = None) -> Checked:
    """Everything validate and prepare need to know about `path` under `config` (and the reader's `limits`,
    by default the settings'). An example with more characters than max_length tokens can hold is too_long
    at once: it is never tokenized whole (only cut, under on_overlength=truncate)."""
    checked, candidates = read_candidates(path, tokenizer=tokenizer, config=config, limits=limits,
                                          convert=to_example, characters=_characters, too_long=too_long)
    kept = _normalize_and_dedupe(candidates, checked, config)
    _tokenize_and_fit(kept, checked, tokenizer, config)
    return checked


def read_candidates(path: Path, *, tokenizer, config: DataConfig, limits: ReadLimits | None, convert, characters,
                    too_long, may_cut: bool = True) -> tuple[Checked, list]:
    """The record loop every data kind shares (SFT examples, preference pairs, RL prompts): each record of `path`
    read within `limits`, turned into an example and its issues by `convert(value, loc)`, every issue kept by line.
    A record with an error is invalid; an example of more `characters(example)` than max_length tokens can hold is
    `too_long(checked, example, config, size)` and left out (unless `may_cut` and on_overlength=truncate: it is
    cut later). The Checked so far, and the examples left to clean and tokenize."""
    checked, candidates = Checked(), []
    bound = config.max_length * max_token_chars(tokenizer)
    for item in read_records(path, limits=limits):
        if isinstance(item, Issue):
            checked.add(item)
            if item.record is not None:
                checked.counts["records"] += 1
                checked.counts["invalid"] += 1
            continue
        checked.counts["records"] += 1
        example, issues = convert(item.value, item.loc)
        for issue in issues:
            checked.add(issue)
        if example is None or any(issue.severity == "error" for issue in issues):
            checked.counts["invalid"] += 1
        elif not (may_cut and config.on_overlength == "truncate") and (chars := characters(example)) > bound:
            too_long(checked, example, config, f"{chars} characters")
            checked.counts["dropped_overlength"] += 1
        else:
            candidates.append(example)
    return checked, candidates


def _normalize_and_dedupe(examples: list[Example], checked: Checked, config: DataConfig) -> list[Example]:
    seen_exact: dict[str, int] = {}
    seen_normalized: dict[str, int] = {}
    kept = []
    for example in examples:
        exact = exact_key(example)
        if config.normalize and normalize_example(example):
            checked.counts["normalized"] += 1
        loc = Location(record=example.record, line=example.line)
        if config.dedupe != "none" and exact in seen_exact:
            checked.counts["duplicates_exact"] += 1
            checked.add(loc.issue("duplicate", f"same as record {seen_exact[exact]}; left out"))
            continue
        seen_exact[exact] = example.record
        if config.dedupe == "normalized":
            near = normalized_key(example)
            if near in seen_normalized:
                checked.counts["duplicates_normalized"] += 1
                checked.add(loc.issue("duplicate", f"same as record {seen_normalized[near]} up to case and "
                                                   "whitespace; left out"))
                continue
            seen_normalized[near] = example.record
        kept.append(example)
    return kept


def _tokenize_and_fit(examples: list[Example], checked: Checked, tokenizer, config: DataConfig) -> None:
    r1 = renders_r1(config.renderer, tokenizer)
    try:
        reasoning_format = resolve_format(tokenizer, requested=config.reasoning_format, renderer=config.renderer,
                                          has_reasoning=any(map(has_reasoning, examples)))
    except ValueError as error:
        raise ConfigError(f"data.reasoning_format: {error}") from None
    rendered = [render(e, r1=r1, tokenizer=tokenizer, think_mode=config.think_mode,
                       train_on_inputs=config.train_on_inputs, reasoning_format=reasoning_format) for e in examples]
    bound = config.max_length * max_token_chars(tokenizer)
    whole = iter(tokenize_many([shown for shown in rendered if len(shown.text) <= bound], tokenizer))
    for example, shown in zip(examples, rendered):
        tokens = next(whole) if len(shown.text) <= bound else None
        if tokens is None or len(tokens) > config.max_length:
            too_long(checked, example, config, f"{len(shown.text)} characters" if tokens is None else
                      f"{len(tokens)} tokens")
            if config.on_overlength == "truncate":
                tokens = tokenize_rendered(shown, tokenizer, max_tokens=config.max_length)
                if tokens.trained_tokens == 0:
                    checked.counts["dropped_overlength"] += 1
                    continue
                checked.counts["truncated"] += 1
            else:
                checked.counts["dropped_overlength"] += 1
                continue
        checked.examples.append(example)
        checked.tokenized.append(tokens)
        if _trained_reasoning(example) and tokens.reasoning_tokens == 0:
            checked.counts["reasoning_dropped"] += 1
    checked.counts["renderer_r1"] = int(r1)
    checked.reasoning_format = reasoning_format
    if checked.counts["reasoning_dropped"]:
        n = checked.counts["reasoning_dropped"]
        checked.add(Issue("reasoning_dropped", f"{n} of {len(checked.examples)} examples carry reasoning on trained "
                                               f"turns that the render leaves out (data.reasoning_format="
                                               f"{config.reasoning_format}); use auto or think_tags to keep it"))


def _trained_reasoning(example: Example) -> bool:
    return any(m.role == "assistant" and m.reasoning and m.weight != 0 for m in example.messages)


def too_long(checked: Checked, example, config: DataConfig, size: str) -> None:
    """Count and report an example over max_length; `size` says by how much ("5000 tokens", "9000000 characters":
    more characters than max_length tokens can hold, known without tokenizing)."""
    checked.counts["too_long"] += 1
    loc = Location(record=example.record, line=example.line)
    checked.add(loc.issue("too_long", f"{size} > max_length {config.max_length} tokens"
                                      f" (on_overlength={config.on_overlength})"))


def _characters(example: Example) -> int:
    if example.text is not None:
        return len(example.text)
    return characters(example.messages)
