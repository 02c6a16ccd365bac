"""What a data file holds: SFT conversations, preference pairs or RL prompts, told from its first record, and
each kind checked by its own module (validate.py, preference.py, rl_prompts.py).

    detect_kind({"prompt": "2+2?", "chosen": "4", "rejected": "5"})          # "preference"
    kind, checked = check_kind(Path("data.jsonl"), "auto", tokenizer=tokenizer, config=DataConfig())
"""

from pathlib import Path
from typing import Literal

from llmft.data.config import DataConfig
from llmft.data.issues import Issue
from llmft.data.read import ReadLimits, read_records
from llmft.data.validate import Checked

Kind = Literal["sft", "preference", "prompts"]
KINDS = ("sft", "preference", "prompts")
PREFERENCE_FIELDS = {"chosen", "rejected", "preferred_output", "non_preferred_output"}


def detect_kind(record: object) -> Kind:
    """preference: chosen/rejected or OpenAI's preferred_output (or input.messages); prompts: messages without an
    assistant turn, or a prompt without a completion; sft otherwise (a record of no kind is left to SFT's checks,
    which name its problem)."""
    if not isinstance(record, dict):
        return "sft"
    if PREFERENCE_FIELDS & record.keys() or isinstance(record.get("input"), dict):
        return "preference"
    messages = record.get("messages")
    if isinstance(messages, list):
        roles = [m.get("role") for m in messages if isinstance(m, dict)]
        return "prompts" if roles and "assistant" not in roles else "sft"
    if "prompt" in record and "completion" not in record:
        return "prompts"
    return "sft"


def detect_file_kind(path: Path, *, limits: ReadLimits | None = None) -> Kind:
    """The kind of the first record `path` holds that can be read (sft when there is none: its checks say why)."""
    for item in read_records(path, limits=limits):
        if not isinstance(item, Issue):
            return detect_kind(item.value)
    return "sft"


def check_kind(path: Path, kind: str, *, tokenizer, config: DataConfig, spec=None,
               limits: ReadLimits | None = None) -> tuple[Kind, Checked]:
    """The kind (`auto`: detected) and the Checked of `path` under its kind's checks; `spec` (a GraderSpec) checks
    the fields RL prompts' graders read."""
    from llmft.data.preference import check_preference_file
    from llmft.data.rl_prompts import check_prompt_file
    from llmft.data.validate import check_file

    if kind == "auto":
        kind = detect_file_kind(path, limits=limits)
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of auto, {', '.join(KINDS)}")
    if kind == "preference":
        return kind, check_preference_file(path, tokenizer=tokenizer, config=config, limits=limits)
    if kind == "prompts":
        return kind, check_prompt_file(path, tokenizer=tokenizer, config=config, spec=spec, limits=limits)
    return kind, check_file(path, tokenizer=tokenizer, config=config, limits=limits)


def kind_report(kind: Kind, checked: Checked, *, source: str, model: str, max_length: int) -> dict:
    """The validation report (report.build_report) with its kind, and for pairs and prompts what only they have:
    the trained tokens of each side and how often the chosen one is the shorter (a length bias to know about), or
    the share of prompts with a reference answer."""
    from llmft.data.report import build_report

    report = build_report(checked, source=source, model=model, max_length=max_length)
    report["kind"] = kind
    n, counts = len(checked.examples), checked.counts
    if kind == "preference":
        report["preference"] = {"pairs": n, "chosen_tokens": counts["chosen_tokens"],
                                "rejected_tokens": counts["rejected_tokens"],
                                "chosen_shorter": round(counts["chosen_shorter"] / n, 4) if n else 0.0}
    elif kind == "prompts":
        report["prompts"] = {"prompts": n, "with_reference": round(counts["with_reference"] / n, 4) if n else 0.0}
    return report
