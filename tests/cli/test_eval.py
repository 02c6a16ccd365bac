"""`llmft eval` as a user runs it."""

import json
from pathlib import Path

from llmft.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_eval_reports_a_base_model_on_the_validation_split(tmp_path, tiny_model_dir, capsys):
    sample = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]
    data = write(tmp_path / "small.jsonl", "".join(sample))
    code = main(["eval", "--model", "tiny-r1", "--dataset", str(data), "--max-samples", "2", "--max-new-tokens", "8",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["generated"] == 2 and "candidate" not in report
    base = report["base"]
    assert base["perplexity"] > 1000 and base["ended_with_eos"] == 0.0  # a random model: no EOS in 8 tokens
    assert set(base) >= {"eval_loss", "bleu", "rouge_l", "exact_match", "closed_think", "mean_answer_chars"}
