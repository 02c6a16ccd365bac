"""The "auto" hyperparameters chosen from the data's size and the method, with literal sizes."""

import pytest

from llmft.config import ConfigError
from llmft.train.auto import MIN_STEPS, hyperparameters, resolve_auto, row_length, steps_per_epoch
from llmft.train.config import load_config


def resolve(*overrides: str, rows: int, length: int = 2048, processes: int = 1, parameters: int | None = None):
    return resolve_auto(load_config(None, list(overrides)), train_rows=rows, row_length=length, processes=processes,
                        parameters=parameters)


def test_short_data_is_packed_into_shorter_rows_so_an_epoch_has_several_steps():
    defaults = load_config(None)
    # 48 FAQ answers of ~80 tokens: one or two rows of 2048, or 16 rows of 256
    assert row_length(defaults, train_tokens=3_900, longest_example=140) == 256
    assert row_length(defaults, train_tokens=3_900, longest_example=700) == 704  # never shorter than an example
    assert row_length(defaults, train_tokens=500_000, longest_example=700) == 2048  # enough rows already
    assert row_length(load_config(None, ["data.pack=false"]), train_tokens=3_900, longest_example=140) == 2048
    assert row_length(load_config(None, ["data.max_length=512"]), train_tokens=3_900, longest_example=140) == 256


def test_small_data_gets_the_floor_of_steps_at_batch_1_and_the_lora_rate_measured_to_learn():
    config, chosen = resolve(rows=16, length=256)
    # 48 steps; 1e-3 up to 40 steps, then 1/sqrt(steps)
    assert chosen == {"row_length": 256, "batch_size": 1, "num_epochs": 3.0, "learning_rate": 9.1e-4, "logging_steps": 1}
    assert config.training.num_epochs * steps_per_epoch(16, batch=1, accumulation=1, processes=1) >= MIN_STEPS
    # rows count, not examples: two packed rows need many passes to reach the floor
    config, chosen = resolve(rows=2)
    assert chosen["num_epochs"] == MIN_STEPS / 2 and chosen["batch_size"] == 1
    # a single row is capped at MAX_EPOCHS passes
    assert resolve(rows=1)[1]["num_epochs"] == 25.0


def test_large_data_gets_batches_of_8_fewer_epochs_a_lower_rate_and_about_50_log_points():
    _, chosen = resolve(rows=2_000)
    assert (chosen["batch_size"], chosen["num_epochs"]) == (8, 3.0)
    steps = 3 * 250
    assert chosen["logging_steps"] == steps // 50 and chosen["learning_rate"] == pytest.approx(2.3e-4)
    _, chosen = resolve(rows=50_000)
    assert chosen["num_epochs"] == 1.0 and chosen["learning_rate"] == 1e-4  # 25,000 rows seen at most, one epoch at least
    assert resolve(rows=20_000)[1]["num_epochs"] == 1.25


def test_the_rate_follows_the_method_and_the_lora_rank():
    assert resolve("method.type=full", rows=8)[1]["learning_rate"] == 2e-5
    assert resolve("method.type=full", rows=100_000)[1]["learning_rate"] == 1e-5
    # full fine-tuning: smaller models take larger rates, 1.5B / parameters, between 1e-5 and 1e-4
    assert resolve("method.type=full", rows=8, parameters=1_777_088_000)[1]["learning_rate"] == 1.7e-5  # R1 1.5B
    assert resolve("method.type=full", rows=8, parameters=134_515_008)[1]["learning_rate"] == 1e-4  # SmolLM2-135M
    assert resolve("method.type=full", rows=2_000, parameters=134_515_008)[1]["learning_rate"] == 5.2e-5  # 750 steps
    assert resolve("method.type=full", rows=2_000, parameters=1_777_088_000)[1]["learning_rate"] == 1e-5
    assert resolve("method.type=full", rows=8, parameters=6_000_000)[1]["learning_rate"] == 1e-4
    assert resolve("method.type=full", rows=8, parameters=70_000_000_000)[1]["learning_rate"] == 1e-5
    assert resolve("method.lora.r=16", rows=8, parameters=134_515_008)[1]["learning_rate"] == 1e-3  # LoRA: not by size
    assert resolve("method.lora.r=64", rows=8)[1]["learning_rate"] == 5e-4
    assert resolve("method.type=qlora", rows=8)[1]["learning_rate"] == 1e-3


def test_processes_and_accumulation_count_in_the_steps():
    _, alone = resolve(rows=64, length=512)
    _, four = resolve(rows=64, length=512, processes=4)
    assert alone["num_epochs"] == 3.0 and four["num_epochs"] == 3.0  # 64 steps an epoch alone, 16 on four
    _, accumulated = resolve("training.gradient_accumulation_steps=4", rows=64, length=512)
    assert accumulated["batch_size"] == 1 and accumulated["num_epochs"] == 3.0


def test_explicit_values_win_and_only_the_auto_ones_are_named():
    config, chosen = resolve("training.num_epochs=2", "training.batch_size=4", "training.learning_rate=5e-5",
                             "training.logging_steps=7", "data.row_length=1024", rows=2, length=1024)
    assert chosen == {}
    t = config.training
    assert (t.num_epochs, t.batch_size, t.learning_rate, t.logging_steps, config.data.row_length) == (2, 4, 5e-5, 7, 1024)
    # max_steps fixes the length: the rate and the logging follow it
    config, chosen = resolve("training.max_steps=500", "training.batch_size=2", rows=2)
    assert set(chosen) == {"row_length", "num_epochs", "learning_rate", "logging_steps"}
    assert chosen["logging_steps"] == 10 and chosen["learning_rate"] == pytest.approx(2.8e-4)
    assert hyperparameters(config) == {"num_epochs": 25.0, "batch_size": 2, "learning_rate": chosen["learning_rate"],
                                       "logging_steps": 10, "row_length": 2048, "max_steps": 500}


def test_an_explicit_row_length_must_hold_the_longest_example_and_fit_max_length():
    with pytest.raises(ConfigError, match="row_length 128 is shorter than the longest training example"):
        row_length(load_config(None, ["data.row_length=128"]), train_tokens=3_900, longest_example=140)
    with pytest.raises(ConfigError, match="data.row_length 4096 is more than data.max_length 2048"):
        load_config(None, ["data.row_length=4096"])
