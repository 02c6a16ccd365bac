"""The parts of a training run that every method shares: begin, callbacks, train, end.

    run = begin(config, resume=resume, on_event=on_event, should_stop=should_stop)
    trainer = SomeTrainer(..., callbacks=callbacks(run, evaluate=..., hyperparameters=...), record=run.record)
    output = fit(trainer, run)
    return finish(run, trainer, output, config=config, data=data, chosen=chosen)

train/run.py (supervised) and train/preference.py (dpo, orpo, simpo) each prepare their data and
build their trainer between these calls; everything else holds the same for both: the output folder
and resume point, atomic checkpoints (train/checkpoints.py), metrics.jsonl, TensorBoard, events, the
NaN stop, cancel and SIGTERM (a checkpoint, status "stopped"), the final model and summary.json.
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
from transformers import Trainer, TrainerState
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import TrainOutput

from llmft import __version__
from llmft.data.prepare import Prepared
from llmft.train import checkpoints, distributed
from llmft.train.auto import hyperparameters
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
from llmft.train.preflight import preflight
from llmft.train.rewards import RewardError
from llmft.train.summary import DataSummary, RunSummary
from llmft.train.trainer import memory_stats


@dataclass
class RunResult:
    status: str  # "succeeded", "stopped", "nan_loss" or "reward_failed" (grpo)
    output_dir: Path
    final_dir: Path | None
    summary: RunSummary
    data_dir: Path  # the prepared data it trained on: train and validation splits


@dataclass
class RunData:
    """What a run trained on, as summary.json records it; each method describes its own data."""

    folder: Path  # the prepared data: train and validation splits
    summary: DataSummary
    tokenizer_sha256: str
    renderer_version: str
    reasoning_format: str | None

    @classmethod
    def prepared(cls, prepared: Prepared) -> "RunData":
        """From prepared data (data/prepare.py, or prepare_rows.py for pairs and prompts): its report and manifest."""
        return cls(
            folder=prepared.folder,
            summary=DataSummary(sha256=prepared.report["sha256"], sources=prepared.manifest["sources"],
                                folder=str(prepared.folder), train_examples=prepared.report["split"]["train"],
                                validation_examples=prepared.report["split"]["validation"]),
            tokenizer_sha256=prepared.manifest["tokenizer_sha256"],
            renderer_version=prepared.manifest["renderer_version"],
            reasoning_format=prepared.manifest.get("reasoning_format"))


class StopFlag:
    """True once SIGTERM arrived or the caller's `should_stop()` says so."""

    def __init__(self, should_stop: StopCheck | None):
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


@dataclass
class Run:
    """One run's shared state: where it writes, what it resumes from, whom it tells, when to stop."""

    output_dir: Path
    resume_from: Path | None  # the committed checkpoint it continues, with --resume
    on_event: EventHook  # a no-op on every rank but 0
    stop: StopFlag
    record: RunRecord  # what the callbacks share; read when training ends
    started: float


def begin(config: TrainConfig, *, resume: bool, on_event: EventHook | None, should_stop: StopCheck | None) -> Run:
    """Check the config, join the other ranks, and ready the output folder (metrics after the resume point go)."""
    preflight(config, resume=resume)  # under torchrun the launcher ran it already: every rank passes
    distributed.init()  # under torchrun: every rank runs the method; only rank 0 writes and reports
    on_event = on_event if (on_event and distributed.is_main()) else (lambda event: None)
    output_dir = Path(config.output.output_dir).resolve()
    resume_from = checkpoints.latest(output_dir) if resume else None
    started = time.time()
    with distributed.main_first():
        if distributed.is_main():
            output_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.clear_staging(output_dir)
            _trim_metrics(output_dir, resume_from)
    return Run(output_dir, resume_from, on_event, StopFlag(should_stop), RunRecord.resumed_from(resume_from), started)


def callbacks(run: Run, config: TrainConfig, *, evaluate: bool, progress: bool) -> list:
    """The run's callbacks, in the order they run (train/callbacks.py says what each does)."""
    return [
        MetricsLog(run.output_dir),
        TensorBoardLog(run.output_dir / "tensorboard"),
        ServiceEvents(run.on_event, resumed_from=run.resume_from, hyperparameters=hyperparameters(config)),
        EarlyStopping(run.record, patience=config.training.early_stopping_patience, on_event=run.on_event),
        NanStop(run.record, run.output_dir, on_event=run.on_event),
        StopOnRequest(run.record, run.stop, on_event=run.on_event),
        EpochEnd(run.record, evaluate=evaluate),
        CheckpointPublisher(run.record, run.output_dir, keep=config.training.save_total_limit, on_event=run.on_event),
        LastStepLog(),
        *([ProgressBar()] if progress else []),
    ]


