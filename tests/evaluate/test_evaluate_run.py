"""`evaluate` on tiny-r1: the "auto" budget from the longest reference turn (reasoning and EOS counted),
batches sorted by prompt length with results in the prompts' order, and every generated example in
`samples`, base beside candidate, each text bounded.

The candidate is tiny-r1 with its weights redrawn (seeded): a real model whose greedy output depends
on the prompt, where the built tiny-r1 answers every prompt with the same newlines.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.data.config import DataConfig
from llmft.data.normalize import Message
from llmft.data.prepare import prepare
from llmft.data.render import render_prompt
from llmft.evaluate.run import (
    ANSWER_CHARS,
    MAX_NEW_TOKENS_CAP,
    MIN_NEW_TOKENS,
    _generate,
    auto_max_new_tokens,
    evaluate,
)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"

REASONING = "The price list has three sizes; Small is the first, up to 2 kg. " * 6
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
    [{"role": "user", "content": "How much is a Small parcel?"},
     {"role": "assistant", "reasoning_content": REASONING, "content": "A Small parcel costs $4.90."}],
    [{"role": "user", "content": "Where do I call? " + "Please tell me. " * 200},
     {"role": "assistant", "content": "Call 0800 555 0134 before 8:00."}],
]


def test_auto_max_new_tokens_is_one_and_a_half_times_the_longest_within_floor_and_cap():
    assert auto_max_new_tokens([10, 41, 7]) == 62  # 61.5 rounded up
    assert auto_max_new_tokens([682]) == 1023
    assert auto_max_new_tokens([3]) == auto_max_new_tokens([]) == MIN_NEW_TOKENS == 16
    assert auto_max_new_tokens([683]) == auto_max_new_tokens([50_000]) == MAX_NEW_TOKENS_CAP == 1024


@pytest.fixture(scope="module")
def scrambled(tiny_model_dir, tmp_path_factory):
    """tiny-r1 with every weight matrix redrawn from N(0, 0.5) (seed 0), saved as a full model folder."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in (p for p in model.parameters() if p.dim() > 1):
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
    folder = tmp_path_factory.mktemp("scrambled")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer, folder


def test_batches_sorted_by_length_come_back_in_the_prompts_order(scrambled):
    model, tokenizer, _ = scrambled
    questions = ["How do I send a parcel abroad, and what does a large one cost?", "Hi", "What is the maximum weight?",
                 "请问如何开通创业板交易权限？", "ok?"]
    prompts = [render_prompt([Message("user", question)]) for question in questions]
    with torch.inference_mode():
        alone = _generate(model, tokenizer, prompts, "cpu", 8, batch_size=1)
        batched = _generate(model, tokenizer, prompts, "cpu", 8, batch_size=2)
    assert len(set(alone[0])) == len(prompts)  # each prompt its own text, so a mix-up would show
    assert batched == alone


def test_evaluate_reports_the_auto_budget_and_every_example_beside_the_base(scrambled, tmp_path):
    _, tokenizer, folder = scrambled
    prepared = prepare(SAMPLE, model="tiny-r1", config=DataConfig(max_length=512))
    examples = tmp_path / "validation.jsonl"
    examples.write_text("".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in CONVERSATIONS),
                        encoding="utf-8")

    report = evaluate(base_model="tiny-r1", candidate=folder, examples=examples, max_eval_tokens=500,
                      tokens=prepared.folder / "validation.tokens.safetensors")

    # The longest reference turn is the one with reasoning; the prompt opened <think>, so it counts from there.
    turn = f"{REASONING}\n</think>\n\nA Small parcel costs $4.90."
    longest = len(tokenizer(turn, add_special_tokens=False)["input_ids"]) + 1
    assert report["max_new_tokens"] == math.ceil(1.5 * longest) and report["max_new_tokens_auto"] is True
    assert report["generated"] == len(report["samples"]) == 3
    assert {"fact_hit", "rouge_l", "bleu"} <= set(report["base"]) & set(report["candidate"])
    assert [s["reference"] for s in report["samples"]] == [m[-1]["content"] for m in CONVERSATIONS]
    assert len(report["samples"][2]["prompt"]) == ANSWER_CHARS  # 3,217 characters asked, 2,000 kept
    for sample in report["samples"]:
        assert set(sample) == {"prompt", "reference", "base", "candidate"}
        for side in (sample["base"], sample["candidate"]):
            assert set(side) == {"answer", "ended_with_eos", "rouge_l", "fact_hit"}
            assert isinstance(side["ended_with_eos"], bool) and 0.0 <= side["rouge_l"] <= 1.0
            assert len(side["answer"]) <= ANSWER_CHARS
    # "Hello." holds no fact to check; the price and the phone number are facts.
    assert report["samples"][0]["base"]["fact_hit"] is None
    assert report["samples"][1]["candidate"]["fact_hit"] == 0.0


@pytest.mark.parametrize("budget", ["long", 0, -5, 2.5])
def test_a_budget_neither_auto_nor_a_positive_integer_is_refused_before_loading(budget, tmp_path):
    with pytest.raises(ValueError, match="max_new_tokens: \"auto\" or a positive integer"):
        evaluate(base_model="tiny-r1", candidate=None, examples=tmp_path / "none.jsonl", tokens=tmp_path / "none",
                 max_new_tokens=budget)


def test_a_think_tags_fine_tune_is_prompted_as_it_is_served_and_its_base_as_shipped(smollm2_dir, tmp_path):
    from llmft.evaluate.run import _prompts, run_reasoning_of
    from llmft.serve.service import chat_prompt

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    conversations = [([Message("user", "What is 2 + 3?")], Message("assistant", "5", "2 + 3 = 5."), {})]
    contract = {"reasoning_format": "think_tags", "think_mode": "mask"}
    (candidate,), (base,) = _prompts(tokenizer, conversations, contract), _prompts(tokenizer, conversations, None)
    served, opened = chat_prompt(tokenizer, conversations[0][0], contract)
    assert tokenizer(candidate, add_special_tokens=False)["input_ids"] == served and opened
    assert candidate == base + "<think>\n"
    assert tokenizer(base, add_special_tokens=False)["input_ids"] == chat_prompt(tokenizer, conversations[0][0])[0]

    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    assert run_reasoning_of(run / "final") is None
    (run / "summary.json").write_text(json.dumps({"reasoning_format": "think_tags",
                                                  "config": {"data": {"think_mode": "mask"}}}))
    assert run_reasoning_of(run / "final") == contract
    (run / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    assert run_reasoning_of(run / "checkpoints" / "checkpoint-4") == contract
