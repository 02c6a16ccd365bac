"""Graders on literal inputs: each kind, the reasoning removed before grading, references from the record, and
specs refused with the field named (unknown type or key, bad regex, duplicate name)."""

import time

import pytest

from llmft.evaluate.graders import (
    GraderSpecError,
    chosen_letter,
    grade,
    grade_completion,
    last_number,
    load_spec,
)


def one(grader: dict, answer: str, reference: str = "", *, reasoning: str = "r", finished: bool = True,
        closed: bool = True, record: dict | None = None) -> float:
    spec = load_spec([{"name": "g", **grader}])
    return grade(spec, answer=answer, reasoning=reasoning, finished=finished, closed=closed, reference=reference,
                 record=record or {})["g"]


def test_match_is_normalized_by_default_and_exact_on_request():
    assert one({"type": "match"}, "  Paris!  ", "paris") == 1.0
    assert one({"type": "match"}, "The  capital is PARIS.", "the capital is paris") == 1.0
    assert one({"type": "match"}, "Lyon", "Paris") == 0.0
    assert one({"type": "match", "mode": "exact"}, "Paris", "Paris") == 1.0
    assert one({"type": "match", "mode": "exact"}, "paris", "Paris") == 0.0


@pytest.mark.parametrize("text, number", [
    ("The total is $1,234.50.", 1234.5), ("-$12.30 refund", -12.3), ("fee 3, then 4.5", 4.5),
    ("2024-05-01", 1.0), ("no digits", None), ("15% of 80 = 12", 12.0), ("\u221212", -12.0),
])
def test_the_number_of_an_answer_is_its_last_one(text, number):
    assert last_number(text) == number


def test_numeric_within_tolerance_absolute_or_relative():
    numeric = {"type": "numeric", "tolerance_abs": 0.005}
    assert one(numeric, "So the invoice comes to $1,002.50.", "1002.5") == 1.0
    assert one(numeric, "So the invoice comes to $1,002.51.", "1002.5") == 0.0
    assert one(numeric, "nothing", "1002.5") == 0.0
    assert one({"type": "numeric", "tolerance_rel": 0.01}, "about 101", "100") == 1.0
    assert one({"type": "numeric", "tolerance_rel": 0.01}, "about 102", "100") == 0.0


def test_numeric_partial_credit_falls_linearly_to_zero_at_partial_rel():
    partial = {"type": "numeric", "tolerance_abs": 0.005, "partial_rel": 0.5}
    assert one(partial, "The total is $200.00.", "200") == 1.0
    assert one(partial, "The total is $150.00.", "200") == pytest.approx(0.5)
    assert one(partial, "The total is $230.00.", "200") == pytest.approx(0.7)
    assert one(partial, "The total is $90.00.", "200") == 0.0
    assert one(partial, "The fee is $3.00.", "0") == 0.0  # a zero reference: only the tolerance passes
    assert one(partial, "no number", "200") == 0.0


def test_numeric_pattern_takes_the_capture_group_of_the_last_match():
    grader = {"type": "numeric", "pattern": r"total:\s*\$?([0-9.,]+)"}
    assert one(grader, "subtotal 40, total: $42.50, paid in 3 parts", "42.5") == 1.0
    assert one({"type": "numeric", "pattern": r"=\s*(?P<value>[0-9.]+)"}, "x = 7 and y = 9 then 11", "9") == 1.0
    assert one(grader, "no total given: 42.50", "42.5") == 0.0


def test_regex_searches_the_answer_or_matches_all_of_it():
    assert one({"type": "regex", "pattern": r"\bINV-\d{4}\b"}, "Your invoice is INV-2024.") == 1.0
    assert one({"type": "regex", "pattern": r"INV-\d{4}", "fullmatch": True}, "Your invoice is INV-2024.") == 0.0
    assert one({"type": "regex", "pattern": "yes", "ignore_case": True}, "YES") == 1.0


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("(C) because it is cheaper", "C"), ("D) 42", "D"), ("A. The first", "A"),
    ("I think the answer is (B).", "B"), ("Answer: C", "C"), ("answer: a bit of both", None),
    ("It is a hard one", None), ("E", None),
])
def test_the_chosen_letter(text, letter):
    assert chosen_letter(text) == letter


def test_choice_compares_letters_with_the_reference_or_a_record_field():
    assert one({"type": "choice"}, "The answer is B.", "B) 12 days") == 1.0
    assert one({"type": "choice"}, "The answer is C.", "B) 12 days") == 0.0
    assert one({"type": "choice", "reference_field": "label"}, "(D)", record={"label": "D"}) == 1.0
    assert one({"type": "choice", "choices": "ABCDE"}, "E", "E") == 1.0


def test_facts_from_the_spec_a_record_field_or_the_reference():
    answer = "Call 0800 555 0134 before 8:00 for a Blue Locker."
    assert one({"type": "facts", "facts": ["0800-555-0134", "8:00"]}, answer) == 1.0
    assert one({"type": "facts", "facts": ["8:00", "9:00"]}, answer) == 0.0
    assert one({"type": "facts", "facts": ["8:00", "9:00"], "partial": True}, answer) == 0.5
    assert one({"type": "facts", "facts_field": "meta.facts"}, answer, record={"meta": {"facts": ["blue locker"]}}) == 1.0
    assert one({"type": "facts"}, answer, "Phone 0800 555 0134 until 8:00.") == 1.0
    assert one({"type": "facts"}, answer, "Phone 0800 555 0199 until 8:00.") == 0.0


