"""RL health under stable names, at every logging step of a GRPO run (metrics.jsonl, TensorBoard, events).

    callbacks = [RlHealthLog(), MetricsLog(output_dir), ...]   # first: it names TRL's numbers in the log itself
    group_health([1, 1, 0, 1, 0, 0, 0, 0], lengths=[...], clipped=[...], num_generations=4)
    # {"reward_mean": 0.375, "reward_std": 0.518, "zero_variance_share": 0.5, "clipped_share": ..., ...}

  reward_mean          mean reward of the completions (the graders' weighted sum, train/rewards.py)
  reward_std           its standard deviation over the completions
  zero_variance_share  the share of groups (one prompt's num_generations completions) whose rewards are all
                       equal: they give no signal (each advantage is 0)
  clipped_share        the share of completions cut at max_completion_length (no EOS): their answers are
                       never reached, and every reward tends to 0 (TRL PR #5759)
  completion_length    mean completion length in tokens (collapsing lengths: VLM-R1 #280)
  kl                   mean KL to the reference model (logged when method.grpo.beta > 0)

TRL's GRPOTrainer computes these for each batch and averages them over the logging window under its own
keys (TRL_KEYS); RlHealthLog adds ours beside them. `group_health` is the same definition over one
group-structured batch (a prompt's completions side by side, as TRL orders them). The monitor's RL alert
rules (llmft/monitor/watch.py) read these names.
"""

import statistics

from transformers import TrainerCallback

# TRL GRPOTrainer's log key -> ours
TRL_KEYS = {"reward": "reward_mean", "reward_std": "reward_std", "frac_reward_zero_std": "zero_variance_share",
            "completions/clipped_ratio": "clipped_share", "completions/mean_length": "completion_length", "kl": "kl"}


def group_health(rewards: list[float], *, lengths: list[int], clipped: list[bool], num_generations: int) -> dict:
    """The health numbers of one batch: `rewards`, `lengths` (tokens) and `clipped` per completion, each group's
    `num_generations` completions side by side."""
    if num_generations < 1 or not rewards or len(rewards) % num_generations:
        raise ValueError(f"{len(rewards)} rewards do not make groups of {num_generations}")
    if not len(rewards) == len(lengths) == len(clipped):
        raise ValueError(f"{len(rewards)} rewards, {len(lengths)} lengths and {len(clipped)} clipped flags")
    groups = [rewards[i:i + num_generations] for i in range(0, len(rewards), num_generations)]
    return {"reward_mean": statistics.fmean(rewards),
            "reward_std": statistics.stdev(rewards) if len(rewards) > 1 else 0.0,  # unbiased, as TRL's
            "zero_variance_share": sum(max(g) == min(g) for g in groups) / len(groups),
            "clipped_share": sum(clipped) / len(clipped),
            "completion_length": statistics.fmean(lengths)}


def renamed(logs: dict) -> dict:
    """Our names for the health numbers TRL logged (None where TRL had no valid value)."""
    return {ours: logs[theirs] for theirs, ours in TRL_KEYS.items() if theirs in logs}


class RlHealthLog(TrainerCallback):
    """Adds our names (`renamed`) to a GRPO training log; it must come before the callbacks that write the log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and not any(key.startswith("eval_") for key in logs):
            logs.update(renamed(logs))
