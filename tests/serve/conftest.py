"""The tiny model loaded once, two LoRA adapters of it, and plain greedy `generate` (the reference every engine
result is compared with)."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


@pytest.fixture(scope="session")
def base_model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def adapters(tiny_model_dir, tmp_path_factory):
    """Two LoRA adapters with random (non-zero) weights, saved as a training run saves them."""
    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"],
                            init_lora_weights=False)
        folder = tmp_path_factory.mktemp(f"adapter{seed}")
        get_peft_model(model, config).save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture(scope="session")
def greedy():
    """generate(model, prompt ids, new tokens): the new token ids of plain greedy `model.generate`."""
    def generate(model, prompt: list[int], new_tokens: int) -> list[int]:
        with torch.inference_mode():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False)
        return out[0, len(prompt):].tolist()

    return generate
