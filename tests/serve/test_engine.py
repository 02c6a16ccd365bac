"""The inference engine on the tiny model: continuous batching gives exactly what plain `generate`
gives one request at a time, adapters of one base share a batch, the memory budget evicts the least
recently used idle model, seeds repeat, limits hold."""

import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from llmft.data.normalize import Message
from llmft.serve.backend import Busy, Target
from llmft.serve.engine import Engine
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt

BASE = Target(key="base:tiny-r1", label="tiny-r1", base_model="tiny-r1")
QUESTIONS = ["hi", "How do I reset my trading password?", "Explain margin calls in two sentences, please.",
             "账户被冻结了怎么办？", "What fees apply to an options trade on the weekend?", "ok"]


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return [chat_prompt(tokenizer, [Message("user", q)])[0] for q in QUESTIONS]


def test_a_batch_with_rows_joining_and_leaving_decodes_what_generate_decodes_alone(base_model, prompts, greedy):
    engine = Engine(max_batch=8)
    budgets = [5, 17, 9, 23, 12, 7]
    first = [engine.submit(BASE, p, Sampling(max_new_tokens=b, temperature=0), reasoning_open=True)
             for p, b in zip(prompts[:4], budgets[:4])]
    time.sleep(0.3)  # the first rows are decoding when the last two join
    later = [engine.submit(BASE, p, Sampling(max_new_tokens=b, temperature=0), reasoning_open=True)
             for p, b in zip(prompts[4:], budgets[4:])]
    results = [g.results()[0] for g in first + later]
    for prompt, budget, result in zip(prompts, budgets, results):
        assert result.token_ids == greedy(base_model, prompt, budget)
        assert result.completion_tokens == budget and result.finish_reason == "length"
        assert result.prompt_tokens == len(prompt) and result.time_to_first_token > 0
    # batched: far fewer decode steps than tokens
    assert engine.stats["rows_stepped"] > 1.5 * engine.stats["steps"]


def test_adapters_of_one_base_share_a_batch_and_each_row_gets_its_own(base_model, tiny_model_dir, prompts,
                                                                         adapters, greedy):
    from peft import PeftModel

    engine = Engine(max_batch=8)
    targets = [BASE] + [Target(key=f"mv-{i}", label=f"bot:{i}", base_model="tiny-r1", kind="adapter", folder=f)
                        for i, f in enumerate(adapters)]
    generations = [engine.submit(t, prompts[1], Sampling(max_new_tokens=10, temperature=0), reasoning_open=True)
                   for t in targets]
    results = [g.results()[0].token_ids for g in generations]
    assert results[0] == greedy(base_model, prompts[1], 10)
    for folder, got in zip(adapters, results[1:]):
        fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        tuned = PeftModel.from_pretrained(fresh, str(folder)).eval()
        assert got == greedy(tuned, prompts[1], 10)
    assert results[1] != results[0] and results[2] != results[1]
    assert engine.stats["steps"] <= 10  # one batch of three rows, not three runs
    assert {e["key"] for e in engine.loaded()} == {"base:tiny-r1", "mv-0", "mv-1"}


def test_the_memory_budget_drops_the_least_recently_used_idle_adapter(tiny_model_dir, prompts, adapters):
    probe = Engine()
    probe.submit(BASE, prompts[0], Sampling(max_new_tokens=1, temperature=0), reasoning_open=True).results()
    base_bytes = probe.loaded()[0]["bytes"]
    adapter_bytes = sum(p.stat().st_size for p in adapters[0].glob("*.safetensors"))
    engine = Engine(cache_bytes=base_bytes + int(adapter_bytes * 1.5))
    for i, folder in enumerate(adapters):
        target = Target(key=f"mv-{i}", label=f"bot:{i}", base_model="tiny-r1", kind="adapter", folder=folder)
        engine.submit(target, prompts[0], Sampling(max_new_tokens=2, temperature=0), reasoning_open=True).results()
    assert [e["key"] for e in engine.loaded()] == ["base:tiny-r1", "mv-1"]
    assert engine.stats["evictions"] == 1


def test_seeds_repeat_whatever_shares_the_batch_and_n_choices_differ(prompts):
    engine = Engine()
    sampling = Sampling(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    alone = engine.submit(BASE, prompts[2], sampling, reasoning_open=True).results()[0].token_ids
    crowd = [engine.submit(BASE, p, Sampling(max_new_tokens=12, temperature=1.0), reasoning_open=True)
             for p in prompts]
    again = engine.submit(BASE, prompts[2], sampling, reasoning_open=True)
    for generation in crowd:
        generation.results()
    assert again.results()[0].token_ids == alone
    two = engine.submit(BASE, prompts[2], sampling, reasoning_open=True, n=2).results()
    assert two[0].token_ids == alone and two[1].token_ids != alone  # choice i samples with seed + i


def test_a_full_queue_is_busy_before_any_work_and_a_deadline_ends_a_generation(prompts):
    engine = Engine(max_waiting=2)
    long = engine.submit(BASE, prompts[0], Sampling(max_new_tokens=2000, temperature=0), reasoning_open=True,
                         timeout=1.0)
    with pytest.raises(Busy):
        engine.submit(BASE, prompts[1], Sampling(max_new_tokens=2, temperature=0), reasoning_open=True, n=2)
    result = long.results()[0]
    assert result.finish_reason == "length" and 0 < result.completion_tokens < 2000


def test_a_cancelled_generation_leaves_the_batch(prompts):
    engine = Engine()
    sampling = Sampling(max_new_tokens=5000, temperature=1.0, seed=0)  # greedy, the random model says only "\n"
    generation = engine.submit(BASE, prompts[0], sampling, reasoning_open=True)
    events = generation.events()
    next(events)
    generation.cancel()
    deadline = time.time() + 10
    while engine.loaded()[0]["in_use"] and time.time() < deadline:
        time.sleep(0.05)
    assert engine.loaded()[0]["in_use"] == 0 and engine.stats["tokens"] < 5000
