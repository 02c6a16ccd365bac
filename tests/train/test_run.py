"""The real training command on the tiny model for a few steps: files, losses, stop, resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llmft import exit_codes
from llmft.train.auto import MIN_STEPS
from llmft.train.config import load_config
from llmft.train.run import train

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    return path


def settings(data: Path, output: Path, *extra: str) -> list[str]:
    return [f"data.train_file={data}", "data.max_length=512", "data.validation_ratio=0.2",
            "training.batch_size=2", "training.max_steps=6", "training.logging_steps=1",
            "training.eval_steps=3", "training.save_steps=3", "training.learning_rate=0.01",
            "training.warmup_steps=0", f"output.output_dir={output}", *extra]


def read_metrics(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_lora_run_writes_adapter_metrics_summary_and_checkpoints(tmp_path, small_data, tiny_model_dir):
    events = []
    result = train(load_config(None, settings(small_data, tmp_path / "out")), on_event=events.append, progress=False)
    out = result.output_dir
    assert result.status == "succeeded"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (out / "final").iterdir()}
    assert (out / "final" / "tokenizer.json").is_file()
    assert all(key.startswith("base_model.model.") for key in load_file(out / "final" / "adapter_model.safetensors"))
    assert [p.name for p in (out / "checkpoints").iterdir()] and not (out / ".staging").exists()
    metrics = read_metrics(out)
    train_logs = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in train_logs] == [1, 2, 3, 4, 5, 6]
    for key in ("learning_rate", "grad_norm", "tokens_per_second", "token_accuracy", "peak_rss_gb"):
        assert key in train_logs[0]
    evals = [m for m in metrics if "eval_loss" in m]
    assert [m["step"] for m in evals] == [3, 6]
    assert evals[0]["eval_perplexity"] == pytest.approx(2.718281828 ** evals[0]["eval_loss"], rel=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["tokens_seen"] > 0
    assert summary["final_train_loss"] < summary["first_train_loss"]
    assert summary["data"]["sha256"] and summary["config"]["training"]["max_steps"] == 6
    assert {e["type"] for e in events} >= {"data_ready", "started", "metrics", "eval", "checkpoint", "succeeded"}


def short_faq(path: Path, count: int = 48) -> Path:
    """`count` questions with one-sentence answers: they all pack into one row of the default 2048 tokens."""
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"How much does plan {i} cost a month?"},
        {"role": "assistant", "content": f"Plan {i} costs {5 + i} dollars a month, billed on the first."}]}) + "\n"
        for i in range(count)), encoding="utf-8")
    return path


@pytest.mark.slow
def test_48_short_examples_with_every_default_get_the_floor_of_steps_and_a_point_at_each(tmp_path, tiny_model_dir):
    output = tmp_path / "out"
    data = short_faq(tmp_path / "faq.jsonl")
    command = subprocess.run([sys.executable, "-m", "llmft.train", f"--set=data.train_file={data}",
                              f"--set=output.output_dir={output}", "--set=training.num_epochs=auto", "--no-progress"],
                             capture_output=True, text=True, timeout=600)
    assert command.returncode == 0, command.stdout + command.stderr
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] >= MIN_STEPS  # not the 3 steps of 3 epochs over one packed row
    assert summary["auto"] == ["batch_size", "learning_rate", "logging_steps", "num_epochs", "row_length"]
    chosen = summary["hyperparameters"]
    assert chosen["batch_size"] == 1 and chosen["row_length"] < 2048 and chosen["learning_rate"] <= 1e-3
    assert summary["config"]["training"]["num_epochs"] == chosen["num_epochs"]  # the config it ran with, resolved
    assert [m["step"] for m in read_metrics(output) if "loss" in m] == list(range(1, summary["steps"] + 1))
    assert f"hyperparameters: num_epochs {chosen['num_epochs']} (auto), batch_size 1 (auto), " in command.stdout


@pytest.mark.slow
def test_the_last_step_is_logged_whatever_logging_steps(tmp_path, small_data, tiny_model_dir):
    events = []
    config = load_config(None, settings(small_data, tmp_path / "out", "training.max_steps=4",
                                        "training.logging_steps=3", "training.learning_rate=auto"))
    result = train(config, on_event=events.append, progress=False)
    assert [m["step"] for m in read_metrics(result.output_dir) if "loss" in m] == [3, 4]
    ready = next(e for e in events if e["type"] == "data_ready")
    assert ready["auto"] == ["learning_rate", "num_epochs", "row_length"] and ready["hyperparameters"]["learning_rate"] == 1e-3
    started = next(e for e in events if e["type"] == "started")
    assert started["hyperparameters"] == ready["hyperparameters"] == result.summary.hyperparameters


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora-lamb", "lora-adafactor", "lora-checkpointing"])
def test_other_methods_and_optimizers_train(tmp_path, small_data, tiny_model_dir, method):
    extra = {"full": ["method.type=full", "training.learning_rate=0.001"],
             "lora-lamb": ["training.optimizer=lamb"],
             "lora-adafactor": ["training.optimizer=adafactor"],
             "lora-checkpointing": ["training.gradient_checkpointing=true", "training.gradient_accumulation_steps=2"],
             }[method]
    # rows of 512 tokens (not the auto length): every step sees the same few rows, so the loss must fall
    result = train(load_config(None, settings(small_data, tmp_path / "out", "training.max_steps=4", "data.row_length=512",
                                              *extra)), progress=False)
    losses = [m["loss"] for m in read_metrics(result.output_dir) if "loss" in m]
    assert len(losses) == 4 and losses[-1] < losses[0]
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (result.final_dir / weights).is_file()


@pytest.mark.slow
def test_a_compiled_run_takes_the_steps_of_the_eager_one(tmp_path, small_data, tiny_model_dir):
    """training.torch_compile: inductor's kernels, the same losses and the same saved adapter format."""
    runs = {}
    for compiled in (False, True):
        result = train(load_config(None, settings(small_data, tmp_path / f"compiled-{compiled}", "training.max_steps=3",
                                                  "training.eval_steps=100", "training.save_steps=100",
                                                  f"training.torch_compile={str(compiled).lower()}")), progress=False)
        runs[compiled] = [m["loss"] for m in read_metrics(result.output_dir) if "loss" in m]
        assert (result.final_dir / "adapter_model.safetensors").is_file()
    assert len(runs[True]) == 3 and runs[True] == pytest.approx(runs[False], rel=1e-3)


