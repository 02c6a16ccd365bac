"""Opt-in (INFERENCE_ONE_ROW_BF16): a decoding step of a single row reads bfloat16 copies of the linear weights.

    added_bytes = attach(model)   # every nn.Linear of the model (not LoRA's own): float32 kept, a bf16 copy beside it

On a CPU, one row's decoding step is a matrix-vector product per linear layer, bound by the bytes of weights read,
and MKL runs it on one thread; the bf16 kernel reads half the bytes on every core (docs/benchmarks.md, "Where a
single stream's time goes"). So does the output layer of a lone prompt's prefill (its logits are those of the last
position only). An input of more than one token position (a prefill's layers, a batch of rows) keeps the
float32 product: there the bf16 kernels are slower on CPUs without AVX-512 BF16. Activations, norms, attention and
the KV cache stay float32; the product's result is turned back to float32. Greedy answers of a lone request can
therefore differ from float32's in their later tokens, which is why it is off by default.
"""

import types

import torch
import torch.nn.functional as F


def attach(model: torch.nn.Module) -> int:
    """Give each float32 nn.Linear of `model` a bf16 copy of its weight and the one-row forward; the bytes added."""
    added = 0
    for name, module in model.named_modules():
        if type(module) is torch.nn.Linear and "lora_" not in name and module.weight.dtype == torch.float32:
            module.register_buffer("weight_bf16", module.weight.detach().to(torch.bfloat16), persistent=False)
            module.forward = types.MethodType(_forward, module)
            added += module.weight_bf16.numel() * module.weight_bf16.element_size()
    return added


def _forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if x.shape[:-1].numel() != 1:
        return F.linear(x, self.weight, self.bias)
    out = F.linear(x.to(torch.bfloat16), self.weight_bf16).to(x.dtype)
    return out if self.bias is None else out + self.bias
