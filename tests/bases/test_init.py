import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.init import init_model


def test_init_writes_a_loadable_model_of_the_given_shape(tmp_path, tiny_model_dir):
    shape = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
             "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "vocab_size": 151936, "tie_word_embeddings": False, "bos_token_id": 151646, "eos_token_id": 151643}
    (tmp_path / "config.json").write_text(json.dumps(shape))
    out = init_model(tmp_path / "config.json", tokenizer="tiny-r1", out=tmp_path / "model", dtype="bfloat16")
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == 32 and model.dtype == torch.bfloat16
    weights = model.model.layers[0].self_attn.q_proj.weight.float()
    assert 0.015 < weights.std().item() < 0.025  # initializer_range 0.02, not left empty
    assert torch.all(model.model.norm.weight == 1)
    assert torch.isfinite(model(input_ids=torch.tensor([[9707, 1879]])).logits).all()
    assert AutoTokenizer.from_pretrained(out)("Hello world!", add_special_tokens=False).input_ids == [9707, 1879, 0]
