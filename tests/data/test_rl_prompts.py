"""RL prompts: every form read with its reference answer, the fields a grader reads checked per line, and rows whose
prompt is the one serving builds."""

import json
from pathlib import Path

import pytest

from llmft.data.config import DataConfig
from llmft.data.issues import Location
from llmft.data.render import prompt_text
from llmft.data.rl_prompts import check_prompt_file, prompt_rows, to_prompt
from llmft.evaluate.graders import load_spec

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "business_math.jsonl"
USER = {"role": "user", "content": "An invoice of $400 is 10 days late at $2 a day. What is the fee?"}


def jsonl(tmp_path, *records):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def parse(record):
    return to_prompt(record, Location(record=1, line=1))


def test_openai_form_keeps_every_field_for_the_graders():
    record = {"messages": [{"role": "system", "content": "Be exact."}, USER],
              "reference_answer": 20, "metadata": {"answer": 20.0}, "tolerance": 0.01}
    example, issues = parse(record)
    assert issues == []
    assert [m.role for m in example.messages] == ["system", "user"]
    assert example.reference == "20" and example.record is record


def test_prompt_string_with_or_without_a_completion():
    example, _ = parse({"prompt": "2+2?", "reference_answer": "4"})
    assert [(m.role, m.content) for m in example.messages] == [("user", "2+2?")] and example.reference == "4"
    example, _ = parse({"prompt": "2+2?"})
    assert example.reference is None
    example, _ = parse({"prompt": "2+2?", "completion": "<think>2 and 2</think>4"})
    assert (example.reference, example.reference_reasoning) == ("4", "2 and 2")
    example, issues = parse({"prompt": [USER], "reference_answer": "$20.00"})  # TRL's conversational form
    assert issues == [] and example.messages[0].content == USER["content"] and example.reference == "$20.00"


def test_an_sft_record_gives_its_last_answer_as_the_reference():
    example, issues = parse({"messages": [USER, {"role": "assistant", "content": "The fee is $20.00.",
                                                 "reasoning_content": "10 x $2"}], "metadata": {"answer": 20.0}})
    assert issues == []
    assert [m.role for m in example.messages] == ["user"]
    assert (example.reference, example.reference_reasoning) == ("The fee is $20.00.", "10 x $2")
    example, _ = parse({"messages": [USER, {"role": "assistant", "content": "x"}], "reference_answer": "20"})
    assert example.reference == "20" and len(example.messages) == 1  # reference_answer wins


