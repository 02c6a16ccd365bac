"""LlmftTrainer's loss: the logits path (FSDP, ZeRO-3) and the fused path give the same numbers."""

import pytest


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
