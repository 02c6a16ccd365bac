"""Typed configuration, checked once on load. Unknown keys are errors that name the closest key.

Each group is a pydantic model; every field has a default and a one-line description.
"""

import difflib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(Exception):
    """Every problem of a config in one message."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    """How a data file becomes training sequences."""

    max_length: int = Field(2048, ge=16, le=1_048_576, description="Longest sequence in tokens (a packed row's size).")
    think_mode: Literal["mask", "train", "omit"] = Field(
        "mask", description="Assistant turns without reasoning: mask the empty <think> block, train it, or omit it."
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


def check(model: type[Strict], values: dict, *, where: str = "config") -> Strict:
    """Build `model` from `values`, or raise ConfigError listing every problem."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_errors(error, model, where)) from None


def format_errors(error: ValidationError, model: type[BaseModel], where: str) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            known = _fields_at(model, item["loc"][:-1])
            close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            lines.append(f"  {path}: unknown key{hint}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"  {path}: {message}" if path else f"  {message}")
    return f"{where} has {len(lines)} problem{'s' if len(lines) > 1 else ''}:\n" + "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return sorted(model.model_fields)
