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


PAIR = '{"prompt": "Fee on $400 at 5%?", "chosen": "$20.00", "rejected": "Fees vary, it depends on many things."}\n'
PROMPT = '{"messages": [{"role": "user", "content": "Fee on $400 at 5%?"}], "metadata": {"answer": 20.0}}\n'


def test_validate_tells_pairs_from_their_first_record_and_names_each_problem_by_line(tmp_path, tiny_model_dir, capsys):
    path = write(tmp_path / "pairs.jsonl", PAIR + '{"prompt": "Late fee?", "chosen": "$10.00"}\n'
                 '{"prompt": "x", "chosen": "same", "rejected": "same"}\n{"chosen": "a", "rejected": "b"}\n')
    assert main(["data", "validate", str(path), "--json"]) == exit_codes.ERRORS
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "preference" and report["examples"] == 1
    assert [(i["code"], i["line"], i["field"]) for i in report["issues"]] == [
        ("missing_rejected", 2, "rejected"), ("chosen_equals_rejected", 3, "rejected"), ("no_prompt", 4, "prompt")]
    assert main(["data", "validate", str(write(tmp_path / "ok.jsonl", PAIR))]) == 0
    assert "preference   1 pairs" in capsys.readouterr().out


def test_validate_prompts_with_graders_names_a_missing_field(tmp_path, tiny_model_dir, capsys):
    graders = write(tmp_path / "graders.yaml", "- {name: total, type: numeric, reference_field: metadata.answer}\n")
    path = write(tmp_path / "prompts.jsonl", PROMPT + '{"prompt": "Fee on $300?", "metadata": {"total": 15}}\n')
    assert main(["data", "validate", str(path), "--graders", str(graders)]) == exit_codes.ERRORS
    out = capsys.readouterr().out
    assert "missing_grader_field   line 2, metadata.answer: graders[0].reference_field reads" in out
    assert "prompts      1 prompts" in out
    sft = write(tmp_path / "sft.jsonl", GOOD)  # an SFT file read as prompts: its answer is the reference
    assert main(["data", "validate", str(sft), "--kind", "prompts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"]["with_reference"] == 1.0
    bad = write(tmp_path / "bad.yaml", "- {name: total, type: numerik}\n")
    assert main(["data", "validate", str(path), "--graders", str(bad)]) == exit_codes.USAGE
    assert "numeric" in capsys.readouterr().err


def test_preview_shows_pairs_and_prompts_as_their_trainers_get_them(tmp_path, tiny_model_dir, capsys):
    assert main(["data", "preview", str(write(tmp_path / "pairs.jsonl", PAIR)), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "prompt:\n<｜begin▁of▁sentence｜><｜User｜>Fee on $400 at 5%?<｜Assistant｜><think>\n" in out
    assert "chosen:\n⟦\n</think>\n\n$20.00<｜end▁of▁sentence｜>⟧" in out
    assert main(["data", "preview", str(write(tmp_path / "prompts.jsonl", PROMPT))]) == 0
    out = capsys.readouterr().out
    assert "<｜Assistant｜><think>\n" in out and "reference: (none)" in out


def test_prepare_pairs_writes_trl_rows_and_a_manifest(tmp_path, tiny_model_dir, capsys):
    path = write(tmp_path / "pairs.jsonl", "".join(
        json.dumps({"prompt": f"Fee on ${n}00?", "chosen": f"${n * 5}.00", "rejected": "It depends."}) + "\n"
        for n in range(1, 11)))
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "out")]) == 0
    rows = [json.loads(line) for name in ("train.jsonl", "validation.jsonl")
            for line in (tmp_path / "out" / name).read_text().splitlines()]
    assert len(rows) == 10 and all(set(row) == {"prompt", "chosen", "rejected"} for row in rows)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["kind"], manifest["reasoning_format"]) == ("preference", "r1")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["split"]["validation"] == 1 and report["sha256"] == manifest["sha256"]
    bad = write(tmp_path / "bad.jsonl", PAIR + '{"prompt": "q", "chosen": "a"}\n')
    assert main(["data", "prepare", str(bad), "--out", str(tmp_path / "bad")]) == exit_codes.ERRORS
    assert "missing_rejected" in capsys.readouterr().out and not (tmp_path / "bad").exists()
