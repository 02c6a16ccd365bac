from pathlib import Path

import pytest

from llmft.config import ConfigError
from llmft.train.config import build_config, load_config
from llmft.train.load import check_method

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_README_EXAMPLE = """\
model:
  base_model: "deepseek-r1-1.5b"
  max_length: 512
  learning_rate: 3e-5
  batch_size: 16
  num_epochs: 5
  warmup_steps: 1000
  weight_decay: 0.01
  save_steps: 1000
  logging_steps: 100
  output_dir: "./output"
"""


def test_original_readme_example_loads_and_means_what_it_says(tmp_path):
    path = tmp_path / "train_config.yaml"
    path.write_text(ORIGINAL_README_EXAMPLE)
    config = load_config(path)
    assert config.model.base_model == "deepseek-r1-1.5b"
    assert config.data.max_length == 512
    t = config.training
    assert (t.learning_rate, t.batch_size, t.num_epochs, t.warmup_steps) == (3e-5, 16, 5, 1000)
    assert (t.weight_decay, t.save_steps, t.logging_steps) == (0.01, 1000, 100)
    assert config.output.output_dir == "./output"


@pytest.mark.parametrize("name", ["demo.yaml", "demo_r1.yaml", "train_config.yaml", "dpo.yaml", "grpo.yaml"])
def test_shipped_configs_load(name):
    config = load_config(ROOT / "config" / name)
    assert config.data.train_file and Path(ROOT / config.data.train_file).is_file()
    assert config.data.validation_file is None or Path(ROOT / config.data.validation_file).is_file()
    t = config.training
    chosen = (t.num_epochs, t.batch_size, t.learning_rate, t.logging_steps)
    if name == "demo.yaml":  # the real-model demo shows the defaults: every hyperparameter chosen from the data
        assert chosen == ("auto",) * 4 and config.model.base_model == "smollm2-135m"
    else:  # their explicit values stay: "auto" is only what a config leaves out
        assert "auto" not in chosen


def test_auto_is_the_default_and_a_value_in_yaml_set_and_job_dicts(tmp_path):
    t = load_config(None).training
    assert (t.num_epochs, t.batch_size, t.learning_rate, t.logging_steps) == ("auto",) * 4
    assert load_config(None).data.row_length == "auto"
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  num_epochs: auto\n  batch_size: 4\n  learning_rate: 3e-4\n")
    t = load_config(path, ["training.learning_rate=auto", "training.logging_steps=5"]).training
    assert (t.num_epochs, t.batch_size, t.learning_rate, t.logging_steps) == ("auto", 4, "auto", 5)
    assert build_config({"training": {"num_epochs": "auto", "batch_size": "2"}}).training.batch_size == 2


def test_anything_else_than_a_number_or_auto_is_named():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["training.num_epochs=fast", "training.batch_size=0", "data.row_length=Auto"])
    assert str(caught.value) == (
        "defaults has 3 problems:\n"
        "  data.row_length: Input should be a valid integer, unable to parse string as an integer, or 'auto'\n"
        "  training.num_epochs: Input should be a valid number, unable to parse string as a number, or 'auto'\n"
        "  training.batch_size: Input should be greater than or equal to 1, or 'auto'")


def test_unknown_keys_are_named_with_the_closest_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learnig_rate: 1e-4\n  epochs: 3\nmethod:\n  lora:\n    rank: 8\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "3 problems" in message
    assert "training.learnig_rate: unknown key; did you mean 'learning_rate'?" in message
    assert "method.lora.rank: unknown key" in message


def test_overrides_apply_with_yaml_types_and_are_checked():
    config = load_config(None, ["training.max_steps=20", "method.type=full", "data.pack=false",
                                "method.lora.target_modules=[q_proj, v_proj]"])
    assert (config.training.max_steps, config.method.type, config.data.pack) == (20, "full", False)
    assert config.method.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="training.batch_size"):
        load_config(None, ["training.batch_size=0"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(None, ["training.max_steps"])


def test_build_config_takes_values_as_they_are():
    config = build_config({"data": {"train_file": "/srv/uploads #1/train.jsonl"},
                           "training": {"max_grad_norm": None, "learning_rate": "1e-4"}}, where="the job")
    assert config.data.train_file == "/srv/uploads #1/train.jsonl"  # no YAML: ' #' is no comment
    assert config.training.max_grad_norm is None and config.training.learning_rate == 1e-4
    with pytest.raises(ConfigError, match=r"^the job has 2 problems:\n  method.type: .*\n  training.max_grad_norm: "):
        build_config({"training": {"max_grad_norm": 0}, "method": {"type": "ppo"}}, where="the job")


def test_set_null_turns_a_setting_off():
    assert load_config(None, ["training.max_grad_norm=null"]).training.max_grad_norm is None


def test_a_key_given_twice_with_different_values_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  learning_rate: 1e-4\ntraining:\n  learning_rate: 2e-4\n")
    with pytest.raises(ConfigError, match="learning_rate is given as model.learning_rate and training.learning_rate"):
        load_config(path)


def test_bad_yaml_and_missing_file_are_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_qlora_on_cpu_is_refused_before_anything_loads():
    config = load_config(None, ["method.type=qlora", "model.base_model=/nonexistent"])
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        check_method(config)


def test_grpo_reward_terms_are_checked():
    grpo = {"type": "grpo", "grpo": {"graders": "g.yaml", "reward": {"format": 0.5, "length_target": 200,
                                                                       "length_penalty": 0.01}}}
    assert build_config({"method": grpo}).method.grpo.reward.length_target == 200
    assert build_config({"method": {"type": "grpo", "grpo": {"graders": "g.yaml"}}}).method.grpo.reward.format == 0.0
    with pytest.raises(ConfigError, match="length_penalty needs length_target"):
        build_config({"method": {"type": "grpo", "grpo": {"graders": "g.yaml", "reward": {"length_penalty": 0.1}}}})
    with pytest.raises(ConfigError, match="did you mean 'format'"):
        build_config({"method": {"type": "grpo", "grpo": {"graders": "g.yaml", "reward": {"formt": 1}}}})
