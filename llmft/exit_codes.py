"""The exit codes of `llmft` and of the trainer processes, each said once.

    llmft train --config x.yaml; echo $?      # 0, 2, 3 or 4 below

The job runner reads a job child's code the same way (3: stopped, 4: NaN loss, 5: a reward failed), and torchrun
ranks exit with the code of their run's status, so every layer agrees on what a number means.
"""

OK = 0
ERRORS = 1  # the data has errors (the report says which), a registry or evaluation refusal, a job that failed
USAGE = 2  # bad arguments, config or model; the run was not started (or found something in the way)
STOPPED = 3  # training stopped on request (SIGTERM, cancel): a checkpoint was saved, continue with --resume
NAN_LOSS = 4  # the loss or gradient became NaN or infinite: stopped, the last good checkpoint kept
REWARD_FAILED = 5  # a GRPO reward function raised (train/rewards.py RewardError): stopped, the last checkpoint kept

_BY_STATUS = {"succeeded": OK, "stopped": STOPPED, "nan_loss": NAN_LOSS, "reward_failed": REWARD_FAILED}


def for_status(status: str) -> int:
    """The exit code of a training run that ended with `status` (RunSummary.status)."""
    return _BY_STATUS[status]
