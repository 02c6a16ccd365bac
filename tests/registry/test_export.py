"""Export: base + LoRA adapter merged into one safetensors model with the same logits."""

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.registry.export import merge_adapter


def test_the_merged_model_gives_the_logits_of_base_plus_adapter(tmp_path, tiny_model_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "adapter")

    out = merge_adapter(base_model="tiny-r1", adapter_dir=tmp_path / "adapter", out=tmp_path / "merged")
    assert {p.suffix for p in out.iterdir() if p.name.startswith("model")} == {".safetensors"}
    ids = torch.tensor([[151646, 9707, 1879, 0, 151648, 198]])
    with torch.inference_mode():
        expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                             str(tmp_path / "adapter"))(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)(input_ids=ids).logits
    assert not torch.allclose(expected, plain, atol=1e-3)  # the adapter changes the output
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)
    assert (out / "tokenizer.json").is_file()