def test_think_format_needs_a_closed_block_reasoning_and_eos():
    fmt = {"type": "think_format"}
    assert one(fmt, "42", reasoning="6 * 7", finished=True, closed=True) == 1.0
    assert one(fmt, "", reasoning="6 * 7 is", finished=False, closed=False) == 0.0
    assert one(fmt, "42", reasoning="", finished=True) == 0.0
    assert one(fmt, "42", reasoning="6 * 7", finished=False) == 0.0
    assert one({**fmt, "require_eos": False, "require_reasoning": False}, "42", reasoning="", finished=False) == 1.0


def test_string_check_is_openai_s_form_of_match():
    check = {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.city}}"}
    record = {"city": "Paris"}
    assert one({**check, "operation": "eq"}, "Paris", record=record) == 1.0
    assert one({**check, "operation": "ne"}, "Paris", record=record) == 0.0
    assert one({**check, "operation": "like"}, "It is Paris.", record=record) == 1.0
    assert one({**check, "operation": "like"}, "It is paris.", record=record) == 0.0
    assert one({**check, "operation": "ilike"}, "It is paris.", record=record) == 1.0
    assert one({**check, "reference": "Lyon", "operation": "eq"}, "Lyon") == 1.0


def test_grading_is_on_the_answer_with_the_reasoning_removed():
    spec = load_spec({"graders": [{"name": "total", "type": "numeric"}, {"name": "format", "type": "think_format"},
                                  {"name": "no-draft", "type": "regex", "pattern": "draft"}]})
    completion = "<think>\nA draft total is 99, then 40 + 2 = 42.\n</think>\n\nThe total is 42."
    scores = grade_completion(spec, completion=completion, finished=True, record={},
                              reference="<think>\nadd them\n</think>\n\n42")
    assert scores == {"total": 1.0, "format": 1.0, "no-draft": 0.0}  # 99 and "draft" are in the reasoning only
    unclosed = grade_completion(spec, completion="<think>\n40 + 2 = 42", finished=False, record={}, reference="42")
    assert unclosed == {"total": 0.0, "format": 0.0, "no-draft": 0.0}  # no answer at all


def test_a_reference_field_missing_from_the_record_is_an_error_naming_it():
    with pytest.raises(KeyError, match="'meta.total'"):
        one({"type": "numeric", "reference_field": "meta.total"}, "42", record={"meta": {}})


@pytest.mark.parametrize("spec, field, words", [
    ([{"name": "a", "type": "numerc"}], "graders[0].type", "did you mean 'numeric'"),
    ([{"name": "a"}], "graders[0].type", "missing"),
    ([{"name": "a", "type": "match"}, {"name": "b", "type": "regex", "pattern": "(unclosed"}], "graders[1].pattern",
     "not a valid regular expression"),
    ([{"name": "a", "type": "numeric", "tolerence_abs": 0.1}], "graders[0].tolerence_abs", "did you mean 'tolerance_abs'"),
    ([{"name": "a", "type": "numeric", "pattern": "[0-9]+"}], "graders[0].pattern", "capture group"),
    ([{"name": "Total sum", "type": "match"}], "graders[0].name", "lowercase"),
    ([{"name": "a", "type": "match"}, {"name": "a", "type": "choice"}], "graders[1].name", "graders[0]"),
    ([{"name": "a", "type": "string_check", "reference": "x", "operation": "contains"}], "graders[0].operation",
     "'eq'"),
    ([{"name": "a", "type": "facts", "facts": ["x"], "facts_field": "f"}], "graders[0]", "not both"),
    ([{"name": "a", "type": "facts", "facts": []}], "graders[0].facts", "at least 1"),
    ([], "graders", "non-empty list"),
    ({"graders": [{"name": "a", "type": "match"}], "extra": 1}, "extra", "unknown key"),
])
def test_a_bad_spec_is_refused_naming_the_field(spec, field, words):
    with pytest.raises(GraderSpecError) as refused:
        load_spec(spec)
    assert field in refused.value.problems and words in refused.value.problems[field], refused.value.problems
    assert field in str(refused.value)


def test_every_problem_is_named_at_once_and_a_checked_spec_loads_again_from_its_dump():
    with pytest.raises(GraderSpecError) as refused:
        load_spec([{"name": "a", "type": "regx", "pattern": "("}, {"name": "b", "type": "regex", "pattern": "("}])
    assert set(refused.value.problems) == {"graders[0].type", "graders[1].pattern"}
    spec = load_spec([{"name": "total", "type": "numeric", "tolerance_abs": 0.01}, {"name": "fmt", "type": "think_format"}])
    assert spec.dump() == [{"name": "total", "type": "numeric", "tolerance_abs": 0.01},
                           {"name": "fmt", "type": "think_format"}]
    assert load_spec(spec.dump()) == spec


def test_a_slow_user_pattern_scores_zero_instead_of_hanging(monkeypatch):
    monkeypatch.setattr("llmft.evaluate.graders.REGEX_SECONDS", 0.2)
    started = time.monotonic()
    assert one({"type": "regex", "pattern": r"(x+x+)+y"}, "x" * 5000) == 0.0  # catastrophic backtracking
    assert time.monotonic() - started < 2
