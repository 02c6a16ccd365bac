"""Train a model from a config: the whole run, top to bottom.

    llmft train --config config/demo.yaml [--set training.max_steps=20] [--resume]
    python -m llmft.train --config config/demo.yaml

prepare data (cached) -> choose the "auto" hyperparameters from it (train/auto.py) -> load model and
method -> Trainer -> checkpoints (atomic) -> final model (best or last) -> summary.json. The service calls `train()` in a child process
with `on_event` (progress) and `should_stop` (cancel); SIGTERM stops the same way: a
checkpoint is saved and `train` returns status "stopped" (exit code 3 from the command).
"""

import json
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerState, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import TrainOutput
from transformers.utils import logging as hf_logging

from llmft import __version__
from llmft.bases.resolve import load_tokenizer, parameter_count, resolve_model
from llmft.data.pack import PackedRows, collate_rows
from llmft.data.prepare import prepare
from llmft.train import checkpoints, distributed
from llmft.train.arguments import optimizer_class_and_kwargs, training_arguments
from llmft.train.auto import hyperparameters, resolve_auto, row_length
from llmft.train.callbacks import (
    CheckpointPublisher,
    EarlyStopping,
    EpochEnd,
    EventHook,
    LastStepLog,
    MetricsLog,
    NanStop,
    ProgressBar,
    RunRecord,
    ServiceEvents,
    StopCheck,
    StopOnRequest,
    TensorBoardLog,
    best_checkpoint,
)
from llmft.train.config import TrainConfig
from llmft.train.load import load_model
from llmft.train.preflight import preflight
from llmft.train.summary import DataSummary, RunSummary
from llmft.train.trainer import LlmftTrainer, memory_stats


@dataclass
class RunResult:
    status: str  # "succeeded", "stopped" or "nan_loss"
    output_dir: Path
    final_dir: Path | None
    summary: RunSummary
    data_dir: Path  # the prepared data it trained on: train and validation splits, tokens


