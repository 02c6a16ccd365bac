"""Preference fine-tuning: DPO, ORPO and SimPO through TRL's trainers, behind our run (train/lifecycle.py).

    llmft train --config config/dpo.yaml          # method.type: dpo (or orpo, simpo); docs/preference.md

data file -> checked pairs, split, rendered rows {prompt, chosen, rejected} as text, the prompt as serving
builds it (data/prepare_rows.py, data/preference.py) -> "auto" hyperparameters -> TRL's trainer with our model
loading (train/load.py: the base, and the LoRA adapter TRL wraps it in), our arguments (train/arguments.py)
and our callbacks -> atomic checkpoints, metrics.jsonl, events, stop and NaN stop as in supervised runs ->
final/ and summary.json (method, beta).

  dpo    trl.DPOTrainer, loss method.dpo.loss_type. With LoRA the reference is the same model with the
         adapter disabled (TRL does so when it wraps the base itself); full weights load a frozen copy.
  orpo   trl.experimental.orpo.ORPOTrainer: the chosen answer's NLL plus beta x the odds-ratio term; no reference.
  simpo  trl.experimental.cpo.CPOTrainer, loss_type simpo, cpo_alpha 0: length-normalized reward, margin gamma.

The rendered rows are written to output_dir/data (train.jsonl, validation.jsonl, report.json, manifest.json):
what the run trained on, exactly. Metrics are TRL's names: loss, rewards/chosen, rewards/rejected, rewards/accuracies,
rewards/margins, logps/..., and eval_ the same on the validation split.
"""

import json
import warnings
from pathlib import Path

from datasets import Dataset
from datasets.utils import logging as datasets_logging
from transformers import Trainer, set_seed
from transformers.utils import logging as hf_logging
from trl import DPOConfig, DPOTrainer

from llmft.bases.resolve import load_tokenizer, parameter_count, resolve_model
from llmft.data.config import DataConfig
from llmft.data.prepare import Prepared
from llmft.data.prepare_rows import prepare_rows
from llmft.train import distributed
from llmft.train.arguments import argument_values, optimizer_class_and_kwargs
from llmft.train.auto import hyperparameters, resolve_auto
from llmft.train.callbacks import EventHook, StopCheck
from llmft.train.config import TrainConfig
from llmft.train.lifecycle import Run, RunData, RunResult, begin, callbacks, finish, fit
from llmft.train.load import load_base, lora_config
from llmft.train.trainer import RunTrainerMixin

with warnings.catch_warnings():  # trl.experimental warns that its API may change: trl's version is pinned
    warnings.simplefilter("ignore")
    from trl.experimental.cpo import CPOConfig, CPOTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer


def train_preference(config: TrainConfig, *, resume: bool = False, on_event: EventHook | None = None,
                     should_stop: StopCheck | None = None, progress: bool = True) -> RunResult:
    """One dpo, orpo or simpo run, start to end; train/run.py's `train` calls it for those methods."""
    run = begin(config, resume=resume, on_event=on_event, should_stop=should_stop)
    tokenizer = load_tokenizer(config.model.base_model, trust_remote_code=config.model.trust_remote_code)
    train_rows, eval_rows, data = preference_data(config, run.output_dir / "data")
    config, chosen = resolve_auto(config, train_rows=len(train_rows), row_length=config.data.max_length,
                                  processes=distributed.world_size(),
                                  parameters=parameter_count(resolve_model(config.model.base_model)))
    chosen.pop("row_length", None)  # pairs are not packed: a pair is a row, at most max_length tokens a side
    run.on_event({"type": "data_ready", "train_examples": len(train_rows), "train_rows": len(train_rows),
                  "validation_examples": len(eval_rows), "data_sha256": data.summary.sha256,
                  "hyperparameters": hyperparameters(config), "auto": sorted(chosen)})
    set_seed(config.training.seed)
    hf_logging.disable_progress_bar()
    datasets_logging.disable_progress_bar()  # TRL maps the rows through datasets: one bar per step
    trainer = preference_trainer(config, run, tokenizer, train_rows, eval_rows or None, progress=progress)
    output, tokens_seen = fit(trainer, run)
    return finish(run, trainer, output, config=config, data=data, tokens_seen=tokens_seen, chosen=chosen,
                  beta=config.method.settings.beta)


def preference_trainer(config: TrainConfig, run: Run, tokenizer, train_rows: list[dict], eval_rows: list[dict] | None,
                       *, progress: bool = False) -> Trainer:
    """TRL's trainer for config.method.type over rows {prompt, chosen, rejected} (rendered text), with our
    model, arguments and callbacks."""
    method = config.method
    values = argument_values(config, run.output_dir, has_validation=eval_rows is not None)
    values["max_length"] = config.data.max_length
    if method.type == "dpo":
        trainer_class, args = DpoRun, DPOConfig(**values, beta=method.dpo.beta, loss_type=[method.dpo.loss_type])
    elif method.type == "orpo":
        trainer_class, args = OrpoRun, ORPOConfig(**values, beta=method.orpo.beta)
    else:  # simpo: CPO's trainer, its SimPO loss, without CPO's behaviour-cloning term
        trainer_class, args = SimpoRun, CPOConfig(**values, loss_type="simpo", beta=method.simpo.beta,
                                                  simpo_gamma=method.simpo.gamma, cpo_alpha=0.0)
    return trainer_class(
        model=load_base(config),
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),  # TRL wraps the base: DPO's reference is then the adapter disabled
        callbacks=callbacks(run, config, evaluate=config.training.eval_per_epoch and bool(eval_rows), progress=progress),
        optimizer_cls_and_kwargs=optimizer_class_and_kwargs(config),
        record=run.record,
    )


class _PreferenceRun(RunTrainerMixin):
    """Our run's parts (trainer.RunTrainerMixin) on a TRL trainer, and the tokens each batch runs through
    the model, counted from the batch's attention masks (`masks`, named by each trainer's collator)."""

    masks: tuple[str, ...] = ()

    def __init__(self, *args, optimizer_cls_and_kwargs=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs  # LAMB: TRL's trainers do not pass it on to Trainer

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.count_tokens(sum(int(inputs[name].sum()) for name in self.masks))
        return super().training_step(model, inputs, num_items_in_batch)

    def create_model_card(self, *args, **kwargs):
        """TRL writes a README.md beside each checkpoint; a run's record is its summary.json."""


class DpoRun(_PreferenceRun, DPOTrainer):
    masks = ("attention_mask",)  # chosen and rejected sequences, stacked


class OrpoRun(_PreferenceRun, ORPOTrainer):
    masks = ("chosen_attention_mask", "rejected_attention_mask")  # each with its prompt


class SimpoRun(_PreferenceRun, CPOTrainer):
    masks = ("chosen_attention_mask", "rejected_attention_mask")


def preference_data(config: TrainConfig, folder: Path) -> tuple[list[dict], list[dict], RunData]:
    """Train and validation rows, checked, split and rendered as TRL takes them (data/prepare_rows.py), written
    to `folder` by rank 0 and read back by every rank."""
    options = DataConfig(**config.data.model_dump(exclude={"train_file", "row_length"}))
    with distributed.main_first():
        if distributed.is_main():
            prepare_rows(Path(config.data.train_file), kind="preference", model=config.model.base_model,
                         config=options, out=folder)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    rows = {split: [json.loads(line) for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
            for split in ("train", "validation")}
    return rows["train"], rows["validation"], RunData.prepared(Prepared(folder, report, manifest, cache_hit=False))
