"""A few LoRA steps at the real DeepSeek-R1-Distill-Qwen-1.5B shape (random weights), on this machine.

    python bench/real_size_lora.py [--steps 3] [--seq 256] [--precision bf16]

Writes the model once with `llmft base init` (config/models/deepseek-r1-distill-qwen-1.5b.json,
the published config.json), then runs `llmft train` on our sample data and prints tokens/s and
peak RSS from the run's summary.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "models" / "deepseek-r1-distill-qwen-1.5b.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    args = parser.parse_args()
    home = Path(os.environ.setdefault("LLMFT_HOME", str(ROOT / "var")))
    llmft = [sys.executable, "-m", "llmft.cli"]
    model = home / "models" / "r1-1.5b-random"
    if not (model / "config.json").is_file():
        started = time.perf_counter()
        subprocess.run(llmft + ["base", "init", "--config", str(CONFIG), "--tokenizer", "tiny-r1", "--out", str(model)],
                       check=True)
        print(f"model init (1.5B parameters, bf16, written to disk): {time.perf_counter() - started:.1f} s")
    output = home / "runs" / "bench-real-size"
    subprocess.run(["rm", "-rf", str(output)], check=True)
    subprocess.run(llmft + [
        "train", "--no-progress",
        "--set", f"model.base_model={model}", "--set", f"data.train_file={ROOT / 'data/sample/brokerage_support.jsonl'}",
        "--set", f"data.max_length={args.seq}", "--set", "data.on_overlength=drop", "--set", "data.validation_ratio=0",
        "--set", "method.type=lora", "--set", "training.batch_size=1", "--set", f"training.max_steps={args.steps}",
        "--set", "training.logging_steps=1", "--set", f"training.precision={args.precision}",
        "--set", "training.learning_rate=1e-4", "--set", f"output.output_dir={output}"], check=True)
    summary = json.loads((output / "summary.json").read_text())
    metrics = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    steady = [m["tokens_per_second"] for m in metrics if "tokens_per_second" in m][1:]  # first step warms up
    print(f"1.5B shape, LoRA r16 all-linear, {args.precision}, rows of {args.seq} tokens, {summary['steps']} steps: "
          f"{summary['tokens_per_second']:.1f} tokens/s over the run, "
          f"{(sum(steady) / len(steady)) if steady else float('nan'):.1f} tokens/s after the first step, "
          f"peak RSS {summary['peak_rss_gb']:.2f} GB")


if __name__ == "__main__":
    sys.exit(main())
