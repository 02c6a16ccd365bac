"""Preference pairs and RL prompts prepared as their trainers take them, with the validation split also written as
the SFT conversations a result is evaluated on (a pair's chosen answer, a prompt's reference answer)."""

import json

import pytest

from llmft.data.config import DataConfig
from llmft.data.prepare_rows import prepare_rows
from llmft.data.store import read_tokens
from llmft.evaluate.run import _conversations

QUESTION = "An invoice of ${n}.00 is 10 days late at $2 a day. What is the fee on invoice {n}?"


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def prompts_file(tmp_path):
    records = [{"messages": [{"role": "user", "content": QUESTION.format(n=n)},
                             {"role": "assistant", "reasoning_content": "10 x $2 = $20.00", "content": "$20.00."}],
                "metadata": {"answer": 20.0}, "tolerance": 0.01} for n in range(100, 110)]
    records += [{"prompt": f"Say hello to customer {n}."} for n in range(5)]  # no reference: trained, not scored
    return write(tmp_path / "prompts.jsonl", records)


def test_prompts_validation_split_becomes_reference_conversations(tiny_model_dir, prompts_file, tmp_path):
    validation = write(tmp_path / "held_out.jsonl", [
        {"messages": [{"role": "user", "content": QUESTION.format(n=900)}], "reference_answer": "$20.00",
         "metadata": {"answer": 20.0}, "tolerance": 0.01},
        {"prompt": "Say hello to customer 900."}])
    config = DataConfig(max_length=256, validation_file=str(validation))
    prepare_rows(prompts_file, kind="prompts", model="tiny-r1", config=config, out=tmp_path / "out")
    conversations = _conversations(tmp_path / "out" / "validation.conversations.jsonl", limit=100)
    assert len(conversations) == 1  # the prompt without a reference is left out
    messages, turn, record = conversations[0]
    assert [m.role for m in messages] == ["user"] and messages[0].content == QUESTION.format(n=900)
    assert turn.content == "$20.00"
    assert record["metadata"] == {"answer": 20.0} and record["tolerance"] == 0.01  # what graders read
    tokens = read_tokens(tmp_path / "out" / "validation.conversations.tokens.safetensors")
    assert len(tokens) == 1 and tokens[0].trained_tokens > 0


def test_an_sft_record_keeps_its_reasoning_in_the_reference_conversation(tiny_model_dir, prompts_file, tmp_path):
    prepare_rows(prompts_file, kind="prompts", model="tiny-r1", config=DataConfig(max_length=256, validation_ratio=0.5),
                 out=tmp_path / "out")
    rows = (tmp_path / "out" / "validation.jsonl").read_text().splitlines()
    conversations = _conversations(tmp_path / "out" / "validation.conversations.jsonl", limit=100)
    with_reference = [row for row in map(json.loads, rows) if row["reference"] is not None]
    assert len(conversations) == len(with_reference) >= 1
    assert all(turn.reasoning == "10 x $2 = $20.00" and turn.content == "$20.00." for _, turn, _ in conversations)


def test_pairs_validation_split_is_the_prompt_with_its_chosen_answer(tiny_model_dir, tmp_path):
    pairs = [{"prompt": f"Which plan fits team {n}?", "chosen": f"The Team plan, for team {n}.",
              "rejected": "Plans vary a lot and it depends on many things, so it is hard to say.",
              "metadata": {"team": n}} for n in range(20)]
    prepare_rows(write(tmp_path / "pairs.jsonl", pairs), kind="preference", model="tiny-r1",
                 config=DataConfig(max_length=128, validation_ratio=0.25), out=tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "validation.jsonl").read_text().splitlines()]
    conversations = _conversations(tmp_path / "out" / "validation.conversations.jsonl", limit=100)
    assert len(conversations) == len(rows) >= 1
    for (messages, turn, record), row in zip(conversations, rows):
        assert turn.content in row["chosen"] and messages[0].content in row["prompt"]
        assert record["metadata"]["team"] == int(messages[0].content.split()[-1].rstrip("?"))
    assert len(read_tokens(tmp_path / "out" / "validation.conversations.tokens.safetensors")) == len(rows)
