"""A model of any shape with random weights, fast: for benchmarks at the real size.

    llmft model init --config ../shared/fixtures/deepseek-r1-distill-qwen-1.5b/config.json \\
        --tokenizer tiny-r1 --out var/models/r1-1.5b-random

The model is built on the meta device (no memory, no init), then materialized and filled
with one normal_ per tensor: seconds for 1.5B parameters instead of ~40 s of per-module init.
"""

import json
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from llmft.models.resolve import load_tokenizer


def init_model(config_path: Path, *, tokenizer: str, out: Path, dtype: str = "bfloat16", seed: int = 0) -> Path:
    out = Path(out)
    values = json.loads(Path(config_path).read_text())
    config = AutoConfig.for_model(**values)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    std = getattr(config, "initializer_range", 0.02)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            elif name.endswith(".bias"):
                param.zero_()
            else:
                param.normal_(0.0, std, generator=generator)
        for name, buffer in model.named_buffers():
            if "inv_freq" in name:
                module = model.get_submodule(name.rsplit(".", 1)[0])
                inv_freq, _ = module.rope_init_fn(module.config, "cpu")
                buffer.copy_(inv_freq)
    model.tie_weights()
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    load_tokenizer(tokenizer).save_pretrained(out)
    return out
