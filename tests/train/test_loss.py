import pytest
import torch

from llmft.train import loss as loss_module
from llmft.train.loss import IGNORE, linear_cross_entropy, trained_positions


@pytest.mark.parametrize("chunk", [3, 512])
@pytest.mark.parametrize("train_weight", [False, True])
def test_equals_cross_entropy_over_shifted_labels_with_gradients(monkeypatch, chunk, train_weight):
    monkeypatch.setattr(loss_module, "CHUNK_ROWS", chunk)
    torch.manual_seed(0)
    hidden = torch.randn(1, 40, 16, requires_grad=True)
    weight = torch.randn(300, 16, requires_grad=train_weight)
    labels = torch.randint(0, 300, (1, 40))
    labels[0, :7] = IGNORE
    labels[0, 20:25] = IGNORE
    positions, targets = trained_positions(labels)
    total, correct = linear_cross_entropy(hidden.reshape(-1, 16)[positions], weight, targets)
    (total / len(targets)).backward()
    ours = (hidden.grad.clone(), weight.grad.clone() if train_weight else None)
    hidden.grad, weight.grad = None, None

    logits = hidden[0] @ weight.T
    reference = torch.nn.functional.cross_entropy(logits[:-1], labels[0, 1:], ignore_index=IGNORE)
    reference.backward()
    torch.testing.assert_close(total / len(targets), reference)
    torch.testing.assert_close(ours[0], hidden.grad)
    if train_weight:
        torch.testing.assert_close(ours[1], weight.grad)
    mask = labels[0, 1:] != IGNORE
    assert int(correct) == int((logits[:-1].argmax(-1) == labels[0, 1:])[mask].sum())


def test_positions_predict_the_next_trained_token():
    labels = torch.tensor([[IGNORE, IGNORE, 5, 6, IGNORE, 7]])
    positions, targets = trained_positions(labels)
    assert positions.tolist() == [1, 2, 4]
    assert targets.tolist() == [5, 6, 7]
