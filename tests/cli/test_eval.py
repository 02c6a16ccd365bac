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


BUSINESS = Path(__file__).resolve().parents[2] / "data" / "sample" / "business_math_validation.jsonl"


@pytest.mark.parametrize("spec, named", [
    ('[{"name": "total", "type": "numerc"}]', "graders[0].type: unknown grader type 'numerc'; did you mean 'numeric'?"),
    ("- {name: a, type: match}\n- {name: b, type: regex, pattern: '(['}\n", "graders[1].pattern: not a valid regular"),
    ("graders:\n  - {name: a, type: match, mdoe: exact}\n", "graders[0].mdoe: unknown key; did you mean 'mode'?"),
    ("graders: [", "not YAML or JSON"),
])
def test_evaluate_exits_2_on_a_bad_grader_spec_naming_it(spec, named, tmp_path, capsys):
    path = write(tmp_path / "graders.yaml", spec)
    code = main(["evaluate", "--model", "tiny-r1", "--dataset", str(BUSINESS), "--graders", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and f"llmft: {path}: " in err and named in err, err


def test_evaluate_exits_2_on_a_missing_spec_file_or_pass_k_without_graders(tmp_path, capsys):
    assert main(["evaluate", "--model", "tiny-r1", "--dataset", str(BUSINESS), "--graders", str(tmp_path / "no.yaml")]) == 2
    assert "no.yaml" in capsys.readouterr().err
    assert main(["evaluate", "--model", "tiny-r1", "--dataset", str(BUSINESS), "--pass-k", "3"]) == 2
    assert "pass_k: pass@k and thinking budgets are measured with graders" in capsys.readouterr().err


def test_evaluate_with_graders_reports_each_grader(tmp_path, tiny_model_dir, capsys):
    data = write(tmp_path / "two.jsonl", "".join(BUSINESS.read_text(encoding="utf-8").splitlines(True)[:2]))
    spec = write(tmp_path / "graders.json",
                 '[{"name": "total", "type": "numeric", "reference_field": "metadata.answer"},'
                 ' {"name": "closed", "type": "think_format", "require_reasoning": false, "require_eos": false}]')
    code = main(["evaluate", "--model", "tiny-r1", "--dataset", str(data), "--whole-file", "--max-new-tokens", "4",
                 "--graders", str(spec), "--thinking-budgets", "3", "--answer-tokens", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["thinking_budgets"] == [3] and report["pass_k"] == 1
    base = report["base"]
    assert base["grader.total"] == 0.0 and base["grader.closed"] == 0.0  # tiny-r1: newlines, never closed
    assert base["grader.closed.budget_3"] == 1.0  # the budget closed it
    assert "grader.total.pass@1" not in base
