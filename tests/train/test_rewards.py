"""GRPO rewards on crafted completions of the tiny-r1 tokenizer: the graders' scores as evaluation gives them,
the format and length terms, and a failing reward named with its record's line."""

import json

import pytest

from llmft.bases.resolve import load_tokenizer
from llmft.evaluate.graders import grade_completion, load_spec
from llmft.train.rewards import FORMAT, LENGTH, RewardError, completion_text, reward_functions

SPEC = load_spec([{"name": "total", "type": "numeric", "tolerance_abs": 0.005, "weight": 2.0},
                  {"name": "total-field", "type": "numeric", "reference_field": "metadata.answer"},
                  {"name": "format", "type": "think_format"}])
REFERENCE = "The invoice total is $42.50."
RECORD = {"metadata": {"answer": 42.5}}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer("tiny-r1")


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return tokenizer.apply_chat_template([{"role": "user", "content": "An invoice of $40.00 plus $2.50 fees?"}],
                                         add_generation_prompt=True, tokenize=False)  # ends with "<think>\n"


def ids(tokenizer, text: str, *, eos: bool = True) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])


# What the model writes after a prompt that opened the think block.
COMPLETIONS = {
    "right": ("40 + 2.50 = 42.50\n</think>\n\nThe invoice total is $42.50.", True),
    "wrong": ("40 + 2.50 = 43\n</think>\n\nThe invoice total is $43.00.", True),
    "unclosed": ("40 + 2.50 = 42.50 so the total is $42.50.", True),  # never closed: no answer at all
    "clipped": ("40 + 2.50 = 42.50\n</think>\n\nThe invoice total is $42.50.", False),  # no EOS: cut at max length
    "no_reasoning": ("</think>\n\nThe invoice total is $42.50.", True),
}


def scores(tokenizer, prompt, functions, names):
    completion_ids = [ids(tokenizer, COMPLETIONS[name][0], eos=COMPLETIONS[name][1]) for name in names]
    texts = [tokenizer.decode(i, skip_special_tokens=True) for i in completion_ids]
    columns = {"reference": [REFERENCE] * len(names), "record": [json.dumps(RECORD)] * len(names),
               "line": list(range(1, len(names) + 1))}
    return {fn.__name__: fn([prompt] * len(names), texts, completion_ids=completion_ids, **columns) for fn in functions}


def test_one_reward_per_grader_weighted_by_the_spec(tokenizer, prompt):
    functions, weights = reward_functions(SPEC, tokenizer=tokenizer, eos_ids={tokenizer.eos_token_id})
    assert [fn.__name__ for fn in functions] == ["total", "total-field", "format"] and weights == [2.0, 1.0, 1.0]
    got = scores(tokenizer, prompt, functions, list(COMPLETIONS))
    assert got["total"] == [1.0, 0.0, 0.0, 1.0, 1.0]  # the unclosed think block leaves no answer to grade
    assert got["total-field"] == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert got["format"] == [1.0, 1.0, 0.0, 0.0, 0.0]  # closed, reasoned and ended with EOS


def test_the_same_scores_as_evaluation_grades(tokenizer, prompt):
    functions, _ = reward_functions(SPEC, tokenizer=tokenizer, eos_ids={tokenizer.eos_token_id})
    got = scores(tokenizer, prompt, functions, list(COMPLETIONS))
    for i, (text, ended) in enumerate(COMPLETIONS.values()):
        whole = "<think>\n" + text  # evaluation puts back the <think> the prompt opened (evaluate/run.py _reopened)
        expected = grade_completion(SPEC, completion=whole, finished=ended, reference=REFERENCE, record=RECORD)
        assert {name: got[name][i] for name in SPEC.names} == expected


def test_completion_text_cuts_at_the_first_eos_and_reopens_the_think_block(tokenizer, prompt):
    completion = ids(tokenizer, "a\n</think>\n\nb") + ids(tokenizer, "after the end")
    text, finished, length = completion_text(tokenizer, prompt, completion, frozenset({tokenizer.eos_token_id}))
    assert text == "<think>\na\n</think>\n\nb" and finished and length == len(ids(tokenizer, "a\n</think>\n\nb")) - 1
    text, finished, _ = completion_text(tokenizer, "no think opener", ids(tokenizer, "b", eos=False), frozenset({0}))
    assert text == "b" and not finished


def test_format_and_length_terms(tokenizer, prompt):
    target = 10
    functions, weights = reward_functions(SPEC, tokenizer=tokenizer, eos_ids={tokenizer.eos_token_id}, format=0.5,
                                          length_target=target, length_penalty=0.01)
    assert [fn.__name__ for fn in functions][-2:] == [FORMAT, LENGTH] and weights[-2:] == [0.5, 0.01]
    got = scores(tokenizer, prompt, functions, list(COMPLETIONS))
    assert got[FORMAT] == [1.0, 1.0, 0.0, 0.0, 1.0]  # closed and ended; reasoning may be empty
    lengths = [len(ids(tokenizer, text, eos=False)) for text, _ in COMPLETIONS.values()]
    assert got[LENGTH] == [-float(max(0, n - target)) for n in lengths] and min(got[LENGTH]) < 0
    short = scores(tokenizer, prompt, reward_functions(SPEC, tokenizer=tokenizer, eos_ids={tokenizer.eos_token_id},
                                                       length_target=1000, length_penalty=1.0)[0], ["right"])
    assert short[LENGTH] == [0.0]


def test_terms_are_left_out_at_weight_zero_and_checked(tokenizer):
    functions, weights = reward_functions(SPEC, tokenizer=tokenizer, eos_ids={tokenizer.eos_token_id})
    assert len(functions) == len(weights) == 3
    with pytest.raises(ValueError, match="length_target"):
        reward_functions(SPEC, tokenizer=tokenizer, eos_ids={0}, length_penalty=0.1)
    clash = load_spec([{"name": "format_bonus", "type": "think_format"}])
    with pytest.raises(ValueError, match="'format_bonus' is the name of a reward term"):
        reward_functions(clash, tokenizer=tokenizer, eos_ids={0}, format=1.0)


def test_a_failing_reward_names_itself_and_the_records_line(tokenizer, prompt):
    functions, _ = reward_functions(SPEC, tokenizer=tokenizer, eos_ids={tokenizer.eos_token_id})
    by_name = {fn.__name__: fn for fn in functions}
    completion_ids = [ids(tokenizer, COMPLETIONS["right"][0])] * 2
    with pytest.raises(RewardError) as raised:
        by_name["total-field"]([prompt] * 2, ["", ""], completion_ids=completion_ids, reference=[REFERENCE] * 2,
                               record=[json.dumps(RECORD), '{"metadata": {}}'], line=[7, 12])
    assert raised.value.reward == "total-field" and raised.value.where == "the record at line 12"
    assert "reward 'total-field' failed on the record at line 12" in str(raised.value)
    assert "metadata.answer" in str(raised.value)


def test_grader_weights_are_checked_with_the_spec():
    from llmft.evaluate.graders import GraderSpecError

    with pytest.raises(GraderSpecError, match=r"graders\[0\]\.weight"):
        load_spec([{"name": "total", "type": "numeric", "weight": -1}])
    assert load_spec([{"name": "total", "type": "numeric"}]).graders[0].weight == 1.0
