"""data/sample/concise_preferences*.jsonl (the DPO proof set): written by its seeded generator byte for byte, valid
preference pairs with no question repeated, every rejected kind well represented in both files, and each wrong
answer differing from its chosen one."""

import importlib.util
import json
from collections import Counter
from pathlib import Path

from llmft.data.config import DataConfig
from llmft.data.preference import check_preference_file

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
FILES = {"concise_preferences.jsonl": 300, "concise_preferences_validation.jsonl": 60}


def test_the_generator_writes_the_shipped_files_again(tmp_path):
    spec = importlib.util.spec_from_file_location("make_concise_preferences", SAMPLE / "make_concise_preferences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path)])
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name
        assert (SAMPLE / name).stat().st_size < 500_000


def test_every_pair_is_valid_and_no_question_repeats(tokenizer):
    questions = []
    for name, count in FILES.items():
        checked = check_preference_file(SAMPLE / name, tokenizer=tokenizer, config=DataConfig())
        assert (len(checked.examples), checked.errors, checked.warnings) == (count, 0, 0)
        rows = [json.loads(line) for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines()]
        kinds = Counter(row["metadata"]["rejected_kind"] for row in rows)
        assert set(kinds) == {"wrong", "rambling", "off_topic"} and min(kinds.values()) == count // 3
        assert len({row["metadata"]["task"] for row in rows}) == 8
        for row in rows:
            if row["metadata"]["rejected_kind"] == "rambling":
                assert row["chosen"][1:] in row["rejected"] and len(row["rejected"]) > 3 * len(row["chosen"])
            questions.append(row["prompt"])
    assert len(set(questions)) == len(questions)
