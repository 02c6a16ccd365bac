"""Cross-entropy from hidden states, only where a label is trained, never materializing all logits.

With a 151,936-token vocabulary the output layer and the loss over full logits dominate a
small model's step. Here the logits are computed only for positions whose next token is
trained, a chunk of rows at a time, and the gradients with respect to the hidden states (and
the output weight, when it trains) are computed in the same pass, so no chunk's logits are
kept for backward. Same loss as `CrossEntropyLoss` over shifted labels, to float tolerance.
"""

import torch

IGNORE = -100
CHUNK_ROWS = 512


def trained_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of positions predicting a trained token, and those tokens (labels shifted)."""
    flat = labels.reshape(-1)
    targets = flat[1:]
    positions = torch.nonzero(targets != IGNORE, as_tuple=True)[0]
    return positions, targets[positions]


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token losses, number of correct argmax predictions) for rows of `hidden`."""
    return _LinearCrossEntropy.apply(hidden, weight, targets, bias)


_BUFFERS: dict[torch.device, torch.Tensor] = {}


def _buffer(rows: int, vocab: int, device: torch.device) -> torch.Tensor:
    """A reused fp32 [rows, vocab] scratch: allocating ~300 MB per chunk costs more in page
    faults than the softmax itself on CPU."""
    buffer = _BUFFERS.get(device)
    if buffer is None or buffer.numel() < CHUNK_ROWS * vocab:
        buffer = _BUFFERS[device] = torch.empty(CHUNK_ROWS * vocab, dtype=torch.float32, device=device)
    return buffer[: rows * vocab].view(rows, vocab)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, bias):
        with torch.autocast(device_type=hidden.device.type, enabled=False):  # dtypes are chosen here
            return _LinearCrossEntropy._forward(ctx, hidden, weight, targets, bias)

    @staticmethod
    def _forward(ctx, hidden, weight, targets, bias):
        hidden_grad = torch.empty_like(hidden) if hidden.requires_grad else None
        weight_grad = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.long, device=hidden.device)
        # CPUs without native bf16 matmul crawl through bf16 GEMMs: upcast the output layer once.
        compute = weight.float() if weight.device.type == "cpu" else weight
        hidden_in = hidden.to(compute.dtype)
        for start in range(0, hidden.shape[0], CHUNK_ROWS):
            rows = hidden_in[start:start + CHUNK_ROWS]
            target = targets[start:start + CHUNK_ROWS]
            logits = _buffer(len(rows), weight.shape[0], hidden.device)
            if compute.dtype == torch.float32:
                torch.mm(rows, compute.T, out=logits)
            else:
                logits.copy_(rows @ compute.T)
            if bias is not None:
                logits += bias.float()
            picked = logits.gather(1, target[:, None]).squeeze(1)
            row_max = logits.amax(dim=1)
            correct += (picked >= row_max).sum()  # the target is (one of) the argmax
            exps = logits.sub_(row_max[:, None]).exp_()  # in place: one chunk of memory, few passes
            total = exps.sum(dim=1)
            loss += (row_max + total.log() - picked).sum()
            if hidden_grad is None and weight_grad is None:
                continue
            probs = exps.mul_(total.reciprocal()[:, None])  # softmax
            probs[torch.arange(len(target), device=probs.device), target] -= 1.0
            probs = probs.to(compute.dtype)
            if hidden_grad is not None:
                hidden_grad[start:start + CHUNK_ROWS] = (probs @ compute).to(hidden_grad.dtype)
            if weight_grad is not None:
                weight_grad += (probs.T @ rows).float()
        ctx.save_for_backward(hidden_grad, weight_grad)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, loss_grad, _correct_grad):
        hidden_grad, weight_grad = ctx.saved_tensors
        scale = loss_grad
        return (
            hidden_grad * scale.to(hidden_grad.dtype) if hidden_grad is not None else None,
            (weight_grad * scale).to(ctx.weight_dtype) if weight_grad is not None else None,
            None,
            None,
        )
