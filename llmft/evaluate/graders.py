"""Graders: one declarative specification that scores a generated answer from 0 to 1, for evaluation
metrics now and promotion-gate conditions and RL rewards later (the same spec, the same code).

    spec = load_spec([{"name": "total", "type": "numeric", "tolerance_abs": 0.005},
                      {"name": "format", "type": "think_format"}])
    grade(spec, answer="The total is $42.50.", reasoning="40 + 2.50", finished=True, closed=True,
          reference="42.5", record={})                            # {"total": 1.0, "format": 1.0}
    grade_completion(spec, completion="<think>\\n...\\n</think>\\n\\n42.50", finished=True,
                     reference="42.5", record={})                  # the same, split here

A spec is a list of graders (or `{"graders": [...]}`), each with a `name` (lowercase letters, digits,
`_`, `-`; it becomes the metric `grader.NAME`) and a `type`:

- `match`: the answer equals the reference; `mode: normalized` (default: case, whitespace and
  punctuation ignored, NFKC) or `exact`.
- `numeric`: the answer's number is within `tolerance_abs` or `tolerance_rel` (relative to the
  reference) of the reference's; the number is the last one of the text (`$1,234.50` -> 1234.5),
  or group 1 (or the group named `value`) of `pattern`'s last match. `partial_rel: 0.5` gives
  partial credit outside the tolerance, falling linearly to 0 at a relative error of 50% (a reward
  that tells a near miss from a wild guess; accuracy is then the mean credit).
- `regex`: `pattern` is found in the answer (`fullmatch: true`: the whole answer matches it).
- `choice`: the chosen letter (`Answer: B`, `(B)`, `B) ...`, a lone `B`) equals the reference's;
  `choices` lists the letters (default ABCD).
- `facts`: every fact is in the answer (as a whole token, case-insensitive); the facts are `facts`,
  or the record field `facts_field` (a list or a string), or else those found in the reference
  (llmft.evaluate.metrics.facts); `partial: true` scores the share found instead.
- `think_format`: the think block is closed, the reasoning is not empty and the generation ended
  with EOS (each of the last two can be turned off).
- `string_check`: OpenAI's grader form, an alias of match: `input` is `{{sample.output_text}}`,
  `reference` a literal or `{{item.FIELD}}`, `operation` eq, ne, like (contains) or ilike (contains,
  any case).

The reference is the reference assistant turn's answer (its reasoning removed), or the record
field a grader names in `reference_field` (a dotted path: `meta.total`). Grading is always on the
generated answer with the reasoning removed. This module imports nothing heavy (the API checks specs
with it); the metrics it borrows load when a facts grader or `grade_completion` first runs. The spec is checked once (`load_spec`): an unknown
type or key, a bad regex or a duplicate name is a GraderSpecError naming the field
(`graders[1].pattern`), every problem in one message. User patterns run under the `regex`
module with a time limit (REGEX_SECONDS): a pattern that takes longer scores 0.
"""

import difflib
import re
import string
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_GRADERS = 32
MAX_PATTERN_CHARS = 1000
MAX_PASS_K = 16  # the most samples per conversation an evaluation draws for pass@k
MAX_BUDGETS = 4  # the most thinking budgets one evaluation measures
MAX_THINKING_BUDGET = 8192  # the largest thinking budget, in tokens
ANSWER_TOKENS = 256  # new tokens for the answer once a thinking budget closed the think block (default)
MAX_ANSWER_TOKENS = 2048  # the most answer tokens generated after a budget closed the think block
REGEX_SECONDS = 1.0  # the most one user pattern may take on one answer
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}\Z")
OUTPUT_TEXT = "{{sample.output_text}}"
_ITEM_FIELD = re.compile(r"^\{\{\s*item\.([A-Za-z0-9_.]+)\s*\}\}\Z")
# A number as written: an optional sign (not a hyphen inside a word or a date), an optional currency sign,
# digits with optional thousands separators and decimals.
_NUMBER = re.compile(r"(?:(?<![\w.])(?P<sign>[-\u2212]))?[$\u20ac\u00a3\u00a5]?"
                     r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_ANSWER_LETTER = re.compile(r"(?i:answer)\s*(?:is|:)?\s*[:\-]?\s*\(?\s*([A-Z])\s*\)?(?![A-Za-z])")
_LEADING_LETTER = re.compile(r"^\(?\s*([A-Z])\s*(?:[).:\]]|\s|$)")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "\u3002\uff0c\uff01\uff1f\uff1a\uff1b\u201c\u201d\u2018\u2019")


