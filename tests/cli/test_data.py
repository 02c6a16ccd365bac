"""`llmft data ...` as a user runs it: output, exit codes, no tracebacks."""

import json
import subprocess
import sys

import pytest

from llmft import exit_codes
from llmft.cli import main


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


GOOD = '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello","reasoning_content":"greet"}]}\n'


def test_validate_clean_file_exits_zero_and_reports_statistics(tmp_path, tiny_model_dir, capsys):
    assert main(["data", "validate", str(write(tmp_path / "d.jsonl", GOOD))]) == 0
    out = capsys.readouterr().out
    assert "1 examples from 1 records, 0 errors" in out
    assert "100.0% with reasoning" in out


def test_validate_reports_line_field_and_code_and_exits_one(tmp_path, tiny_model_dir, capsys):
    path = write(tmp_path / "d.jsonl", GOOD + '{"messages":[{"role":"bot","content":"x"}]}\n{oops\n')
    assert main(["data", "validate", str(path), "--json"]) == exit_codes.ERRORS
    report = json.loads(capsys.readouterr().out)
    assert [(i["code"], i["line"], i["field"]) for i in report["issues"]] == [
        ("unknown_role", 2, "messages[0].role"), ("invalid_json", 3, None)]


def test_validate_too_long_is_reported_never_truncated(tmp_path, tiny_model_dir, capsys):
    long = json.dumps({"prompt": "Explain T+1 settlement.", "completion": "Shares bought today settle tomorrow. " * 5})
    path = write(tmp_path / "d.jsonl", long + "\n")
    assert main(["data", "validate", str(path), "--max-length", "16"]) == exit_codes.ERRORS
    out = capsys.readouterr().out
    assert "too_long" in out and "line 1" in out


def test_bad_option_and_unknown_model_exit_two_with_a_message(tmp_path, tiny_model_dir, capsys):
    path = write(tmp_path / "d.jsonl", GOOD)
    assert main(["data", "validate", str(path), "--max-length", "1"]) == exit_codes.USAGE
    assert "max_length" in capsys.readouterr().err
    assert main(["data", "validate", str(path), "--model", str(tmp_path)]) == exit_codes.USAGE
    assert "no config.json" in capsys.readouterr().err


def test_prepare_writes_folder_and_second_run_hits_cache(tmp_path, tiny_model_dir, capsys):
    path = write(tmp_path / "d.jsonl", "".join(
        json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(10)))
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "a")]) == 0
    assert "(prepared)" in capsys.readouterr().out
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "b")]) == 0
    assert "(cache hit)" in capsys.readouterr().out
    assert (tmp_path / "b" / "train.tokens.safetensors").is_file()


def test_prepare_with_errors_writes_nothing(tmp_path, tiny_model_dir, capsys):
    path = write(tmp_path / "d.jsonl", GOOD + "[]\n")
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "out")]) == exit_codes.ERRORS
    assert "not_an_object" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_preview_marks_trained_spans(tmp_path, tiny_model_dir, capsys):
    assert main(["data", "preview", str(write(tmp_path / "d.jsonl", GOOD)), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "<｜User｜>hi<｜Assistant｜>⟦<think>\ngreet\n</think>\n\nhello<｜end▁of▁sentence｜>⟧" in out


@pytest.mark.slow
def test_console_script_runs_without_traceback_on_garbage(tmp_path, tiny_model_dir):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\x00\xff\xfe garbage\n" * 3)
    result = subprocess.run([sys.executable, "-m", "llmft.cli", "data", "validate", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == exit_codes.ERRORS
    assert "undecodable_bytes" in result.stdout
    assert "Traceback" not in result.stderr