ERROR_CASES = [  # (code, record, field)
    ("no_prompt", {"reference_answer": "4"}, None),
    ("no_prompt", {"prompt": " "}, "prompt"),
    ("no_prompt", {"messages": [{"role": "system", "content": "s"}]}, "messages"),
    ("content_not_string", {"prompt": 4}, "prompt"),
    ("invalid_messages", {"prompt": ["2+2?"]}, "prompt"),
    ("roles_not_alternating", {"prompt": [USER, {"role": "system", "content": "s"}]}, "prompt[1].role"),
    ("invalid_messages", {"messages": "2+2?"}, "messages"),
    ("unknown_role", {"messages": [{"role": "robot", "content": "x"}, USER]}, "messages[0].role"),
    ("roles_not_alternating", {"messages": [USER, USER]}, "messages[1].role"),
    ("roles_not_alternating", {"messages": [USER, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f"}}]}, {"role": "tool", "content": "42"}]}, "messages[2].role"),
    ("empty", {"messages": [USER, {"role": "assistant", "content": ""}]}, "messages[1].content"),
    ("ambiguous_format", {"prompt": "q", "messages": [USER]}, "messages"),
    ("not_an_object", "2+2?", None),
]


@pytest.mark.parametrize("code, record, field", ERROR_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_each_problem_is_one_issue_with_its_field(code, record, field):
    example, issues = parse(record)
    assert example is None
    assert [(issue.code, issue.field) for issue in issues if issue.severity == "error"] == [(code, field)]


SPEC = load_spec([{"name": "total", "type": "numeric", "reference_field": "metadata.answer", "tolerance_abs": 0.005},
                  {"name": "says", "type": "match"},
                  {"name": "form", "type": "think_format"}])


def test_a_missing_grader_field_or_reference_names_the_line(tmp_path, tokenizer):
    path = jsonl(tmp_path,
                 {"messages": [USER], "reference_answer": "$20.00", "metadata": {"answer": 20.0}},
                 {"messages": [USER], "reference_answer": "$20.00", "metadata": {"total": 20.0}},
                 {"prompt": "Fee on $300?", "metadata": {"answer": 15}},
                 "{oops",
                 {"prompt": "Fee on $500?"})
    checked = check_prompt_file(path, tokenizer=tokenizer, config=DataConfig(), spec=SPEC)
    assert [(i.code, i.line, i.field) for i in checked.issues] == [
        ("missing_grader_field", 2, "metadata.answer"), ("missing_reference", 3, "reference_answer"),
        ("invalid_json", 4, None), ("missing_grader_field", 5, "metadata.answer"),
        ("missing_reference", 5, "reference_answer")]
    assert "graders[0].reference_field reads 'metadata.answer'" in checked.issues[0].message
    assert "grader 'says'" in checked.issues[1].message
    assert [e.line for e in checked.examples] == [1]
    assert (checked.counts["records"], checked.counts["invalid"]) == (5, 4)
    unchecked = check_prompt_file(path, tokenizer=tokenizer, config=DataConfig())  # no spec: no grader checks
    assert [e.line for e in unchecked.examples] == [1, 3, 5]  # line 2 repeats line 1


def test_which_graders_need_the_reference():
    spec = load_spec([{"name": "a", "type": "match"}, {"name": "b", "type": "numeric", "reference_field": "x"},
                      {"name": "c", "type": "facts", "facts": ["fee"]}, {"name": "d", "type": "facts"},
                      {"name": "e", "type": "regex", "pattern": "\\$"}, {"name": "f", "type": "choice"},
                      {"name": "g", "type": "string_check", "reference": "{{item.x}}", "operation": "eq"}])
    assert spec.reference_graders() == ["a", "d", "f"]


def test_business_math_sample_works_as_prompts_with_its_metadata_answer(tokenizer):
    spec = load_spec([{"name": "total", "type": "numeric", "reference_field": "metadata.answer"}])
    checked = check_prompt_file(SAMPLE, tokenizer=tokenizer, config=DataConfig(), spec=spec)
    assert checked.errors == 0 and len(checked.examples) == checked.counts["records"] > 100
    first = checked.examples[0]
    assert first.reference.startswith("The ") and "answer" in first.record["metadata"]
    assert checked.reasoning_format == "r1"


def test_rows_carry_the_served_prompt_the_reference_and_the_record(tmp_path, tokenizer):
    record = {"messages": [USER], "reference_answer": "$20.00", "metadata": {"answer": 20.0}}
    checked = check_prompt_file(jsonl(tmp_path, record), tokenizer=tokenizer, config=DataConfig())
    rows = prompt_rows(tokenizer, checked.examples, reasoning_format="r1", think_mode="mask")
    assert rows == [{"prompt": prompt_text(tokenizer, checked.examples[0].messages), "reference": "$20.00",
                     "record": record, "line": 1}]
    assert rows[0]["prompt"].endswith("<｜Assistant｜><think>\n")


def test_a_prompt_leaving_no_room_to_generate_is_too_long(tmp_path, tokenizer):
    path = jsonl(tmp_path, {"prompt": "2+2?"}, {"prompt": "word " * 60})
    checked = check_prompt_file(path, tokenizer=tokenizer, config=DataConfig(max_length=32))
    assert [(i.code, i.line) for i in checked.issues] == [("too_long", 2)]
    assert [e.line for e in checked.examples] == [1]


def test_duplicate_prompts_with_the_same_reference_are_left_out(tmp_path, tokenizer):
    path = jsonl(tmp_path, {"prompt": "2+2?", "reference_answer": "4"}, {"prompt": "2+2? ", "reference_answer": "4"},
                 {"prompt": "2+2?", "reference_answer": "four"})
    checked = check_prompt_file(path, tokenizer=tokenizer, config=DataConfig())
    assert [(i.code, i.line) for i in checked.issues] == [("duplicate", 2)]
    assert [e.line for e in checked.examples] == [1, 3]
