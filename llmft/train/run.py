"""Train a model from a config: the whole run, top to bottom.

    llmft train --config config/demo.yaml [--set training.max_steps=20] [--resume]
    python -m llmft.train --config config/demo.yaml

prepare data (cached) -> choose the "auto" hyperparameters from it (train/auto.py) -> load model and
method -> Trainer -> checkpoints (atomic) -> final model (best or last) -> summary.json. The service calls `train()` in a child process
with `on_event` (progress) and `should_stop` (cancel); SIGTERM stops the same way: a
checkpoint is saved and `train` returns status "stopped" (exit code 3 from the command).

`train` dispatches by method.type: dpo, orpo and simpo train in train/preference.py. What every method
shares (output folder, resume, callbacks, stop, final model, summary) is train/lifecycle.py.
"""

from pathlib import Path

from transformers import set_seed
from transformers.utils import logging as hf_logging

from llmft.bases.resolve import load_tokenizer, parameter_count, resolve_model
from llmft.data.pack import PackedRows, collate_rows
from llmft.data.prepare import prepare
from llmft.train import distributed
from llmft.train.arguments import optimizer_class_and_kwargs, training_arguments
from llmft.train.auto import hyperparameters, resolve_auto, row_length
from llmft.train.callbacks import EventHook, StopCheck
from llmft.train.config import PREFERENCE_METHODS, TrainConfig
from llmft.train.lifecycle import RunData, RunResult, begin, callbacks, finish, fit
from llmft.train.load import load_model
from llmft.train.trainer import LlmftTrainer


def train(config: TrainConfig, *, resume: bool = False, on_event: EventHook | None = None,
          should_stop: StopCheck | None = None, progress: bool = True) -> RunResult:
    if config.method.type in PREFERENCE_METHODS:
        from llmft.train.preference import train_preference

        return train_preference(config, resume=resume, on_event=on_event, should_stop=should_stop, progress=progress)
    if config.method.type == "grpo":
        from llmft.train.grpo import train_grpo

        return train_grpo(config, resume=resume, on_event=on_event, should_stop=should_stop, progress=progress)
    run = begin(config, resume=resume, on_event=on_event, should_stop=should_stop)
    with distributed.main_first():  # rank 0 prepares; the others then find it in the cache
        prepared = prepare(Path(config.data.train_file), model=config.model.base_model, config=_data_options(config))
    examples = prepared.tokens("train")
    lengths = [len(example) for example in examples]
    length = row_length(config, train_tokens=sum(lengths), longest_example=max(lengths, default=0))
    train_rows = PackedRows(examples, max_length=length, pack=config.data.pack)
    config, chosen = resolve_auto(config, train_rows=len(train_rows), row_length=length,
                                  processes=distributed.world_size(),
                                  parameters=parameter_count(resolve_model(config.model.base_model)))
    validation = prepared.tokens("validation")
    eval_rows = PackedRows(validation, max_length=config.data.max_length, pack=config.data.pack) if validation else None
    run.on_event({"type": "data_ready", "train_examples": len(train_rows.examples), "train_rows": len(train_rows),
                  "train_tokens": train_rows.tokens, "validation_examples": len(validation),
                  "data_sha256": prepared.report["sha256"], "cache_hit": prepared.cache_hit,
                  "hyperparameters": hyperparameters(config), "auto": sorted(chosen)})

    arguments = training_arguments(config, run.output_dir, has_validation=eval_rows is not None)
    set_seed(config.training.seed)
    hf_logging.disable_progress_bar()
    tokenizer = load_tokenizer(config.model.base_model, trust_remote_code=config.model.trust_remote_code)
    model = load_model(config)
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    trainer = LlmftTrainer(
        model=model,
        args=arguments,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        data_collator=collate_rows,
        processing_class=tokenizer,
        callbacks=callbacks(run, config, evaluate=config.training.eval_per_epoch and eval_rows is not None,
                            progress=progress),
        optimizer_cls_and_kwargs=optimizer_class_and_kwargs(config),
        record=run.record,
    )
    output, tokens_seen = fit(trainer, run)
    return finish(run, trainer, output, config=config, data=RunData.prepared(prepared), tokens_seen=tokens_seen,
                  chosen=chosen)


def _data_options(config: TrainConfig):
    from llmft.data.config import DataConfig

    return DataConfig(**config.data.model_dump(exclude={"train_file", "row_length"}))