def train(config: TrainConfig, *, resume: bool = False, on_event: EventHook | None = None,
          should_stop: StopCheck | None = None, progress: bool = True) -> RunResult:
    preflight(config, resume=resume)  # under torchrun the launcher ran it already: every rank passes
    distributed.init()  # under torchrun: every rank runs this function; only rank 0 writes and reports
    on_event = on_event if (on_event and distributed.is_main()) else (lambda event: None)
    output_dir = Path(config.output.output_dir).resolve()
    resume_from = checkpoints.latest(output_dir) if resume else None
    started = time.time()
    with distributed.main_first():
        if distributed.is_main():
            output_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.clear_staging(output_dir)
            _trim_metrics(output_dir, resume_from)
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
    on_event({"type": "data_ready", "train_examples": len(train_rows.examples), "train_rows": len(train_rows),
              "train_tokens": train_rows.tokens, "validation_examples": len(validation),
              "data_sha256": prepared.report["sha256"], "cache_hit": prepared.cache_hit,
              "hyperparameters": hyperparameters(config), "auto": sorted(chosen)})

    arguments = training_arguments(config, output_dir, has_validation=eval_rows is not None)
    set_seed(config.training.seed)
    hf_logging.disable_progress_bar()
    tokenizer = load_tokenizer(config.model.base_model, trust_remote_code=config.model.trust_remote_code)
    model = load_model(config)
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    stop = _StopFlag(should_stop)
    record = RunRecord.resumed_from(resume_from)  # what the callbacks share; read below when training ends
    callbacks = [
        MetricsLog(output_dir),
        TensorBoardLog(output_dir / "tensorboard"),
        ServiceEvents(on_event, resumed_from=resume_from, hyperparameters=hyperparameters(config)),
        EarlyStopping(record, patience=config.training.early_stopping_patience, on_event=on_event),
        NanStop(record, output_dir, on_event=on_event),
        StopOnRequest(record, stop, on_event=on_event),
        EpochEnd(record, evaluate=config.training.eval_per_epoch and eval_rows is not None),
        CheckpointPublisher(record, output_dir, keep=config.training.save_total_limit, on_event=on_event),
        LastStepLog(),
    ]
    trainer = LlmftTrainer(
        model=model,
        args=arguments,
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        data_collator=collate_rows,
        processing_class=tokenizer,
        callbacks=callbacks + ([ProgressBar()] if progress else []),
        optimizer_cls_and_kwargs=optimizer_class_and_kwargs(config),
        record=record,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if resume_from is not None and _trained_to_the_end(resume_from):
        output = _restore_finished(trainer, resume_from)  # killed after its last step, before the final model
    else:
        with stop.on_sigterm():
            output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    tokens_seen = trainer.total_tokens_seen()
    distributed.barrier()
    if distributed.is_main():
        checkpoints.clear_staging(output_dir)

    if record.stopped_by == "stop_requested":
        summary = _summary(config, prepared, trainer, output, started, status="stopped", final=None, recorder=record,
                           tokens_seen=tokens_seen, chosen=chosen)
        _write_main(output_dir, summary)
        on_event({"type": "stopped", "step": trainer.state.global_step})
        return RunResult("stopped", output_dir, None, summary, prepared.folder)
    if record.stopped_by == "nan_loss":
        last = checkpoints.latest(output_dir)
        summary = _summary(config, prepared, trainer, output, started, status="nan_loss", final=None, recorder=record,
                           tokens_seen=tokens_seen, chosen=chosen)
        summary.nan_step, summary.last_good_checkpoint = record.nan_step, last.name if last else None
        _write_main(output_dir, summary)
        return RunResult("nan_loss", output_dir, None, summary, prepared.folder)

    best = best_checkpoint(output_dir)
    if config.output.final_model == "best" and best is not None \
            and checkpoints.info(best)["step"] != trainer.state.global_step:
        trainer._load_from_checkpoint(str(best))  # the best validation loss becomes the final model (every rank)
    final = _save_final(trainer, output_dir)
    summary = _summary(config, prepared, trainer, output, started, status="succeeded", final=final, recorder=record,
                       best=best, tokens_seen=tokens_seen, chosen=chosen)
    _write_main(output_dir, summary)
    on_event({"type": "succeeded", "final_dir": str(final), "summary": summary.model_dump()})
    return RunResult("succeeded", output_dir, final, summary, prepared.folder)


def _trained_to_the_end(checkpoint: Path) -> bool:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state["global_step"] >= state["max_steps"] > 0


def _restore_finished(trainer: LlmftTrainer, checkpoint: Path) -> TrainOutput:
    """The state of a run whose last checkpoint is its last step: Trainer would train one step more."""
    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return TrainOutput(trainer.state.global_step, 0.0, {})


def _data_options(config: TrainConfig):
    from llmft.data.config import DataConfig

    return DataConfig(**config.data.model_dump(exclude={"train_file", "row_length"}))


def _save_final(trainer: LlmftTrainer, output_dir: Path) -> Path:
    """The final adapter (or full model) with tokenizer and config, published like a checkpoint."""
    staging = checkpoints.staging_dir(output_dir) / "final"
    trainer.save_model(str(staging))  # every rank: FSDP and ZeRO-3 gather the shards, rank 0 writes
    final = output_dir / "final"
    distributed.barrier()
    if distributed.is_main():
        trainer.processing_class.save_pretrained(str(staging))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        checkpoints.clear_staging(output_dir)
    distributed.barrier()
    return final


def _summary(config, prepared, trainer, output, started, *, status, final, recorder, tokens_seen, chosen,
             best=None) -> RunSummary:
    history = trainer.state.log_history
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    elapsed = time.time() - started
    return RunSummary(
        status=status,
        steps=trainer.state.global_step,
        epochs=trainer.state.epoch,
        first_train_loss=train_losses[0] if train_losses else None,
        final_train_loss=train_losses[-1] if train_losses else None,
        final_eval_loss=eval_losses[-1] if eval_losses else None,
        best_eval_loss=recorder.best[0] if recorder.best else None,
        best_checkpoint=best.name if best else None,
        stopped_by=recorder.stopped_by,
        tokens_seen=tokens_seen,
        train_runtime_s=round(output.metrics.get("train_runtime", 0.0), 3),
        tokens_per_second=round(tokens_seen / max(output.metrics.get("train_runtime", 0.0), 1e-9), 2),
        processes=distributed.world_size(),
        wall_time_s=round(elapsed, 3),
        **memory_stats(),
        final_dir=str(final) if final else None,
        tokenizer_sha256=prepared.manifest["tokenizer_sha256"],
        renderer_version=prepared.manifest["renderer_version"],
        reasoning_format=prepared.manifest.get("reasoning_format"),
        data=DataSummary(sha256=prepared.report["sha256"], sources=prepared.manifest["sources"],
                         folder=str(prepared.folder), train_examples=prepared.report["split"]["train"],
                         validation_examples=prepared.report["split"]["validation"]),
        config=config.model_dump(),
        hyperparameters=hyperparameters(config),
        auto=sorted(chosen),
        llmft_version=__version__,
        torch_version=torch.__version__,
    )


def _trim_metrics(output_dir: Path, resume_from: Path | None) -> None:
    """On resume, drop metrics logged after the checkpoint: those steps run again."""
    path = output_dir / "metrics.jsonl"
    if not path.exists():
        return
    if resume_from is None:
        path.unlink()
        return
    step = checkpoints.info(resume_from)["step"]
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _write_main(output_dir: Path, summary: RunSummary) -> None:
    if distributed.is_main():
        summary.write(output_dir)


class _StopFlag:
    """True once SIGTERM arrived or the caller's `should_stop()` says so."""

    def __init__(self, should_stop):
        self.should_stop = should_stop
        self.signalled = False

    def __call__(self) -> bool:
        return self.signalled or bool(self.should_stop and self.should_stop())

    @contextmanager
    def on_sigterm(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach only the main thread; the caller's should_stop still works
            return
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "signalled", True))
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
