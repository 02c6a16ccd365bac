"""Check a data file end to end: parse, validate, normalize, de-duplicate, render, tokenize.

    llmft data validate FILE --model tiny-r1 [--max-length N] [--json]

Returns every example that survives with its tokens, every issue with its line or record,
and the counts the report is built from. Prepare (prepare.py) builds on this.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from llmft.data.clean import exact_key, normalize_example, normalized_key
from llmft.data.config import DataConfig
from llmft.data.issues import CODES, Issue, Location
from llmft.data.normalize import Example, to_example
from llmft.data.read import read_records
from llmft.data.render import is_r1_tokenizer, render
from llmft.data.tokenize import Tokenized, tokenize_many, tokenize_rendered

MAX_ISSUES_PER_CODE = 1000  # beyond this an issue is counted, not kept


@dataclass
class Checked:
    examples: list[Example] = field(default_factory=list)
    tokenized: list[Tokenized] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    issue_counts: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)

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


def check_file(path: Path, *, tokenizer, config: DataConfig) -> Checked:
    """Everything validate and prepare need to know about `path` under `config`."""
    checked = Checked()
    candidates: list[Example] = []
    for item in read_records(path):
        if isinstance(item, Issue):
            checked.add(item)
            if item.record is not None:
                checked.counts["records"] += 1
                checked.counts["invalid"] += 1
            continue
        checked.counts["records"] += 1
        example, issues = to_example(item.value, item.loc)
        for issue in issues:
            checked.add(issue)
        if example is None:
            checked.counts["invalid"] += 1
        else:
            candidates.append(example)
    kept = _normalize_and_dedupe(candidates, checked, config)
    _tokenize_and_fit(kept, checked, tokenizer, config)
    return checked


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
    r1 = config.renderer == "r1" or (config.renderer == "auto" and is_r1_tokenizer(tokenizer))
    rendered = [render(e, r1=r1, tokenizer=tokenizer, think_mode=config.think_mode,
                       train_on_inputs=config.train_on_inputs) for e in examples]
    for example, shown, tokens in zip(examples, rendered, tokenize_many(rendered, tokenizer)):
        if len(tokens) > config.max_length:
            checked.counts["too_long"] += 1
            loc = Location(record=example.record, line=example.line)
            checked.add(loc.issue("too_long", f"{len(tokens)} tokens > max_length {config.max_length}"
                                              f" (on_overlength={config.on_overlength})"))
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
    checked.counts["renderer_r1"] = int(r1)

