"""Does a fine-tune answer better? smollm2-135m against its LoRA and full fine-tunes on the Cobalt Courier FAQ.

    python bench/quality.py [--methods lora full] [--json FILE]

Each method runs in its own process (clean peak RSS) through the code path of a fine-tuning job
with no hyperparameters: the job's config (`jobs.service.training_config`, every training value
"auto"), `train.run.train`, then the evaluation a job runs before it registers the version
(`evaluate.run.evaluate_fine_tune`: the fine-tune next to its base on the validation file, every
example generated greedily). The validation file asks about the training file's facts in other
words, so a higher fact hit rate means facts were learned, not wording.

Prints base against each fine-tune: validation loss, ROUGE-L, BLEU, fact hit rate, ended-with-EOS,
mean answer length, training wall time and peak RSS; then the targets of the issue that asked for
it (validation loss at least 30% lower, fact hit rate at least 3x the base's, EOS at least 95%)
and three answers before and after.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "sample" / "cobalt_courier_faq.jsonl"
VALIDATION = ROOT / "data" / "sample" / "cobalt_courier_faq_validation.jsonl"
BASE = "smollm2-135m"
TARGETS = {"loss_drop": 0.30, "fact_hit_ratio": 3.0, "ended_with_eos": 0.95}
SHOWN = [("eval_loss", "validation loss", "{:.4f}"), ("rouge_l", "ROUGE-L", "{:.3f}"), ("bleu", "BLEU", "{:.1f}"),
         ("fact_hit", "fact hit rate", "{:.3f}"), ("ended_with_eos", "ended with EOS", "{:.2f}"),
         ("mean_answer_chars", "mean answer chars", "{:.0f}")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--json", type=Path, help="also write every figure and answer here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        return _worker(args.worker, args.result)

    from llmft.bases.resolve import resolve_model

    resolve_model(BASE)  # built once here, not inside a timed run
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for method in args.methods:
            out = Path(scratch) / f"{method}.json"
            subprocess.run([sys.executable, __file__, "--worker", method, "--result", str(out)], check=True)
            results[method] = json.loads(out.read_text())
    print(table(results))
    print(targets(results))
    print(answers(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


def _worker(method: str, result_path: Path) -> None:
    from llmft.evaluate.run import evaluate_fine_tune
    from llmft.jobs.service import training_config
    from llmft.train.run import train

    output = Path(tempfile.mkdtemp(prefix=f"bench-quality-{method}-"))
    config = training_config(base_model=BASE, train_file=TRAIN, validation_file=VALIDATION, method=method,
                             hyperparameters={}, seed=42, output_dir=output)
    started = time.time()
    result = train(config, progress=False)
    trained = time.time() - started
    report = evaluate_fine_tune(base_model=BASE, final_dir=result.final_dir, data_dir=result.data_dir)
    summary = result.summary
    result_path.write_text(json.dumps({
        "report": report, "train_wall_s": round(trained, 1), "eval_s": report["seconds"],
        "train_peak_rss_gb": summary.peak_rss_gb,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "steps": summary.steps, "tokens_per_second": summary.tokens_per_second,
        "hyperparameters": summary.hyperparameters, "auto": summary.auto}, ensure_ascii=False))


def table(results: dict) -> str:
    methods = list(results)
    base = results[methods[0]]["report"]["base"]
    first = results[methods[0]]["report"]
    lines = [f"{first['generated']} validation questions (paraphrased), at most {first['max_new_tokens']} new tokens, "
             "greedy", "",
             "| metric | base | " + " | ".join(f"{m} fine-tune" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for key, label, form in SHOWN:
        row = [form.format(base[key])] + [form.format(results[m]["report"]["candidate"][key]) for m in methods]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    for key, label in [("steps", "optimizer steps"), ("train_wall_s", "training wall s"),
                       ("eval_s", "evaluation wall s (both sides)"), ("peak_rss_gb", "peak RSS GB")]:
        lines.append(f"| {label} | | " + " | ".join(str(results[m][key]) for m in methods) + " |")
    lines.append("| hyperparameters (auto) | | " + " | ".join(
        ", ".join(f"{k} {v}" for k, v in results[m]["hyperparameters"].items() if v is not None) for m in methods)
        + " |")
    return "\n".join(lines)


def targets(results: dict) -> str:
    lines = [""]
    for method, result in results.items():
        base, tuned = result["report"]["base"], result["report"]["candidate"]
        drop = 1 - tuned["eval_loss"] / base["eval_loss"]
        ratio = tuned["fact_hit"] / base["fact_hit"] if base["fact_hit"] else float("inf")
        checks = [(f"validation loss {drop:.0%} lower", drop >= TARGETS["loss_drop"]),
                  (f"fact hit {ratio:.1f}x the base's", ratio >= TARGETS["fact_hit_ratio"]),
                  (f"ended with EOS {tuned['ended_with_eos']:.0%}", tuned["ended_with_eos"] >= TARGETS["ended_with_eos"])]
        lines.append(f"{method}: " + "; ".join(f"{text} ({'met' if ok else 'MISSED'})" for text, ok in checks))
    return "\n".join(lines)


def answers(results: dict, count: int = 3) -> str:
    methods = list(results)
    samples = [results[m]["report"]["samples"] for m in methods]
    lines = [""]
    for i, sample in enumerate(samples[0][:count]):
        lines += [f"Q: {sample['prompt']}", f"  reference: {sample['reference']}",
                  f"  base:      {sample['base']['answer']}"]
        lines += [f"  {m + ':':10} {samples[k][i]['candidate']['answer']}" for k, m in enumerate(methods)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
