"""Many LoRA adapters in one batch through the batched LoRA layers (serve/multi_lora.py): the same logits as PEFT's
own mixed-batch loop, adapters of different ranks and layers side by side with base rows, and in the engine each
row decodes what its adapter alone decodes with plain `generate`."""

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from llmft.data.normalize import Message
from llmft.serve.backend import Target
from llmft.serve.engine import Engine
from llmft.serve.multi_lora import install
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt

QUESTIONS = ["How do I reset my trading password?", "What fees apply to an options trade?", "账户被冻结了怎么办？",
             "Can I transfer $80,000 to another bank today?", "hi"]


def other_adapter(tiny_model_dir, folder):
    """Rank 8 on layers the shared adapters leave alone (k, o, down), scale 1 (theirs is 4)."""
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=8, target_modules=["k_proj", "o_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def loaded(tiny_model_dir, folders):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft = PeftModel.from_pretrained(model, str(folders[0]), adapter_name="a0", is_trainable=False)
    for i, folder in enumerate(folders[1:], start=1):
        peft.load_adapter(str(folder), adapter_name=f"a{i}", is_trainable=False)
    return peft.eval()


def test_batched_layers_give_peft_loops_logits(tiny_model_dir, adapters, tokenizer, tmp_path):
    folders = [*adapters, other_adapter(tiny_model_dir, tmp_path / "other")]
    model = loaded(tiny_model_dir, folders)
    prompts = [chat_prompt(tokenizer, [Message("user", q)])[0] for q in QUESTIONS]
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    names = ["a0", "a1", "a2", "__base__", "a1"]
    with torch.inference_mode():
        looped = model(input_ids=ids, attention_mask=mask, adapter_names=names).logits
        install(model)
        batched = model(input_ids=ids, attention_mask=mask, adapter_names=names).logits
    stacks = [m._llmft_stack for m in model.modules() if hasattr(m, "_llmft_stack")]
    assert stacks and all(built is not None for _, built in stacks)  # the batched path ran on every LoRA layer
    assert torch.allclose(looped, batched, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(batched[0], batched[3])  # an adapter's row is not the base's


def test_each_row_of_a_mixed_batch_decodes_what_its_adapter_alone_does(tiny_model_dir, adapters, tokenizer, greedy,
                                                                        base_model, tmp_path):
    folders = [*adapters, other_adapter(tiny_model_dir, tmp_path / "other")]
    targets = [Target(key=f"mv-{i}", label=f"bot:{i}", base_model="tiny-r1", kind="adapter", folder=f)
               for i, f in enumerate(folders)]
    targets.append(Target(key="base:tiny-r1", label="tiny-r1", base_model="tiny-r1"))
    prompts = [chat_prompt(tokenizer, [Message("user", q)])[0] for q in QUESTIONS[:len(targets)]]
    engine = Engine(max_batch=8)
    for target in targets[:-1]:  # every adapter loaded first, so the mixed batch below runs as one
        engine.submit(target, prompts[0], Sampling(max_new_tokens=1, temperature=0), reasoning_open=True).results()
    steps = engine.stats["steps"]
    generations = [engine.submit(t, p, Sampling(max_new_tokens=10, temperature=0), reasoning_open=True)
                   for t, p in zip(targets, prompts)]
    results = [g.results()[0].token_ids for g in generations]
    assert engine.stats["steps"] - steps <= 10  # one batch of four rows
    for folder, prompt, got in zip(folders, prompts, results):
        alone = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                                          str(folder)).eval()
        assert got == greedy(alone, prompt, 10)
    assert results[-1] == greedy(base_model, prompts[-1], 10)
