"""Hugging Face Trainer, with the loss computed only where it trains and metrics that matter.

`LlmftTrainer` changes three things of `transformers.Trainer`:
  compute_loss  runs the model with `logits_to_keep` = the trained positions and computes the
                cross-entropy from their hidden states (train/loss.py), never all logits;
  evaluate      token-weighted validation loss, perplexity and token accuracy;
  log           adds useful tokens/s, token accuracy and memory to every training log.
The callbacks publish checkpoints atomically, write metrics.jsonl and TensorBoard event files,
call the service's hooks, stop early (and on a NaN), and show a progress bar.
"""

import json
import math
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch
from peft import PeftModel
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from llmft.monitor import system
from llmft.train import checkpoints, distributed
from llmft.train.loss import linear_cross_entropy, trained_positions

EventHook = Callable[[dict], None]


class _HiddenCapture:
    """A pre-hook on the output layer: keep its input (the final hidden states at the kept
    positions) and hand it an empty slice, so the model never computes the logits itself."""

    def __init__(self, head: torch.nn.Module):
        self.head = head
        self.hidden: torch.Tensor | None = None
        self.active = False  # only inside compute_loss: generation elsewhere sees a normal model
        head.register_forward_pre_hook(self._hook)

    def _hook(self, _module, args):
        if not self.active:
            return None
        self.hidden = args[0]
        return (args[0][..., :0, :],)


