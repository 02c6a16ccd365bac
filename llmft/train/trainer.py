"""Hugging Face Trainer, with the loss computed only where it trains and metrics that matter.

`LlmftTrainer` changes three things of `transformers.Trainer`:
  compute_loss  runs the model with `logits_to_keep` = the trained positions and computes the
                cross-entropy from their hidden states (train/loss.py), never all logits;
  evaluate      token-weighted validation loss, perplexity and token accuracy;
  log           adds useful tokens/s, token accuracy and memory to every training log.
What every run adds to its trainer, ours or TRL's (train/preference.py), is in `RunTrainerMixin`: it
drops the update of a step whose loss or gradient is NaN or infinite and marks the step in the run's
`RunRecord`, where the NaN stop (train/callbacks.py) finds it; it adds tokens/s, memory and system
readings to every training log; and it sends no telemetry.
"""

import math
import resource
import time

import torch
from peft import PeftModel
from transformers import Trainer
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from llmft.monitor import system
from llmft.train import distributed
from llmft.train.callbacks import RunRecord
from llmft.train.loss import linear_cross_entropy, trained_positions


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


class RunTrainerMixin:
    """Put before a Trainer class (`class X(RunTrainerMixin, DPOTrainer)`): the NaN guard, the log's
    tokens/s, tokens seen, memory and system readings, and no telemetry. The subclass calls
    `count_tokens` with the tokens each micro-batch runs through the model."""

    def __init__(self, *args, record: RunRecord, **kwargs):
        super().__init__(*args, **kwargs)
        self.record = record  # the NaN step goes there
        self.tokens_seen = 0
        self._window = {"tokens": 0, "started": time.perf_counter()}
        self._losses_finite: torch.Tensor | None = None

    def count_tokens(self, tokens: int) -> None:
        self.tokens_seen += tokens
        self._window["tokens"] += tokens

    def total_tokens_seen(self) -> int:
        """Tokens trained on by all ranks (a collective: every rank calls it)."""
        return int(distributed.all_sum([self.tokens_seen])[0])

    def _send_telemetry(self):
        """TRL's trainers ping the Hub when they start; a self-hosted run tells no one."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        finite = torch.isfinite(loss)  # no host sync here: read once per optimizer step, with the grad norm
        self._losses_finite = finite if self._losses_finite is None else self._losses_finite & finite
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        """Before the optimizer steps: a NaN or infinite loss or gradient norm drops this step's gradients
        (the optimizer then changes nothing) and marks the step, so the weights stay those of the last
        good step and the run stops without saving them (NanStop)."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        finite = bool(torch.isfinite(torch.as_tensor(grad_norm)))
        if self._losses_finite is not None:
            finite = finite and bool(self._losses_finite)
        self._losses_finite = None
        if not finite and self.record.nan_step is None:
            self.record.nan_step = self.state.global_step + 1
        if self.record.nan_step is not None:
            model.zero_grad(set_to_none=True)
        return grad_norm

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # every rank logs a training step (Trainer gathers the loss), so they sum here
            now = time.perf_counter()
            tokens, seen = distributed.all_sum([self._window["tokens"], self.tokens_seen])
            logs["tokens_per_second"] = round(tokens / max(now - self._window["started"], 1e-9), 2)
            logs["tokens_seen"] = int(seen)
            logs.update(memory_stats())
            logs.update(system.readings())
            self._window = {"tokens": 0, "started": now}
        super().log(logs, start_time)


class LlmftTrainer(RunTrainerMixin, Trainer):
    def __init__(self, *args, record: RunRecord, **kwargs):
        super().__init__(*args, record=record, **kwargs)
        self.model_accepts_loss_kwargs = True  # compute_loss divides by the tokens of the whole accumulated step
        base = self.accelerator.unwrap_model(self.model)
        base = base.get_base_model() if isinstance(base, PeftModel) else base
        self._capture = _HiddenCapture(base.get_output_embeddings())
        self._accuracy = {"trained": 0, "correct": 0}  # since the last training log

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
            self.count_tokens(inputs["input_ids"].numel())
            self._accuracy["trained"] += len(targets)
            self._accuracy["correct"] += int(correct)
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

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            trained, correct = distributed.all_sum([self._accuracy["trained"], self._accuracy["correct"]])
            logs["token_accuracy"] = round(correct / max(trained, 1), 4)
            self._accuracy = {"trained": 0, "correct": 0}
        super().log(logs, start_time)


def memory_stats() -> dict[str, float]:
    stats = {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
        stats["gpu_peak_memory_gb"] = round(peak / 2**30, 3)
        stats["gpu_memory_fraction"] = round(peak / torch.cuda.get_device_properties(0).total_memory, 4)
    return stats