class GraderSpecError(ValueError):
    """A grader spec that cannot be used: `problems` maps each field (`graders[1].pattern`) to what is wrong."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        self.field = next(iter(problems))
        lines = "\n".join(f"  {field}: {message}" for field, message in problems.items())
        super().__init__(f"the graders have {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n{lines}")


class _Grader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The metric's name: grader.NAME (lowercase letters, digits, _ and -).")
    reference_field: str | None = Field(None, description="A record field (dotted path) holding the reference.")
    weight: float = Field(1.0, ge=0, le=1000, description="Its reward's weight in RL (GRPO); evaluation ignores it.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError(f"{value!r}: lowercase letters, digits, '_' or '-', 40 at most, a letter or digit first")
        return value


class Match(_Grader):
    type: Literal["match"]
    mode: Literal["normalized", "exact"] = Field("normalized", description="normalized ignores case, spaces, punctuation.")


class Numeric(_Grader):
    type: Literal["numeric"]
    tolerance_abs: float = Field(1e-9, ge=0, description="Largest absolute difference that still passes.")
    tolerance_rel: float = Field(0.0, ge=0, description="Largest difference relative to the reference that passes.")
    partial_rel: float | None = Field(None, gt=0, description=(
        "Partial credit outside the tolerance (an RL reward with a gradient between right and wrong): "
        "1 - error / (partial_rel x |reference|), down to 0 at that relative error; unset: pass or fail."))
    pattern: str | None = Field(None, max_length=MAX_PATTERN_CHARS, description=(
        "A regex whose last match's group `value` (or group 1) is the answer's number; default: its last number."))

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None and compile_pattern(value).groups < 1:
            raise ValueError("the pattern needs a capture group around the number, e.g. 'total: ([0-9.]+)'")
        return value


class Regex(_Grader):
    type: Literal["regex"]
    pattern: str = Field(max_length=MAX_PATTERN_CHARS, description="A regex the answer must contain.")
    fullmatch: bool = Field(False, description="The whole answer must match, not just a part of it.")
    ignore_case: bool = Field(False, description="Match letters in any case.")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_pattern(value)
        return value


class Choice(_Grader):
    type: Literal["choice"]
    choices: str = Field("ABCD", pattern=r"^[A-Z]{2,26}$", description="The letters that may be chosen.")


class Facts(_Grader):
    type: Literal["facts"]
    facts: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        None, min_length=1, max_length=100, description="The facts the answer must hold.")
    facts_field: str | None = Field(None, description="A record field with the facts (a list of strings, or one).")
    partial: bool = Field(False, description="Score the share of facts found, not 1 for all and 0 otherwise.")

    @model_validator(mode="after")
    def _one_source(self):
        if self.facts is not None and self.facts_field is not None:
            raise ValueError("give facts or facts_field, not both")
        return self


class ThinkFormat(_Grader):
    type: Literal["think_format"]
    require_reasoning: bool = Field(True, description="The reasoning must not be empty.")
    require_eos: bool = Field(True, description="The generation must have ended with EOS.")


class StringCheck(_Grader):
    type: Literal["string_check"]
    input: Literal["{{sample.output_text}}"] = Field(OUTPUT_TEXT, description="What is checked: the answer.")
    reference: str = Field(description="A literal, or {{item.FIELD}} for a record field.")
    operation: Literal["eq", "ne", "like", "ilike"] = Field(description="eq, ne, like (contains), ilike (any case).")

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if "{{" in value and not _ITEM_FIELD.fullmatch(value):
            raise ValueError(f"{value!r}: a literal, or {{{{item.FIELD}}}} for a record field")
        return value


TYPES: dict[str, type[_Grader]] = {model.model_fields["type"].annotation.__args__[0]: model
                                   for model in (Match, Numeric, Regex, Choice, Facts, ThinkFormat, StringCheck)}
Grader = Match | Numeric | Regex | Choice | Facts | ThinkFormat | StringCheck


class GraderSpec(BaseModel):
    """A checked list of graders (build it with `load_spec`)."""
    model_config = ConfigDict(frozen=True)

    graders: tuple[Grader, ...]

    @property
    def names(self) -> list[str]:
        return [grader.name for grader in self.graders]

    def dump(self) -> list[dict]:
        """The spec as JSON data, loadable again (stored in a job's config)."""
        return [grader.model_dump(exclude_defaults=True) for grader in self.graders]

    def missing_fields(self, record: dict) -> list[tuple[str, str]]:
        """(record field, the spec field that names it) for each field the spec reads that `record` lacks."""
        missing = []
        for path, where in record_fields(self).items():
            try:
                field_value(record, path)
            except KeyError:
                missing.append((path, where))
        return missing

    def reference_graders(self) -> list[str]:
        """Names of the graders that compare with the reference answer (none of their own fields stands for it)."""
        return [grader.name for grader in self.graders if _needs_reference(grader)]


def load_spec(data) -> GraderSpec:
    """A checked GraderSpec from a list of graders or `{"graders": [...]}` (a parsed YAML or JSON file, a
    request body's field), or GraderSpecError naming every problem."""
    if isinstance(data, GraderSpec):
        return data
    if isinstance(data, dict):
        extra = sorted(set(data) - {"graders"})
        if extra:
            raise GraderSpecError({extra[0]: "unknown key; the spec is a list of graders or {graders: [...]}"})
        data = data.get("graders")
    if not isinstance(data, list) or not data:
        raise GraderSpecError({"graders": "a non-empty list of graders, each with a name and a type"})
    if len(data) > MAX_GRADERS:
        raise GraderSpecError({"graders": f"{len(data)} graders: at most {MAX_GRADERS}"})
    problems, graders, seen = {}, [], {}
    for index, item in enumerate(data):
        where = f"graders[{index}]"
        if not isinstance(item, dict):
            problems[where] = "a grader is an object with a name and a type"
            continue
        kind = item.get("type")
        if not isinstance(kind, str) or kind not in TYPES:
            close = difflib.get_close_matches(str(kind), TYPES, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; one of {', '.join(TYPES)}"
            problems[f"{where}.type"] = (f"unknown grader type {kind!r}{hint}" if kind is not None
                                         else f"missing; one of {', '.join(TYPES)}")
            continue
        model = TYPES[kind]
        try:
            grader = model.model_validate(item)
        except ValidationError as error:
            problems.update(_problems(error, model, where))
            continue
        if grader.name in seen:
            problems[f"{where}.name"] = f"{grader.name!r} is also graders[{seen[grader.name]}]'s name"
            continue
        seen[grader.name] = index
        graders.append(grader)
    if problems:
        raise GraderSpecError(problems)
    return GraderSpec(graders=tuple(graders))


def read_spec(path: Path) -> GraderSpec:
    """A checked spec from a YAML or JSON file; GraderSpecError (the file unreadable or not YAML too) naming what is
    wrong."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise GraderSpecError({"graders": f"cannot read {path}: {error.strerror or error}"}) from None
    except yaml.YAMLError as error:
        raise GraderSpecError({"graders": f"{path} is not YAML or JSON: {error}"}) from None
    return load_spec(data)


def grade(spec: GraderSpec, *, answer: str, reasoning: str, finished: bool, reference: str, record: dict,
          closed: bool = True) -> dict[str, float]:
    """Each grader's score (0 to 1) of one generated answer, by name. `answer` and `reasoning` are the generation's
    two parts (split_reasoning), `closed` whether its think block was closed, `finished` whether it ended with EOS;
    `reference` the reference answer with its reasoning removed; `record` the data record (for reference_field,
    facts_field and {{item.FIELD}}). A record without a named field is a KeyError naming it."""
    return {grader.name: _score(grader, answer=answer, reasoning=reasoning, finished=finished, closed=closed,
                                reference=_reference(grader, reference, record), record=record)
            for grader in spec.graders}


def grade_completion(spec: GraderSpec, *, completion: str, finished: bool, reference: str, record: dict) -> dict:
    """`grade` on a whole generation (`<think>...</think>` then the answer), split here; `reference` may hold
    reasoning too (it is removed)."""
    from llmft.evaluate.metrics import split_reasoning

    reasoning, answer, closed = split_reasoning(completion)
    return grade(spec, answer=answer, reasoning=reasoning, finished=finished, closed=closed,
                 reference=split_reasoning(reference)[1], record=record)


def check_grading(spec: GraderSpec | None, pass_k: int, thinking_budgets, answer_tokens: int) -> tuple[int, ...]:
    """The thinking budgets, sorted and each once, after checking an evaluation's grading options against their
    caps (GraderSpecError naming the option)."""
    if type(pass_k) is not int or not 1 <= pass_k <= MAX_PASS_K:
        raise GraderSpecError({"pass_k": f"an integer from 1 to {MAX_PASS_K}, got {pass_k!r}"})
    budgets = tuple(sorted(set(thinking_budgets)))
    if len(budgets) > MAX_BUDGETS or any(type(b) is not int or not 1 <= b <= MAX_THINKING_BUDGET for b in budgets):
        raise GraderSpecError({"thinking_budgets": f"at most {MAX_BUDGETS} integers from 1 to {MAX_THINKING_BUDGET}, "
                                                   f"got {list(thinking_budgets)!r}"})
    if type(answer_tokens) is not int or not 1 <= answer_tokens <= MAX_ANSWER_TOKENS:
        raise GraderSpecError({"answer_tokens": f"an integer from 1 to {MAX_ANSWER_TOKENS}, got {answer_tokens!r}"})
    if spec is None and (pass_k > 1 or budgets):
        field = "pass_k" if pass_k > 1 else "thinking_budgets"
        raise GraderSpecError({field: "pass@k and thinking budgets are measured with graders: give graders too"})
    return budgets


def record_fields(spec: GraderSpec) -> dict[str, str]:
    """The record fields the spec reads, each with the spec field that names it (`graders[0].reference_field`)."""
    out = {}
    for index, grader in enumerate(spec.graders):
        if grader.reference_field is not None:
            out.setdefault(grader.reference_field, f"graders[{index}].reference_field")
        if isinstance(grader, Facts) and grader.facts_field is not None:
            out.setdefault(grader.facts_field, f"graders[{index}].facts_field")
        if isinstance(grader, StringCheck) and (item := _ITEM_FIELD.fullmatch(grader.reference)):
            out.setdefault(item.group(1), f"graders[{index}].reference")
    return out


def check_records(spec: GraderSpec, records: list[dict]) -> None:
    """GraderSpecError naming the spec field when a record lacks a field the spec reads (checked before any
    generating, so that a typo does not surface after an hour of it)."""
    for path, where in record_fields(spec).items():
        for number, record in enumerate(records, 1):
            try:
                field_value(record, path)
            except KeyError:
                raise GraderSpecError({where: f"example {number} has no field {path!r}"}) from None


def _needs_reference(grader: Grader) -> bool:
    if grader.reference_field is not None:
        return False
    if isinstance(grader, Facts):
        return grader.facts is None and grader.facts_field is None
    return isinstance(grader, (Match, Numeric, Choice))


def compile_pattern(pattern: str, ignore_case: bool = False):
    """A user's regex, compiled by the `regex` module (which can time out); ValueError saying what is wrong."""
    try:
        return regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)
    except regex.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None


def last_number(text: str, pattern: str | None = None) -> float | None:
    """The last number of `text` (`-$1,234.50` -> -1234.5), or the number in group `value` (else group 1) of
    `pattern`'s last match; None when there is none."""
    if pattern is not None:
        compiled = compile_pattern(pattern)
        matches = _timed(lambda: list(compiled.finditer(text, timeout=REGEX_SECONDS)), [])
        if not matches:
            return None
        group = matches[-1].group("value" if "value" in compiled.groupindex else 1)
        return last_number(group or "")
    matches = list(_NUMBER.finditer(unicodedata.normalize("NFKC", text)))
    if not matches:
        return None
    match = matches[-1]
    value = float(match.group("digits").replace(",", ""))
    return -value if match.group("sign") else value


def chosen_letter(text: str, choices: str = "ABCD") -> str | None:
    """The letter chosen in `text`: the last `answer: X` / `answer is (X)`, else a leading `X)`, `(X)`, `X.`, or a
    lone letter; None when no letter of `choices` is chosen."""
    text = unicodedata.normalize("NFKC", text).strip()
    found = [m.group(1) for m in _ANSWER_LETTER.finditer(text) if m.group(1) in choices]
    if found:
        return found[-1]
    leading = _LEADING_LETTER.match(text)
    if leading and leading.group(1) in choices:
        return leading.group(1)
    return None


def normalized(text: str) -> str:
    """NFKC, lowercase, punctuation removed, whitespace collapsed: what `match` in normalized mode compares."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_PUNCTUATION).split())


def field_value(record: dict, path: str):
    """The value at a dotted path of a record (`meta.total`); KeyError naming the path when it is not there."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"the record has no field {path!r}")
        value = value[part]
    return value


def _reference(grader: _Grader, reference: str, record: dict) -> str:
    field = grader.reference_field
    if isinstance(grader, StringCheck) and (item := _ITEM_FIELD.fullmatch(grader.reference)):
        field = item.group(1)
    elif isinstance(grader, StringCheck):
        return grader.reference
    if field is None:
        return reference
    value = field_value(record, field)
    return value if isinstance(value, str) else str(value)


def _score(grader: Grader, *, answer: str, reasoning: str, finished: bool, closed: bool, reference: str,
           record: dict) -> float:
    if isinstance(grader, Match):
        same = answer.strip() == reference.strip() if grader.mode == "exact" else normalized(answer) == normalized(reference)
        return float(same)
    if isinstance(grader, Numeric):
        got, expected = last_number(answer, grader.pattern), last_number(reference)
        if got is None or expected is None:
            return 0.0
        error = abs(got - expected)
        if error <= max(grader.tolerance_abs, grader.tolerance_rel * abs(expected)):
            return 1.0
        if grader.partial_rel is None:
            return 0.0
        scale = grader.partial_rel * max(abs(expected), grader.tolerance_abs, 1e-9)
        return max(0.0, 1.0 - error / scale)
    if isinstance(grader, Regex):
        compiled = compile_pattern(grader.pattern, grader.ignore_case)
        find = compiled.fullmatch if grader.fullmatch else compiled.search
        return float(_timed(lambda: find(answer, timeout=REGEX_SECONDS), None) is not None)
    if isinstance(grader, Choice):
        got = chosen_letter(answer, grader.choices)
        return float(got is not None and got == chosen_letter(reference, grader.choices))
    if isinstance(grader, Facts):
        wanted = _facts(grader, reference, record)
        if not wanted:
            return 1.0
        from llmft.evaluate.metrics import mentions

        found = sum(mentions(answer, fact) for fact in wanted)
        return found / len(wanted) if grader.partial else float(found == len(wanted))
    if isinstance(grader, ThinkFormat):
        return float(closed and (bool(reasoning.strip()) or not grader.require_reasoning)
                     and (finished or not grader.require_eos))
    if isinstance(grader, StringCheck):
        return float({"eq": answer == reference, "ne": answer != reference, "like": reference in answer,
                      "ilike": reference.casefold() in answer.casefold()}[grader.operation])
    raise TypeError(f"no scoring for grader type {grader.type!r}")


def _facts(grader: Facts, reference: str, record: dict) -> list[str]:
    if grader.facts is not None:
        return grader.facts
    if grader.facts_field is not None:
        value = field_value(record, grader.facts_field)
        return [str(item) for item in value] if isinstance(value, list) else [str(value)]
    from llmft.evaluate.metrics import facts

    return facts(reference)


def _timed(run, default):
    try:
        return run()
    except TimeoutError:
        return default


def _problems(error: ValidationError, model: type[BaseModel], where: str) -> dict[str, str]:
    out = {}
    for item in error.errors():
        path = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"])
        if item["type"] == "extra_forbidden":
            known = [name for name in model.model_fields]
            close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1, cutoff=0.5)
            out[path] = (f"unknown key; did you mean {close[0]!r}?" if close
                         else f"unknown key; known keys: {', '.join(known)}")
        else:
            out[path] = item["msg"].removeprefix("Value error, ")
    return out
