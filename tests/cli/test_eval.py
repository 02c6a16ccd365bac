"""`llmft eval` as a user runs it."""

import json
from pathlib import Path

import pytest

from llmft.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def small_data(tmp_path) -> Path:
    """The first 40 conversations of the sample: 4 of them in the validation split."""
    sample = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]
    return write(tmp_path / "small.jsonl", "".join(sample))


def test_eval_reports_a_base_model_on_the_validation_split(small_data, tiny_model_dir, capsys):
    code = main(["eval", "--model", "tiny-r1", "--dataset", str(small_data), "--max-samples", "2",
                 "--max-new-tokens", "8", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["generated"] == 2 and "candidate" not in report
    assert report["max_new_tokens"] == 8 and report["max_new_tokens_auto"] is False  # the number given wins
    base = report["base"]
    assert base["perplexity"] > 1000 and base["ended_with_eos"] == 0.0  # a random model: no EOS in 8 tokens
    assert set(base) >= {"eval_loss", "bleu", "rouge_l", "exact_match", "fact_hit", "closed_think", "mean_answer_chars"}
    assert [set(sample) for sample in report["samples"]] == [{"prompt", "reference", "base"}] * 2


def test_eval_by_default_answers_every_validation_example_within_an_auto_budget_and_prints_three(
        small_data, tiny_model_dir, capsys):
    assert main(["eval", "--model", "tiny-r1", "--dataset", str(small_data)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert header.startswith("4 validation examples of small.jsonl (4 generated, at most ") and "tokens (auto))" in header
    assert "\nfact_hit " in out and "\nrouge_l " in out
    assert [line for line in out.splitlines() if line.startswith("example ")][-1].startswith("example 3: ")
    assert out.count("  reference: ") == 3 and out.count("  base (rouge_l 0.0000, fact_hit ") == 3


@pytest.mark.parametrize("budget", ["0", "lots", "-3"])
def test_eval_refuses_a_budget_neither_auto_nor_a_positive_integer(budget, small_data, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["eval", "--model", "tiny-r1", "--dataset", str(small_data), "--max-new-tokens", budget])
    assert exited.value.code == 2
    assert f"--max-new-tokens: auto or a positive integer, not '{budget}'" in capsys.readouterr().err


def test_eval_whole_file_scores_every_example_of_a_held_out_file(tmp_path, tiny_model_dir, capsys):
    held_out = write(tmp_path / "validation.jsonl", "".join(SAMPLE.read_text(encoding="utf-8").splitlines(True)[:5]))
    assert main(["eval", "--model", "tiny-r1", "--dataset", str(held_out), "--max-new-tokens", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] < 5  # by default only its validation split
    assert main(["eval", "--model", "tiny-r1", "--dataset", str(held_out), "--whole-file", "--max-new-tokens", "4",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 5 and report["generated"] == 5
    assert [s["prompt"] for s in report["samples"]] == [json.loads(line)["messages"][-2]["content"]
                                                       for line in held_out.read_text().splitlines()]
