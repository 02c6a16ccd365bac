"""The training run's callbacks, one duty each; train/run.py lists them in the order they run.

  MetricsLog           a line in output_dir/metrics.jsonl per log
  TensorBoardLog       every logged number as a scalar in output_dir/tensorboard
  ServiceEvents        the run's progress as events for the caller's hook (jobs/child.py records them)
  EarlyStopping        the validation record (best loss, evaluations since); stops after `patience`
  NanStop              a NaN or infinite loss or gradient: stop at once, save nothing more
  StopOnRequest        a cancel or SIGTERM: save a checkpoint and stop
  EpochEnd             evaluate and save at every epoch end, unless done at this step
  CheckpointPublisher  publishes the checkpoint Trainer staged (train/checkpoints.py) and rotates
  LastStepLog          logs the last step too, whatever logging_steps, so no run ends with an empty chart
  ProgressBar          one line on the terminal

They share one `RunRecord`: the validation losses so far and why the run stopped; LlmftTrainer marks
a NaN step in it, and train/run.py reads it when training ends. Under torchrun every rank runs every
callback; the ranks agree on each stop, and only rank 0 writes files and calls the hook.
"""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

from llmft.train import checkpoints, distributed

Event = dict[str, Any]
"""One thing that happened in a run: {"type": ..., **fields}. The types and their fields:
  data_ready      train_examples, train_rows, train_tokens, validation_examples, data_sha256, cache_hit,
                  hyperparameters (train/auto.py hyperparameters), auto (the names of those chosen from the data)
  started         resumed_from (a checkpoint path or None), step, max_steps, epochs, hyperparameters
  metrics         a training log: step, epoch, time, loss, learning_rate, grad_norm, tokens_per_second, ...
  eval            a validation log: step, epoch, time, eval_loss, eval_perplexity, eval_token_accuracy, ...
  train_end       Trainer's whole-run averages: step, epoch, time, train_runtime, train_loss, ...
  early_stopping  step, best_eval_loss
  nan_loss        step, last_good_checkpoint (a checkpoint folder's name or None)
  reward_failed   step, error (train/rewards.py RewardError: the reward, the record's line, why), reward,
                  last_good_checkpoint (GRPO)
  stopping        step (a stop was requested; a checkpoint follows)
  checkpoint      step, path, eval_loss
  stopped         step
  succeeded       final_dir, summary
"""
EventHook = Callable[[Event], None]
StopCheck = Callable[[], bool]  # True once the run should stop (the job's cancel flag, SIGTERM)


@dataclass
class RunRecord:
    """What the callbacks share, and what train/run.py reads when training ends."""

    best: tuple[float, int] | None = None  # (validation loss, step) of the best evaluation
    last_eval: dict | None = None  # {"step", "eval_loss"} of the latest evaluation
    bad_evals: int = 0  # evaluations since the best one
    saved_step: int | None = None  # the step of the latest checkpoint
    stopped_by: str | None = None  # "early_stopping", "nan_loss", "stop_requested" or "reward_failed"
    nan_step: int | None = None  # the first step whose loss or gradient was NaN or infinite (LlmftTrainer)
    reward_error: str | None = None  # why a GRPO reward failed (train/rewards.py RewardError), with stopped_by

    @classmethod
    def resumed_from(cls, checkpoint: Path | None) -> "RunRecord":
        """The validation record saved with the checkpoint a run resumes from (an empty one without)."""
        if checkpoint is None:
            return cls()
        info = checkpoints.info(checkpoint)
        best = (info["best_eval_loss"], info["best_step"]) if info.get("best_eval_loss") is not None else None
        last = {"step": info["step"], "eval_loss": info["eval_loss"]} if info.get("eval_loss") is not None else None
        return cls(best=best, last_eval=last, bad_evals=info.get("bad_evals", 0), saved_step=info["step"])

    def evaluated(self, step: int, loss: float) -> bool:
        """Record a validation loss; True when it is no better than the best (a NaN or infinite loss
        is never the best, nor counted against it)."""
        self.last_eval = {"step": step, "eval_loss": loss}
        if not math.isfinite(loss):
            return False
        if self.best is None or loss < self.best[0]:
            self.best, self.bad_evals = (loss, step), 0
            return False
        self.bad_evals += 1
        return True

    def eval_loss_at(self, step: int) -> float | None:
        return self.last_eval["eval_loss"] if self.last_eval and self.last_eval["step"] == step else None


