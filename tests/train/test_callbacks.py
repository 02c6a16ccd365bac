"""The run's callbacks (early stopping, NaN stop, stop on request, epoch-end eval/save, checkpoint
publishing, metrics.jsonl, TensorBoard, service events) with Trainer's real state and control objects."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import TrainerControl, TrainerState, TrainingArguments

from llmft.train import checkpoints
from llmft.train.callbacks import (
    CheckpointPublisher,
    EarlyStopping,
    EpochEnd,
    MetricsLog,
    NanStop,
    RunRecord,
    ServiceEvents,
    StopOnRequest,
    TensorBoardLog,
    best_checkpoint,
)


def state_at(step: int) -> TrainerState:
    state = TrainerState()
    state.global_step, state.epoch = step, step / 10
    return state


def evaluate(stopping: EarlyStopping, state, loss) -> TrainerControl:
    control = TrainerControl()
    stopping.on_evaluate(None, state, control, metrics={"eval_loss": loss})
    return control


def save(publisher: CheckpointPublisher, output_dir, state) -> None:
    """What Trainer does on a save: write the checkpoint into the staging folder, then call on_save."""
    folder = checkpoints.staging_dir(output_dir) / f"checkpoint-{state.global_step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    publisher.on_save(None, state, TrainerControl())


def test_early_stopping_after_patience_evaluations_without_improvement():
    events, record = [], RunRecord()
    stopping = EarlyStopping(record, patience=2, on_event=events.append)
    for step, loss in [(10, 2.0), (20, 1.5), (30, 1.6), (35, float("nan"))]:
        assert not evaluate(stopping, state_at(step), loss).should_training_stop
    assert evaluate(stopping, state_at(40), 1.7).should_training_stop
    assert record.stopped_by == "early_stopping" and record.best == (1.5, 20) and record.bad_evals == 2
    assert events == [{"type": "early_stopping", "step": 40, "best_eval_loss": 1.5}]


def test_without_patience_the_record_is_kept_and_the_run_never_stops():
    record = RunRecord()
    stopping = EarlyStopping(record, patience=None, on_event=pytest.fail)
    for step, loss in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]:
        assert not evaluate(stopping, state_at(step), loss).should_training_stop
    assert record.best == (1.0, 1) and record.bad_evals == 3 and record.last_eval == {"step": 4, "eval_loss": 4.0}


def test_rotation_never_deletes_the_best_checkpoint(tmp_path):
    events, record = [], RunRecord()
    stopping = EarlyStopping(record, patience=None, on_event=events.append)
    publisher = CheckpointPublisher(record, tmp_path, keep=2, on_event=events.append)
    for step, loss in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5), (5, 2.6)]:
        evaluate(stopping, state_at(step), loss)
        save(publisher, tmp_path, state_at(step))
    assert [p.name for p in checkpoints.committed(tmp_path)] == ["checkpoint-2", "checkpoint-5"]
    assert best_checkpoint(tmp_path).name == "checkpoint-2"
    marker = json.loads((tmp_path / "checkpoints" / "checkpoint-5" / "COMMITTED").read_text())
    assert marker["best_step"] == 2 and marker["eval_loss"] == 2.6 and marker["bad_evals"] == 3
    assert events[-1] == {"type": "checkpoint", "step": 5, "path": str(tmp_path / "checkpoints" / "checkpoint-5"),
                          "eval_loss": 2.6}
    assert record.saved_step == 5


def test_epoch_end_evaluates_and_saves_once_per_step(tmp_path):
    record, state = RunRecord(), state_at(7)
    epoch_end = EpochEnd(record, evaluate=True)
    control = TrainerControl()
    epoch_end.on_epoch_end(None, state, control)
    assert control.should_save and control.should_evaluate
    evaluate(EarlyStopping(record, patience=None, on_event=print), state, 1.0)
    save(CheckpointPublisher(record, tmp_path, keep=2, on_event=print), tmp_path, state)
    control = TrainerControl()
    epoch_end.on_epoch_end(None, state, control)
    assert not control.should_save and not control.should_evaluate


def test_a_stop_request_saves_and_stops():
    events, record, requested = [], RunRecord(), []
    stop = StopOnRequest(record, lambda: bool(requested), on_event=events.append)
    control = TrainerControl()
    stop.on_step_end(None, state_at(3), control)
    assert not control.should_training_stop
    requested.append(True)
    stop.on_step_end(None, state_at(4), control)
    assert control.should_save and control.should_training_stop and record.stopped_by == "stop_requested"
    assert events == [{"type": "stopping", "step": 4}]


def test_a_nan_stops_without_saving_and_wins_over_a_stop_request(tmp_path):
    events, record = [], RunRecord()
    save(CheckpointPublisher(record, tmp_path, keep=2, on_event=print), tmp_path, state_at(2))
    nan = NanStop(record, tmp_path, on_event=events.append)
    stop = StopOnRequest(record, lambda: True, on_event=events.append)
    epoch_end = EpochEnd(record, evaluate=True)
    control = TrainerControl()
    nan.on_step_end(None, state_at(3), control)
    assert not control.should_training_stop  # no NaN marked yet
    record.nan_step = 4  # what LlmftTrainer does when a step's loss or gradient is not finite
    control = TrainerControl(should_save=True, should_evaluate=True)  # a save and an eval were due at this step
    for callback in (nan, stop):
        callback.on_step_end(None, state_at(4), control)
    assert control.should_training_stop and not control.should_save and not control.should_evaluate
    control.should_save = True  # Trainer's epoch-end default with save_strategy "epoch"
    for callback in (nan, epoch_end):
        callback.on_epoch_end(None, state_at(4), control)
    assert not control.should_save and not control.should_evaluate
    assert record.stopped_by == "nan_loss"
    assert events == [{"type": "nan_loss", "step": 4, "last_good_checkpoint": "checkpoint-2"}]


def test_a_resumed_run_picks_up_the_validation_record(tmp_path):
    record = RunRecord()
    stopping = EarlyStopping(record, patience=2, on_event=print)
    publisher = CheckpointPublisher(record, tmp_path, keep=5, on_event=print)
    for step, loss in [(20, 1.5), (30, 1.6)]:
        evaluate(stopping, state_at(step), loss)
        save(publisher, tmp_path, state_at(step))

    resumed = RunRecord.resumed_from(checkpoints.latest(tmp_path))
    assert resumed == RunRecord(best=(1.5, 20), last_eval={"step": 30, "eval_loss": 1.6}, bad_evals=1, saved_step=30)
    assert RunRecord.resumed_from(None) == RunRecord()
    # the second evaluation without improvement, counting the one before the resume
    assert evaluate(EarlyStopping(resumed, patience=2, on_event=print), state_at(40), 1.55).should_training_stop


def test_logs_go_to_metrics_jsonl_tensorboard_and_the_service(tmp_path):
    events, state, control = [], state_at(3), TrainerControl()
    args = TrainingArguments(output_dir=str(tmp_path / "staging"), num_train_epochs=2, use_cpu=True, report_to="none")
    metrics, board, service = MetricsLog(tmp_path), TensorBoardLog(tmp_path / "tensorboard"), \
        ServiceEvents(events.append, resumed_from=tmp_path / "checkpoints" / "checkpoint-2",
                      hyperparameters={"batch_size": 1})
    state.max_steps = 10
    service.on_train_begin(args, state, control)
    for logs in ({"loss": 2.5, "learning_rate": 0.01}, {"eval_loss": 2.0, "eval_perplexity": 7.39},
                 {"train_runtime": 1.5, "train_loss": 2.4}):
        for callback in (metrics, board, service):
            callback.on_log(args, state, control, logs=logs)
    board.on_train_end(args, state, control)

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(line["step"], line["epoch"]) for line in lines] == [(3, 0.3)] * 3
    assert lines[0]["loss"] == 2.5 and lines[1]["eval_loss"] == 2.0 and lines[2]["train_runtime"] == 1.5
    assert [e["type"] for e in events] == ["started", "metrics", "eval", "train_end"]
    assert events[0] == {"type": "started", "resumed_from": str(tmp_path / "checkpoints" / "checkpoint-2"),
                         "step": 3, "max_steps": 10, "epochs": 2, "hyperparameters": {"batch_size": 1}}
    assert {k: v for k, v in events[1].items() if k != "type"} == lines[0] | {"time": events[1]["time"]}

    accumulator = EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    assert {"train/loss", "train/learning_rate", "eval/loss", "eval/perplexity", "train/train_runtime"} \
        <= set(accumulator.Tags()["scalars"])
    assert [(e.step, e.value) for e in accumulator.Scalars("eval/loss")] == [(3, 2.0)]


def test_other_ranks_write_nothing(tmp_path):
    events, state, control = [], state_at(1), TrainerControl()
    state.is_world_process_zero = False
    for callback in (MetricsLog(tmp_path), TensorBoardLog(tmp_path / "tensorboard"),
                     ServiceEvents(events.append, resumed_from=None, hyperparameters={})):
        callback.on_log(None, state, control, logs={"loss": 1.0})
    assert events == [] and not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tensorboard").exists()
