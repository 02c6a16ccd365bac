"""Evaluation with graders on tiny-r1 (short: 3 conversations of the business-math sample, a few tokens each):
the report's grader keys and ranges, pass@k at the contract's sampling, accuracy at a thinking budget, and exact
values where the output is known. The built tiny-r1 answers every prompt with newlines and never ends: its think
block stays open (a think_format grader scores 0), until a thinking budget closes it (then 1 exactly)."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.data.normalize import Message
from llmft.data.render import render_prompt
from llmft.evaluate.graders import MAX_PASS_K, GraderSpecError, check_grading, load_spec
from llmft.evaluate.run import _generate_within, _grade_all, contract_sampling, evaluate_file

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "business_math_validation.jsonl"
GRADERS = [{"name": "total", "type": "numeric", "tolerance_abs": 0.005},
           {"name": "total-field", "type": "numeric", "reference_field": "metadata.answer"},
           {"name": "closed", "type": "think_format", "require_reasoning": False, "require_eos": False},
           {"name": "format", "type": "think_format"}]


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bm")
    path = folder / "three.jsonl"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def report(three, tiny_model_dir) -> dict:
    return evaluate_file(base_model="tiny-r1", candidate=None, data_file=three, whole_file=True, max_length=512,
                         max_samples=3, max_new_tokens=6, graders=GRADERS, pass_k=2, thinking_budgets=[4],
                         answer_tokens=3)


def test_the_report_has_each_grader_s_accuracy_pass_at_k_and_budget_accuracy(report):
    base = report["base"]
    names = ["total", "total-field", "closed", "format"]
    assert {f"grader.{n}" for n in names} | {f"grader.{n}.pass@2" for n in names} \
        | {f"grader.{n}.budget_4" for n in names} <= set(base)
    assert all(0.0 <= base[key] <= 1.0 for key in base if key.startswith("grader."))
    assert report["pass_k"] == 2 and report["thinking_budgets"] == [4] and report["answer_tokens"] == 3
    assert report["sampling"] == {"temperature": 0.6, "top_p": 0.95}  # R1's contract
    assert [g["name"] for g in report["graders"]] == names
    assert {"eos_rate", "closed_think_rate", "mean_reasoning_tokens"} <= set(base)
    assert [set(sample["base"]["grades"]) for sample in report["samples"]] == [set(names)] * 3


def test_the_values_that_are_known_exactly(report):
    base = report["base"]
    # Newlines only, no EOS in 6 tokens: the think block stays open, no answer, no number.
    assert base["eos_rate"] == 0.0 and base["closed_think_rate"] == 0.0
    assert base["grader.closed"] == base["grader.format"] == 0.0
    assert base["grader.total"] == base["grader.total-field"] == 0.0
    # At a budget of 4 tokens the block is closed for it: closed 1.0; empty reasoning and no EOS: format 0.0.
    assert base["grader.closed.budget_4"] == 1.0 and base["grader.format.budget_4"] == 0.0
    assert base["mean_reasoning_tokens"] == 0.0  # whitespace only, stripped


def test_grading_crafted_outputs_against_the_records():
    spec = load_spec(GRADERS)
    record = {"metadata": {"answer": 42.5}}
    conversations = [([], Message("assistant", "The total due is $42.50."), record)] * 3
    texts = ["<think>\n40 + 2.50\n</think>\n\nThe total due is $42.50.",  # all right
             "<think>\n40 + 2.50 = 42.50\n</think>\n\nIt is $43.",  # wrong number, good format
             "<think>\n40 + 2.50 = 42.50"]  # never closed: no answer
    scores = _grade_all(spec, texts, [True, True, False], conversations)
    assert scores == [{"total": 1.0, "total-field": 1.0, "closed": 1.0, "format": 1.0},
                      {"total": 0.0, "total-field": 0.0, "closed": 1.0, "format": 1.0},
                      {"total": 0.0, "total-field": 0.0, "closed": 0.0, "format": 0.0}]


def test_a_thinking_budget_closes_the_block_and_the_answer_follows(tiny_model_dir):
    """A model that would think for ever: with a budget of 5 tokens its generation holds the close and then 2
    more tokens of answer, where without one it never leaves the think block."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [render_prompt([Message("user", "What is 17 + 25?")])]
    with torch.inference_mode():
        texts, finished = _generate_within(model, tokenizer, prompts, "cpu", 5, 2, batch_size=1)
    head, close, tail = texts[0].partition("\n</think>\n\n")
    assert close and head.startswith("<think>\n") and finished == [False]
    assert len(tokenizer(head.removeprefix("<think>\n"), add_special_tokens=False)["input_ids"]) <= 5
    assert 1 <= len(tokenizer(tail, add_special_tokens=False)["input_ids"]) <= 3  # 2 tokens, re-tokenized


def test_contract_sampling_is_r1_s_for_tiny_r1(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert contract_sampling("tiny-r1", tokenizer) == {"temperature": 0.6, "top_p": 0.95}


@pytest.mark.parametrize("options, words", [
    ({"pass_k": 0}, "pass_k"), ({"pass_k": MAX_PASS_K + 1}, "pass_k"),
    ({"thinking_budgets": [0]}, "thinking_budgets"), ({"thinking_budgets": [1, 2, 3, 4, 5]}, "thinking_budgets"),
    ({"thinking_budgets": [100_000]}, "thinking_budgets"), ({"answer_tokens": 0}, "answer_tokens"),
])
def test_grading_options_are_bounded(options, words):
    spec = load_spec(GRADERS)
    with pytest.raises(GraderSpecError, match=words) as refused:
        check_grading(spec, options.get("pass_k", 1), options.get("thinking_budgets", ()),
                      options.get("answer_tokens", 8))
    assert list(refused.value.problems) == [words]
    with pytest.raises(ValueError, match="give graders too"):
        check_grading(None, 2, (), 8)


def test_a_record_field_missing_is_refused_before_anything_is_generated(three, tmp_path):
    with pytest.raises(GraderSpecError) as refused:
        evaluate_file(base_model="tiny-r1", candidate=None, data_file=three, whole_file=True, max_length=512,
                      graders=[{"name": "t", "type": "numeric", "reference_field": "metadata.total"}])
    assert refused.value.problems == {"graders[0].reference_field": "example 1 has no field 'metadata.total'"}
