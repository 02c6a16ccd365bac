"""Many LoRA adapters in one batch at the cost of one: each LoRA layer runs every row's own adapter in two batched
matmuls, instead of PEFT's loop over the adapters present (a gather, two matmuls and a scatter for each, at every
layer: with 32 adapters in a batch, thousands of small operations a decode step).

    install(peft_model)   # after every adapter load: routes each LoRA layer's mixed-batch forward through here

For a layer whose adapters are all plain LoRA (no DoRA or other variant, weights stored as (out, in)), the adapters'
A and B are stacked once, padded to the largest rank with zeros, slot 0 all zeros (the base's rows, and adapters
that do not adapt this layer): a row's LoRA output is (x A[slot]^T) B[slot]^T x scale[slot], one `bmm` each over the
whole batch. The stack is rebuilt when the layer's adapters change (a load or an eviction). Any other layer keeps
PEFT's own mixed-batch forward.
"""

import types

import torch
from peft.tuners.lora.layer import VARIANT_KWARG_KEYS
from peft.tuners.lora.layer import Linear as LoraLinear


def install(model) -> None:
    """Route the mixed-batch forward of each of `model`'s LoRA linear layers through `mixed_forward` (idempotent)."""
    for module in model.modules():
        if isinstance(module, LoraLinear) and not getattr(module, "_llmft_batched", False):
            module._mixed_batch_forward = types.MethodType(mixed_forward, module)
            module._llmft_batched = True


def mixed_forward(self: LoraLinear, x: torch.Tensor, *args, adapter_names: list[str], **kwargs) -> torch.Tensor:
    stack = _stack(self)
    if stack is None or x.dim() != 3:
        return LoraLinear._mixed_batch_forward(self, x, *args, adapter_names=adapter_names, **kwargs)
    slots, a, b, scale = stack
    index = [slots.get(name, 0) for name in adapter_names]
    result = self.base_layer(x, *args, **{k: v for k, v in kwargs.items() if k not in VARIANT_KWARG_KEYS})
    if not any(index):
        return result
    rows = torch.tensor(index, device=x.device)
    hidden = torch.bmm(x.to(a.dtype), a.index_select(0, rows).transpose(1, 2))  # [rows, tokens, rank]
    lora = torch.bmm(hidden, b.index_select(0, rows).transpose(1, 2)) * scale.index_select(0, rows).view(-1, 1, 1)
    return result + lora.to(result.dtype)


def _stack(layer: LoraLinear):
    """(slot by adapter name, A [n+1, r, in], B [n+1, out, r], scale [n+1]) for the layer's current adapters, built
    once per set of adapters; None when one of them is not plain LoRA."""
    names = tuple(sorted(layer.lora_A.keys()))
    cached = getattr(layer, "_llmft_stack", None)
    if cached is not None and cached[0] == names:
        return cached[1]
    built = None
    if names and not layer.fan_in_fan_out and not any(name in layer.lora_variant for name in names):
        weights_a = [layer.lora_A[name].weight for name in names]
        weights_b = [layer.lora_B[name].weight for name in names]
        rank = max(w.shape[0] for w in weights_a)
        a = weights_a[0].new_zeros((len(names) + 1, rank, weights_a[0].shape[1]))
        b = weights_b[0].new_zeros((len(names) + 1, weights_b[0].shape[0], rank))
        for slot, (weight_a, weight_b) in enumerate(zip(weights_a, weights_b), start=1):
            a[slot, :weight_a.shape[0]] = weight_a
            b[slot, :, :weight_b.shape[1]] = weight_b
        scale = torch.tensor([0.0, *(float(layer.scaling[name]) for name in names)], dtype=a.dtype, device=a.device)
        built = ({name: slot for slot, name in enumerate(names, start=1)}, a, b, scale)
    layer._llmft_stack = (names, built)
    return built
