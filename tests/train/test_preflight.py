"""The checks that need no model: every problem in one ConfigError, before anything starts."""

import pytest

from llmft.config import ConfigError
from llmft.train import checkpoints
from llmft.train.config import load_config
from llmft.train.preflight import preflight


def holding_a_run(output):
    staged = output / ".staging" / "checkpoint-2"
    staged.mkdir(parents=True)
    checkpoints.publish(staged, output, info={"step": 2})


def test_every_problem_in_one_message(tmp_path):
    holding_a_run(tmp_path / "run")
    config = load_config(None, [f"data.train_file={tmp_path / 'missing.jsonl'}", f"output.output_dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError) as raised:
        preflight(config, resume=False, nproc_per_node=2, nnodes=2)
    message = str(raised.value)
    assert f"data.train_file: no file {tmp_path / 'missing.jsonl'}" in message
    assert "already holds a run (last checkpoint checkpoint-2); pass --resume" in message
    assert "--nnodes > 1 needs --rdzv-endpoint" in message


def test_a_run_to_resume_and_files_that_exist_pass(tmp_path):
    holding_a_run(tmp_path / "run")
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    config = load_config(None, [f"data.train_file={data}", f"output.output_dir={tmp_path / 'run'}"])
    preflight(config, resume=True, nproc_per_node=2)
    with pytest.raises(ConfigError, match="must be at least 1"):
        preflight(config, resume=True, nproc_per_node=0)
    with pytest.raises(ConfigError, match="data.train_file is required"):
        preflight(load_config(None, [f"output.output_dir={tmp_path / 'new'}"]), resume=False)
