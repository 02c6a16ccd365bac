"""Per-step time of one training process against two (torchrun, DDP over gloo) on this machine.

    .venv/bin/python bench/ddp_step_time.py [--steps 12] [--batch 8] [--model tiny-r1] [--json out.json]

Same data (the sample, one example per row), same seed, same global batch of B rows per
optimizer step: one process takes B rows (all cores), two processes take B/2 rows each (torchrun
gives each one thread per core it owns). Full fine-tuning of the tiny model. The step time is the
mean gap between consecutive logged steps after the first two (warm-up), read from
metrics.jsonl; the loss curves are printed side by side so the two runs are seen to train alike.

On a CPU machine this measures the cost of DDP's gradient all-reduce against splitting the same
cores two ways; it says nothing of GPU scaling, where each process owns its own device.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8, help="global batch (rows per optimizer step)")
    parser.add_argument("--model", default="tiny-r1")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.batch % 2:
        parser.error("--batch must be even (two processes take half each)")

    results = {}
    with tempfile.TemporaryDirectory(prefix="llmft-ddp-bench-") as home:
        env = {**os.environ, "LLMFT_HOME": home}
        for processes in (1, 2):
            output = Path(home) / f"p{processes}"
            overrides = [f"model.base_model={args.model}", f"data.train_file={SAMPLE}", "data.max_length=1024",
                         "data.pack=false", "method.type=full", f"training.batch_size={args.batch // processes}",
                         f"training.max_steps={args.steps}", "training.logging_steps=1", "training.eval_steps=1000",
                         "training.eval_per_epoch=false", "training.learning_rate=0.003",
                         f"output.output_dir={output}"]
            command = [sys.executable, "-m", "llmft.cli", "train", "--no-progress",
                       *(["--nproc-per-node", str(processes)] if processes > 1 else []),
                       *(arg for value in overrides for arg in ("--set", value))]
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
            steps = [row for row in rows if "loss" in row]
            gaps = [b["time"] - a["time"] for a, b in zip(steps[2:], steps[3:])]
            results[processes] = {"step_s": statistics.mean(gaps), "step_s_median": statistics.median(gaps),
                                  "wall_s": wall, "losses": [round(row["loss"], 5) for row in steps],
                                  "tokens_per_second": statistics.mean(row["tokens_per_second"] for row in steps[2:])}

    one, two = results[1], results[2]
    print(f"global batch {args.batch} rows, {args.steps} steps, {os.cpu_count()} CPU cores, model {args.model}")
    print(f"{'':22}{'step s (mean)':>14}{'step s (median)':>16}{'tokens/s':>10}{'wall s':>8}")
    for processes, label in ((1, "1 process"), (2, "2 processes (DDP)")):
        r = results[processes]
        print(f"{label:22}{r['step_s']:14.3f}{r['step_s_median']:16.3f}{r['tokens_per_second']:10.0f}{r['wall_s']:8.1f}")
    print(f"2 processes / 1 process step time: {two['step_s'] / one['step_s']:.2f}x")
    worst = max(abs(a - b) / abs(b) for a, b in zip(one["losses"], two["losses"]))
    print(f"loss curves: largest relative difference {worst:.2e} over {len(one['losses'])} steps")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
