"""DPO, ORPO and SimPO through `train()` on the tiny model for a few steps: files, reward metrics, stop, resume."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmft.config import ConfigError
from llmft.train.config import load_config
from llmft.train.run import train


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """A short correct answer preferred over a rambling wrong one, in the plain and OpenAI's forms."""
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    rows = []
    for a in range(8):
        for b in (3, 7):
            rambling = f"Well, let me think about this for a while; it could be {a * b + 1}, or so."
            if b == 3:
                rows.append({"prompt": f"What is {a} plus {b}?", "chosen": f"{a + b}.", "rejected": rambling})
            else:
                rows.append({"input": {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"}]},
                             "preferred_output": [{"role": "assistant", "content": f"{a + b}."}],
                             "non_preferred_output": [{"role": "assistant", "content": rambling}]})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def settings(data: Path, output: Path, method: str, *extra: str) -> list[str]:
    return [f"data.train_file={data}", "data.max_length=96", "data.validation_ratio=0.25", f"method.type={method}",
            "training.batch_size=2", "training.max_steps=2", "training.logging_steps=1", "training.eval_steps=2",
            "training.save_steps=2", "training.learning_rate=0.0005", f"output.output_dir={output}", *extra]


def read_metrics(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins")


@pytest.mark.slow
@pytest.mark.parametrize("method,beta", [("dpo", 0.1), ("orpo", 0.1), ("simpo", 2.0)])
def test_each_method_trains_and_records_like_a_supervised_run(tmp_path, pairs, tiny_model_dir, method, beta):
    events = []
    result = train(load_config(None, settings(pairs, tmp_path / "out", method)), on_event=events.append,
                   progress=False)
    out = result.output_dir
    assert result.status == "succeeded"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "final").iterdir()}
    assert all(key.startswith("base_model.model.") for key in load_file(out / "final" / "adapter_model.safetensors"))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-2"] and not (out / ".staging").exists()
    assert (out / "checkpoints" / "checkpoint-2" / "COMMITTED").is_file()
    metrics = read_metrics(out)
    train_logs = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in train_logs] == [1, 2]
    for key in ("learning_rate", "grad_norm", "tokens_per_second", "tokens_seen", "peak_rss_gb", *REWARDS):
        assert key in train_logs[0], key
    evals = [m for m in metrics if "eval_loss" in m]
    assert [m["step"] for m in evals] == [2] and all(f"eval_{key}" in evals[0] for key in REWARDS)
    assert list((out / "tensorboard").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["beta"] == beta and summary["status"] == "succeeded"
    assert summary["steps"] == 2 and summary["tokens_seen"] > 0 and summary["final_dir"] == str(out / "final")
    assert summary["data"]["train_examples"] == 12 and summary["data"]["validation_examples"] == 4
    rows = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and set(rows[0]) == {"prompt", "chosen", "rejected"}
    assert {e["type"] for e in events} >= {"data_ready", "started", "metrics", "eval", "checkpoint", "succeeded"}


@pytest.mark.slow
def test_a_stop_request_ends_stopped_with_a_checkpoint(tmp_path, pairs, tiny_model_dir):
    events = []
    stop_after = lambda: sum(e["type"] == "metrics" for e in events) >= 1  # noqa: E731
    config = load_config(None, settings(pairs, tmp_path / "out", "dpo", "training.max_steps=50",
                                        "training.save_steps=40"))
    result = train(config, on_event=events.append, should_stop=stop_after, progress=False)
    assert result.status == "stopped" and result.final_dir is None
    summary = json.loads((result.output_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["stopped_by"] == "stop_requested"
    assert (result.output_dir / "checkpoints" / f"checkpoint-{summary['steps']}" / "COMMITTED").is_file()
    assert summary["steps"] < 50 and not (result.output_dir / "final").exists()


@pytest.mark.slow
def test_a_nan_stops_a_dpo_run_keeping_the_last_good_checkpoint(tmp_path, pairs, tiny_model_dir):
    """A learning rate of 1e30 overflows the weights after the first step: the NaN guard drops that update."""
    config = load_config(None, settings(pairs, tmp_path / "out", "dpo", "training.max_steps=4", "training.save_steps=1",
                                        "training.learning_rate=1e30", "training.lr_scheduler=constant",
                                        "training.eval_per_epoch=false", "data.validation_ratio=0"))
    result = train(config, progress=False)
    assert result.status == "nan_loss" and result.final_dir is None
    summary = json.loads((result.output_dir / "summary.json").read_text())
    saved = [int(p.parent.name.split("-")[1]) for p in (result.output_dir / "checkpoints").glob("*/COMMITTED")]
    assert saved and max(saved) < summary["nan_step"] and summary["last_good_checkpoint"] == f"checkpoint-{max(saved)}"


def run_command(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmft.train", *args, "--no-progress"], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_dpo_run_killed_and_resumed_ends_like_an_uninterrupted_one(tmp_path, pairs, tiny_model_dir):
    common = settings(pairs, tmp_path / "unused", "dpo", "training.max_steps=6", "training.eval_steps=3",
                      "training.save_steps=2")
    train(load_config(None, common + [f"output.output_dir={tmp_path / 'straight'}"]), progress=False)

    output = tmp_path / "resumed"
    args = ["--set=" + s for s in common + [f"output.output_dir={output}"]]
    process = run_command(args)
    deadline = time.time() + 600
    while not list((output / "checkpoints").glob("checkpoint-*/COMMITTED")):
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)
    process.kill()  # SIGKILL: no handler runs
    process.wait(timeout=60)
    assert not (output / "summary.json").exists()  # killed mid-run, not after it
    resumed = run_command(args + ["--resume"])
    assert resumed.wait(timeout=900) == 0, resumed.stdout.read()

    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    after = json.loads((output / "summary.json").read_text())
    assert after["steps"] == straight["steps"] == 6
    assert after["final_train_loss"] == pytest.approx(straight["final_train_loss"], rel=1e-4)
    assert after["final_eval_loss"] == pytest.approx(straight["final_eval_loss"], rel=1e-4)
    for a, b in zip(read_metrics(output), read_metrics(tmp_path / "straight"), strict=True):
        assert a["step"] == b["step"]
        for key in ("loss", "eval_loss", "rewards/margins"):
            assert (key in a) == (key in b)
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)
    weights = [load_file(root / "final" / "adapter_model.safetensors") for root in (output, tmp_path / "straight")]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        torch.testing.assert_close(tensor, weights[1][name], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("override,named", [
    (["method.type=ppo"], "method.type"),
    (["method.type=full", "method.weights=lora"], "method.weights lora disagrees with method.type full"),
    (["method.type=dpo", "method.dpo.bta=0.2"], "method.dpo.bta: unknown key; did you mean 'beta'"),
    (["method.type=dpo", "method.dpo.loss_type=kto"], "method.dpo.loss_type"),
    (["method.type=simpo", "method.dpo.beta=0.2"], "method.dpo is given but method.type is simpo"),
])
def test_config_errors_name_the_key(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(None, override)


def test_weights_say_what_a_preference_run_trains():
    assert load_config(None, ["method.type=dpo"]).method.tuning == "lora"
    config = load_config(None, ["method.type=orpo", "method.weights=full", "method.orpo.beta=0.2"])
    assert config.method.tuning == "full" and config.method.settings.beta == 0.2
    assert load_config(None, ["method.type=qlora"]).method.tuning == "qlora"
    simpo = load_config(None, ["method.type=simpo"]).method.settings
    assert (simpo.beta, simpo.gamma) == (2.0, 0.5)


def test_the_auto_learning_rate_of_a_preference_run_is_a_fifth_of_supervised_within_its_range():
    from llmft.train.auto import resolve_auto

    def rate(*overrides: str) -> float:
        config, chosen = resolve_auto(load_config(None, list(overrides)), train_rows=64, row_length=512,
                                      parameters=135_000_000)
        assert "learning_rate" in chosen
        return config.training.learning_rate

    assert rate("method.type=dpo") == pytest.approx(rate() / 5, rel=0.05)
    assert 5e-5 <= rate("method.type=simpo") <= 2e-4
    assert 1e-6 <= rate("method.type=orpo", "method.weights=full") <= 1e-5


@pytest.mark.parametrize("weights", ["lora", "full"])
def test_lora_dpo_takes_the_adapter_disabled_model_as_its_reference_and_full_a_frozen_copy(tmp_path, tiny_model_dir,
                                                                                            weights):
    from llmft.bases.resolve import load_tokenizer
    from llmft.train.lifecycle import begin
    from llmft.train.preference import preference_trainer

    config = load_config(None, [f"data.train_file={__file__}", "data.max_length=64", "method.type=dpo",
                                f"method.weights={weights}", "training.num_epochs=1", "training.batch_size=1",
                                "training.learning_rate=1e-4", "training.logging_steps=1",
                                f"output.output_dir={tmp_path}"])
    rows = [{"prompt": "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>", "chosen": "4<｜end▁of▁sentence｜>",
             "rejected": "5<｜end▁of▁sentence｜>"}] * 2
    run = begin(config, resume=False, on_event=None, should_stop=None)
    trainer = preference_trainer(config, run, load_tokenizer("tiny-r1"), rows, None)
    if weights == "lora":
        assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]  # no "ref" adapter
    else:
        assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
        assert not trainer.ref_model.training  # TRL runs it under no_grad for the reference log-probs
        assert all(p.requires_grad for p in trainer.model.parameters())
