"""The run recorder's decisions (early stopping, best checkpoint, epoch-end eval/save) with
Trainer's real state and control objects."""

import json
from pathlib import Path

import pytest
from transformers import TrainerControl, TrainerState

from llmft.train import checkpoints
from llmft.train.trainer import RunRecorder


def recorder(tmp_path, events, **overrides):
    options = dict(on_event=events.append, should_stop=lambda: False, save_total_limit=2, patience=2,
                   eval_per_epoch=True, has_validation=True)
    return RunRecorder(tmp_path, **{**options, **overrides})


def evaluate(rec, state, loss):
    control = TrainerControl()
    rec.on_evaluate(None, state, control, metrics={"eval_loss": loss})
    return control


def save(rec, tmp_path, state):
    folder = checkpoints.staging_dir(tmp_path) / f"checkpoint-{state.global_step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    rec.on_save(None, state, TrainerControl())


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    events, state = [], TrainerState()
    rec = recorder(tmp_path, events)
    for step, loss in [(10, 2.0), (20, 1.5), (30, 1.6)]:
        state.global_step = step
        assert not evaluate(rec, state, loss).should_training_stop
    state.global_step = 40
    assert evaluate(rec, state, 1.7).should_training_stop
    assert rec.stopped_by == "early_stopping" and rec.best == (1.5, 20)
    assert events[-1] == {"type": "early_stopping", "step": 40, "best_eval_loss": 1.5}


def test_rotation_never_deletes_the_best_checkpoint(tmp_path):
    events, state = [], TrainerState()
    rec = recorder(tmp_path, events, patience=None)
    for step, loss in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5), (5, 2.6)]:
        state.global_step = step
        evaluate(rec, state, loss)
        save(rec, tmp_path, state)
    kept = [p.name for p in checkpoints.committed(tmp_path)]
    assert kept == ["checkpoint-2", "checkpoint-5"]
    assert rec.best_checkpoint().name == "checkpoint-2"
    assert json.loads((tmp_path / "checkpoints" / "checkpoint-5" / "COMMITTED").read_text())["best_step"] == 2


def test_epoch_end_evaluates_and_saves_once_per_step(tmp_path):
    state = TrainerState()
    state.global_step = 7
    rec = recorder(tmp_path, [])
    control = TrainerControl()
    rec.on_epoch_end(None, state, control)
    assert control.should_save and control.should_evaluate
    evaluate(rec, state, 1.0)
    save(rec, tmp_path, state)
    control = TrainerControl()
    rec.on_epoch_end(None, state, control)
    assert not control.should_save and not control.should_evaluate


def test_a_stop_request_saves_and_stops(tmp_path):
    events, state, requested = [], TrainerState(), []
    rec = recorder(tmp_path, events, should_stop=lambda: bool(requested))
    control = TrainerControl()
    rec.on_step_end(None, state, control)
    assert not control.should_training_stop
    requested.append(True)
    rec.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop and rec.stopped_by == "stop_requested"


def test_restore_picks_up_early_stopping_state(tmp_path):
    rec = recorder(tmp_path, [])
    rec.restore(Path("checkpoint-30"), {"step": 30, "eval_loss": 1.6, "best_eval_loss": 1.5, "best_step": 20, "bad_evals": 1})
    state = TrainerState()
    state.global_step = 40
    assert evaluate(rec, state, 1.55).should_training_stop  # second evaluation without improvement


def test_the_logits_path_for_sharded_weights_equals_the_fused_loss(tiny_model_dir):
    """FSDP and ZeRO-3 take the kept logits from the model; DDP takes the fused loss from the hidden
    states: the same loss, the same gradients (checked here on one process: FSDP needs GPUs)."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmft.train.loss import linear_cross_entropy, trained_positions
    from llmft.train.trainer import LlmftTrainer, _HiddenCapture

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    ids = torch.randint(0, 1000, (1, 24))
    labels = ids.clone()
    labels[0, :9] = -100
    inputs = {"input_ids": ids, "position_ids": torch.arange(24)[None]}
    positions, targets = trained_positions(labels)

    logits_loss, logits_correct = LlmftTrainer._loss_from_logits(model, inputs, positions, targets)
    logits_loss.backward()
    logits_grad = model.model.layers[0].mlp.up_proj.weight.grad.clone()
    model.zero_grad()

    capture = _HiddenCapture(model.get_output_embeddings())
    capture.active = True
    model(**inputs, use_cache=False, logits_to_keep=positions)
    capture.active = False
    hidden = capture.hidden.reshape(-1, capture.hidden.shape[-1])
    head = model.get_output_embeddings()
    fused_loss, fused_correct = linear_cross_entropy(hidden, head.weight, targets, head.bias)
    fused_loss.backward()
    assert logits_loss.item() == pytest.approx(fused_loss.item(), rel=1e-5)
    assert int(logits_correct) == int(fused_correct)
    torch.testing.assert_close(model.model.layers[0].mlp.up_proj.weight.grad, logits_grad, rtol=1e-4, atol=1e-6)
