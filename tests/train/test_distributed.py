"""Two processes through torchrun (gloo on CPU) against one: same losses, rank 0 writes, resume works.

The reference is one process with batch 2b; the distributed run is 2 processes with batch b and
the same seed. Each optimizer step then sees the same rows (accelerate hands batch 2k to rank 0
and 2k+1 to rank 1), the loss is divided by the tokens of both ranks, and DDP averages the
gradients, so the curves agree to float rounding: we hold them to a relative 1e-5.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmft import exit_codes
from llmft.config import ConfigError
from llmft.train.config import load_config
from llmft.train.distributed import shard, torchrun_command
from llmft.train.run import train

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """40 training examples, one per row: 10 global batches of 4, so no step is an epoch's partial
    last batch (there accelerate repeats rows to give every rank a full batch, as DistributedSampler
    does, and the two runs would differ by design)."""
    folder = tmp_path_factory.mktemp("data")
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "train.jsonl").write_text("".join(lines[:40]), encoding="utf-8")
    (folder / "validation.jsonl").write_text("".join(lines[40:50]), encoding="utf-8")
    return folder


def settings(data: Path, output: Path, batch_size: int, *extra: str) -> list[str]:
    return [f"data.train_file={data / 'train.jsonl'}", f"data.validation_file={data / 'validation.jsonl'}",
            "data.max_length=512", "data.pack=false", "method.type=full",
            f"training.batch_size={batch_size}", "training.max_steps=8", "training.logging_steps=1",
            "training.eval_steps=4", "training.save_steps=2", "training.save_total_limit=4",
            "training.learning_rate=0.003", "training.warmup_steps=0", f"output.output_dir={output}", *extra]


def llmft_train(args: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmft.cli", "train", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def sets(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def metrics(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def curve(output: Path) -> list[tuple]:
    return [(row["step"], key, row[key]) for row in metrics(output) for key in ("loss", "eval_loss") if key in row]


def files(root: Path) -> list[str]:
    """Every file but TensorBoard's, named by time and process (a resumed run adds one)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.parent.name != "tensorboard")


def assert_same_curve(a: Path, b: Path) -> None:
    left, right = curve(a), curve(b)
    assert [(step, key) for step, key, _ in left] == [(step, key) for step, key, _ in right]
    for (step, key, x), (_, _, y) in zip(left, right, strict=True):
        assert x == pytest.approx(y, rel=TOLERANCE), f"step {step} {key}: {x} vs {y}"


@pytest.fixture(scope="module")
def two_processes(data, tmp_path_factory) -> Path:
    """An uninterrupted 2-process run, batch 2 per process."""
    output = tmp_path_factory.mktemp("ddp") / "run"
    process = llmft_train(["--nproc-per-node", "2", *sets(settings(data, output, 2))])
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    assert out.count("final model:") == 1, out  # only rank 0 reports
    return output


