"""Generated tokens to stream deltas: reasoning apart from the answer, tags never split across
deltas, stop strings on the answer only, multi-byte characters whole."""

import pytest

from llmft.serve.sampling import Sampling, choose, generator_for
from llmft.serve.text import OutputText


def run(tokenizer, text: str, **options):
    out = OutputText(tokenizer, **options)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    deltas = []
    for token in ids:
        deltas += out.add(token)
        if out.stopped:
            break
    deltas += out.finish()
    return out, deltas


def test_reasoning_and_answer_come_apart_and_no_delta_shows_a_tag(tokenizer):
    out, deltas = run(tokenizer, "Two and two make four.\n</think>\n\nThe answer is 4.", reasoning_open=True)
    assert "".join(out.reasoning) == "Two and two make four."
    assert "".join(out.content) == "The answer is 4."
    assert all("<" not in text and "think" not in text for _, text in deltas)
    assert [channel for channel, _ in deltas] == sorted(channel for channel, _ in deltas)[::-1]  # reasoning first


def test_a_model_that_opens_its_own_think_block_is_split_too(tokenizer):
    out, _ = run(tokenizer, "<think>\nhmm\n</think>\n\n好的，已为您办理。", reasoning_open=False)
    assert ("".join(out.reasoning), "".join(out.content)) == ("hmm", "好的，已为您办理。")


def test_without_reasoning_everything_is_the_answer(tokenizer):
    out, _ = run(tokenizer, "plain answer </think> stays", reasoning_open=False, split_reasoning=False)
    assert "".join(out.content) == "plain answer </think> stays" and not out.reasoning


def test_an_unclosed_think_block_is_all_reasoning(tokenizer):
    out, _ = run(tokenizer, "still thinking about it", reasoning_open=True)
    assert "".join(out.reasoning) == "still thinking about it" and not out.content


@pytest.mark.parametrize("stop, answer", [(("\n",), "line one"), (("one",), "line "), (("zzz",), "line one\nline two")])
def test_stop_strings_end_the_answer_but_not_the_thinking(tokenizer, stop, answer):
    out, deltas = run(tokenizer, "thinking\nwith one newline\n</think>\n\nline one\nline two", reasoning_open=True,
                      stop=stop)
    assert "".join(out.reasoning) == "thinking\nwith one newline"
    assert "".join(out.content) == answer and out.stopped == (stop != ("zzz",))
    assert all(s not in text for s in stop for channel, text in deltas if channel == "content")


def test_multibyte_characters_are_never_cut(tokenizer):
    out, deltas = run(tokenizer, "</think>\n\n账户被冻结了怎么办？🙂", reasoning_open=True)
    assert "".join(out.content) == "账户被冻结了怎么办？🙂"
    assert all("\ufffd" not in text for _, text in deltas)


def test_greedy_and_nucleus_choices():
    import torch

    logits = torch.tensor([[0.0, 5.0, 1.0], [10.0, 0.0, 9.9]])
    greedy = Sampling(temperature=0)
    narrow = Sampling(temperature=1.0, top_p=0.01, seed=1)  # only the most likely token survives
    gens = [generator_for(greedy, "cpu"), generator_for(narrow, "cpu")]
    assert choose(logits, [greedy, narrow], gens) == [1, 0]
    wide = Sampling(temperature=1.0, seed=3)
    draws = {choose(logits[1:], [wide], [generator_for(wide, "cpu")])[0] for _ in range(5)}
    assert draws == {choose(logits[1:], [wide], [generator_for(wide, "cpu")])[0]}  # a seed repeats


def test_a_vanishing_temperature_is_greedy_not_an_overflow():
    import torch

    logits = torch.tensor([[0.0, 50.0, 49.0]])
    tiny = Sampling(temperature=2e-237, seed=1)
    assert choose(logits, [tiny], [generator_for(tiny, "cpu")]) == [1]


@pytest.mark.parametrize("seed", [None, 5])
def test_a_vanishing_top_p_keeps_the_most_likely_token(seed):
    import torch

    logits = torch.tensor([[0.0, 3.0, 2.9]])
    tiny = Sampling(temperature=1.6, top_p=1e-145, seed=seed)  # found by fuzzing: 1e-145 is 0 in float32
    assert choose(logits, [tiny], [generator_for(tiny, "cpu")]) == [1]
