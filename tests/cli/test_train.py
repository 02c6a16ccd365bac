"""`llmft train` as a user runs it: output, exit codes, no tracebacks."""

import json
import subprocess
import sys
import time

import pytest

from llmft import exit_codes
from llmft.cli import build_parser, main


def test_train_without_data_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "--set", f"output.output_dir={tmp_path}"]) == exit_codes.USAGE
    assert "data.train_file is required" in capsys.readouterr().err


def test_train_with_an_unknown_key_names_the_closest(capsys):
    assert main(["train", "--set", "training.learnig_rate=1"]) == exit_codes.USAGE
    assert "did you mean 'learning_rate'" in capsys.readouterr().err


@pytest.mark.slow
def test_several_processes_into_an_existing_run_fail_once_before_any_rank_starts(tmp_path, tiny_model_dir, capsys):
    """The launcher's preflight refuses: one message and exit code 2, no rank started, no torchrun traceback."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(8)))
    run = ["--set", f"data.train_file={data}", "--set", f"output.output_dir={tmp_path / 'run'}",
           "--set", "training.max_steps=1", "--set", "training.save_steps=1", "--set", "data.max_length=64"]
    assert main(["train", *run, "--no-progress"]) == exit_codes.OK
    capsys.readouterr()
    started = time.time()
    process = subprocess.run([sys.executable, "-m", "llmft.cli", "train", *run, "--nproc-per-node", "2"],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == exit_codes.USAGE, process.stderr
    assert process.stderr.count("already holds a run (last checkpoint checkpoint-1)") == 1, process.stderr
    assert "pass --resume to continue it" in process.stderr
    assert "Traceback" not in process.stderr + process.stdout and "torch.distributed" not in process.stderr
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint-2").exists()
    assert time.time() - started < 60  # refused in the launching process, not after ranks loaded a model


def test_model_is_the_old_name_of_base(tmp_path):
    old = build_parser().parse_args(["model", "tiny", "--out", str(tmp_path)])
    new = build_parser().parse_args(["base", "tiny", "--out", str(tmp_path)])
    assert old.run is new.run and old.out == new.out == tmp_path
