"""summary.json through RunSummary: the keys on disk, a NaN loss, reading only a fresh one."""

import json
import math
import os

import pytest
from pydantic import ValidationError

from llmft import exit_codes
from llmft.train.summary import DataSummary, RunSummary

KEYS = {"status", "steps", "epochs", "first_train_loss", "final_train_loss", "final_eval_loss", "best_eval_loss",
        "best_checkpoint", "stopped_by", "tokens_seen", "train_runtime_s", "tokens_per_second", "processes",
        "wall_time_s", "peak_rss_gb", "final_dir", "tokenizer_sha256", "renderer_version", "data", "config",
        "hyperparameters", "auto", "llmft_version", "torch_version"}


def summary(**changes) -> RunSummary:
    values = dict(status="succeeded", steps=6, epochs=1.5, first_train_loss=3.0, final_train_loss=2.0,
                  final_eval_loss=2.2, best_eval_loss=2.1, best_checkpoint="checkpoint-3", stopped_by=None,
                  tokens_seen=1200, train_runtime_s=4.0, tokens_per_second=300.0, processes=1, wall_time_s=9.0,
                  peak_rss_gb=1.5, final_dir="/runs/x/final", tokenizer_sha256="ab" * 32, renderer_version="2",
                  data=DataSummary(sha256="cd" * 32, sources=[{"name": "d.jsonl", "sha256": "ef" * 32}],
                                   folder="/cache/p", train_examples=8, validation_examples=2),
                  config={"training": {"max_steps": 6}}, llmft_version="0.1.0", torch_version="2.13.0")
    return RunSummary(**{**values, **changes})


def test_written_with_the_keys_it_always_had_and_read_back(tmp_path):
    summary().write(tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk) == KEYS  # no GPU and no NaN: those keys stay out, as before
    assert on_disk["data"]["folder"] == "/cache/p" and on_disk["config"]["training"]["max_steps"] == 6
    assert RunSummary.read(tmp_path) == summary()


def test_a_summary_written_before_auto_hyperparameters_reads_back(tmp_path):
    value = summary().model_dump(exclude={"hyperparameters", "auto"})
    (tmp_path / "summary.json").write_text(json.dumps(value))
    read = RunSummary.read(tmp_path)
    assert read.hyperparameters == {} and read.auto == [] and read.steps == 6


def test_a_nan_run_keeps_its_step_and_a_nan_loss(tmp_path):
    summary(status="nan_loss", final_train_loss=math.nan, final_dir=None, nan_step=4,
            last_good_checkpoint="checkpoint-3").write(tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk) == KEYS | {"nan_step", "last_good_checkpoint"}
    read = RunSummary.read(tmp_path)
    assert math.isnan(read.final_train_loss) and read.nan_step == 4
    assert read.exit_code == exit_codes.NAN_LOSS and summary(status="stopped").exit_code == exit_codes.STOPPED


def test_read_only_a_summary_written_since(tmp_path):
    assert RunSummary.read(tmp_path) is None
    path = summary().write(tmp_path)
    os.utime(path, (1000.0, 1000.0))
    assert RunSummary.read(tmp_path, since=2000.0) is None
    assert RunSummary.read(tmp_path, since=500.0) is not None


def test_an_unknown_key_or_status_is_refused():
    with pytest.raises(ValidationError, match="surprise"):
        RunSummary.model_validate({**summary().model_dump(), "surprise": 1})
    with pytest.raises(ValidationError, match="status"):
        summary(status="exploded")


def test_a_failed_reward_keeps_its_error_and_last_checkpoint(tmp_path):
    error = "reward 'total' failed on the record at line 12: KeyError: \"the record has no field 'metadata.answer'\""
    summary(status="reward_failed", final_dir=None, reward_error=error, last_good_checkpoint="checkpoint-4").write(tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk) == KEYS | {"reward_error", "last_good_checkpoint"} and on_disk["reward_error"] == error
    assert RunSummary.read(tmp_path).exit_code == exit_codes.REWARD_FAILED == 5
