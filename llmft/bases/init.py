"""A model of any shape with random weights, fast: for benchmarks at the real size.

    llmft base init --config ../shared/fixtures/deepseek-r1-distill-qwen-1.5b/config.json \\
        --tokenizer tiny-r1 --out var/models/r1-1.5b-random

The model is built on the meta device (no memory, no init), then materialized and filled by
copying from one pool of 64M normal samples at a random offset per tensor: about a second
for 1.5B parameters, against 43 s for transformers' own init on this machine (20 s with one
normal_ per tensor).
"""

import json
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from llmft.bases.resolve import load_tokenizer

POOL_SIZE = 1 << 26  # 64M normal samples, copied at random offsets: random enough for a benchmark


def _random_pool(std: float, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return (torch.randn(POOL_SIZE, generator=torch.Generator().manual_seed(seed)) * std).to(dtype)


def _fill_from_pool(flat: torch.Tensor, pool: torch.Tensor, start: int) -> None:
    done = 0
    while done < len(flat):
        take = min(len(flat) - done, len(pool) - start)
        flat[done:done + take] = pool[start:start + take]
        done, start = done + take, 0


def init_model(config_path: Path, *, tokenizer: str, out: Path, dtype: str = "bfloat16", seed: int = 0) -> Path:
    out = Path(out)
    values = json.loads(Path(config_path).read_text())
    config = AutoConfig.for_model(**values)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.to_empty(device="cpu")
    std = getattr(config, "initializer_range", 0.02)
    pool = _random_pool(std, getattr(torch, dtype), seed)
    offsets = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            elif name.endswith(".bias"):
                param.zero_()
            else:
                _fill_from_pool(param.view(-1), pool, int(torch.randint(len(pool), (1,), generator=offsets)))
    model.tie_weights()  # buffers (rotary frequencies) are not saved: from_pretrained recomputes them
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    load_tokenizer(tokenizer).save_pretrained(out)
    return out
