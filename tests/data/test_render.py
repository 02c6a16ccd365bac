"""The R1 renderer against the model's own templates, and the label mask token by token."""

import pytest

from llmft.data.issues import Location
from llmft.data.normalize import to_example
from llmft.data.render import GENERATION_PROMPT, render, render_prompt
from llmft.data.tokenize import IGNORE, tokenize_rendered

CONVERSATIONS = [
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "你是华信证券的客服。"}, {"role": "user", "content": "开户要多久？"},
     {"role": "assistant", "content": "一般1个交易日。"}, {"role": "user", "content": "需要什么？"},
     {"role": "assistant", "content": "身份证和银行卡。"}],
    [{"role": "user", "content": "Price of X?"}, {"role": "assistant", "content": "Let me check."},
     {"role": "tool", "content": "{\"price\": 10}"}, {"role": "tool", "content": "{\"volume\": 5}"},
     {"role": "assistant", "content": "X trades at 10."}],
]


def example(messages):
    result, issues = to_example({"messages": messages}, Location(record=1, line=1))
    assert result is not None, issues
    return result


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_without_reasoning_omit_mode_equals_the_shipped_template(messages, tokenizer, shared_fixtures):
    original = (shared_fixtures / "deepseek-r1-distill-qwen-1.5b" / "chat_template_original.jinja").read_text()
    expected = tokenizer.apply_chat_template(messages, chat_template=original, tokenize=False)
    assert render(example(messages), r1=True, think_mode="omit").text == expected


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_default_mode_adds_only_the_masked_empty_think_block(messages, tokenizer, shared_fixtures):
    original = (shared_fixtures / "deepseek-r1-distill-qwen-1.5b" / "chat_template_original.jinja").read_text()
    rendered = render(example(messages), r1=True)
    think = [s for s in rendered.segments if s.text == "<think>\n\n</think>\n\n"]
    assert len(think) == sum(m["role"] == "assistant" for m in messages)
    assert not any(s.trained for s in think)
    expected = tokenizer.apply_chat_template(messages, chat_template=original, tokenize=False)
    assert rendered.text.replace("<think>\n\n</think>\n\n", "") == expected


def test_shipped_template_deletes_reasoning_but_ours_keeps_it(tokenizer, shared_fixtures):
    original = (shared_fixtures / "deepseek-r1-distill-qwen-1.5b" / "chat_template_original.jinja").read_text()
    messages = [{"role": "user", "content": "Fee on 10,000?"},
                {"role": "assistant", "content": "<think>\n0.025% of 10,000 is 2.5, minimum 5.\n</think>\n\n5 yuan."}]
    assert "0.025%" not in tokenizer.apply_chat_template(messages, chat_template=original, tokenize=False)
    ours = render(example(messages), r1=True).text
    assert ours.endswith("<｜Assistant｜><think>\n0.025% of 10,000 is 2.5, minimum 5.\n</think>\n\n5 yuan.<｜end▁of▁sentence｜>")


def test_generation_prompt_matches_the_tokenizer_template(tokenizer):
    for messages in CONVERSATIONS:
        history = messages[:-1] if messages[-1]["role"] == "assistant" else messages
        if history[-1]["role"] == "tool":
            continue
        expected = tokenizer.apply_chat_template(history, add_generation_prompt=True, tokenize=False)
        assert render_prompt(example(history + [{"role": "assistant", "content": "x"}]).messages[:-1]) == expected
        assert expected.endswith(GENERATION_PROMPT)


def labelled(tokenizer, messages, **options):
    tokens = tokenize_rendered(render(example(messages), r1=True, **options), tokenizer)
    return [(tokenizer.decode([i]), label != IGNORE) for i, label in zip(tokens.input_ids, tokens.labels)]


def test_label_mask_token_by_token(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "Add them."},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "您好"},
    ]
    assert labelled(tokenizer, messages) == [
        ("<｜begin▁of▁sentence｜>", False), ("Be", False), (" brief", False), (".", False),
        ("<｜User｜>", False), ("2", False), ("+", False), ("2", False), ("?", False),
        ("<｜Assistant｜>", False),
        ("<think>", True), ("\n", True), ("Add", True), (" them", True), (".\n", True), ("</think>", True),
        ("\n\n", True), ("4", True), ("<｜end▁of▁sentence｜>", True),
        ("<｜User｜>", False), ("你好", False), ("<｜Assistant｜>", False),
        ("<think>", False), ("\n\n", False), ("</think>", False), ("\n\n", False),
        ("您好", True), ("<｜end▁of▁sentence｜>", True),
    ]


def test_eos_is_trained_although_pad_equals_eos(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    tokens = tokenize_rendered(render(example(CONVERSATIONS[0]), r1=True), tokenizer)
    assert tokens.input_ids[-1] == tokenizer.eos_token_id
    assert tokens.labels[-1] == tokenizer.eos_token_id


def test_think_mode_train_trains_the_empty_block(tokenizer):
    pairs = labelled(tokenizer, CONVERSATIONS[0], think_mode="train")
    assert pairs[-6:] == [("<think>", True), ("\n\n", True), ("</think>", True), ("\n\n", True), ("4", True),
                          ("<｜end▁of▁sentence｜>", True)]


def test_train_on_inputs_trains_prompt_but_not_bos(tokenizer):
    pairs = labelled(tokenizer, CONVERSATIONS[0], train_on_inputs=True)
    assert pairs[0] == ("<｜begin▁of▁sentence｜>", False)
    assert all(trained for text, trained in pairs[1:] if text not in ("<think>", "\n\n", "</think>"))


def test_weight_zero_turn_is_history_without_reasoning(tokenizer):
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "reasoning_content": "secret", "weight": 0},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    pairs = labelled(tokenizer, messages)
    assert "secret" not in "".join(text for text, _ in pairs)
    assert [text for text, trained in pairs if trained] == ["d", "<｜end▁of▁sentence｜>"]


def test_raw_text_is_trained_after_bos(tokenizer):
    result, _ = to_example({"text": "Margin call."}, Location(record=1))
    pairs = [(tokenizer.decode([i]), label != IGNORE) for i, label in
             zip(*(lambda t: (t.input_ids, t.labels))(tokenize_rendered(render(result, r1=True), tokenizer)))]
    assert pairs == [("<｜begin▁of▁sentence｜>", False), ("Margin", True), (" call", True), (".", True),
                     ("<｜end▁of▁sentence｜>", True)]


def test_other_models_render_through_their_own_template(tokenizer):
    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    original = tokenizer.chat_template
    tokenizer.chat_template = chatml
    try:
        rendered = render(example(messages), r1=False, tokenizer=tokenizer)
    finally:
        tokenizer.chat_template = original
    assert rendered.text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
    assert [s.text for s in rendered.segments if s.trained] == ["hello<|im_end|>\n"]
