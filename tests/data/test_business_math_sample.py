"""data/sample/business_math*.jsonl: written by its seeded generator byte for byte, and its reference traces
pass every grader of config/graders/business_math.yaml (so a model that learns them scores 1)."""

import importlib.util
import json
from pathlib import Path

from llmft.evaluate.graders import grade_completion, read_spec

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"


def test_the_generator_writes_the_shipped_files_again(tmp_path):
    spec = importlib.util.spec_from_file_location("make_business_math", SAMPLE / "make_business_math.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path)])
    for name in ("business_math.jsonl", "business_math_validation.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name
        assert (SAMPLE / name).stat().st_size < 1_000_000


def test_the_reference_traces_pass_every_grader_and_no_question_repeats():
    graders = read_spec(ROOT / "config" / "graders" / "business_math.yaml")
    questions = []
    for name, count in (("business_math.jsonl", 800), ("business_math_validation.jsonl", 200)):
        rows = [json.loads(line) for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines()]
        assert len(rows) == count
        for row in rows:
            user, assistant = row["messages"]
            questions.append(user["content"])
            completion = f"<think>\n{assistant['reasoning_content']}\n</think>\n\n{assistant['content']}"
            scores = grade_completion(graders, completion=completion, finished=True, reference=assistant["content"],
                                      record=row)
            assert set(scores.values()) == {1.0}, (row["id"], scores)
    assert len(set(questions)) == len(questions)
