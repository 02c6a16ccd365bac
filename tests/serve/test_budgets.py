"""Thinking budgets and loop control (serve/budgets.py) on their own and in the batched engine: at a budget of N
the engine writes `\\n</think>\\n\\n` after exactly N reasoning tokens and the answer follows, rows without a budget
in the same batch decode exactly what they decoded before, a model that opens its own think block is closed too,
and a looping generation ends with finish_reason "repetition"."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from llmft.data.normalize import Message
from llmft.serve.backend import Target
from llmft.serve.budgets import MAX_PERIOD, THINK_CLOSE_TEXT, Repetition, Thinking, effort_budget
from llmft.serve.engine import Engine
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt
from llmft.serve.text import OutputText

BASE = Target(key="base:tiny-r1", label="tiny-r1", base_model="tiny-r1")


@pytest.fixture(scope="module")
def engine():
    return Engine(max_batch=8)


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return chat_prompt(tokenizer, [Message("user", "What fees apply to an options trade?")])[0]


@pytest.fixture(scope="module")
def close_ids(tokenizer):
    return tokenizer(THINK_CLOSE_TEXT, add_special_tokens=False)["input_ids"]


def fires_at(window: int, tokens: list[int]) -> int | None:
    """The 1-based position of the token at which the detector fires, or None."""
    loop = Repetition(window)
    return next((i + 1 for i, token in enumerate(tokens) if loop.add(token)), None)


def test_the_detector_fires_once_the_window_is_one_repeated_block():
    assert fires_at(12, [1, 2, 3] * 10) == 12                      # 4 copies of a 3-token block cover 12 tokens
    assert fires_at(12, [9, 8] + [1, 2, 3] * 10) == 14             # what came before does not count
    assert fires_at(8, [5] * 20) == 8
    block = list(range(100, 100 + MAX_PERIOD))
    assert fires_at(2 * MAX_PERIOD, block * 3) == 2 * MAX_PERIOD   # the longest block it looks for
    assert fires_at(200, (block + [1]) * 10) is None               # a 33-token block: longer than it looks for
    assert fires_at(12, [1, 2, 3] * 3 + [4] + [1, 2, 3] * 3) is None  # broken before the window was covered
    assert fires_at(0, [5] * 100) is None and fires_at(1, [5] * 100) is None  # 0 (and 1): off
    assert fires_at(64, list(range(1000))) is None


def test_the_detector_costs_the_same_per_token_however_long_the_generation():
    import time

    loop = Repetition(256)
    started = time.perf_counter()
    for token in range(20_000):
        loop.add(token % 1000)
    per_token = (time.perf_counter() - started) / 20_000
    assert per_token < 1e-4, per_token  # ~32 comparisons, not a scan of the history


def test_effort_budgets_leave_half_of_max_tokens_to_the_answer():
    assert [effort_budget(effort, 100_000) for effort in ("low", "medium", "high")] == [512, 2048, 8192]
    assert effort_budget("high", 1000) == 500 and effort_budget("low", 1) == 0


def test_a_budget_closes_the_think_block_after_exactly_n_tokens_and_an_answer_follows(engine, prompt, tokenizer,
                                                                                         close_ids):
    # tiny-r1's random weights sample random tokens: they (almost) never close a think block by themselves
    for budget in (0, 1, 7):
        [result] = engine.submit(BASE, prompt, Sampling(max_new_tokens=budget + 20, temperature=1.0, seed=budget,
                                                        thinking_budget=budget), reasoning_open=True).results()
        ids = result.token_ids
        assert ids[budget:budget + len(close_ids)] == close_ids
        assert close_ids[1] not in ids[:budget]  # `</think>` came at the budget, not before
        assert result.reasoning_tokens == budget + len(close_ids)
        assert result.reasoning == tokenizer.decode(ids[:budget], skip_special_tokens=True).strip()
        assert result.content and result.content == tokenizer.decode(ids[budget + len(close_ids):],
                                                                     skip_special_tokens=True).lstrip()
        assert result.finish_reason == "length" and result.completion_tokens == budget + 20


def test_rows_without_a_budget_decode_what_they_decoded_before(engine, prompt, tiny_model_dir, close_ids):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        reference = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)[0, len(prompt):].tolist()
    plain = Sampling(max_new_tokens=24, temperature=0)
    generations = [engine.submit(BASE, prompt, sampling, reasoning_open=True) for sampling in (
        Sampling(max_new_tokens=24, temperature=0, thinking_budget=3), plain,
        Sampling(max_new_tokens=24, temperature=0, thinking_budget=0), plain)]
    budgeted, alone, closed_at_once, again = (g.results()[0] for g in generations)
    assert alone.token_ids == again.token_ids == reference
    assert alone.reasoning_tokens == 24  # never closed: every token is reasoning
    assert budgeted.token_ids[:3] == reference[:3] and budgeted.token_ids[3:6] == close_ids
    assert closed_at_once.token_ids[:3] == close_ids and closed_at_once.reasoning == ""


def test_a_model_that_opens_its_own_think_block_is_closed_at_the_budget(tokenizer, close_ids):
    """The engine's per-token path (serve/engine.py `_advance`) with scripted model tokens: the prompt does not
    end inside `<think>` (the "maybe" state), the model writes `<think>` itself."""
    written = tokenizer("\n<think>\nfirst I add the fees then the commission and it never ends",
                        add_special_tokens=False)["input_ids"]
    answer = tokenizer("The fee is 4.", add_special_tokens=False)["input_ids"]
    text = OutputText(tokenizer, reasoning_open=False)
    thinking = Thinking(inside=False, budget=5, close_ids=close_ids)
    model, tokens = iter(written), []  # what the model samples: its thoughts, then (once closed) its answer
    while (forced := thinking.forced()) is not None or (token := next(model, None)) is not None:
        token = token if forced is None else forced
        tokens.append(token)
        text.add(token)
        was_closing = thinking.closing
        thinking.add(token, text.text, forced=forced is not None)
        if thinking.closing and not was_closing:
            model = iter(answer)
    text.finish()
    opened = 2  # "\n" and "<think>"
    assert tokens[opened + 5:opened + 5 + len(close_ids)] == close_ids
    assert "".join(text.reasoning) == tokenizer.decode(written[opened:opened + 5]).strip()
    assert "".join(text.content) == "The fee is 4."
    assert thinking.state == "after" and thinking.reasoning_tokens == opened + 5 + len(close_ids)


def test_a_think_block_the_model_closes_itself_counts_up_to_its_tag(tokenizer, close_ids):
    ids = tokenizer("Two and two.\n</think>\n\nFour.", add_special_tokens=False)["input_ids"]
    text, thinking = OutputText(tokenizer, reasoning_open=True), Thinking(inside=True, budget=100, close_ids=close_ids)
    for token in ids:
        text.add(token)
        thinking.add(token, text.text)
    assert thinking.forced() is None and thinking.state == "after"
    assert thinking.reasoning_tokens == ids.index(close_ids[1]) + 1
    plain = Thinking(inside=False, budget=0, close_ids=close_ids)
    text = OutputText(tokenizer, reasoning_open=False)
    for token in tokenizer("Just an answer.", add_special_tokens=False)["input_ids"]:
        text.add(token)
        plain.add(token, text.text)
    assert plain.state == "after" and plain.reasoning_tokens == 0 and plain.forced() is None


def test_a_looping_generation_ends_with_finish_reason_repetition(engine, prompt):
    # greedy, tiny-r1 writes "\n" forever
    [looped] = engine.submit(BASE, prompt, Sampling(max_new_tokens=500, temperature=0, repetition_window=40),
                             reasoning_open=True).results()
    assert looped.finish_reason == "repetition" and looped.completion_tokens == 40
    [sampled] = engine.submit(BASE, prompt, Sampling(max_new_tokens=120, temperature=1.0, seed=3,
                                                     repetition_window=40), reasoning_open=True).results()
    assert sampled.finish_reason == "length" and sampled.completion_tokens == 120
