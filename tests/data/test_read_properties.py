"""Property tests: reading and normalizing never raise, whatever the input."""

import csv
import io
import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmft.data.issues import CODES, Issue, Location
from llmft.data.normalize import Example, to_example
from llmft.data.read import RawRecord, ReadLimits, read_records

FIELD_NAMES = ["messages", "role", "content", "reasoning_content", "weight", "conversations", "from", "value",
               "instruction", "input", "output", "response", "prompt", "completion", "text", "system", "tool_calls"]
EXTENSIONS = [".jsonl", ".json", ".csv", ".tsv", ".parquet", ""]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_names = itertools.count()


def fresh_path(tmp_path_factory, suffix: str):
    """A new file path (hypothesis forbids function-scoped fixtures such as tmp_path in @given)."""
    return tmp_path_factory.getbasetemp() / f"prop{next(_names)}{suffix}"


def check_items(items: list) -> None:
    assert all(isinstance(item, (RawRecord, Issue)) for item in items)
    for item in items:
        if isinstance(item, Issue):
            assert item.code in CODES
            assert item.line is None or item.line >= 1
            assert item.record is None or item.record >= 1
        else:
            assert item.loc.record >= 1
            assert item.loc.line is None or item.loc.line >= 1
    numbers = [item.loc.record if isinstance(item, RawRecord) else item.record for item in items]
    numbers = [number for number in numbers if number is not None]
    assert numbers == sorted(numbers)
    if any(isinstance(item, Issue) and item.code == "file_empty" for item in items):
        assert len(items) == 1


# --- arbitrary bytes ---------------------------------------------------------------------

_json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=3),
    max_leaves=10,
).map(json.dumps)

# Raw noise, plus bytes that look like the formats so the readers get past their first checks.
file_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(_json_text, st.text(max_size=20)), max_size=6).map(lambda lines: "\n".join(lines).encode()),
    st.tuples(st.sampled_from([b"[", b"\xef\xbb\xbf", b"PAR1", b"text,prompt\n", b"messages\n"]),
              st.binary(max_size=200)).map(b"".join),
    st.lists(st.text(max_size=20), max_size=4).map(lambda texts: "[" + ",\n".join(map(json.dumps, texts))).map(str.encode),
)


@PROPERTY
@given(data=file_bytes, suffix=st.sampled_from(EXTENSIONS))
def test_read_records_never_raises_on_arbitrary_bytes(tmp_path_factory, data, suffix):
    path = fresh_path(tmp_path_factory, suffix)
    path.write_bytes(data)
    items = list(read_records(path))
    assert items
    check_items(items)


@PROPERTY
@given(data=file_bytes, limit=st.integers(min_value=1, max_value=64))
def test_read_records_never_raises_with_a_small_line_limit(tmp_path_factory, data, limit):
    path = fresh_path(tmp_path_factory, ".jsonl")
    path.write_bytes(data)
    items = list(read_records(path, limits=ReadLimits(line_bytes=limit)))
    check_items(items)
    assert all(item.loc.line is not None for item in items if isinstance(item, RawRecord))


# --- arbitrary JSON values through to_example --------------------------------------------

_keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=6)
_leaves = (st.none() | st.booleans() | st.integers(-2, 3) | st.floats(allow_nan=True) |
           st.sampled_from(["", " ", "hi", "<think>", "</think>", "<think>r</think>a", "<think></think>a",
                            "user", "assistant", "system", "tool", "human", "gpt", "observation"]) |
           st.text(max_size=10))
json_values = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=25,
)
_role = st.sampled_from(["system", "user", "assistant", "tool", "bot", "human", "gpt"]) | _leaves
_message = st.fixed_dictionaries(
    {"role": _role, "content": _leaves},
    optional={"reasoning_content": _leaves, "weight": _leaves, "tool_calls": json_values, "extra": _leaves},
)
_turn = st.fixed_dictionaries(
    {"from": _role, "value": _leaves}, optional={"weight": _leaves, "lang": _leaves},
)
# Records shaped like the formats, so the deeper checks run and not just the format detection.
record_like = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(_message, max_size=5)}, optional={"id": _leaves, "text": _leaves}),
    st.fixed_dictionaries({"conversations": st.lists(_turn, max_size=5)}, optional={"system": _leaves}),
    st.fixed_dictionaries({}, optional={"instruction": _leaves, "input": _leaves, "output": _leaves,
                                        "response": _leaves, "system": _leaves}),
    st.fixed_dictionaries({}, optional={"prompt": _leaves, "completion": _leaves, "metadata": json_values}),
)


