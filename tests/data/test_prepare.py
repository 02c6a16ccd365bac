import json

import pytest

from llmft.data.config import DataConfig
from llmft.data.normalize import Example, Message
from llmft.data.prepare import DataError, prepare
from llmft.data.split import split_indices
from llmft.data.tokenize import IGNORE


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def qa(i):
    return {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}


def test_seed_sample_validates_with_27_examples_and_no_errors(shared_fixtures, tiny_model_dir):
    prepared = prepare(shared_fixtures / "seed_sample_data.json", model="tiny-r1")
    report = prepared.report
    assert (report["records"], report["examples"], report["errors"]) == (27, 27, 0)
    assert report["split"]["train"] + report["split"]["validation"] == 27
    assert len(prepared.tokens("train")) == report["split"]["train"]


def test_prepare_writes_split_tokens_report_and_hash(tmp_path, tiny_model_dir):
    source = write_jsonl(tmp_path / "d.jsonl", [qa(i) for i in range(20)] + [qa(3)])
    out = tmp_path / "out"
    prepared = prepare(source, model="tiny-r1", config=DataConfig(validation_ratio=0.2), out=out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "report.json", "train.jsonl", "train.tokens.safetensors",
                     "validation.jsonl", "validation.tokens.safetensors"]
    assert prepared.report["split"] == {"train": 16, "validation": 4, "how": "ratio 0.2, seed 42"}
    assert prepared.report["cleaning"]["duplicates_exact"] == 1
    assert prepared.manifest["sha256"] == prepared.report["sha256"]
    train = prepared.tokens("train")
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == len(train) == 16
    assert all(t.labels[-1] == 151643 and t.labels[0] == IGNORE for t in train)


def test_same_data_twice_is_a_cache_hit_with_identical_output(tmp_path, tiny_model_dir):
    source = write_jsonl(tmp_path / "d.jsonl", [qa(i) for i in range(50)])
    first = prepare(source, model="tiny-r1", out=tmp_path / "a")
    second = prepare(source, model="tiny-r1", out=tmp_path / "b")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.report == second.report
    assert [t.input_ids for t in first.tokens("train")] == [t.input_ids for t in second.tokens("train")]
    changed = prepare(source, model="tiny-r1", config=DataConfig(max_length=1024), out=tmp_path / "c")
    assert changed.cache_hit is False
    assert changed.report["sha256"] == first.report["sha256"]  # same tokens, other options


def test_errors_stop_prepare_unless_dropped(tmp_path, tiny_model_dir):
    source = write_jsonl(tmp_path / "d.jsonl", [qa(i) for i in range(5)] + [{"messages": []}, {"text": 3}])
    with pytest.raises(DataError) as caught:
        prepare(source, model="tiny-r1", out=tmp_path / "out")
    assert caught.value.report["issues_by_code"] == {"content_not_string": 1, "no_assistant_turn": 1}
    assert not (tmp_path / "out").exists()
    dropped = prepare(source, model="tiny-r1", config=DataConfig(on_invalid="drop"), out=tmp_path / "out")
    assert dropped.report["examples"] == 5 and dropped.report["invalid"] == 2


def test_validation_file_replaces_the_split(tmp_path, tiny_model_dir):
    train = write_jsonl(tmp_path / "t.jsonl", [qa(i) for i in range(6)])
    validation = write_jsonl(tmp_path / "v.jsonl", [qa(i) for i in range(100, 103)])
    prepared = prepare(train, model="tiny-r1", config=DataConfig(validation_file=str(validation)))
    assert prepared.report["split"] == {"train": 6, "validation": 3, "how": "validation file v.jsonl"}


def test_split_is_deterministic_and_stable_when_data_grows():
    examples = [Example(messages=[Message("user", f"q{i}"), Message("assistant", f"a{i}")], record=i + 1)
                for i in range(100)]
    train, validation = split_indices(examples, ratio=0.1, seed=7)
    assert len(validation) == 10 and sorted(train + validation) == list(range(100))
    assert split_indices(examples, ratio=0.1, seed=7) == (train, validation)
    assert split_indices(examples, ratio=0.1, seed=8)[1] != validation
    grown = examples + [Example(messages=[Message("user", "new"), Message("assistant", "x")], record=101)]
    kept = set(split_indices(grown, ratio=0.1, seed=7)[1]) & set(range(100))
    assert kept <= set(validation)
