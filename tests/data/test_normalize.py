"""to_example: every format to chat messages, every record-level issue code with its field;
then check_file for the codes that need the whole file (duplicate, too_long)."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmft.data.config import DataConfig
from llmft.data.issues import CODES, Issue, Location
from llmft.data.normalize import Example, to_example
from llmft.data.read import ReadLimits, read_records
from llmft.data.validate import check_file

LOC = Location(record=7, line=9)


def normalize(value) -> tuple[Example | None, list[Issue]]:
    return to_example(value, LOC)


def turns(example: Example) -> list[tuple]:
    """(role, content, reasoning, weight) of every message."""
    return [(m.role, m.content, m.reasoning, m.weight) for m in example.messages]


def ok(value) -> Example:
    """The Example of a record that must convert without any issue."""
    example, issues = normalize(value)
    assert issues == []
    assert example is not None
    assert (example.record, example.line) == (7, 9)
    return example


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content, **more) -> dict:
    return {"role": "assistant", "content": content, **more}


# --- formats -----------------------------------------------------------------------------


def test_chat_messages():
    example = ok({"messages": [{"role": "system", "content": "Be brief."}, user("hi"), assistant("yo")]})
    assert turns(example) == [("system", "Be brief.", None, None), ("user", "hi", None, None),
                              ("assistant", "yo", None, None)]
    assert example.text is None
    assert not example.has_reasoning


def test_chat_reasoning_content_is_kept_without_surrounding_newlines():
    example = ok({"messages": [user("2+2?"), assistant("4", reasoning_content="\nadd them\n")]})
    assert turns(example) == [("user", "2+2?", None, None), ("assistant", "4", "add them", None)]
    assert example.has_reasoning


def test_chat_weights_on_assistant_turns():
    example = ok({"messages": [user("a"), assistant("b", weight=0), user("c"), assistant("d", weight=1)]})
    assert [m.weight for m in example.messages] == [None, 0, None, 1]


def test_chat_tool_call_and_result():
    call = [{"type": "function", "function": {"name": "add", "arguments": "{}"}}]
    example = ok({"messages": [user("2+2?"), {"role": "assistant", "content": None, "tool_calls": call},
                               {"role": "tool", "content": "4", "tool_call_id": "c1"}, assistant("4")]})
    assert [m.role for m in example.messages] == ["user", "assistant", "tool", "assistant"]
    assert example.messages[1].content == ""
    assert example.messages[1].tool_calls == call


def test_passthrough_fields_are_kept_and_nulls_mean_absent():
    example = ok({"id": "r1", "metadata": {"src": "x"}, "text": None, "prompt": None,
                  "messages": [user("hi"), assistant("yo")]})
    assert example.extra == {"id": "r1", "metadata": {"src": "x"}}
    assert len(example.messages) == 2


def test_sharegpt_roles_are_mapped():
    example = ok({"system": "Be kind.", "conversations": [
        {"from": "human", "value": "weather?"},
        {"from": "gpt", "value": "checking"},
        {"from": "observation", "value": "sunny"},
        {"from": "GPT", "value": "It is sunny."},
    ]})
    assert turns(example) == [("system", "Be kind.", None, None), ("user", "weather?", None, None),
                              ("assistant", "checking", None, None), ("tool", "sunny", None, None),
                              ("assistant", "It is sunny.", None, None)]


def test_sharegpt_system_turn_and_weight():
    example = ok({"conversations": [
        {"from": "system", "value": "sys"}, {"from": "user", "value": "q1"},
        {"from": "model", "value": "a1", "weight": 0}, {"from": "Human", "value": "q2"},
        {"from": "chatgpt", "value": "a2"},
    ]})
    assert turns(example) == [("system", "sys", None, None), ("user", "q1", None, None),
                              ("assistant", "a1", None, 0), ("user", "q2", None, None),
                              ("assistant", "a2", None, None)]


def test_alpaca_input_is_joined_to_the_instruction_with_a_blank_line():
    example = ok({"instruction": "Translate.", "input": "bonjour", "output": "hello"})
    assert turns(example) == [("user", "Translate.\n\nbonjour", None, None), ("assistant", "hello", None, None)]


def test_alpaca_blank_input_is_left_out():
    example = ok({"instruction": "Say hi.", "input": "  ", "output": "hi"})
    assert turns(example) == [("user", "Say hi.", None, None), ("assistant", "hi", None, None)]


def test_alpaca_with_response_and_system():
    example = ok({"system": "Be terse.", "instruction": "Capital of France?", "response": "Paris"})
    assert turns(example) == [("system", "Be terse.", None, None), ("user", "Capital of France?", None, None),
                              ("assistant", "Paris", None, None)]


def test_prompt_completion():
    example = ok({"prompt": "2+2=", "completion": "4"})
    assert turns(example) == [("user", "2+2=", None, None), ("assistant", "4", None, None)]


def test_raw_text():
    example = ok({"text": "Once upon a time."})
    assert example.text == "Once upon a time."
    assert example.messages == []


def test_inline_think_is_split_into_reasoning_and_answer():
    example = ok({"messages": [user("2+2?"), assistant("  <think>\nadd 2 and 2\n</think>\n\nIt is 4.")]})
    assert turns(example)[1] == ("assistant", "It is 4.", "add 2 and 2", None)


def test_inline_think_in_sharegpt_and_alpaca_and_prompt_completion():
    for value in ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "<think>r</think>a"}]},
                  {"instruction": "q", "output": "<think>r</think>a"},
                  {"prompt": "q", "completion": "<think>r</think>a"}):
        assert turns(ok(value))[-1] == ("assistant", "a", "r", None)


def test_inline_think_only_on_assistant_turns():
    example = ok({"messages": [user("what does <think>x</think> mean?"), assistant("a tag")]})
    assert turns(example)[0] == ("user", "what does <think>x</think> mean?", None, None)


def test_parquet_message_structs_with_fields_on_some_messages_only(tmp_path):
    # Parquet gives every struct every field; the absent ones come back as None, not as a bad value.
    rows = [{"messages": [{"role": "user", "content": "q"},
                          {"role": "assistant", "content": "a", "weight": 0, "reasoning_content": "r"},
                          {"role": "user", "content": "q2"},
                          {"role": "assistant", "content": "a2"}]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a", "weight": 1}]}]
    path = tmp_path / "d.parquet"
    for index, row in enumerate(rows):
        pq.write_table(pa.Table.from_pylist([row]), path)
        [item] = read_records(path)
        example, issues = to_example(item.value, item.loc)
        assert issues == []
        assert [m.weight for m in example.messages] == [[None, 0, None, None], [None, 1]][index]
        assert [m.reasoning for m in example.messages][:2] == [[None, "r"], [None, None]][index]


# --- every record-level issue code -------------------------------------------------------

GOOD = [user("hi"), assistant("yo")]

# (code, record value, field path) -- each input yields exactly that one issue, with the field
# named as the user named it.
RECORD_CASES = [
    ("not_an_object", ["a", "list"], None),
    ("not_an_object", "a string", None),
    ("not_an_object", None, None),
    ("missing_messages", {"question": "q", "answer": "a"}, None),
    ("missing_messages", {}, None),
    ("missing_messages", {"input": "x", "system": "s"}, None),
    ("ambiguous_format", {"messages": GOOD, "prompt": "p", "completion": "c"}, None),
    ("ambiguous_format", {"instruction": "i", "output": "o", "response": "r"}, "response"),
    ("invalid_messages", {"messages": "hi"}, "messages"),
    ("invalid_messages", {"messages": [user("hi"), "yo"]}, "messages"),
    ("invalid_messages", {"conversations": {"from": "human", "value": "hi"}}, "conversations"),
    ("unknown_role", {"messages": [{"role": "bot", "content": "hi"}, assistant("yo")]}, "messages[0].role"),
    ("unknown_role", {"messages": [{"content": "hi"}, assistant("yo")]}, "messages[0].role"),
    ("unknown_role", {"conversations": [{"from": "human", "value": "q"}, {"from": "alien", "value": "a"}]},
     "conversations[1].from"),
    ("missing_content", {"messages": [{"role": "user"}, assistant("yo")]}, "messages[0].content"),
    ("missing_content", {"messages": [user("hi"), {"role": "assistant", "tool_calls": []}]}, "messages[1].content"),
    ("missing_content", {"conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]},
     "conversations[0].value"),
    ("missing_content", {"output": "o"}, "instruction"),
    ("missing_content", {"instruction": "i", "input": "x"}, "output"),
    ("missing_content", {"prompt": "p"}, "completion"),
    ("content_not_string", {"messages": [user("hi"), assistant(["yo"])]}, "messages[1].content"),
    ("content_not_string", {"messages": [user("hi"), assistant("yo", reasoning_content=1)]},
     "messages[1].reasoning_content"),
    ("content_not_string", {"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "a"}]},
     "conversations[0].value"),
    ("content_not_string", {"instruction": "i", "output": 4}, "output"),
    ("content_not_string", {"instruction": "i", "input": 1, "output": "o"}, "input"),
    ("content_not_string", {"prompt": "p", "completion": {"c": 1}}, "completion"),
    ("content_not_string", {"text": 42}, "text"),
    ("invalid_weight", {"messages": [{"role": "user", "content": "hi", "weight": 1}, assistant("yo")]},
     "messages[0].weight"),
    ("invalid_weight", {"messages": [user("hi"), assistant("yo", weight=2)]}, "messages[1].weight"),
    ("invalid_weight", {"messages": [user("hi"), assistant("yo", weight="1")]}, "messages[1].weight"),
    ("invalid_weight", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a", "weight": 0.5}]},
     "conversations[1].weight"),
    ("system_not_first", {"messages": [user("hi"), {"role": "system", "content": "s"}, assistant("yo")]},
     "messages[1].role"),
    ("system_not_first", {"conversations": [{"from": "human", "value": "q"}, {"from": "system", "value": "s"},
                                            {"from": "gpt", "value": "a"}]}, "conversations[1].from"),
    ("system_not_first", {"system": "s1", "conversations": [{"from": "system", "value": "s2"},
                                                            {"from": "human", "value": "q"},
                                                            {"from": "gpt", "value": "a"}]}, "conversations[0].from"),
    ("no_assistant_turn", {"messages": [user("hi")]}, None),
    ("no_assistant_turn", {"messages": []}, None),
    ("roles_not_alternating", {"messages": [user("a"), user("b"), assistant("c")]}, "messages[1].role"),
    ("roles_not_alternating", {"messages": [assistant("a"), user("b"), assistant("c")]}, "messages[0].role"),
    ("roles_not_alternating", {"messages": [user("a"), assistant("b"), user("c")]}, "messages[2].role"),
    ("roles_not_alternating", {"messages": [user("a"), {"role": "tool", "content": "t"}, assistant("b")]},
     "messages[1].role"),
    ("roles_not_alternating", {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
     "conversations[0].from"),
    ("unbalanced_think_tags", {"messages": [user("q"), assistant("<think>r")]}, "messages[1].content"),
    ("unbalanced_think_tags", {"messages": [user("q"), assistant("r</think>a")]}, "messages[1].content"),
    ("unbalanced_think_tags", {"messages": [user("q"), assistant("<think>a</think><think>b</think>c")]},
     "messages[1].content"),
    ("unbalanced_think_tags", {"messages": [user("q"), assistant("a <think>r</think>")]}, "messages[1].content"),
    ("unbalanced_think_tags", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "<think>r"}]},
     "conversations[1].value"),
    ("reasoning_twice", {"messages": [user("q"), assistant("<think>r</think>a", reasoning_content="r")]},
     "messages[1].content"),
    ("empty", {"messages": [user("  "), assistant("yo")]}, "messages[0].content"),
    ("empty", {"messages": [user("hi"), assistant("<think>r</think>\n\n")]}, "messages[1].content"),
    ("empty", {"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "a"}]},
     "conversations[0].value"),
    ("empty", {"instruction": " ", "output": "o"}, "instruction"),
    ("empty", {"instruction": "i", "response": ""}, "response"),
    ("empty", {"system": "", "instruction": "i", "output": "o"}, "system"),
    ("empty", {"prompt": "p", "completion": "\n"}, "completion"),
    ("empty", {"text": " \n "}, "text"),
    ("no_trained_tokens", {"messages": [user("hi"), assistant("yo", weight=0)]}, None),
    ("no_trained_tokens", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a", "weight": 0},
                                             {"from": "human", "value": "q"}, {"from": "gpt", "value": "a", "weight": 0}]},
     None),
    ("unknown_field", {"messages": GOOD, "source": "web"}, "source"),
    ("unknown_field", {"prompt": "p", "completion": "c", "output_extra": 1}, "output_extra"),
    ("unknown_field", {"messages": [{"role": "user", "content": "hi", "lang": "en"}, assistant("yo")]},
     "messages[0].lang"),
    ("unknown_field", {"conversations": [{"from": "human", "value": "q", "lang": "en"}, {"from": "gpt", "value": "a"}]},
     "conversations[0].lang"),
    ("empty_reasoning", {"messages": [user("q"), assistant("<think>\n\n</think>\n\nanswer")]}, "messages[1].content"),
    ("empty_reasoning", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "<think></think>a"}]},
     "conversations[1].value"),
]


@pytest.mark.parametrize(("code", "value", "field"), RECORD_CASES,
                         ids=[f"{code}-{i}" for i, (code, _, _) in enumerate(RECORD_CASES)])
def test_record_issue_code_field_and_severity(code, value, field):
    example, issues = normalize(value)
    assert [(issue.code, issue.field) for issue in issues] == [(code, field)]
    issue = issues[0]
    assert issue.severity == CODES[code][0]
    assert (issue.line, issue.record) == (9, 7)
    assert issue.message
    if issue.severity == "error":
        assert example is None
    else:
        assert isinstance(example, Example)


def test_record_issue_severities_are_as_documented():
    severities = {code: normalize(value)[1][0].severity for code, value, _ in RECORD_CASES}
    assert severities["unknown_field"] == severities["empty_reasoning"] == "warning"
    assert {code for code, severity in severities.items() if severity == "error"} == \
        set(severities) - {"unknown_field", "empty_reasoning"}


def test_unbalanced_think_hint_when_only_the_closing_tag_is_there():
    _, [issue] = normalize({"messages": [user("q"), assistant("r</think>a")]})
    assert "reasoning_content" in issue.message


def test_empty_reasoning_content_is_a_warning_and_the_example_is_kept():
    example, issues = normalize({"messages": [user("q"), assistant("a", reasoning_content="\n")]})
    assert [(issue.code, issue.severity) for issue in issues] == [("empty_reasoning", "warning")]
    assert turns(example)[1] == ("assistant", "a", "", None)
    assert example.has_empty_reasoning


def test_unknown_field_warning_keeps_the_example():
    example, issues = normalize({"text": "hello", "lang": "en", "id": 3})
    assert [(issue.code, issue.field) for issue in issues] == [("unknown_field", "lang")]
    assert example.text == "hello"
    assert example.extra == {"id": 3}


def test_a_warning_does_not_hide_the_order_checks():
    # Regression: a warning (unknown_field, empty_reasoning) used to skip the turn-order checks,
    # so a conversation without an assistant turn was accepted.
    example, issues = normalize({"messages": [{"role": "user", "content": "hi", "lang": "en"}]})
    assert example is None
    assert [(issue.code, issue.field) for issue in issues] == [("unknown_field", "messages[0].lang"),
                                                               ("no_assistant_turn", None)]
    example, issues = normalize({"messages": [user("q"), assistant("<think></think>a"), user("again")]})
    assert example is None
    assert [(issue.code, issue.field) for issue in issues] == [("empty_reasoning", "messages[1].content"),
                                                               ("roles_not_alternating", "messages[2].role")]


def test_every_bad_message_is_reported_not_only_the_first():
    _, issues = normalize({"messages": [{"role": "bot", "content": "x"}, user(" "), assistant(3)]})
    assert [(issue.code, issue.field) for issue in issues] == [
        ("unknown_role", "messages[0].role"), ("empty", "messages[1].content"),
        ("content_not_string", "messages[2].content")]


# --- check_file: duplicate and too_long --------------------------------------------------


def jsonl(tmp_path: Path, *lines: object) -> Path:
    """A JSONL file; "" stands for a blank line."""
    path = tmp_path / "d.jsonl"
    path.write_text("".join((json.dumps(line) if line != "" else "") + "\n" for line in lines))
    return path


def chat(question: str, answer: str) -> dict:
    return {"messages": [user(question), assistant(answer)]}


def test_exact_duplicate_is_left_out_naming_the_earlier_record(tmp_path, tokenizer):
    path = jsonl(tmp_path, chat("hi", "yo"), chat("2+2?", "4"), "", chat("hi", "yo"))
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig())
    assert checked.counts["duplicates_exact"] == 1
    assert checked.counts["duplicates_normalized"] == 0
    [issue] = checked.issues
    assert (issue.code, issue.severity, issue.line, issue.record, issue.field) == ("duplicate", "warning", 4, 3, None)
    assert "same as record 1" in issue.message
    assert [example.record for example in checked.examples] == [1, 2]
    assert (checked.errors, checked.warnings) == (0, 1)


def test_duplicate_up_to_case_and_whitespace_is_left_out(tmp_path, tokenizer):
    path = jsonl(tmp_path, chat("2+2?", "4"), chat("Hello  World", "Hi there."), chat("hello world", "HI   there."))
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig())
    assert checked.counts["duplicates_exact"] == 0
    assert checked.counts["duplicates_normalized"] == 1
    [issue] = checked.issues
    assert (issue.code, issue.severity, issue.line, issue.record) == ("duplicate", "warning", 3, 3)
    assert "same as record 2 up to case and whitespace" in issue.message
    assert [example.record for example in checked.examples] == [1, 2]


def test_duplicates_across_formats_are_found(tmp_path, tokenizer):
    path = jsonl(tmp_path, {"prompt": "hi", "completion": "yo"}, chat("hi", "yo"))
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig())
    assert checked.counts["duplicates_exact"] == 1
    assert [example.record for example in checked.examples] == [1]


def test_dedupe_exact_keeps_near_duplicates_and_none_keeps_all(tmp_path, tokenizer):
    path = jsonl(tmp_path, chat("Hi", "yo"), chat("hi", "yo"), chat("hi", "yo"))
    exact = check_file(path, tokenizer=tokenizer, config=DataConfig(dedupe="exact"))
    assert [example.record for example in exact.examples] == [1, 2]
    assert (exact.counts["duplicates_exact"], exact.counts["duplicates_normalized"]) == (1, 0)
    none = check_file(path, tokenizer=tokenizer, config=DataConfig(dedupe="none"))
    assert [example.record for example in none.examples] == [1, 2, 3]
    assert none.issues == []


LONG_ANSWER = " ".join(["word"] * 60)


def test_too_long_example_is_truncated_to_max_length(tmp_path, tokenizer):
    path = jsonl(tmp_path, chat("hi", "yo"), chat("hi", LONG_ANSWER))
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig(max_length=16, on_overlength="truncate"))
    [issue] = checked.issues
    assert (issue.code, issue.severity, issue.line, issue.record) == ("too_long", "error", 2, 2)
    assert "> max_length 16" in issue.message
    assert [example.record for example in checked.examples] == [1, 2]
    short, cut = checked.tokenized
    assert len(short) < 16
    assert len(cut) == len(cut.labels) == 16
    assert cut.trained_tokens > 0
    assert (checked.counts["too_long"], checked.counts["truncated"], checked.counts["dropped_overlength"]) == (1, 1, 0)


@pytest.mark.parametrize("on_overlength", ["drop", "error"])
def test_too_long_example_is_left_out(tmp_path, tokenizer, on_overlength):
    path = jsonl(tmp_path, chat("hi", "yo"), chat("hi", LONG_ANSWER))
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig(max_length=16, on_overlength=on_overlength))
    assert [(issue.code, issue.record) for issue in checked.issues] == [("too_long", 2)]
    assert [example.record for example in checked.examples] == [1]
    assert len(checked.tokenized) == 1
    assert (checked.counts["too_long"], checked.counts["dropped_overlength"]) == (1, 1)


def test_check_file_counts_invalid_records_and_file_level_issues(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\nnot json\n{"messages": "x"}\n')
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig())
    assert [(issue.code, issue.line) for issue in checked.issues] == [("invalid_json", 2), ("invalid_messages", 3)]
    assert (checked.counts["records"], checked.counts["invalid"]) == (3, 2)
    assert [example.text for example in checked.examples] == ["ok"]


# --- every code in CODES is produced by a literal input ----------------------------------

FILE_CASES = {  # code -> (file name, bytes, read_records keyword arguments)
    "file_unreadable": ("d.txt", b"prose\n", {}),
    "file_empty": ("d.json", b"[]", {}),
    "invalid_json": ("d.jsonl", b"{oops\n", {}),
    "undecodable_bytes": ("d.jsonl", b'{"text": "caf\xe9"}\n', {}),
    "line_too_large": ("d.jsonl", b'{"text": "long enough"}\n', {"limits": ReadLimits(line_bytes=8)}),
    "file_too_large": ("d.json", b'[{"text": "long enough"}]', {"limits": ReadLimits(file_bytes=8)}),
    "csv_header": ("d.csv", b"text,text\na,b\n", {}),
    "csv_row": ("d.csv", b"text\na,b\n", {}),
}
CHECK_FILE_CASES = {  # code -> (JSONL lines, DataConfig)
    "duplicate": ([chat("hi", "yo"), chat("hi", "yo")], DataConfig()),
    "too_long": ([chat("hi", LONG_ANSWER)], DataConfig(max_length=16)),
    "reasoning_dropped": ([{"messages": [{"role": "user", "content": "hi"},
                                         {"role": "assistant", "content": "yo", "reasoning_content": "greet"}]}],
                          DataConfig(reasoning_format="drop")),
}


@pytest.mark.parametrize("code", sorted(FILE_CASES))
def test_file_issue_code_from_a_literal_file(tmp_path, code):
    name, data, kwargs = FILE_CASES[code]
    (tmp_path / name).write_bytes(data)
    assert [item.code for item in read_records(tmp_path / name, **kwargs)] == [code]


OTHER_KINDS = {"missing_chosen", "missing_rejected", "chosen_equals_rejected", "no_prompt",  # test_preference_pairs.py
               "missing_grader_field", "missing_reference"}  # test_rl_prompts.py


def test_every_code_is_produced_by_a_literal_input(tmp_path, tokenizer):
    assert set(FILE_CASES) | {code for code, _, _ in RECORD_CASES} | set(CHECK_FILE_CASES) == set(CODES) - OTHER_KINDS
    seen = set()
    for name, data, kwargs in FILE_CASES.values():
        (tmp_path / name).write_bytes(data)
        seen |= {item.code for item in read_records(tmp_path / name, **kwargs) if isinstance(item, Issue)}
    for _code, value, _field in RECORD_CASES:
        seen |= {issue.code for issue in normalize(value)[1]}
    for code, (lines, config) in CHECK_FILE_CASES.items():
        checked = check_file(jsonl(tmp_path, *lines), tokenizer=tokenizer, config=config)
        assert [issue.code for issue in checked.issues] == [code]
        seen.add(code)
    assert seen == set(CODES) - OTHER_KINDS


def test_normalized_duplicates_ignore_newlines_and_tabs(tmp_path, tokenizer):
    rows = [{"prompt": "Fee?", "completion": "hi there"}, {"prompt": "fee?", "completion": "Hi\n\tthere"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig())
    assert checked.counts["duplicates_normalized"] == 1 and len(checked.examples) == 1


def test_a_lone_surrogate_is_an_issue_not_a_crash(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "\\ud800"}\n{"text": "fine"}\n')
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig())
    assert [(i.code, i.line) for i in checked.issues] == [("undecodable_bytes", 1)]
    assert len(checked.examples) == 1


def test_truncation_recounts_prompt_reasoning_and_answer(tmp_path, tokenizer):
    record = {"messages": [{"role": "user", "content": "Why?"},
                           {"role": "assistant", "content": "Because.", "reasoning_content": "word " * 60}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record) + "\n")
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig(max_length=16, on_overlength="truncate"))
    tokens = checked.tokenized[0]
    assert len(tokens) == 16
    assert tokens.prompt_tokens + tokens.reasoning_tokens + tokens.answer_tokens == 16
    assert tokens.answer_tokens == 0
