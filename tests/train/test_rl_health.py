"""RL health numbers on crafted batches, and TRL's GRPO log keys written to metrics.jsonl under ours."""

import json

import pytest
from transformers import TrainerControl, TrainerState

from llmft.train.callbacks import MetricsLog
from llmft.train.rl_health import RlHealthLog, group_health, renamed


def test_group_health_of_a_crafted_batch():
    # two prompts, four completions each: the first group varies, the second is all zero (no signal)
    health = group_health([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], lengths=[10, 20, 30, 40, 64, 64, 64, 12],
                          clipped=[False, False, False, False, True, True, True, False], num_generations=4)
    assert health["reward_mean"] == pytest.approx(0.375)
    assert health["reward_std"] == pytest.approx((1.875 / 7) ** 0.5)  # unbiased, as TRL's reward_std
    assert health["zero_variance_share"] == 0.5 and health["clipped_share"] == 0.375
    assert health["completion_length"] == pytest.approx(304 / 8)


def test_every_group_flat_and_every_completion_clipped():
    health = group_health([0.0] * 6, lengths=[256] * 6, clipped=[True] * 6, num_generations=3)
    assert health == {"reward_mean": 0.0, "reward_std": 0.0, "zero_variance_share": 1.0, "clipped_share": 1.0,
                      "completion_length": 256.0}


def test_a_batch_that_is_not_whole_groups_is_refused():
    with pytest.raises(ValueError, match="5 rewards do not make groups of 4"):
        group_health([0.0] * 5, lengths=[1] * 5, clipped=[False] * 5, num_generations=4)
    with pytest.raises(ValueError, match="4 rewards, 3 lengths"):
        group_health([0.0] * 4, lengths=[1] * 3, clipped=[False] * 4, num_generations=2)


TRL_LOG = {"loss": 0.01, "learning_rate": 1e-5, "reward": 0.4, "reward_std": 0.3, "frac_reward_zero_std": 0.25,
           "completions/clipped_ratio": 0.125, "completions/mean_length": 88.5, "kl": 0.002,
           "rewards/total/mean": 0.4}


def test_trl_keys_are_named_as_ours():
    assert renamed(TRL_LOG) == {"reward_mean": 0.4, "reward_std": 0.3, "zero_variance_share": 0.25,
                                "clipped_share": 0.125, "completion_length": 88.5, "kl": 0.002}
    assert renamed({"loss": 1.0}) == {}  # a supervised log has none


def test_metrics_jsonl_gets_our_names_beside_trls(tmp_path):
    state, control = TrainerState(global_step=3, epoch=0.5), TrainerControl()
    logs = dict(TRL_LOG)
    for callback in (RlHealthLog(), MetricsLog(tmp_path)):  # the order train/run.py lists them in
        callback.on_log(None, state, control, logs=logs)
    line = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert line["step"] == 3 and line["reward_mean"] == 0.4 and line["clipped_share"] == 0.125
    assert line["zero_variance_share"] == 0.25 and line["completion_length"] == 88.5 and line["kl"] == 0.002
    assert line["completions/clipped_ratio"] == 0.125 and line["rewards/total/mean"] == 0.4  # TRL's kept too


def test_an_evaluation_log_is_left_alone():
    logs = {"eval_loss": 1.0, "eval_reward": 0.5}
    RlHealthLog().on_log(None, TrainerState(), TrainerControl(), logs=logs)
    assert logs == {"eval_loss": 1.0, "eval_reward": 0.5}