@pytest.mark.slow
def test_refuses_to_overwrite_a_run_without_resume(tmp_path, small_data, tiny_model_dir):
    from llmft.config import ConfigError

    config = load_config(None, settings(small_data, tmp_path / "out", "training.max_steps=3"))
    train(config, progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, progress=False)


def run_command(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmft.train", *args, "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(output: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not list((output / "checkpoints").glob("checkpoint-*/COMMITTED")):
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_with_the_stopped_code(tmp_path, small_data, tiny_model_dir):
    output = tmp_path / "out"
    args = ["--set=" + s for s in settings(small_data, output, "training.max_steps=200", "training.save_steps=2")]
    process = run_command(args, dict(os.environ))
    wait_for_checkpoint(output, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == exit_codes.STOPPED
    summary = json.loads((output / "summary.json").read_text())
    assert summary["status"] == "stopped"
    last = sorted((output / "checkpoints").glob("checkpoint-*/COMMITTED"))
    assert int(last[-1].parent.name.split("-")[1]) == summary["steps"]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, small_data, tiny_model_dir):
    common = settings(small_data, tmp_path / "unused", "training.max_steps=8", "training.save_steps=2",
                      "training.eval_steps=4", "data.validation_ratio=0.2")
    reference = train(load_config(None, common + [f"output.output_dir={tmp_path / 'straight'}"]), progress=False)

    output = tmp_path / "resumed"
    args = ["--set=" + s for s in common + [f"output.output_dir={output}"]]
    process = run_command(args, dict(os.environ))
    wait_for_checkpoint(output, process)
    process.kill()  # SIGKILL: no handler runs, whatever was being written stays half written
    process.wait(timeout=60)
    resumed = run_command(args + ["--resume"], dict(os.environ))
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()

    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    after = json.loads((output / "summary.json").read_text())
    assert after["steps"] == straight["steps"] == 8
    assert after["final_train_loss"] == pytest.approx(straight["final_train_loss"], rel=1e-4)
    assert after["final_eval_loss"] == pytest.approx(straight["final_eval_loss"], rel=1e-4)
    strip = lambda rows: [{k: v for k, v in r.items() if k in ("step", "loss", "eval_loss")} for r in rows]  # noqa: E731
    for a, b in zip(strip(read_metrics(output)), strip(read_metrics(tmp_path / "straight")), strict=True):
        assert a.keys() == b.keys() and a["step"] == b["step"]
        for key in ("loss", "eval_loss"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4)
    # TensorBoard names its event files by time and process: one more file per resumed process
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*")  # noqa: E731
                                if p.is_file() and p.parent.name != "tensorboard")
    assert files(output) == files(tmp_path / "straight")
    assert reference.final_dir is not None


@pytest.mark.slow
def test_resume_from_the_last_steps_checkpoint_finishes_without_training_more(tmp_path, small_data, tiny_model_dir):
    """Killed after the last checkpoint but before the final model: resume writes the final model
    from that checkpoint; Trainer alone would train one step past max_steps."""
    output = tmp_path / "out"
    config = load_config(None, settings(small_data, output, "training.max_steps=4", "training.save_steps=2"))
    first = train(config, progress=False)
    shutil.rmtree(first.final_dir)
    (output / "summary.json").unlink()
    resumed = train(config, resume=True, progress=False)
    assert resumed.summary.steps == 4 and resumed.summary.final_train_loss == first.summary.final_train_loss
    assert max(row["step"] for row in read_metrics(output)) == 4
    assert load_file(resumed.final_dir / "adapter_model.safetensors").keys() == \
        load_file(output / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors").keys()
