"""Prefix caching: blocks known by their whole prefix, LRU within a byte budget, never shared across adapters; on
the tiny model, prompts that share a long system prompt decode exactly what they decode with the cache off and
what plain `generate` decodes, base and adapter alike."""

import torch
from transformers import AutoModelForCausalLM

from llmft.data.normalize import Message
from llmft.serve.backend import Target
from llmft.serve.engine import Engine
from llmft.serve.prefix_cache import PrefixCache
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt

BASE = Target(key="base:tiny-r1", label="tiny-r1", base_model="tiny-r1")
SYSTEM = ("You are the support assistant of Harbor Brokerage. Answer in two sentences at most, name the account "
          "setting or form the customer needs, never give investment advice, and say when a question needs a human "
          "agent: margin calls, frozen accounts, tax forms, transfers above $50,000 and complaints. ") * 3
QUESTIONS = ["How do I reset my trading password?", "What fees apply to an options trade?", "账户被冻结了怎么办？",
             "Can I transfer $80,000 to another bank today?"]
NS = ("base:m", "__base__")


def kv(length: int, layers: int = 2, heads: int = 2, dim: int = 4, start: float = 0.0):
    """Per layer [heads, length, dim] keys and values whose entries name their position."""
    position = torch.arange(length, dtype=torch.float32).view(1, length, 1) + start
    keys = [position.expand(heads, length, dim) + layer for layer in range(layers)]
    return keys, [k + 100 for k in keys]


def test_a_match_is_the_longest_run_of_known_full_blocks_and_leaves_a_token_to_run():
    cache = PrefixCache(budget=1 << 20, block=4)
    ids = list(range(10))
    cache.store(NS, ids, *kv(10))  # blocks 0-3 and 4-7; the tail 8-9 is not a full block
    length, past = cache.match(NS, ids + [50, 51])
    assert length == 8 and len(past) == 2
    keys, values = past[1]
    assert keys.shape == (1, 2, 8, 4) and keys[0, 0, :, 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert values[0, 0, 7, 0].item() == 108
    assert cache.match(NS, list(range(8)))[0] == 4  # all 8 known, but the last token must run
    assert cache.match(NS, [0, 1, 2, 9, 4, 5, 6, 7, 8])[0] == 0  # differs in the first block
    assert cache.match(NS, [0, 1, 2, 3, 4, 5, 9, 7, 8])[0] == 4  # the second block differs: the first still counts
    assert cache.match(("base:m", "v_other"), ids)[0] == 0  # another adapter's KV is never reused
    assert cache.match(("base:other", "__base__"), ids)[0] == 0
    assert cache.stats["hits"] == 3 and cache.stats["tokens_reused"] == 8 + 4 + 4


def test_blocks_are_dropped_least_recently_used_first_within_the_budget():
    one_block = 2 * 2 * 2 * 4 * 4 * 4  # keys and values, 2 layers, 2 heads, 4 tokens, 4 dims, 4 bytes
    cache = PrefixCache(budget=3 * one_block, block=4)
    cache.store(NS, [1, 1, 1, 1, 2, 2, 2, 2], *kv(8))
    cache.store(NS, [3, 3, 3, 3], *kv(4))
    assert cache.used == 3 * one_block
    assert cache.match(NS, [1, 1, 1, 1, 2, 2, 2, 2, 0])[0] == 8  # both blocks of the first prompt used again
    cache.store(NS, [4, 4, 4, 4], *kv(4))  # full: the least recently used block (of [3,3,3,3]) goes
    assert cache.used == 3 * one_block and cache.stats["blocks_dropped"] == 1
    assert cache.match(NS, [3, 3, 3, 3, 0])[0] == 0
    assert cache.match(NS, [1, 1, 1, 1, 2, 2, 2, 2, 0])[0] == 8
    assert PrefixCache(budget=0, block=4).match(NS, [1, 1, 1, 1, 0]) == (0, None)


def run(engine: Engine, target: Target, prompts: list[list[int]], new_tokens: int = 12) -> list[list[int]]:
    generations = [engine.submit(target, p, Sampling(max_new_tokens=new_tokens, temperature=0), reasoning_open=True)
                   for p in prompts]
    return [g.results()[0].token_ids for g in generations]


def test_shared_system_prompt_decodes_the_same_with_the_cache_on_or_off(tokenizer, base_model, greedy):
    prompts = [chat_prompt(tokenizer, [Message("system", SYSTEM), Message("user", q)])[0] for q in QUESTIONS]
    assert len(prompts[0]) > 128
    on, off = Engine(max_batch=8), Engine(max_batch=8, prefix_cache_bytes=0)
    cold = run(on, BASE, prompts[:1])  # computes and keeps the system prompt's blocks
    warm = run(on, BASE, prompts)  # every prompt starts with them
    assert on.prefixes.stats["hits"] == len(prompts)
    assert on.prefixes.stats["tokens_reused"] >= len(prompts) * 128
    assert warm == run(off, BASE, prompts) and cold[0] == warm[0]
    assert off.prefixes.stats["blocks_stored"] == 0
    assert warm == [greedy(base_model, p, 12) for p in prompts]


def test_an_adapter_never_reuses_the_base_prefix(tokenizer, tiny_model_dir, adapters, greedy):
    from peft import PeftModel

    prompts = [chat_prompt(tokenizer, [Message("system", SYSTEM), Message("user", q)])[0] for q in QUESTIONS[:2]]
    adapter = Target(key="mv-0", label="bot:1", base_model="tiny-r1", kind="adapter", folder=adapters[0])
    engine = Engine(max_batch=8)
    base_first = run(engine, BASE, prompts)
    tuned_after = run(engine, adapter, prompts)  # the base's blocks are known; the adapter's are not yet
    tuned_again = run(engine, adapter, prompts)  # now they are
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                                      str(adapters[0])).eval()
    expected = [greedy(tuned, p, 12) for p in prompts]
    assert tuned_after == expected and tuned_again == expected and base_first != expected


def test_one_tenants_prompts_never_speed_up_anothers(tokenizer):
    """A cached prefix answers faster, so a shared one would let a tenant time whether another sent that prompt."""
    from dataclasses import replace

    prompts = [chat_prompt(tokenizer, [Message("system", SYSTEM), Message("user", q)])[0] for q in QUESTIONS[:2]]
    acme, globex = replace(BASE, tenant="acme"), replace(BASE, tenant="globex")
    engine = Engine(max_batch=8)
    run(engine, acme, prompts[:1], 2)
    run(engine, globex, prompts[1:], 2)  # the same system prompt, another tenant: computed afresh
    assert engine.prefixes.stats["hits"] == 0
    run(engine, acme, prompts[1:], 2)
    assert engine.prefixes.stats["hits"] == 1