class LlmftTrainer(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = True  # compute_loss divides by the tokens of the whole accumulated step
        base = self.accelerator.unwrap_model(self.model)
        base = base.get_base_model() if isinstance(base, PeftModel) else base
        self._capture = _HiddenCapture(base.get_output_embeddings())
        self._window = {"tokens": 0, "trained": 0, "correct": 0, "started": time.perf_counter()}
        self.tokens_seen = 0
        self.nonfinite_step: int | None = None  # the step whose loss or gradient was NaN or infinite
        self._losses_finite: torch.Tensor | None = None

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        finite = torch.isfinite(loss)  # no host sync here: read once per optimizer step, with the grad norm
        self._losses_finite = finite if self._losses_finite is None else self._losses_finite & finite
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        """Before the optimizer steps: a NaN or infinite loss or gradient norm drops this step's gradients
        (the optimizer then changes nothing) and marks the step, so the weights stay those of the last
        good step and the run stops without saving them (RunRecorder)."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        finite = bool(torch.isfinite(torch.as_tensor(grad_norm)))
        if self._losses_finite is not None:
            finite = finite and bool(self._losses_finite)
        self._losses_finite = None
        if not finite and self.nonfinite_step is None:
            self.nonfinite_step = self.state.global_step + 1
        if self.nonfinite_step is not None:
            model.zero_grad(set_to_none=True)
        return grad_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        positions, targets = trained_positions(labels)
        if self._sharded_weights():
            loss_sum, correct = self._loss_from_logits(model, inputs, positions, targets)
        else:
            self._capture.active = True
            try:
                model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"], use_cache=False,
                      logits_to_keep=positions)
            finally:
                self._capture.active = False
            hidden = self._capture.hidden.reshape(-1, self._capture.hidden.shape[-1])
            self._capture.hidden = None
            head = self._capture.head
            loss_sum, correct = linear_cross_entropy(hidden, head.weight, targets.to(hidden.device), head.bias)
        denominator = num_items_in_batch if num_items_in_batch is not None else max(len(targets), 1)
        loss = loss_sum / denominator
        if model.training and num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # num_items_in_batch counts every rank's tokens and DDP averages gradients over ranks:
            # scale back so the step equals one process taking the whole global batch
            loss = loss * self.accelerator.num_processes
        if model.training:
            self._window["tokens"] += inputs["input_ids"].numel()
            self._window["trained"] += len(targets)
            self._window["correct"] += int(correct)
            self.tokens_seen += inputs["input_ids"].numel()
        if return_outputs:
            return loss, {"loss_sum": loss_sum.detach(), "count": len(targets), "correct": correct}
        return loss

    def _sharded_weights(self) -> bool:
        """FSDP and ZeRO-3 hold only a shard of the output layer outside the model's forward, so the
        loss cannot read its weight there: the model computes the kept logits itself."""
        return self.is_fsdp_enabled or (self.is_deepspeed_enabled and is_deepspeed_zero3_enabled())

    @staticmethod
    def _loss_from_logits(model, inputs, positions, targets):
        logits = model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"], use_cache=False,
                       logits_to_keep=positions).logits
        logits = logits.reshape(-1, logits.shape[-1]).float()
        targets = targets.to(logits.device)
        loss_sum = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        return loss_sum, (logits.detach().argmax(-1) == targets).sum()

    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        model = self.model
        was_training = model.training
        model.eval()
        loss_sum, count, correct, started = 0.0, 0, 0, time.perf_counter()
        for batch in self._eval_batches(eval_dataset if eval_dataset is not None else self.eval_dataset):
            batch = self._prepare_inputs(batch)
            with self.compute_loss_context_manager():
                _, out = self.compute_loss(model, batch, return_outputs=True)
            loss_sum, count, correct = loss_sum + float(out["loss_sum"]), count + out["count"], correct + int(out["correct"])
        if was_training:
            model.train()
        loss_sum, count, correct = distributed.all_sum([loss_sum, count, correct])  # every rank, same numbers
        count, correct = int(count), int(correct)
        loss = loss_sum / max(count, 1)
        metrics = {
            f"{metric_key_prefix}_loss": loss,
            f"{metric_key_prefix}_perplexity": math.exp(min(loss, 50.0)),
            f"{metric_key_prefix}_token_accuracy": correct / max(count, 1),
            f"{metric_key_prefix}_tokens": count,
            f"{metric_key_prefix}_runtime": time.perf_counter() - started,
        }
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _eval_batches(self, dataset):
        """This rank's share of the validation rows, in batches: each row once over all ranks, no
        padding rows (a sharded loader would repeat rows to even out the ranks, and bias the loss)."""
        rows = [dataset[i] for i in distributed.shard(len(dataset))]
        size = self.args.per_device_eval_batch_size
        for start in range(0, len(rows), size):
            yield self.data_collator(rows[start:start + size])

    def total_tokens_seen(self) -> int:
        """Tokens trained on by all ranks (a collective: every rank calls it)."""
        return int(distributed.all_sum([self.tokens_seen])[0])

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # every rank logs a training step (Trainer gathers the loss), so they sum here
            window, now = self._window, time.perf_counter()
            tokens, trained, correct, seen = distributed.all_sum(
                [window["tokens"], window["trained"], window["correct"], self.tokens_seen])
            logs["tokens_per_second"] = round(tokens / max(now - window["started"], 1e-9), 2)
            logs["token_accuracy"] = round(correct / max(trained, 1), 4)
            logs["tokens_seen"] = int(seen)
            logs.update(memory_stats())
            logs.update(system.readings())
            self._window = {"tokens": 0, "trained": 0, "correct": 0, "started": now}
        super().log(logs, start_time)


def memory_stats() -> dict[str, float]:
    stats = {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
        stats["gpu_peak_memory_gb"] = round(peak / 2**30, 3)
        stats["gpu_memory_fraction"] = round(peak / torch.cuda.get_device_properties(0).total_memory, 4)
    return stats


class RunRecorder(TrainerCallback):
    """metrics.jsonl, checkpoint publishing, the service's hooks, early stopping, epoch-end eval/save."""

    def __init__(self, output_dir: Path, *, on_event: EventHook, should_stop: Callable[[], bool],
                 save_total_limit: int, patience: int | None, eval_per_epoch: bool, has_validation: bool,
                 nonfinite: Callable[[], int | None] = lambda: None):
        self.output_dir = Path(output_dir)
        self.on_event = on_event
        self.should_stop = should_stop
        self.nonfinite = nonfinite  # the trainer's nonfinite_step
        self.save_total_limit = save_total_limit
        self.patience = patience
        self.eval_per_epoch = eval_per_epoch and has_validation
        self.best: tuple[float, int] | None = None  # (validation loss, step)
        self.last_eval: dict | None = None
        self.bad_evals = 0
        self.saved_step: int | None = None
        self.stopped_by: str | None = None
        self.resumed_from: str | None = None
        self.writer = None  # TensorBoard, opened at the first log (rank 0 only)

    def restore(self, checkpoint: Path, info: dict) -> None:
        """Pick up early-stopping state from the checkpoint a run resumes from."""
        if info.get("best_eval_loss") is not None:
            self.best = (info["best_eval_loss"], info["best_step"])
        self.bad_evals = info.get("bad_evals", 0)
        self.saved_step = info["step"]
        if info.get("eval_loss") is not None:
            self.last_eval = {"step": info["step"], "eval_loss": info["eval_loss"]}
        self.resumed_from = str(checkpoint)

    def on_train_begin(self, args, state, control, **kwargs):
        """Here the total number of steps is known, and after a resume the step it starts from."""
        if not state.is_world_process_zero:
            return
        self.on_event({"type": "started", "resumed_from": self.resumed_from, "step": state.global_step,
                       "max_steps": state.max_steps, "epochs": args.num_train_epochs})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": round(time.time(), 3), **logs}
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self._tensorboard(state.global_step, logs)
        kind = "eval" if any(key.startswith("eval_") for key in logs) else \
            "train_end" if "train_runtime" in logs else "metrics"  # train_end: Trainer's whole-run averages
        self.on_event({"type": kind, **record})

    def _tensorboard(self, step: int, logs: dict) -> None:
        """Every logged number as a scalar in output_dir/tensorboard (train/..., eval/...)."""
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                name = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
                self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = metrics["eval_loss"]
        self.last_eval = {"step": state.global_step, "eval_loss": loss}
        if not math.isfinite(loss):
            return
        if self.best is None or loss < self.best[0]:
            self.best, self.bad_evals = (loss, state.global_step), 0
        else:
            self.bad_evals += 1
            if self.patience and self.bad_evals >= self.patience:  # the same on every rank: the loss is
                self.stopped_by = "early_stopping"                    # summed over all of them
                control.should_training_stop = True
                self.on_event({"type": "early_stopping", "step": state.global_step, "best_eval_loss": self.best[0]})

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_by is not None:
            return
        # one rank may see SIGTERM, a cancel or a NaN a step before another: they agree, and stop together
        stop, bad = (value > 0 for value in distributed.all_sum(
            [float(self.should_stop()), float(self.nonfinite() is not None)]))
        if bad:
            last = checkpoints.latest(self.output_dir)
            self.stopped_by = "nan_loss"
            control.should_training_stop = True
            control.should_save = control.should_evaluate = False  # never save what followed a NaN
            self.on_event({"type": "nan_loss", "step": state.global_step,
                           "last_good_checkpoint": last.name if last else None})
            return
        if stop:
            self.stopped_by = "stop_requested"
            control.should_save = True
            control.should_training_stop = True
            self.on_event({"type": "stopping", "step": state.global_step})

    def on_epoch_end(self, args, state, control, **kwargs):
        """Evaluate and save at every epoch end (and when max_steps ends a run), unless done at this step."""
        if self.stopped_by == "nan_loss":
            control.should_save = control.should_evaluate = False
            return
        control.should_save = self.saved_step != state.global_step
        evaluated = self.last_eval is not None and self.last_eval["step"] == state.global_step
        control.should_evaluate = self.eval_per_epoch and not evaluated

    def on_save(self, args, state, control, **kwargs):
        # every rank has written its part (its RNG state, its optimizer shard) before rank 0 publishes,
        # and no rank reads the checkpoints (best, rotation) before the publishing is done
        distributed.barrier()
        if state.is_world_process_zero:
            self._publish(state)
        self.saved_step = state.global_step
        distributed.barrier()

    def _publish(self, state) -> None:
        staged = checkpoints.staging_dir(self.output_dir) / f"{checkpoints.PREFIX}{state.global_step}"
        evaluated = self.last_eval if self.last_eval and self.last_eval["step"] == state.global_step else None
        info = {"step": state.global_step, "epoch": state.epoch,
                "eval_loss": evaluated["eval_loss"] if evaluated else None,
                "best_eval_loss": self.best[0] if self.best else None,
                "best_step": self.best[1] if self.best else None,
                "bad_evals": self.bad_evals}
        published = checkpoints.publish(staged, self.output_dir, info=info)
        checkpoints.rotate(self.output_dir, keep=self.save_total_limit, protect=self.best_checkpoint())
        self.on_event({"type": "checkpoint", "step": state.global_step, "path": str(published),
                       "eval_loss": info["eval_loss"]})

    def best_checkpoint(self) -> Path | None:
        scored = [(checkpoints.info(p).get("eval_loss"), p) for p in checkpoints.committed(self.output_dir)]
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
