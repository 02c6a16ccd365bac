"""Typed configuration, checked once on load. Unknown keys are errors that name the closest key.

The helpers every config group builds on (`Strict`, `check`, `ConfigError`); the groups live beside
what they configure: `data/config.py`, `train/config.py`, and the service's `settings.py`.
"""

import difflib

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(Exception):
    """Every problem of a config in one message."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
