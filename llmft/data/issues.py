"""Validation problems: a stable code, where it is (line, record, field), what to do."""

from dataclasses import asdict, dataclass
from typing import Literal

# code -> (severity, what it means). Codes are stable: users grep for them and CI gates on them.
CODES: dict[str, tuple[str, str]] = {
    "file_unreadable": ("error", "the file cannot be opened or is not a supported format"),
    "file_empty": ("error", "the file holds no records"),
    "invalid_json": ("error", "the line or record is not valid JSON"),
    "undecodable_bytes": ("error", "the bytes are not valid UTF-8"),
    "line_too_large": ("error", "one line (or Parquet row) is larger than the per-line limit"),
    "file_too_large": ("error", "the file, or what a Parquet file expands to, is over its size limit"),
    "csv_header": ("error", "the CSV header is missing, empty or repeats a column"),
    "csv_row": ("error", "a CSV row has more cells than the header"),
    "not_an_object": ("error", "a record must be a JSON object"),
    "missing_messages": ("error", "no known format: expected messages, conversations, "
                         "instruction/output, prompt/completion or text"),
    "ambiguous_format": ("error", "the record mixes fields of several formats"),
    "invalid_messages": ("error", "messages/conversations must be a list of objects"),
    "unknown_role": ("error", "role must be system, user, assistant or tool"),
    "missing_content": ("error", "a message has no content"),
    "content_not_string": ("error", "content must be a string"),
    "invalid_weight": ("error", "weight must be 0 or 1, and only on assistant turns"),
    "system_not_first": ("error", "a system message may only come first"),
    "no_assistant_turn": ("error", "the conversation has no assistant turn to learn from"),
    "roles_not_alternating": ("error", "user and assistant turns must alternate "
                              "(tool results only after an assistant turn)"),
    "unbalanced_think_tags": ("error", "<think> and </think> do not pair up"),
    "reasoning_twice": ("error", "reasoning given both as reasoning_content and inline <think>"),
    "empty": ("error", "the example or a turn's content is empty"),
    "no_trained_tokens": ("error", "every assistant turn has weight 0: nothing to learn"),
    "too_long": ("error", "the rendered example is longer than max_length tokens"),
    "missing_chosen": ("error", "a preference record has no chosen answer (chosen, or preferred_output)"),
    "missing_rejected": ("error", "a preference record has no rejected answer (rejected, or non_preferred_output)"),
    "chosen_equals_rejected": ("error", "the chosen and rejected answers are the same: nothing to prefer"),
    "no_prompt": ("error", "no prompt: give prompt, or messages (input.messages) ending with a user turn"),
    "missing_grader_field": ("error", "the record lacks a field a grader reads (reference_field, facts_field, "
                             "{{item.FIELD}})"),
    "missing_reference": ("error", "a grader compares with the reference answer and the record has none"),
    "duplicate": ("warning", "the example repeats an earlier one"),
    "unknown_field": ("warning", "a field that no format uses; it is not trained on"),
    "empty_reasoning": ("warning", "an assistant turn has an empty <think></think> block"),
    "reasoning_dropped": ("warning", "reasoning of trained assistant turns is left out of the rendered text "
                          "(data.reasoning_format=drop): the model will not learn to reason"),
}

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    code: str
    message: str
    line: int | None = None  # 1-based line in the file, where the format has lines
    record: int | None = None  # 1-based record number
    field: str | None = None  # e.g. "messages[2].content"

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"unknown issue code {self.code!r}")

    @property
    def severity(self) -> Severity:
        return CODES[self.code][0]

    def where(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.record is not None and self.record != self.line:
            parts.append(f"record {self.record}")
        if self.field:
            parts.append(self.field)
        return ", ".join(parts) or "file"

    def to_dict(self) -> dict:
        return {**asdict(self), "severity": self.severity}

    def __str__(self) -> str:
        return f"{self.severity} {self.code} at {self.where()}: {self.message}"


@dataclass(frozen=True)
class Location:
    """Where a record came from, used to build its issues."""

    record: int
    line: int | None = None

    def issue(self, code: str, message: str, field: str | None = None) -> Issue:
        return Issue(code, message, line=self.line, record=self.record, field=field)
