"""read_records: every file format, and every file-level issue code with its line and record."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmft.data.issues import CODES, Issue, Location
from llmft.data.read import RawRecord, ReadLimits, read_records

BOM = b"\xef\xbb\xbf"


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read(path: Path, **kwargs) -> list[RawRecord | Issue]:
    items = list(read_records(path, **kwargs))
    assert all(isinstance(item, (RawRecord, Issue)) for item in items)
    return items


def records(items) -> list[tuple[int, int | None, object]]:
    """(record, line, value) of every RawRecord."""
    return [(item.loc.record, item.loc.line, item.value) for item in items if isinstance(item, RawRecord)]


def issues(items) -> list[tuple[str, int | None, int | None]]:
    """(code, line, record) of every Issue."""
    return [(item.code, item.line, item.record) for item in items if isinstance(item, Issue)]


def write_parquet(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- JSONL -------------------------------------------------------------------------------


def test_jsonl_records_are_numbered_by_record_and_line(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"a": 1}\n{"b": 2}\n{"c": 3}\n')
    assert read(path) == [
        RawRecord(Location(record=1, line=1), {"a": 1}),
        RawRecord(Location(record=2, line=2), {"b": 2}),
        RawRecord(Location(record=3, line=3), {"c": 3}),
    ]


def test_jsonl_blank_lines_are_skipped_but_line_numbers_stay_right(tmp_path):
    path = write(tmp_path, "d.jsonl", '\n{"a": 1}\n\n   \n{"b": 2}\r\n\t\n{"c": 3}')
    assert records(read(path)) == [(1, 2, {"a": 1}), (2, 5, {"b": 2}), (3, 7, {"c": 3})]


def test_jsonl_non_object_lines_are_records_too(tmp_path):
    path = write(tmp_path, "d.jsonl", '[1, 2]\n"text"\n{"a": 1}\n')
    assert records(read(path)) == [(1, 1, [1, 2]), (2, 2, "text"), (3, 3, {"a": 1})]


def test_jsonl_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, "d.jsonl", BOM + b'{"text": "caf\xc3\xa9"}\n{"b": 2}\n')
    assert read(path) == [
        RawRecord(Location(record=1, line=1), {"text": "café"}),
        RawRecord(Location(record=2, line=2), {"b": 2}),
    ]


@pytest.mark.parametrize("name", ["d.ndjson", "d.JSONL", "d.json", "no_extension"])
def test_lines_of_objects_are_read_as_jsonl_whatever_the_name(tmp_path, name):
    path = write(tmp_path, name, '{"a": 1}\n{"b": 2}\n')
    assert records(read(path)) == [(1, 1, {"a": 1}), (2, 2, {"b": 2})]


# --- JSON arrays -------------------------------------------------------------------------


def test_json_array_records_carry_the_line_they_start_on(tmp_path):
    text = '[\n  {"a": 1},\n\n  {"b": 2,\n   "c": 3},\n  {"d": 4}\n]\n'
    assert records(read(write(tmp_path, "d.json", text))) == [
        (1, 2, {"a": 1}), (2, 4, {"b": 2, "c": 3}), (3, 6, {"d": 4}),
    ]


def test_json_array_on_one_line(tmp_path):
    path = write(tmp_path, "d.json", '[{"a": 1}, {"b": 2}]')
    assert records(read(path)) == [(1, 1, {"a": 1}), (2, 1, {"b": 2})]


def test_json_array_with_bom_and_leading_blank_lines(tmp_path):
    path = write(tmp_path, "d.json", BOM + b'\n\n[{"a": 1},\n{"b": 2}]\n')
    assert records(read(path)) == [(1, 3, {"a": 1}), (2, 4, {"b": 2})]


def test_json_array_in_a_file_without_extension(tmp_path):
    path = write(tmp_path, "data", '  [{"a": 1}]')
    assert records(read(path)) == [(1, 1, {"a": 1})]


# --- CSV and TSV -------------------------------------------------------------------------


def test_csv_rows_become_dicts_with_line_numbers(tmp_path):
    text = "prompt,completion\nhi,hello\n\n, \n2+2?,4\n"
    assert records(read(write(tmp_path, "d.csv", text))) == [
        (1, 2, {"prompt": "hi", "completion": "hello"}),
        (2, 5, {"prompt": "2+2?", "completion": "4"}),
    ]


def test_csv_quoted_cell_over_several_lines_keeps_later_line_numbers_right(tmp_path):
    text = 'prompt,completion\n"one\ntwo\nthree","x, y"\nnext,row\n'
    assert records(read(write(tmp_path, "d.csv", text))) == [
        (1, 2, {"prompt": "one\ntwo\nthree", "completion": "x, y"}),
        (2, 5, {"prompt": "next", "completion": "row"}),
    ]


def test_csv_messages_cell_holding_json_is_parsed(tmp_path):
    messages = [{"role": "user", "content": "hi, there"}, {"role": "assistant", "content": 'say "yo"'}]
    cell = json.dumps(messages).replace('"', '""')
    text = f'messages,id\n"{cell}",r1\n'
    assert records(read(write(tmp_path, "d.csv", text))) == [(1, 2, {"messages": messages, "id": "r1"})]


def test_csv_conversations_cell_holding_json_is_parsed(tmp_path):
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    cell = json.dumps(turns).replace('"', '""')
    path = write(tmp_path, "d.csv", f'conversations\n"{cell}"\n')
    assert records(read(path)) == [(1, 2, {"conversations": turns})]


def test_csv_other_cells_stay_strings_even_when_they_look_like_json(tmp_path):
    path = write(tmp_path, "d.csv", 'text,meta\n"[1, 2]","{""a"": 1}"\n')
    assert records(read(path)) == [(1, 2, {"text": "[1, 2]", "meta": '{"a": 1}'})]


def test_csv_header_names_are_stripped_and_short_rows_leave_columns_out(tmp_path):
    path = write(tmp_path, "d.csv", " prompt , completion\nonly\n")
    assert records(read(path)) == [(1, 2, {"prompt": "only"})]


def test_csv_with_bom(tmp_path):
    path = write(tmp_path, "d.csv", BOM + b"prompt,completion\nhi,yo\n")
    assert records(read(path)) == [(1, 2, {"prompt": "hi", "completion": "yo"})]


def test_tsv_is_split_on_tabs(tmp_path):
    path = write(tmp_path, "d.tsv", "prompt\tcompletion\nhi, you\tyo\n\nq\ta\n")
    assert records(read(path)) == [
        (1, 2, {"prompt": "hi, you", "completion": "yo"}),
        (2, 4, {"prompt": "q", "completion": "a"}),
    ]


# --- Parquet -----------------------------------------------------------------------------


def test_parquet_rows_with_nested_message_structs(tmp_path):
    rows = [
        {"id": "a", "messages": [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "yo", "reasoning_content": "greet"}]},
        {"id": "b", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ]
    items = read(write_parquet(tmp_path, "d.parquet", rows))
    assert issues(items) == []
    # Parquet has no lines; a struct gives every message every field, absent ones as None.
    assert records(items) == [
        (1, None, {"id": "a", "messages": [
            {"role": "user", "content": "hi", "reasoning_content": None},
            {"role": "assistant", "content": "yo", "reasoning_content": "greet"}]}),
        (2, None, {"id": "b", "messages": [
            {"role": "user", "content": "q", "reasoning_content": None},
            {"role": "assistant", "content": "a", "reasoning_content": None}]}),
    ]


def test_parquet_record_numbers_continue_across_batches(tmp_path):
    rows = [{"text": f"row {i}"} for i in range(2500)]
    found = records(read(write_parquet(tmp_path, "d.parquet", rows)))
    assert [record for record, _, _ in found] == list(range(1, 2501))
    assert found[-1] == (2500, None, {"text": "row 2499"})


@pytest.mark.parametrize("name", ["d.pq", "d.data", "no_extension"])
def test_parquet_is_recognized_by_pq_extension_or_magic_bytes(tmp_path, name):
    path = write_parquet(tmp_path, name, [{"text": "hello"}])
    assert records(read(path)) == [(1, None, {"text": "hello"})]


# --- file_unreadable ---------------------------------------------------------------------


def test_missing_file_is_unreadable(tmp_path):
    items = read(tmp_path / "absent.jsonl")
    assert issues(items) == [("file_unreadable", None, None)]
    assert "absent.jsonl" in items[0].message


def test_directory_is_unreadable(tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    assert issues(read(tmp_path / "dir.jsonl")) == [("file_unreadable", None, None)]


@pytest.mark.parametrize("name", ["d.txt", "d.xlsx", "no_extension"])
def test_unsupported_format_is_unreadable(tmp_path, name):
    items = read(write(tmp_path, name, "just some prose\n"))
    assert issues(items) == [("file_unreadable", None, None)]
    assert "unsupported format" in items[0].message


@pytest.mark.parametrize("data", [b"PAR1 this is not parquet", b'{"text": "json in disguise"}\n', b""])
def test_corrupt_parquet_is_unreadable(tmp_path, data):
    items = read(write(tmp_path, "d.parquet", data))
    assert issues(items) == [("file_unreadable", None, None)]
    assert items[0].message.startswith("not a readable Parquet file")


def test_parquet_cut_short_is_unreadable(tmp_path):
    path = write_parquet(tmp_path, "d.parquet", [{"text": "hello"}] * 10)
    path.write_bytes(path.read_bytes()[:-20])
    assert issues(read(path)) == [("file_unreadable", None, None)]


# --- file_empty --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), [
    ("d.jsonl", ""),
    ("d.jsonl", "\n\n  \n"),
    ("d.jsonl", BOM),
    ("d.json", ""),
    ("d.json", "[]"),
    ("d.json", " [ \n ] \n"),
    ("d.csv", "prompt,completion\n"),
    ("d.csv", "prompt,completion\n\n , \n"),
])
def test_file_without_records_is_empty(tmp_path, name, data):
    items = read(write(tmp_path, name, data))
    assert issues(items) == [("file_empty", None, None)]
    assert name in items[0].message


def test_parquet_without_rows_is_empty(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    assert issues(read(path)) == [("file_empty", None, None)]


def test_file_of_only_bad_lines_is_not_also_reported_empty(tmp_path):
    assert issues(read(write(tmp_path, "d.jsonl", "oops\n"))) == [("invalid_json", 1, 1)]


# --- invalid_json ------------------------------------------------------------------------


def test_jsonl_bad_line_reports_its_line_and_the_rest_is_read(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"a": 1}\n\n{"b": \n{"c": 3}\n{"d": 4,}\n')
    items = read(path)
    assert records(items) == [(1, 1, {"a": 1}), (3, 4, {"c": 3})]
    assert issues(items) == [("invalid_json", 3, 2), ("invalid_json", 5, 4)]
    assert [item.severity for item in items if isinstance(item, Issue)] == ["error", "error"]


def test_jsonl_line_with_two_objects_is_invalid(tmp_path):
    items = read(write(tmp_path, "d.jsonl", '{"a": 1} {"b": 2}\n'))
    assert issues(items) == [("invalid_json", 1, 1)]
    assert "Extra data" in items[0].message


def test_truncated_json_array_reports_the_record_and_its_line(tmp_path):
    items = read(write(tmp_path, "d.json", '[\n  {"a": 1},\n  {"b": '))
    assert records(items) == [(1, 2, {"a": 1})]
    assert issues(items) == [("invalid_json", 3, 2)]


def test_json_array_error_inside_a_multiline_record_reports_the_line_of_the_error(tmp_path):
    items = read(write(tmp_path, "d.json", '[\n {"a": 1},\n {"b":\n  tru}\n]'))
    assert records(items) == [(1, 2, {"a": 1})]
    assert issues(items) == [("invalid_json", 4, 2)]


def test_json_array_missing_comma_reports_the_record_before_it(tmp_path):
    items = read(write(tmp_path, "d.json", '[\n {"a": 1}\n {"b": 2}\n]'))
    assert records(items) == [(1, 2, {"a": 1})]
    assert issues(items) == [("invalid_json", 3, 1)]
    assert "truncated" in items[-1].message


@pytest.mark.parametrize(("text", "line"), [
    ('[\n {"a": 1},\n {"b": 2}', 3),
    ('[\n {"a": 1},\n {"b": 2}\n', 4),  # the end of the file, where ']' is missing
])
def test_json_array_without_closing_bracket(tmp_path, text, line):
    items = read(write(tmp_path, "d.json", text))
    assert records(items) == [(1, 2, {"a": 1}), (2, 3, {"b": 2})]
    assert issues(items) == [("invalid_json", line, 2)]
    assert "truncated" in items[-1].message


def test_json_array_only_an_opening_bracket(tmp_path):
    assert issues(read(write(tmp_path, "d.json", "["))) == [("invalid_json", 1, 1)]


def test_json_array_trailing_comma_is_invalid(tmp_path):
    items = read(write(tmp_path, "d.json", '[{"a": 1},\n]'))
    assert records(items) == [(1, 1, {"a": 1})]
    assert issues(items) == [("invalid_json", 2, 2)]


def test_json_array_extra_data_after_the_closing_bracket(tmp_path):
    items = read(write(tmp_path, "d.json", '[\n {"a": 1}\n]\n\nxx\n'))
    assert records(items) == [(1, 2, {"a": 1})]
    assert issues(items) == [("invalid_json", 5, None)]
    assert "extra data" in items[-1].message


def test_json_array_nested_too_deeply_is_invalid_not_a_crash(tmp_path):
    items = read(write(tmp_path, "d.json", "[" + "[" * 100_000 + "]" * 100_000 + "]"))
    assert issues(items) == [("invalid_json", 1, 1)]


def test_jsonl_nested_too_deeply_is_invalid_not_a_crash(tmp_path):
    items = read(write(tmp_path, "d.jsonl", '{"a": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n"))
    assert issues(items) == [("invalid_json", 2, 2)]


def test_csv_messages_cell_that_is_not_json(tmp_path):
    path = write(tmp_path, "d.csv", 'messages,id\n"[{oops",r1\n"[]",r2\n')
    items = read(path)
    assert records(items) == [(2, 3, {"messages": [], "id": "r2"})]
    assert issues(items) == [("invalid_json", 2, 1)]
    assert items[0].field == "messages"


# --- undecodable_bytes -------------------------------------------------------------------


def test_latin1_bytes_in_a_jsonl_line_report_that_line(tmp_path):
    path = write(tmp_path, "d.jsonl", b'{"a": 1}\n\n{"text": "caf\xe9"}\n{"c": 3}\n')
    items = read(path)
    assert records(items) == [(1, 1, {"a": 1}), (3, 4, {"c": 3})]
    assert issues(items) == [("undecodable_bytes", 3, 2)]
    assert "byte 14" in items[1].message


def test_latin1_bytes_in_a_json_array_report_the_line(tmp_path):
    items = read(write(tmp_path, "d.json", b'[\n{"a": 1},\n{"b": "caf\xe9"}\n]'))
    assert issues(items) == [("undecodable_bytes", 3, None)]


def test_latin1_bytes_in_a_csv_report_the_line(tmp_path):
    items = read(write(tmp_path, "d.csv", b"prompt,completion\nhi,yo\ncaf\xe9,x\n"))
    assert issues(items) == [("undecodable_bytes", 3, None)]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv"])
def test_a_utf16_file_is_one_issue_that_says_to_save_as_utf8(tmp_path, name):
    items = read(write(tmp_path, name, '{"text": "a"}\n{"text": "b"}\n'.encode("utf-16")))
    assert issues(items) == [("undecodable_bytes", 1, None)]
    assert "UTF-16" in items[0].message and "UTF-8" in items[0].message


# --- line_too_large ----------------------------------------------------------------------


def test_line_over_the_limit_is_reported_and_following_lines_keep_their_numbers(tmp_path):
    text = '{"a": 1}\n{"long": "' + "x" * 100 + '"}\n\n{"c": 3}\n{"d": 4}\n'
    items = read(write(tmp_path, "d.jsonl", text), limits=ReadLimits(line_bytes=20))
    assert records(items) == [(1, 1, {"a": 1}), (3, 4, {"c": 3}), (4, 5, {"d": 4})]
    assert issues(items) == [("line_too_large", 2, 2)]
    assert "20 bytes" in items[1].message


def test_line_limit_counts_bytes_without_the_newline(tmp_path):
    text = '{"a":"12345"}\n{"a":"123456"}\n{"a":"1234567"}\n{"a":"1234567"}'
    items = read(write(tmp_path, "d.jsonl", text), limits=ReadLimits(line_bytes=14))  # lines of 13, 14, 15, 15 bytes
    assert records(items) == [(1, 1, {"a": "12345"}), (2, 2, {"a": "123456"})]
    assert issues(items) == [("line_too_large", 3, 3), ("line_too_large", 4, 4)]


def test_line_much_larger_than_the_limit_is_skipped_in_chunks(tmp_path):
    text = '{"a": 1}\n{"big": "' + "y" * 3_000_000 + '"}\n{"c": 3}\n'
    items = read(write(tmp_path, "d.jsonl", text), limits=ReadLimits(line_bytes=1024))
    assert records(items) == [(1, 1, {"a": 1}), (3, 3, {"c": 3})]
    assert issues(items) == [("line_too_large", 2, 2)]


# --- csv_header --------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "detail"), [
    ("text,prompt,text", "repeated column 'text'"),
    ("text, text ", "repeated column 'text'"),
    ("text,,prompt", "empty column name"),
    ("text,  ", "empty column name"),
])
def test_bad_csv_header_stops_the_file(tmp_path, header, detail):
    items = read(write(tmp_path, "d.csv", f"{header}\na,b,c\n"))
    assert issues(items) == [("csv_header", 1, None)]
    assert detail in items[0].message
    assert records(items) == []


def test_empty_csv_is_an_empty_file(tmp_path):
    items = read(write(tmp_path, "d.csv", ""))
    assert issues(items) == [("file_empty", None, None)]


def test_unterminated_quote_in_csv_is_reported_not_swallowed(tmp_path):
    items = read(write(tmp_path, "d.csv", 'prompt,completion\nhi,yo\n"open,x\nlater,row\n'))
    assert len(records(items)) == 1
    assert issues(items) == [("csv_row", 3, 2)]


def test_duplicate_tsv_column(tmp_path):
    assert issues(read(write(tmp_path, "d.tsv", "prompt\tprompt\nx\ty\n"))) == [("csv_header", 1, None)]


# --- csv_row -----------------------------------------------------------------------------


def test_csv_row_with_too_many_cells_is_reported_and_the_rest_is_read(tmp_path):
    items = read(write(tmp_path, "d.csv", "prompt,completion\nhi,yo\n\nx,y,z\nq,a\n"))
    assert records(items) == [(1, 2, {"prompt": "hi", "completion": "yo"}),
                              (3, 5, {"prompt": "q", "completion": "a"})]
    assert issues(items) == [("csv_row", 4, 2)]
    assert "3 cells but the header names 2 columns" in items[1].message


# --- every issue is well formed ----------------------------------------------------------


def test_file_level_issues_have_known_codes_and_error_severity(tmp_path):
    found = []
    found += read(tmp_path / "absent.jsonl")
    found += read(write(tmp_path, "e.jsonl", ""))
    found += read(write(tmp_path, "b.jsonl", b"oops\n\xff\n"))
    found += read(write(tmp_path, "l.jsonl", "x" * 50), limits=ReadLimits(line_bytes=10))
    found += read(write(tmp_path, "h.csv", "a,a\n"))
    found += read(write(tmp_path, "r.csv", "a\n1,2\n"))
    codes = {item.code for item in found}
    assert codes == {"file_unreadable", "file_empty", "invalid_json", "undecodable_bytes",
                     "line_too_large", "csv_header", "csv_row"}
    assert all(item.code in CODES and item.severity == "error" for item in found)
