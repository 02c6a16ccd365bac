"""Issue 18 row 15: a full engine's Busy says when a place is likely to free (its Retry-After): the tokens the running
generation closest to its end has left, at the engine's recent decoding rate."""

import time

import pytest

from llmft.data.normalize import Message
from llmft.serve.backend import Busy, Target
from llmft.serve.engine import Engine
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt

BASE = Target(key="base:tiny-r1", label="tiny-r1", base_model="tiny-r1")


@pytest.mark.slow
def test_a_full_engine_says_when_a_place_frees(tokenizer):
    prompt = chat_prompt(tokenizer, [Message("user", "hi")])[0]
    engine = Engine(max_waiting=1)
    long = engine.submit(BASE, prompt, Sampling(max_new_tokens=5000, temperature=1.0, seed=0), reasoning_open=True,
                         timeout=60)
    deadline = time.monotonic() + 60
    while engine.stats["tokens"] < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    started, tokens = time.monotonic(), engine.stats["tokens"]
    with pytest.raises(Busy) as busy:
        engine.submit(BASE, prompt, Sampling(max_new_tokens=2), reasoning_open=True)
    time.sleep(1.0)
    rate = (engine.stats["tokens"] - tokens) / (time.monotonic() - started)  # one row: tokens = steps
    long.cancel()
    expected = min(60, (5000 - tokens) / rate)
    assert 1 <= busy.value.retry_after <= 60
    assert expected / 3 <= busy.value.retry_after <= expected * 3 + 1, (busy.value.retry_after, expected)
