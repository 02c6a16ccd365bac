"""The `llmft` command as a user runs it: output, exit codes, no tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmft import exit_codes
from llmft.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


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


def test_train_without_data_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "--set", f"output.output_dir={tmp_path}"]) == exit_codes.USAGE
    assert "data.train_file is required" in capsys.readouterr().err


def test_train_with_an_unknown_key_names_the_closest(capsys):
    assert main(["train", "--set", "training.learnig_rate=1"]) == exit_codes.USAGE
    assert "did you mean 'learning_rate'" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_starts_the_api_with_a_worker_that_goes_when_it_goes(tmp_path):
    import os
    import signal
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LLMFT_HOME": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "llmft.cli", "serve", "--port", str(port)], env=env,
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        assert server.poll() is None and time.time() < deadline
        time.sleep(0.3)
    children = [int(pid) for pid in open(f"/proc/{server.pid}/task/{server.pid}/children").read().split()]
    worker = [pid for pid in children if b"worker" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(worker) == 1
    server.send_signal(signal.SIGKILL)
    server.wait()
    deadline = time.time() + 60
    while os.path.exists(f"/proc/{worker[0]}") and "Z" not in open(f"/proc/{worker[0]}/stat").read().split()[2]:
        assert time.time() < deadline, "the embedded worker outlived llmft serve"
        time.sleep(0.2)
    banner = server.stderr.read()
    assert f"http://127.0.0.1:{port}/docs" in banner and "llmft keys create" in banner


def test_eval_reports_a_base_model_on_the_validation_split(tmp_path, tiny_model_dir, capsys):
    sample = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]
    data = write(tmp_path / "small.jsonl", "".join(sample))
    code = main(["eval", "--model", "tiny-r1", "--dataset", str(data), "--max-samples", "2", "--max-new-tokens", "8",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["generated"] == 2 and "candidate" not in report
    base = report["base"]
    assert base["perplexity"] > 1000 and base["ended_with_eos"] == 0.0  # a random model: no EOS in 8 tokens
    assert set(base) >= {"eval_loss", "bleu", "rouge_l", "exact_match", "closed_think", "mean_answer_chars"}


def test_registry_commands_need_a_known_tenant(capsys):
    assert main(["models", "list", "--tenant", "nobody"]) == 1
    assert "no tenant 'nobody'" in capsys.readouterr().err