def fit(trainer: Trainer, run: Run) -> tuple[TrainOutput, int]:
    """Train (from the resume point), SIGTERM stopping it like a cancel; Trainer's output and the tokens seen."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if run.resume_from is not None and _trained_to_the_end(run.resume_from):
        output = _restore_finished(trainer, run.resume_from)  # killed after its last step, before the final model
    else:
        with run.stop.on_sigterm():
            try:
                output = trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
            except RewardError as error:
                if distributed.world_size() > 1:
                    raise  # the other ranks wait in a collective: this rank's exit makes torchrun stop them
                output = _reward_failed(trainer, run, error)
    tokens_seen = trainer.total_tokens_seen()
    distributed.barrier()
    if distributed.is_main():
        checkpoints.clear_staging(run.output_dir)
    return output, tokens_seen


def finish(run: Run, trainer: Trainer, output: TrainOutput, *, config: TrainConfig, data: RunData,
           tokens_seen: int, chosen: dict, beta: float | None = None) -> RunResult:
    """How the run ended: stopped, NaN, or succeeded with the final model (best or last); summary.json and
    the last event. `beta`: a preference method's, recorded in the summary."""
    def summarize(status: str, final: Path | None, best: Path | None = None) -> RunSummary:
        return _summary(config, data, trainer, output, run, status=status, final=final, best=best,
                        tokens_seen=tokens_seen, chosen=chosen, beta=beta)

    if run.record.stopped_by == "stop_requested":
        summary = summarize("stopped", None)
        _write_main(run.output_dir, summary)
        run.on_event({"type": "stopped", "step": trainer.state.global_step})
        return RunResult("stopped", run.output_dir, None, summary, data.folder)
    if run.record.stopped_by == "nan_loss":
        last = checkpoints.latest(run.output_dir)
        summary = summarize("nan_loss", None)
        summary.nan_step, summary.last_good_checkpoint = run.record.nan_step, last.name if last else None
        _write_main(run.output_dir, summary)
        return RunResult("nan_loss", run.output_dir, None, summary, data.folder)
    if run.record.stopped_by == "reward_failed":
        last = checkpoints.latest(run.output_dir)
        summary = summarize("reward_failed", None)
        summary.reward_error, summary.last_good_checkpoint = run.record.reward_error, last.name if last else None
        _write_main(run.output_dir, summary)
        return RunResult("reward_failed", run.output_dir, None, summary, data.folder)

    best = best_checkpoint(run.output_dir)
    if config.output.final_model == "best" and best is not None \
            and checkpoints.info(best)["step"] != trainer.state.global_step:
        trainer._load_from_checkpoint(str(best))  # the best validation loss becomes the final model (every rank)
    final = _save_final(trainer, run.output_dir)
    summary = summarize("succeeded", final, best)
    _write_main(run.output_dir, summary)
    run.on_event({"type": "succeeded", "final_dir": str(final), "summary": summary.model_dump()})
    return RunResult("succeeded", run.output_dir, final, summary, data.folder)


def _reward_failed(trainer: Trainer, run: Run, error: RewardError) -> TrainOutput:
    """A GRPO reward raised while its step was being scored, before that step changed any weight: the run
    stops there, as a NaN stops it, and keeps its last checkpoint (the weights in memory are saved nowhere)."""
    last = checkpoints.latest(run.output_dir)
    run.record.stopped_by, run.record.reward_error = "reward_failed", str(error)
    run.on_event({"type": "reward_failed", "step": trainer.state.global_step, "reward": error.reward,
                  "error": str(error), "last_good_checkpoint": last.name if last else None})
    return TrainOutput(trainer.state.global_step, 0.0, {})


def _trained_to_the_end(checkpoint: Path) -> bool:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state["global_step"] >= state["max_steps"] > 0


def _restore_finished(trainer: Trainer, checkpoint: Path) -> TrainOutput:
    """The state of a run whose last checkpoint is its last step: Trainer would train one step more."""
    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return TrainOutput(trainer.state.global_step, 0.0, {})


def _save_final(trainer: Trainer, output_dir: Path) -> Path:
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


def _summary(config: TrainConfig, data: RunData, trainer: Trainer, output: TrainOutput, run: Run, *, status: str,
             final: Path | None, best: Path | None, tokens_seen: int, chosen: dict, beta: float | None) -> RunSummary:
    history = trainer.state.log_history
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    runtime = output.metrics.get("train_runtime", 0.0)
    return RunSummary(
        status=status,
        method=config.method.type,
        beta=beta,
        steps=trainer.state.global_step,
        epochs=trainer.state.epoch,
        first_train_loss=train_losses[0] if train_losses else None,
        final_train_loss=train_losses[-1] if train_losses else None,
        final_eval_loss=eval_losses[-1] if eval_losses else None,
        best_eval_loss=run.record.best[0] if run.record.best else None,
        best_checkpoint=best.name if best else None,
        stopped_by=run.record.stopped_by,
        tokens_seen=tokens_seen,
        train_runtime_s=round(runtime, 3),
        tokens_per_second=round(tokens_seen / max(runtime, 1e-9), 2),
        processes=distributed.world_size(),
        wall_time_s=round(time.time() - run.started, 3),
        **memory_stats(),
        final_dir=str(final) if final else None,
        tokenizer_sha256=data.tokenizer_sha256,
        renderer_version=data.renderer_version,
        reasoning_format=data.reasoning_format,
        data=data.summary,
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
