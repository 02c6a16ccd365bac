"""The "auto" hyperparameters: chosen from the prepared data and the method, as OpenAI's fine-tuning "auto" is.

    length = row_length(config, train_tokens=120_000, longest_example=900)
    config, chosen = resolve_auto(config, train_rows=64, processes=1)   # chosen: {"num_epochs": 3.0, ...}

`train/run.py` calls these once the data is prepared, before Trainer's arguments are built. A field set
to a number is never changed; only the fields left "auto" (the default) are chosen, and `chosen` names them.

The rule counts packed rows, not examples: a row is what `batch_size` counts and what one forward pass
takes, and 48 short examples pack into one or two rows of 2048 tokens. Counting examples, that data
would look like 48 steps an epoch; counting rows, it is two, and three epochs of it are six steps.

- data.row_length: max_length, unless the data would fill fewer than MIN_ROWS rows of it; then rows just
  long enough for about MIN_ROWS of them (a multiple of 64 tokens, never shorter than the longest
  example). So short data gets several steps an epoch at batch 1, instead of many more epochs of
  one or two rows: the same number of updates for a third of the compute.
- batch_size: rows per device so an epoch has at least STEPS_PER_EPOCH steps when it can, between 1
  and MAX_BATCH (8, the size every shipped config and GPU memory estimate was made with).
- num_epochs: BASE_EPOCHS (3), raised until the run makes MIN_STEPS optimizer steps (a floor: a
  small set still gets enough updates to learn), at most MAX_EPOCHS; lowered for large data so a
  run sees about MAX_ROWS_SEEN rows (at least one epoch), as OpenAI lowers epochs for big sets.
- learning_rate: LoRA and QLoRA 1e-3 for a run of MIN_STEPS steps or fewer (measured: SmolLM2-135M,
  r16, a 48-example FAQ, validation loss 2.97 -> 0.13), falling as 1/sqrt(steps) to 1e-4 for long
  runs (2e-4 at about 1,000 steps, the usual LoRA rate) and as 1/sqrt(rank / 16) for larger ranks
  (their updates are larger at the same rate). Full fine-tuning moves every weight: 2e-5 for a short
  run of a 1.5B model, scaled by 1.5B / parameters and falling as 1/sqrt(steps) like LoRA's, kept
  between 1e-5 and 1e-4. Smaller models take larger rates; measured on SmolLM2-135M and the FAQ
  sample, 51 steps: 1.8e-5 (the 1.5B rate) took validation loss from 3.37 to 2.27, 5.9e-5 (scaled
  by the square root) to 1.15 with a fact hit rate of 0.099, 1e-4 (this rule) to 0.72 and 0.214.
- learning_rate of preference and RL methods (dpo, orpo, simpo, grpo): the rule above divided by
  PREFERENCE_DIVISOR (5), kept within 5e-5..2e-4 for LoRA and 1e-6..1e-5 for full weights, the
  ranges their papers and TRL's examples train in (a preference loss pushes on a margin, not on every
  token, and a large rate moves the policy far from its reference). Not yet measured here.
- logging_steps: every step up to LOG_EVERY_STEP_UP_TO steps, else about LOG_POINTS points; the last
  step is always logged (train/callbacks.py LastStepLog), so a chart is never empty.
"""

import math

from llmft.config import ConfigError
from llmft.train.config import AUTO, TrainConfig

MIN_ROWS = 16
STEPS_PER_EPOCH = 32
MAX_BATCH = 8
BASE_EPOCHS = 3
MIN_STEPS = 40
MAX_EPOCHS = 25
MAX_ROWS_SEEN = 25_000
LORA_RATE, LORA_RATE_FLOOR, LORA_RANK = 1e-3, 1e-4, 16
FULL_RATE, FULL_RATE_FLOOR, FULL_RATE_CEILING, FULL_RATE_SIZE = 2e-5, 1e-5, 1e-4, 1.5e9
PREFERENCE_DIVISOR = 5
PREFERENCE_LORA_RANGE, PREFERENCE_FULL_RANGE = (5e-5, 2e-4), (1e-6, 1e-5)
LOG_EVERY_STEP_UP_TO, LOG_POINTS = 100, 50
FIELDS = ("num_epochs", "batch_size", "learning_rate", "logging_steps")


