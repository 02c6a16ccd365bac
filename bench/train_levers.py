"""Which CPU training levers make llmft's own trainer faster? Steady-state tokens/s of each, against the same run
without it, measured in one run on the same data (issue 20's list: fused AdamW, torch.compile, longer packed rows).

    python bench/train_levers.py [--model smollm2-135m] [--method full|lora] [--steps 14]
                                 [--levers baseline fused-adamw compile rows-2048]

Each lever is its own process running `train(config)` (what `llmft train` runs) on the same sample data,
for --steps optimizer steps of 2 packed rows, logging every step. The first --warmup steps (model load, compile,
allocator warm-up) are left out; the figure is the median of the later steps' tokens/s (trained tokens through the
model a second, the trainer's own `tokens_per_second`). Fused AdamW, which no config sets, is applied to the
Trainer's arguments inside the worker process:
  baseline     what llmft does now (AdamW with foreach kernels on CPU, eager PyTorch, 1,024-token rows)
  fused-adamw  Trainer's `adamw_torch_fused` (torch's fused AdamW, which has a CPU kernel)
  compile      `training.torch_compile: true` (Trainer's torch_compile: inductor, default mode)
  rows-2048    2,048-token packed rows, one a step (the same tokens a step as two of 1,024)
The loss of the last steps is printed beside each, so a lever that changes the numbers shows it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
LEVERS = ("baseline", "fused-adamw", "compile", "rows-2048")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--method", default="full", choices=["full", "lora"])
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--warmup", type=int, default=4, help="first steps left out of the figure")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))
    if args.worker:
        return _worker(args)
    if "baseline" not in args.levers:
        parser.error("--levers: baseline is what every ratio is taken against; keep it")
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        for lever in args.levers:
            out = Path(scratch) / f"{lever}.json"
            subprocess.run([sys.executable, __file__, "--worker", lever, "--result",
                            str(out), "--model", args.model, "--method", args.method, "--steps", str(args.steps)],
                           check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            results[lever] = json.loads(out.read_text())
    print(f"\n{args.model}, {args.method}, {args.steps} steps, median of steps {args.warmup + 1}-{args.steps}")
    print(f"{'lever':<12} {'tok/s':>8} {'vs baseline':>11} {'first steps s':>13} {'loss, last 3 steps':>24}")
    base = _median_rate(results["baseline"], args.warmup)
    for lever, logs in results.items():
        rate = _median_rate(logs, args.warmup)
        warm = sum(row["seconds"] for row in logs[:args.warmup])
        losses = " ".join(f"{row['loss']:.4f}" for row in logs[-3:])
        print(f"{lever:<12} {rate:>8.0f} {rate / base:>10.2f}x {warm:>13.1f} {losses:>24}")


def _median_rate(logs: list[dict], warmup: int) -> float:
    return statistics.median(row["tokens_per_second"] for row in logs[warmup:])


def _worker(args) -> None:
    from llmft.train import arguments
    from llmft.train.config import load_config
    from llmft.train.run import train

    lever, output = args.worker, Path(tempfile.mkdtemp(prefix=f"lever-{args.worker}-"))
    extra = {"optim": "adamw_torch_fused"} if lever == "fused-adamw" else {}
    values = arguments.argument_values
    arguments.argument_values = lambda *a, **k: {**values(*a, **k), **extra}
    rows, length = (1, 2048) if lever == "rows-2048" else (2, 1024)
    config = load_config(None, [
        f"data.train_file={SAMPLE}", "data.validation_ratio=0.0", "data.on_overlength=drop",
        f"model.base_model={args.model}", f"data.max_length={length}",
        f"method.type={args.method}", "method.lora.dropout=0.0", f"training.max_steps={args.steps}",
        f"training.batch_size={rows}", "training.learning_rate=2e-4", "training.logging_steps=1",
        "training.eval_per_epoch=false", "training.save_steps=100000", "output.final_model=last",
        f"training.torch_compile={'true' if lever == 'compile' else 'false'}",
        f"output.output_dir={output}"])
    train(config, progress=False)
    logs, seen = [], 0
    for row in map(json.loads, (output / "metrics.jsonl").read_text().splitlines()):
        if "tokens_per_second" in row:  # seconds: the step's tokens at its rate (the first counts from the start)
            logs.append({"tokens_per_second": row["tokens_per_second"], "loss": row["loss"],
                         "seconds": (row["tokens_seen"] - seen) / row["tokens_per_second"]})
            seen = row["tokens_seen"]
    Path(args.result).write_text(json.dumps(logs))


if __name__ == "__main__":
    sys.exit(main())
