"""Does GRPO with the evaluation's graders as rewards improve a real model? smollm2-135m on business math, after SFT.

    python bench/grpo_proof.py [--tasks shipping_fee] [--grpo-steps 100] [--out var/grpo-proof]
    python bench/grpo_proof.py --question-contains "sent standard" --graders config/graders/business_math.yaml \
        --num-generations 8 --prompts-per-step 1 --held-out-seed 31 --held-out 60 --out var/grpo-proof-3

Every stage is the command a user runs, on the task of "Reasoning on a real model" narrowed to `--tasks`: training
records drawn by data/sample/make_business_math.py with another seed (its questions that also appear in the held-out
file dropped), held-out questions from data/sample/business_math_validation.jsonl, or with --held-out-seed from a
third draw of that seed (for a held-out set larger than the sample's). --question-contains narrows GRPO's prompts and
the held-out questions further (SFT still sees every record of --tasks).
1. SFT: `llmft train --config config/business_math_sft.yaml` on those records (LoRA, one epoch);
2. the adapter merged into its base (registry/export.py, what `llmft models export` does), the start of GRPO;
3. GRPO: `llmft train --config config/grpo.yaml` from that folder, rewarded by config/graders/business_math_rl.yaml
   (the exact total, partial credit for a near miss, the think format);
4. `llmft eval --graders` of the GRPO adapter next to the SFT folder on held-out questions of the same tasks (greedy).

Prints the training reward and numeric grader over the first and last fifth of the GRPO steps (metrics.jsonl) and
held-out accuracy before and after. Each stage is skipped when its output exists (rerun with a fresh --out).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
GRADERS = ROOT / "config" / "graders" / "business_math_rl.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=["shipping_fee"])
    parser.add_argument("--drawn", type=int, default=2400, help="records drawn (all tasks) before keeping --tasks")
    parser.add_argument("--sft-epochs", type=int, default=1)
    parser.add_argument("--grpo-steps", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=2e-4, help="GRPO's LoRA rate")
    parser.add_argument("--lr-scheduler", default="cosine", choices=["cosine", "linear", "constant"])
    parser.add_argument("--beta", type=float, default=0.0, help="KL penalty toward the SFT model (0: none)")
    parser.add_argument("--start-from", type=Path, help="an earlier --out whose SFT (sft, sft-merged) to reuse")
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--held-out-seed", type=int, help="draw the held-out questions with this seed, not the sample's")
    parser.add_argument("--question-contains", default="", help="GRPO and held out: only questions with this text")
    parser.add_argument("--graders", type=Path, default=GRADERS, help="GRPO's rewards and the held-out graders")
    parser.add_argument("--num-generations", type=int, default=4, help="completions per prompt (a group)")
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "grpo-proof")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = SAMPLE / "business_math_validation.jsonl"
    if args.held_out_seed is not None:
        source = draw(out / "held-out-drawn", args.drawn, args.held_out_seed)
    held_out = subset(source, args.tasks, out / "held_out.jsonl", args.held_out, contains=args.question_contains)
    seen = {json.loads(line)["messages"][0]["content"] for line in held_out.read_text().splitlines()}
    drawn = draw(out / "drawn", args.drawn, 23)
    train = subset(drawn, args.tasks, out / "train.jsonl", skip=seen)
    prompts = subset(drawn, args.tasks, out / "prompts.jsonl", skip=seen, contains=args.question_contains)

    sft, merged, grpo = out / "sft", out / "sft-merged", out / "grpo"
    if args.start_from:  # the same SFT (same train file): only GRPO and the evaluation run again
        sft, merged = args.start_from.resolve() / "sft", args.start_from.resolve() / "sft-merged"
    if not (sft / "final").is_dir():
        llmft("train", "--config", "config/business_math_sft.yaml", "--no-progress",
              "--set", f"data.train_file={train}", "--set", f"data.validation_file={held_out}",
              "--set", "data.max_length=256", "--set", f"training.num_epochs={args.sft_epochs}",
              "--set", "training.save_steps=1000",
              "--set", f"output.output_dir={sft}")
    if not merged.is_dir():
        from llmft.registry.export import merge_adapter

        merge_adapter(base_model="smollm2-135m", adapter_dir=sft / "final", out=merged)
    if not (grpo / "final").is_dir():
        llmft("train", "--config", "config/grpo.yaml", "--no-progress",
              "--set", f"model.base_model={merged}", "--set", f"data.train_file={prompts}",
              "--set", f"method.grpo.graders={args.graders.resolve()}", "--set", "method.grpo.max_completion_length=144",
              "--set", f"method.grpo.num_generations={args.num_generations}",
              "--set", f"training.batch_size={args.prompts_per_step}",
              "--set", f"method.grpo.temperature={args.temperature}",
              "--set", "method.grpo.reward.length_target=128", "--set", f"training.max_steps={args.grpo_steps}",
              "--set", f"training.learning_rate={args.learning_rate}", "--set", "training.save_steps=50",
              "--set", f"training.lr_scheduler={args.lr_scheduler}", "--set", f"method.grpo.beta={args.beta}",
              "--set", f"output.output_dir={grpo}")
    report_path = out / "eval.json"
    if not report_path.is_file():
        report = llmft("eval", "--model", str(grpo / "final"), "--base", str(merged), "--dataset", str(held_out),
                       "--whole-file", "--graders", str(args.graders.resolve()), "--max-new-tokens", "160", "--json", capture=True)
        report_path.write_text(report)
    print(summary(grpo / "metrics.jsonl", json.loads(report_path.read_text()), args))


def draw(folder: Path, count: int, seed: int) -> Path:
    """`count` records of every task drawn by make_business_math.py with `seed` (once: kept in `folder`)."""
    if not (folder / "business_math.jsonl").is_file():
        subprocess.run([sys.executable, str(SAMPLE / "make_business_math.py"), "--train", str(count),
                        "--validation", "1", "--seed", str(seed), "--out", str(folder)], check=True)
    return folder / "business_math.jsonl"


def subset(source: Path, tasks: list[str], target: Path, limit: int | None = None, skip: set = frozenset(),
           contains: str = "") -> Path:
    records = [json.loads(line) for line in source.read_text().splitlines()]
    rows = [json.dumps(row) for row in records if row["metadata"]["task"] in tasks
            and contains in row["messages"][0]["content"] and row["messages"][0]["content"] not in skip]
    target.write_text("\n".join(rows[:limit]) + "\n")
    return target


def llmft(*argv: str, capture: bool = False) -> str:
    done = subprocess.run([sys.executable, "-m", "llmft.cli", *argv], cwd=ROOT, check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def summary(metrics: Path, report: dict, args) -> str:
    logs = [row for row in map(json.loads, metrics.read_text().splitlines()) if "reward_mean" in row or "reward" in row]
    fifth = max(1, len(logs) // 5)
    keys = [("reward", ("reward_mean", "reward")), ("exact total", ("rewards/total/mean",)),
            ("near miss (partial)", ("rewards/close/mean",)), ("think format", ("rewards/format/mean",)),
            ("zero-variance groups", ("zero_variance_share",)), ("clipped", ("clipped_share",)),
            ("completion length", ("completion_length",))]

    def mean(rows: list[dict], names: tuple[str, ...]) -> str:
        values = [next(row[name] for name in names if name in row) for row in rows
                  if any(name in row for name in names)]  # one value a row: the first name it has
        return f"{sum(values) / len(values):.3f}" if values else "-"

    first, last = logs[:fifth], logs[-fifth:]
    lines = [f"GRPO on {', '.join(args.tasks)}: {len(logs)} logged steps (last step {logs[-1].get('step')}), "
             f"first and last {fifth} logs", "", "| training, mean of | first | last |", "|---|---|---|"]
    lines += [f"| {label} | {mean(first, names)} | {mean(last, names)} |" for label, names in keys]
    base, tuned = report["base"], report["candidate"]
    lines += ["", f"held out ({report.get('generated', args.held_out)} questions, greedy) | after SFT | after GRPO", "|---|---|---|"]
    for name in ("grader.total", "grader.close", "grader.format", "eos_rate", "mean_reasoning_tokens"):
        if name in base:
            lines.append(f"| {name} | {base[name]:.3f} | {tuned[name]:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
