"""GRPO through `train()` on the tiny model for a few steps: the graders as rewards, the RL health numbers in
metrics.jsonl, the files of a run; and a reward that raises, which ends the run as reward_failed with its last
checkpoint kept."""

import json
from pathlib import Path

import pytest

from llmft import exit_codes
from llmft.train import rewards
from llmft.train.config import load_config
from llmft.train.run import train
from llmft.train.summary import RunSummary

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "business_math_validation.jsonl"
GRADERS = Path(__file__).resolve().parents[2] / "config" / "graders" / "business_math.yaml"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    """Four business-math records (SFT form: the last answer is the reference, metadata.answer a grader field)."""
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    return path


def settings(data: Path, output: Path, *extra: str) -> list[str]:
    return [f"data.train_file={data}", "data.max_length=256", "data.validation_ratio=0", "method.type=grpo", f"method.grpo.graders={GRADERS}",
            "method.grpo.num_generations=2", "method.grpo.max_completion_length=12", "training.batch_size=2",
            "training.max_steps=2", "training.logging_steps=1", "training.save_steps=1",
            "training.learning_rate=0.0001", f"output.output_dir={output}", *extra]


@pytest.mark.slow
def test_grpo_trains_on_grader_rewards_and_records_rl_health(tmp_path, prompts, tiny_model_dir):
    events = []
    config = load_config(None, settings(prompts, tmp_path / "out", "method.grpo.reward.format=0.5",
                                        "method.grpo.reward.length_target=8", "method.grpo.reward.length_penalty=0.01",
                                        "method.grpo.beta=0.04"))  # a KL term: the adapter disabled is the reference
    result = train(config, on_event=events.append, progress=False)
    out = result.output_dir
    assert result.status == "succeeded" and result.summary.method == "grpo" and result.summary.beta == 0.04
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "final").iterdir()}
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    steps = [line for line in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in line]
    assert [line["step"] for line in steps] == [1, 2]
    for line in steps:  # our names, and TRL's per reward: one per grader, then the two terms
        for key in ("reward_mean", "reward_std", "zero_variance_share", "clipped_share", "completion_length", "kl"):
            assert isinstance(line[key], float), key
        for name in ("total", "total-field", "format", "one-sentence", "format_bonus", "length_penalty"):
            assert f"rewards/{name}/mean" in line
        assert 0 <= line["clipped_share"] <= 1 and 0 < line["completion_length"] <= 12
        assert line["rewards/length_penalty/mean"] <= 0 and line["tokens_per_second"] > 0
    rows = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3, 4] and rows[0]["prompt"].endswith("<think>\n")
    first = json.loads(prompts.read_text(encoding="utf-8").splitlines()[0])
    assert rows[0]["record"] == first and rows[0]["reference"] == first["messages"][-1]["content"]
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["data_ready", "started"] and kinds[-1] == "succeeded" and kinds.count("metrics") == 2


@pytest.mark.slow
def test_a_reward_that_raises_fails_the_run_and_keeps_the_last_checkpoint(tmp_path, prompts, tiny_model_dir,
                                                                          monkeypatch):
    graders = tmp_path / "graders.yaml"
    graders.write_text("- {name: total, type: numeric, reference_field: metadata.answer}\n")
    real, calls = rewards.grade, []

    def grade_then_fail(*args, **kwargs):  # the first step's 4 completions grade; the second step's first raises
        calls.append(1)
        if len(calls) > 4:
            raise KeyError("the record has no field 'metadata.answer'")
        return real(*args, **kwargs)

    monkeypatch.setattr(rewards, "grade", grade_then_fail)
    events = []
    config = load_config(None, settings(prompts, tmp_path / "out", f"method.grpo.graders={graders}",
                                        "training.max_steps=3"))
    result = train(config, on_event=events.append, progress=False)
    out, summary = result.output_dir, RunSummary.read(result.output_dir)
    assert result.status == summary.status == "reward_failed" and summary.exit_code == exit_codes.REWARD_FAILED
    assert summary.reward_error.startswith("reward 'total' failed on the record at line ")
    assert "metadata.answer" in summary.reward_error and summary.steps == 1
    assert summary.last_good_checkpoint == "checkpoint-1" and summary.final_dir is None
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-1"] and not (out / "final").exists()
    failed = next(event for event in events if event["type"] == "reward_failed")
    assert failed["step"] == 1 and failed["reward"] == "total" and failed["last_good_checkpoint"] == "checkpoint-1"
    assert events[-1]["type"] == "reward_failed"


@pytest.mark.slow
def test_a_stopped_grpo_run_resumes_from_its_checkpoint(tmp_path, prompts, tiny_model_dir):
    config = load_config(None, settings(prompts, tmp_path / "out", "training.max_steps=3", "training.save_steps=10"))
    events = []
    stopped = train(config, on_event=events.append, should_stop=lambda: any(e["type"] == "metrics" for e in events),
                    progress=False)  # a cancel once step 1 is logged, seen at step 2's end: a checkpoint, then stop
    out = stopped.output_dir
    assert stopped.status == "stopped" and [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-2"]
    resumed = train(config, resume=True, progress=False)
    assert resumed.status == "succeeded" and resumed.summary.steps == 3 and (out / "final").is_dir()
    steps = [line["step"] for line in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if "reward_mean" in line]
    assert steps == [1, 2, 3]  # the steps after the checkpoint ran once, after the resume