def log_line(state, logs: dict) -> dict:
    """A log as metrics.jsonl and the service's events carry it: step, epoch and time first."""
    return {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": round(time.time(), 3), **logs}


class MetricsLog(TrainerCallback):
    """Every log (training, validation, the run's averages) as one JSON line in output_dir/metrics.jsonl."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / "metrics.jsonl"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(log_line(state, logs)) + "\n")


class TensorBoardLog(TrainerCallback):
    """Every logged number as a scalar (train/..., eval/...) in `folder`, opened at the first log."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.writer = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.folder))
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                name = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
                self.writer.add_scalar(name, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ServiceEvents(TrainerCallback):
    """"started" when training begins, then each log as a "metrics", "eval" or "train_end" event."""

    def __init__(self, on_event: EventHook, *, resumed_from: Path | None, hyperparameters: dict):
        self.on_event = on_event
        self.resumed_from = str(resumed_from) if resumed_from is not None else None
        self.hyperparameters = hyperparameters

    def on_train_begin(self, args, state, control, **kwargs):
        """Here the total number of steps is known, and after a resume the step it starts from."""
        if not state.is_world_process_zero:
            return
        self.on_event({"type": "started", "resumed_from": self.resumed_from, "step": state.global_step,
                       "max_steps": state.max_steps, "epochs": args.num_train_epochs,
                       "hyperparameters": self.hyperparameters})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        kind = "eval" if any(key.startswith("eval_") for key in logs) else \
            "train_end" if "train_runtime" in logs else "metrics"  # train_end: Trainer's whole-run averages
        self.on_event({"type": kind, **log_line(state, logs)})


class EarlyStopping(TrainerCallback):
    """Keeps the validation record; stops after `patience` evaluations without a better loss (None: never).
    Every rank decides the same: the validation loss is summed over all of them."""

    def __init__(self, record: RunRecord, *, patience: int | None, on_event: EventHook):
        self.record = record
        self.patience = patience
        self.on_event = on_event

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        record = self.record
        worse = record.evaluated(state.global_step, metrics["eval_loss"])
        if worse and self.patience and record.bad_evals >= self.patience:
            record.stopped_by = "early_stopping"
            control.should_training_stop = True
            self.on_event({"type": "early_stopping", "step": state.global_step, "best_eval_loss": record.best[0]})


class NanStop(TrainerCallback):
    """Once LlmftTrainer marked a NaN or infinite loss or gradient (its update was dropped): stop, and
    never save or evaluate the weights that followed. The ranks agree, so they stop together."""

    def __init__(self, record: RunRecord, output_dir: Path, *, on_event: EventHook):
        self.record = record
        self.output_dir = Path(output_dir)
        self.on_event = on_event

    def on_step_end(self, args, state, control, **kwargs):
        if self.record.stopped_by is not None:
            return
        if distributed.all_sum([float(self.record.nan_step is not None)])[0] == 0:
            return
        last = checkpoints.latest(self.output_dir)
        self.record.stopped_by = "nan_loss"
        control.should_training_stop = True
        control.should_save = control.should_evaluate = False
        self.on_event({"type": "nan_loss", "step": state.global_step,
                       "last_good_checkpoint": last.name if last else None})

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.record.stopped_by == "nan_loss":
            control.should_save = control.should_evaluate = False


class StopOnRequest(TrainerCallback):
    """A cancel or SIGTERM (`should_stop`): save a checkpoint and stop. One rank may see it a step
    before another: they agree, and stop together."""

    def __init__(self, record: RunRecord, should_stop: StopCheck, *, on_event: EventHook):
        self.record = record
        self.should_stop = should_stop
        self.on_event = on_event

    def on_step_end(self, args, state, control, **kwargs):
        if self.record.stopped_by is not None:
            return
        if distributed.all_sum([float(self.should_stop())])[0] == 0:
            return
        self.record.stopped_by = "stop_requested"
        control.should_save = True
        control.should_training_stop = True
        self.on_event({"type": "stopping", "step": state.global_step})


class EpochEnd(TrainerCallback):
    """Evaluate (when `evaluate`) and save at every epoch end, and when max_steps ends a run, unless
    already done at this step."""

    def __init__(self, record: RunRecord, *, evaluate: bool):
        self.record = record
        self.evaluate = evaluate

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.record.stopped_by == "nan_loss":
            return
        control.should_save = self.record.saved_step != state.global_step
        evaluated = self.record.last_eval is not None and self.record.last_eval["step"] == state.global_step
        control.should_evaluate = self.evaluate and not evaluated


class CheckpointPublisher(TrainerCallback):
    """Publishes each checkpoint Trainer staged, with the validation record in its marker, then keeps
    the newest `keep` and the best (train/checkpoints.py)."""

    def __init__(self, record: RunRecord, output_dir: Path, *, keep: int, on_event: EventHook):
        self.record = record
        self.output_dir = Path(output_dir)
        self.keep = keep
        self.on_event = on_event

    def on_save(self, args, state, control, **kwargs):
        # every rank has written its part (its RNG state, its optimizer shard) before rank 0 publishes,
        # and no rank reads the checkpoints (best, rotation) before the publishing is done
        distributed.barrier()
        if state.is_world_process_zero:
            self._publish(state)
        self.record.saved_step = state.global_step
        distributed.barrier()

    def _publish(self, state) -> None:
        record = self.record
        staged = checkpoints.staging_dir(self.output_dir) / f"{checkpoints.PREFIX}{state.global_step}"
        info = {"step": state.global_step, "epoch": state.epoch,
                "eval_loss": record.eval_loss_at(state.global_step),
                "best_eval_loss": record.best[0] if record.best else None,
                "best_step": record.best[1] if record.best else None,
                "bad_evals": record.bad_evals}
        published = checkpoints.publish(staged, self.output_dir, info=info)
        checkpoints.rotate(self.output_dir, keep=self.keep, protect=best_checkpoint(self.output_dir))
        self.on_event({"type": "checkpoint", "step": state.global_step, "path": str(published),
                       "eval_loss": info["eval_loss"]})


class LastStepLog(TrainerCallback):
    """A training log at the run's last step (its end or a stop), when logging_steps did not fall on it."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_training_stop or state.global_step >= state.max_steps:
            control.should_log = True


def best_checkpoint(output_dir: Path) -> Path | None:
    """The committed checkpoint with the lowest finite validation loss, if any was evaluated."""
    scored = [(checkpoints.info(p).get("eval_loss"), p) for p in checkpoints.committed(output_dir)]
    scored = [(loss, p) for loss, p in scored if loss is not None and math.isfinite(loss)]
    return min(scored, key=lambda item: item[0])[1] if scored else None


class ProgressBar(TrainerCallback):
    """One line on the terminal: steps, ETA, loss, tokens/s."""

    def __init__(self):
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        if "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", tok_s=f"{logs.get('tokens_per_second', 0):.0f}",
                                 refresh=False)
        elif "eval_loss" in logs:
            self.bar.write(f"step {state.global_step}: validation loss {logs['eval_loss']:.4f} "
                           f"(perplexity {logs['eval_perplexity']:.2f})")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
