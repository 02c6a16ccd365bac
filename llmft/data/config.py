"""The data group of a config: how a data file becomes training sequences (validate, prepare, train)."""

from typing import Literal

from pydantic import Field

from llmft.config import Strict


class DataConfig(Strict):
    """How a data file becomes training sequences."""

    max_length: int = Field(2048, ge=16, le=1_048_576, description="Longest sequence in tokens (a packed row's size).")
    think_mode: Literal["mask", "train", "omit"] = Field(
        "mask", description="Assistant turns without reasoning: mask the empty <think> block, train it, or omit it."
    )
    reasoning_format: Literal["auto", "template", "think_tags", "drop"] = Field(
        "auto", description="Where an assistant turn's reasoning goes: template (the chat template's reasoning_content, "
        "Qwen3-style), think_tags (<think>...</think> inline before the answer), drop (left out, warned); auto: "
        "R1's renderer for R1, template where the template renders reasoning_content, else think_tags."
    )
    train_on_inputs: bool = Field(False, description="Also train on system, user and tool tokens.")
    renderer: Literal["auto", "r1", "template"] = Field(
        "auto", description="r1: our DeepSeek-R1 renderer; template: the model's own chat template; auto: r1 for R1 tokenizers."
    )
    pack: bool = Field(True, description="Pack examples into max_length rows (padding-free, position ids restart).")
    validation_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of examples held out for validation.")
    validation_file: str | None = Field(None, description="A separate validation file; overrides validation_ratio.")
    seed: int = Field(42, description="Seed of the train/validation split.")
    on_invalid: Literal["error", "drop"] = Field(
        "error", description="Records with errors: stop with the report (error) or leave them out, counted (drop)."
    )
    on_overlength: Literal["error", "drop", "truncate"] = Field(
        "error", description="Examples longer than max_length: stop, leave out, or cut at max_length; always counted."
    )
    dedupe: Literal["none", "exact", "normalized"] = Field(
        "normalized", description="Remove repeated examples: identical ones, or also those equal up to case and spaces."
    )
    normalize: bool = Field(True, description="Unicode NFC, LF line ends, trimmed whitespace.")
