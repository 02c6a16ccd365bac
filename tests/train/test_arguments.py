"""How our config becomes Trainer's arguments: the choices that are ours, not Trainer's defaults."""

import pytest
import torch

from llmft.config import ConfigError
from llmft.train.arguments import optimizer_class_and_kwargs, training_arguments
from llmft.train.config import TrainConfig
from llmft.train.optim import Lamb


def config(distributed: dict | None = None, **training) -> TrainConfig:
    chosen = {"num_epochs": 3, "batch_size": 8, "learning_rate": 2e-4, "logging_steps": 10}  # as resolve_auto would
    return TrainConfig.model_validate({"training": {**chosen, **training}, "distributed": distributed or {}})


def test_checkpoints_go_to_staging_and_trainer_reports_nowhere(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = training_arguments(config(), tmp_path / "run", has_validation=True)
    assert args.output_dir == str(tmp_path / "run" / ".staging")
    assert args.save_total_limit is None  # rotation is ours: it never deletes the best checkpoint
    assert args.report_to == [] and args.run_name == "run"
    assert args.logging_nan_inf_filter is False and args.remove_unused_columns is False


def test_schedule_clipping_and_strategies_follow_the_config(tmp_path):
    args = training_arguments(config(lr_scheduler="constant", warmup_steps=0, warmup_ratio=0.1, max_grad_norm=None,
                                     max_steps=7, eval_steps=3, save_steps=None),
                              tmp_path, has_validation=True)
    assert args.lr_scheduler_type == "constant_with_warmup" and args.warmup_steps == 0.1
    assert args.max_grad_norm == 0.0  # null: no clipping
    assert args.max_steps == 7
    assert args.eval_strategy == "steps" and args.eval_steps == 3
    assert args.save_strategy == "epoch"
    assert args.torch_compile is False
    assert training_arguments(config(torch_compile=True), tmp_path, has_validation=False).torch_compile is True


def test_auto_values_must_be_chosen_before_trainer_sees_them(tmp_path):
    with pytest.raises(ValueError, match="training.batch_size, logging_steps still 'auto'"):
        training_arguments(config(batch_size="auto", logging_steps="auto"), tmp_path, has_validation=True)


def test_no_validation_split_means_no_evaluation(tmp_path):
    args = training_arguments(config(eval_steps=3), tmp_path, has_validation=False)
    assert args.eval_strategy == "no" and args.eval_steps is None


def test_lamb_is_ours_and_the_others_are_trainers():
    optimizer, kwargs = optimizer_class_and_kwargs(config(optimizer="lamb", adam_beta1=0.8, weight_decay=0.1))
    assert optimizer is Lamb and kwargs["betas"][0] == 0.8 and kwargs["weight_decay"] == 0.1
    assert optimizer_class_and_kwargs(config(optimizer="adafactor")) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for CPU machines")
def test_sharded_strategies_are_refused_on_cpu(tmp_path):
    fsdp = config(distributed={"strategy": "fsdp"})
    with pytest.raises(ConfigError, match="needs CUDA GPUs"):
        training_arguments(fsdp, tmp_path, has_validation=False)