@PROPERTY
@given(value=json_values | record_like, record=st.integers(1, 10**6), line=st.none() | st.integers(1, 10**6))
def test_to_example_never_raises(value, record, line):
    loc = Location(record=record, line=line)
    example, issues = to_example(value, loc)
    errors = [issue for issue in issues if issue.severity == "error"]
    assert all(isinstance(issue, Issue) and (issue.record, issue.line) == (record, line) for issue in issues)
    if example is None:
        assert errors
    else:
        assert isinstance(example, Example)
        assert not errors
        assert (example.record, example.line) == (record, line)
        if example.text is not None:
            assert example.messages == [] and example.text.strip()
        else:
            roles = [message.role for message in example.messages]
            assert "assistant" in roles and roles[-1] == "assistant"
            assert all(isinstance(message.content, str) for message in example.messages)


# --- structure survives garbage ----------------------------------------------------------

_safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_objects = st.dictionaries(_safe_text, st.none() | st.booleans() | st.integers() | _safe_text, max_size=4)


def _parses(line: bytes) -> bool:
    try:
        json.loads(line.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


# Not "PAR1...": a file starting with Parquet's magic bytes is read as Parquet, whatever its name.
garbage_lines = (st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
                 .filter(lambda b: not _parses(b) and not b.startswith(b"PAR1")))


@PROPERTY
@given(lines=st.lists(st.one_of(_objects.map(lambda o: ("valid", o)), garbage_lines.map(lambda b: ("garbage", b)),
                                st.just(("blank", b""))), max_size=12))
def test_jsonl_valid_lines_survive_interleaved_garbage(tmp_path_factory, lines):
    path = fresh_path(tmp_path_factory, ".jsonl")
    encoded = [json.dumps(item, ensure_ascii=False).encode() if kind == "valid" else item for kind, item in lines]
    path.write_bytes(b"".join(line + b"\n" for line in encoded))
    items = list(read_records(path))
    check_items(items)
    got = [(item.loc.line, item.value) for item in items if isinstance(item, RawRecord)]
    expected = [(number, item) for number, (kind, item) in enumerate(lines, start=1) if kind == "valid"]
    assert got == expected
    assert all(item.code in ("invalid_json", "undecodable_bytes", "file_empty") for item in items
               if isinstance(item, Issue))


@PROPERTY
@given(values=st.lists(_objects, max_size=6), indent=st.none() | st.integers(0, 3))
def test_json_array_records_carry_their_start_line(tmp_path_factory, values, indent):
    parts, expected, line = [], [], 2
    for value in values:
        text = json.dumps(value, indent=indent, ensure_ascii=False)
        parts.append(text)
        expected.append((line, value))
        line += text.count("\n") + 1
    path = fresh_path(tmp_path_factory, ".json")
    path.write_text("[\n" + ",\n".join(parts) + "\n]\n", encoding="utf-8")
    items = list(read_records(path))
    check_items(items)
    assert [(item.loc.line, item.value) for item in items if isinstance(item, RawRecord)] == expected
    assert [item.code for item in items if isinstance(item, Issue)] == ([] if values else ["file_empty"])


_cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=12)


@PROPERTY
@given(rows=st.lists(st.tuples(_cells, _cells).filter(lambda row: any(cell.strip() for cell in row)), max_size=6),
       delimiter=st.sampled_from([",", "\t"]))
def test_csv_rows_round_trip_with_their_start_line(tmp_path_factory, rows, delimiter):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["prompt", "completion"])
    writer.writerows(rows)
    path = fresh_path(tmp_path_factory, ".csv" if delimiter == "," else ".tsv")
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    items = list(read_records(path))
    check_items(items)
    expected, line = [], 2
    for prompt, completion in rows:
        expected.append((line, {"prompt": prompt, "completion": completion}))
        line += prompt.count("\n") + completion.count("\n") + 1
    assert [(item.loc.line, item.value) for item in items if isinstance(item, RawRecord)] == expected