@pytest.mark.slow
def test_two_processes_of_batch_b_train_like_one_of_batch_2b(data, two_processes, tmp_path):
    one = train(load_config(None, settings(data, tmp_path / "one", 4)), progress=False)
    assert_same_curve(two_processes, one.output_dir)
    two = json.loads((two_processes / "summary.json").read_text())
    assert two["processes"] == 2 and one.summary.processes == 1
    assert two["tokens_seen"] == one.summary.tokens_seen  # both ranks' tokens, counted once
    assert two["best_eval_loss"] == pytest.approx(one.summary.best_eval_loss, rel=TOLERANCE)
    # one writer: one line per logged step, every checkpoint holds both ranks' random state
    steps = [row["step"] for row in metrics(two_processes) if "loss" in row]
    assert steps == list(range(1, 9))
    for checkpoint in (two_processes / "checkpoints").iterdir():
        assert {"COMMITTED", "rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in checkpoint.iterdir()}
    assert not (two_processes / ".staging").exists()
    assert (two_processes / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_two_processes_killed_and_resumed_end_like_an_uninterrupted_run(data, two_processes, tmp_path):
    output = tmp_path / "resumed"
    args = ["--nproc-per-node", "2", *sets(settings(data, output, 2))]
    process = llmft_train(args, start_new_session=True)
    deadline = time.time() + 300
    while not (output / "checkpoints" / "checkpoint-4" / "COMMITTED").exists():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # torchrun and both ranks at once, mid-step
    process.wait(timeout=60)
    assert not (output / "summary.json").exists()

    resumed = llmft_train(args + ["--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert_same_curve(output, two_processes)
    assert files(output) == files(two_processes)
    after = json.loads((output / "summary.json").read_text())
    straight = json.loads((two_processes / "summary.json").read_text())
    assert after["steps"] == straight["steps"] == 8
    assert after["final_eval_loss"] == pytest.approx(straight["final_eval_loss"], rel=TOLERANCE)


@pytest.mark.slow
def test_sigterm_stops_every_rank_at_the_same_step_with_a_checkpoint(data, tmp_path):
    output = tmp_path / "stopped"
    process = llmft_train(["--nproc-per-node", "2", *sets(settings(data, output, 2, "training.max_steps=200"))])
    deadline = time.time() + 300
    while not list((output / "checkpoints").glob("checkpoint-*/COMMITTED")):
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)  # to the command only: it passes the signal on to torchrun
    out, _ = process.communicate(timeout=300)
    assert process.returncode == exit_codes.STOPPED, out
    summary = json.loads((output / "summary.json").read_text())
    assert summary["status"] == "stopped"
    last = max(int(p.parent.name.split("-")[1]) for p in (output / "checkpoints").glob("checkpoint-*/COMMITTED"))
    assert last == summary["steps"]
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (output / "checkpoints" / f"checkpoint-{last}").iterdir()}


def test_sharded_strategies_on_cpu_are_refused_before_the_model_loads(data, tmp_path, tiny_model_dir):
    for strategy in ("fsdp", "deepspeed"):
        config = load_config(None, settings(data, tmp_path / strategy, 2, f"distributed.strategy={strategy}"))
        with pytest.raises(ConfigError, match="needs CUDA"):
            train(config, progress=False)
        assert not list((tmp_path / strategy).glob("checkpoints/*"))


def test_shipped_distributed_configs_are_json_objects():
    folder = ROOT / "config" / "distributed"
    stages = {}
    for path in sorted(folder.glob("*.json")):
        value = json.loads(path.read_text())
        assert isinstance(value, dict), path
        stages[path.name] = value.get("zero_optimization", {}).get("stage")
    assert stages == {"deepspeed_zero2.json": 2, "deepspeed_zero3.json": 3, "fsdp.json": None}
    assert json.loads((folder / "fsdp.json").read_text())["version"] == 2


def test_torchrun_command_one_host_and_several():
    one = torchrun_command(["llmft.train", "--config", "c.yaml"], nproc_per_node=2)
    assert one[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--standalone" in one and one[-4:] == ["-m", "llmft.train", "--config", "c.yaml"]
    many = torchrun_command(["llmft.train"], nproc_per_node=8, nnodes=2, node_rank=1, rdzv_endpoint="h:29500")
    assert {"--nnodes=2", "--node-rank=1", "--rdzv-endpoint=h:29500", "--rdzv-backend=c10d"} <= set(many)
    assert "--standalone" not in many
    with pytest.raises(ValueError, match="rdzv-endpoint"):
        torchrun_command(["llmft.train"], nproc_per_node=1, nnodes=2)


def test_shard_outside_torchrun_is_everything():
    assert list(shard(5)) == [0, 1, 2, 3, 4]


def test_cli_refuses_several_hosts_without_a_rendezvous(tmp_path):
    process = llmft_train(["--nproc-per-node", "2", "--nnodes", "2", "--set", f"output.output_dir={tmp_path}"])
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "--rdzv-endpoint" in out
