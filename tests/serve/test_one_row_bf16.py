"""INFERENCE_ONE_ROW_BF16 on the tiny model: an input of one token position goes through the bf16 copies, anything
larger through the float32 weights, bit for bit; the engine's lone request (base or adapter) decodes what plain
`generate` decodes with the same model."""

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from llmft.data.normalize import Message
from llmft.serve.backend import Target
from llmft.serve.engine import Engine
from llmft.serve.one_row_bf16 import attach
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt

BASE = Target(key="base:tiny-r1", label="tiny-r1", base_model="tiny-r1")


def patched(folder) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert attach(model) > 0
    return model


def test_one_position_reads_bf16_and_more_read_float32_exactly(tiny_model_dir, base_model):
    model = patched(tiny_model_dir)
    one, rows = torch.tensor([[151646]]), torch.tensor([[151646, 9707, 11], [151646, 3838, 13]])
    with torch.inference_mode():
        assert torch.equal(model(rows).logits, base_model(rows).logits)  # a prefill or a batch: float32 as before
        fast, exact = model(one).logits, base_model(one).logits
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    assert torch.allclose(fast, exact, atol=0.05, rtol=0.05)
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.weight.dtype == torch.float32 and layer.weight_bf16.dtype == torch.bfloat16
    assert "weight_bf16" not in model.state_dict()  # never saved


def test_a_lone_request_decodes_what_generate_decodes_with_the_same_weights(tiny_model_dir, tokenizer, adapters,
                                                                           greedy):
    prompt = chat_prompt(tokenizer, [Message("user", "How do I reset my trading password?")])[0]
    engine = Engine(max_batch=4, device="cpu", one_row_bf16=True)
    adapter = Target(key="mv-0", label="bot:0", base_model="tiny-r1", kind="adapter", folder=adapters[0])
    for target in (BASE, adapter):
        got = engine.submit(target, prompt, Sampling(max_new_tokens=12, temperature=0), reasoning_open=True)
        tokens = got.results()[0].token_ids  # first: from_pretrained in two threads at once is not safe
        model = patched(tiny_model_dir)
        if target is adapter:
            model = PeftModel.from_pretrained(model, str(adapters[0])).eval()
        assert tokens == greedy(model, prompt, 12)
    loaded = {entry["key"]: entry["bytes"] for entry in engine.loaded()}
    plain = sum(p.numel() * 4 for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    assert loaded["base:tiny-r1"] > plain  # the bf16 copies count against INFERENCE_CACHE_MB