def row_length(config: TrainConfig, *, train_tokens: int, longest_example: int) -> int:
    """Tokens per packed training row: data.row_length when set, else chosen (the module docstring)."""
    data = config.data
    if data.row_length != AUTO:
        if data.pack and data.row_length < longest_example:
            raise ConfigError(f"data.row_length {data.row_length} is shorter than the longest training example "
                              f"({longest_example} tokens); raise it or leave it auto")
        return data.row_length
    if not data.pack or train_tokens >= MIN_ROWS * data.max_length:
        return data.max_length
    length = max(longest_example, math.ceil(train_tokens / MIN_ROWS))
    return min(data.max_length, 64 * math.ceil(length / 64))


def resolve_auto(config: TrainConfig, *, train_rows: int, row_length: int, processes: int = 1,
                 parameters: int | None = None) -> tuple[TrainConfig, dict]:
    """The config with every "auto" training field chosen for `train_rows` rows of `row_length` tokens
    trained on `processes` processes, for a model of `parameters` (None: unknown, taken as 1.5B), and
    {field: value} of the fields that were chosen."""
    t = config.training
    chosen = {"row_length": row_length} if config.data.row_length == AUTO else {}
    rows_per_process = math.ceil(max(train_rows, 1) / processes)
    batch = t.batch_size
    accumulation = t.gradient_accumulation_steps
    if batch == AUTO:
        batch = chosen["batch_size"] = max(1, min(MAX_BATCH, rows_per_process // (STEPS_PER_EPOCH * accumulation)))
    per_epoch = steps_per_epoch(train_rows, batch=batch, accumulation=accumulation, processes=processes)
    epochs = t.num_epochs
    if epochs == AUTO:
        epochs = chosen["num_epochs"] = _epochs(train_rows, per_epoch)
    steps = t.max_steps or math.ceil(epochs * per_epoch)
    if t.learning_rate == AUTO:
        chosen["learning_rate"] = _learning_rate(config, steps, parameters)
    if t.logging_steps == AUTO:
        chosen["logging_steps"] = 1 if steps <= LOG_EVERY_STEP_UP_TO else steps // LOG_POINTS
    training = t.model_copy(update={k: v for k, v in chosen.items() if k in FIELDS})
    data = config.data.model_copy(update={"row_length": row_length})
    return config.model_copy(update={"training": training, "data": data}), chosen


def hyperparameters(config: TrainConfig) -> dict:
    """The values a run trained with, as the run summary, its events, the CLI and the job show them."""
    t = config.training
    return {"num_epochs": t.num_epochs, "batch_size": t.batch_size, "learning_rate": t.learning_rate,
            "logging_steps": t.logging_steps, "row_length": config.data.row_length, "max_steps": t.max_steps}


def steps_per_epoch(rows: int, *, batch: int, accumulation: int, processes: int) -> int:
    """Optimizer steps in one pass over `rows`, as Trainer counts them (the last batch may be short)."""
    return max(1, math.ceil(math.ceil(math.ceil(rows / processes) / batch) / accumulation))


def _epochs(rows: int, per_epoch: int) -> float:
    if BASE_EPOCHS * per_epoch < MIN_STEPS:
        return float(min(MAX_EPOCHS, math.ceil(MIN_STEPS / per_epoch)))
    if BASE_EPOCHS * rows > MAX_ROWS_SEEN:
        return max(1.0, round(MAX_ROWS_SEEN / rows, 2))
    return float(BASE_EPOCHS)


def _learning_rate(config: TrainConfig, steps: int, parameters: int | None) -> float:
    fewer = math.sqrt(MIN_STEPS / max(steps, MIN_STEPS))  # 1 up to MIN_STEPS steps, then 1/sqrt(steps)
    full = config.method.tuning == "full"
    if full:
        size = FULL_RATE_SIZE / (parameters or FULL_RATE_SIZE)
        rate = max(FULL_RATE_FLOOR, min(FULL_RATE_CEILING, FULL_RATE * size * fewer))
    else:
        rank = math.sqrt(LORA_RANK / max(config.method.lora.r, LORA_RANK))
        rate = max(LORA_RATE_FLOOR, LORA_RATE * fewer * rank)
    if config.method.settings is not None:  # dpo, orpo, simpo, grpo
        low, high = PREFERENCE_FULL_RANGE if full else PREFERENCE_LORA_RANGE
        rate = max(low, min(high, rate / PREFERENCE_DIVISOR))
    return _round(rate)


def _round(rate: float) -> float:
    return float(f"{rate:.2g}")  # 0.00089442... reads 0.00089
