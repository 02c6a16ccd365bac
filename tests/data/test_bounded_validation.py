"""Validation's memory and time stay bounded on hostile files (issue 18 row 2): a huge line is too_long without
being tokenized, a Parquet file is refused before it expands past its limit, a huge row is skipped."""

import json
import time

import pyarrow as pa
import pyarrow.parquet as pq

from llmft import exit_codes
from llmft.cli import main
from llmft.data.config import DataConfig
from llmft.data.read import MIB, ReadLimits, read_records
from llmft.data.tokenize import max_token_chars
from llmft.data.validate import check_file


def chat_line(answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer}]})


def test_a_huge_line_is_too_long_at_once_without_tokenizing(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text(chat_line("word " * 4_000_000) + "\n" + chat_line("fine") + "\n")  # 20 MB, about 4M tokens
    started = time.perf_counter()
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig(max_length=4096))
    assert time.perf_counter() - started < 2  # tokenizing it whole took 10 s
    [issue] = checked.issues
    assert (issue.code, issue.line) == ("too_long", 1) and "20000" in issue.message and "characters" in issue.message
    assert (checked.counts["too_long"], checked.counts["dropped_overlength"], len(checked.examples)) == (1, 1, 1)


def test_truncate_cuts_a_huge_example_to_max_length(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text(chat_line("word " * 1_000_000) + "\n")
    started = time.perf_counter()
    checked = check_file(path, tokenizer=tokenizer, config=DataConfig(max_length=64, on_overlength="truncate"))
    assert time.perf_counter() - started < 2
    assert [len(tokens) for tokens in checked.tokenized] == [64] and checked.counts["truncated"] == 1


def test_an_example_just_under_the_character_bound_is_tokenized(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text(chat_line("a" * (16 * max_token_chars(tokenizer) - 10)) + "\n")
    [issue] = check_file(path, tokenizer=tokenizer, config=DataConfig(max_length=16)).issues
    assert issue.code == "too_long" and "tokens" in issue.message  # counted in tokens: it was tokenized


def write_bomb(path, rows: int, value_mb: int):
    """Rows of one repeated string: dictionary-encoded and compressed, a few kB on disk."""
    dictionary = pa.array(["x" * (value_mb * MIB)])
    table = pa.table({"text": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), dictionary)})
    pq.write_table(table, path, compression="zstd", use_dictionary=True)
    return path


def test_a_parquet_bomb_is_refused_before_it_expands(tmp_path):
    path = write_bomb(tmp_path / "bomb.parquet", rows=100, value_mb=20)  # 2 GB decoded
    assert path.stat().st_size < 100_000
    started = time.perf_counter()
    items = list(read_records(path, limits=ReadLimits(parquet_bytes=1024 * MIB)))
    assert time.perf_counter() - started < 5
    assert [(item.code, item.record) for item in items] == [("file_too_large", 1)]


def test_a_parquet_file_whose_metadata_states_too_much_is_refused_unread(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": [f"row {i} " * 100 for i in range(2000)]}), path)
    [item] = list(read_records(path, limits=ReadLimits(parquet_bytes=MIB)))
    assert item.code == "file_too_large" and item.record is None


def test_a_parquet_row_over_the_line_limit_is_skipped(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": ["short", "x" * (2 * MIB), "also short"]}), path)
    items = list(read_records(path, limits=ReadLimits(line_bytes=MIB)))
    assert [getattr(item, "code", None) for item in items] == [None, "line_too_large", None]
    assert [item.loc.record for item in items if not hasattr(item, "code")] == [1, 3]


def test_the_cli_gives_the_same_too_long_and_exit_code(tmp_path, tokenizer, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(chat_line("word " * 4_000_000) + "\n")
    capsys.readouterr()
    assert main(["data", "validate", str(path), "--model", "tiny-r1", "--json"]) == exit_codes.ERRORS
    [issue] = json.loads(capsys.readouterr().out)["issues"]
    assert (issue["code"], issue["line"]) == ("too_long", 1) and "characters" in issue["message"]
