"""The offline demo base model: a tiny Qwen2 with the real R1 tokenizer.

    llmft base tiny --out DIR

A few layers and a small hidden size, but the full 151,936-token vocabulary, so token
counts, label masks and packing behave exactly as with DeepSeek-R1-Distill-Qwen-1.5B.
Deterministic: the same seed writes byte-identical files.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

from llmft.bases.r1_tokenizer import build_r1_tokenizer
from llmft.files import fsync_file

TINY_SHAPE = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def tiny_config() -> Qwen2Config:
    return Qwen2Config(
        vocab_size=151936,
        max_position_embeddings=32768,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=151646,
        eos_token_id=151643,
        pad_token_id=None,
        use_sliding_window=False,
        torch_dtype="float32",
        **TINY_SHAPE,
    )


def build_tiny_model(out: Path, *, seed: int = 0) -> Path:
    """Write the tiny model and tokenizer to `out` atomically (temp folder, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(tiny_config())
        model.generation_config = GenerationConfig(
            bos_token_id=151646, eos_token_id=151643, do_sample=True, temperature=0.6, top_p=0.95
        )
        hf_logging.disable_progress_bar()
        model.save_pretrained(staging)
        build_r1_tokenizer().save_pretrained(staging)
        (staging / "llmft_tiny.json").write_text(json.dumps({"seed": seed, **TINY_SHAPE}, indent=1) + "\n")
        for path in staging.iterdir():
            fsync_file(path)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
