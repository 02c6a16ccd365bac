"""llmft's trainer against TRL's SFTTrainer: same model, same tokens, same hyperparameters.

    python bench/train_vs_trl.py [--model tiny-r1|smollm2-135m|FOLDER] [--datasets sample longtail]
                                 [--method full|lora] [--engines llmft trl-default trl-packing]

For each dataset, one epoch with each engine, each in its own process (clean peak RSS):
  llmft         our Trainer: packed rows, loss only on trained positions, fused output layer
  trl-default   TRL SFTTrainer with its defaults (padding to the longest, batch of examples,
                gradient checkpointing on, loss over full logits)
  trl-packing   TRL with its best setting: packing=True (BFD, padding-free), no checkpointing
All three get the same token ids and loss masks (our prepared data, handed to TRL pre-tokenized
with `assistant_masks`), the same optimizer, learning rate, schedule and seed, and about the
same number of optimizer steps. Validation loss is computed afterwards by one shared function.
Prints useful (non-padding) tokens/s, wall time, peak RSS, validation loss, ratios and MFU
against this machine's fp32 matmul peak measured in the same run.
"""

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
MAX_LENGTH = 1024
ROWS_PER_STEP = 2
ENGINES = ("llmft", "trl-default", "trl-packing")
COMMON = {"learning_rate": 2e-3, "seed": 42, "weight_decay": 0.0, "max_grad_norm": 1.0, "warmup_steps": 0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["sample", "longtail"], choices=["sample", "longtail"])
    parser.add_argument("--method", default="full", choices=["full", "lora"])
    parser.add_argument("--model", default="tiny-r1", help="a base name or a model folder (default tiny-r1)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--examples-per-step", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.worker and "llmft" not in args.engines:
        parser.error("--engines: llmft is the side every ratio is taken against; keep it")
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))
    if args.worker:
        return _worker(args)

    peak = matmul_peak_gflops()
    print(f"machine: fp32 matmul peak {peak:.0f} GFLOP/s (2048x2048, {os.cpu_count()} cores), model {args.model}, "
          f"method {args.method}")
    for name in args.datasets:
        with tempfile.TemporaryDirectory() as scratch:
            prepared = _prepare(name, Path(scratch), args.model)
            results = {}
            for engine in args.engines:
                out = Path(scratch) / f"{engine}.json"
                command = [sys.executable, __file__, "--worker", engine, "--prepared", str(prepared), "--result",
                           str(out), "--method", args.method, "--model", args.model, "--examples-per-step", str(_examples_per_step(prepared))]
                subprocess.run(command, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                results[engine] = json.loads(out.read_text())
            _print_table(name, prepared, results, peak)


def _prepare(name: str, scratch: Path, model: str) -> Path:
    from llmft.data.config import DataConfig
    from llmft.data.prepare import prepare

    source = SAMPLE if name == "sample" else _longtail(scratch / "longtail.jsonl")
    config = DataConfig(max_length=MAX_LENGTH, validation_ratio=0.1, on_overlength="drop")
    return prepare(source, model=model, config=config, out=scratch / f"prepared-{name}").folder


def _longtail(path: Path, count: int = 96, seed: int = 0) -> Path:
    """Chats whose lengths follow a long-tailed (log-normal) distribution, built from our sample answers."""
    rng = random.Random(seed)
    chats = [json.loads(line)["messages"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    answers = [m["content"] for chat in chats for m in chat if m["role"] == "assistant"]
    questions = [m["content"] for chat in chats for m in chat if m["role"] == "user"]
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            parts = max(1, min(14, round(rng.lognormvariate(0.3, 0.9))))
            answer = "\n\n".join(rng.choice(answers) for _ in range(parts))
            record = {"messages": [{"role": "user", "content": rng.choice(questions)},
                                   {"role": "assistant", "content": answer}]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _examples_per_step(prepared: Path) -> int:
    """TRL's default batch (in examples) that gives about as many steps as packed rows do."""
    from llmft.data.pack import pack_best_fit
    from llmft.data.store import read_tokens

    train = read_tokens(prepared / "train.tokens.safetensors")
    rows = len(pack_best_fit([len(t) for t in train], MAX_LENGTH))
    steps = max(1, math.ceil(rows / ROWS_PER_STEP))
    return max(1, round(len(train) / steps))


def _worker(args) -> None:
    from llmft.data.store import read_tokens

    prepared = Path(args.prepared)
    train = read_tokens(prepared / "train.tokens.safetensors")
    validation = read_tokens(prepared / "validation.tokens.safetensors")
    output = Path(tempfile.mkdtemp(prefix=f"bench-{args.worker}-"))
    runner = {"llmft": _run_llmft, "trl-default": _run_trl, "trl-packing": _run_trl}[args.worker]
    seconds, steps, model = runner(args, prepared, train, output)
    result = {
        "train_seconds": seconds,
        "steps": steps,
        "useful_tokens": sum(len(t) for t in train),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "validation_loss": validation_loss(model, validation),
        "matmul_params": matmul_params(model),
    }
    Path(args.result).write_text(json.dumps(result))


def _run_llmft(args, prepared, train, output):
    from llmft.train.config import load_config
    from llmft.train.run import train as run_train

    config = load_config(None, [
        f"data.train_file={prepared / 'train.jsonl'}", f"data.validation_file={prepared / 'validation.jsonl'}",
        f"model.base_model={args.model}", f"data.max_length={MAX_LENGTH}", f"method.type={args.method}", "method.lora.dropout=0.0",
        "training.num_epochs=1", f"training.batch_size={ROWS_PER_STEP}", "training.lr_scheduler=linear",
        f"training.learning_rate={COMMON['learning_rate']}", f"training.seed={COMMON['seed']}",
        f"training.max_grad_norm={COMMON['max_grad_norm']}", "training.logging_steps=10",
        "training.eval_per_epoch=false", "output.final_model=last", f"output.output_dir={output}"])
    result = run_train(config, progress=False)
    return (result.summary.train_runtime_s, result.summary.steps,
            _load_final(result.final_dir, args.method, args.model))


def _run_trl(args, prepared, train, output):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from llmft.bases.resolve import resolve_model
    from llmft.data.tokenize import IGNORE

    torch.manual_seed(COMMON["seed"])
    folder = resolve_model(args.model)
    dataset = Dataset.from_list([{"input_ids": t.input_ids, "assistant_masks": [int(l != IGNORE) for l in t.labels]}
                                 for t in train])
    packing = args.worker == "trl-packing"
    config = SFTConfig(
        output_dir=str(output), num_train_epochs=1, max_length=MAX_LENGTH, use_cpu=True, bf16=False,
        per_device_train_batch_size=ROWS_PER_STEP if packing else args.examples_per_step,
        packing=packing, gradient_checkpointing=not packing, learning_rate=COMMON["learning_rate"],
        lr_scheduler_type="linear", weight_decay=COMMON["weight_decay"], max_grad_norm=COMMON["max_grad_norm"],
        warmup_steps=COMMON["warmup_steps"], seed=COMMON["seed"], data_seed=COMMON["seed"], optim="adamw_torch",
        logging_steps=10, save_strategy="no", report_to="none", disable_tqdm=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                             task_type="CAUSAL_LM") if args.method == "lora" else None
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset,
                         processing_class=AutoTokenizer.from_pretrained(folder), peft_config=peft_config)
    output_metrics = trainer.train()
    return output_metrics.metrics["train_runtime"], trainer.state.global_step, trainer.model


def _load_final(folder: Path, method: str, base: str):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmft.bases.resolve import resolve_model

    if method == "full":
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(resolve_model(base)), folder)


def validation_loss(model, examples) -> float:
    """Token-weighted cross-entropy on the trained tokens, one example at a time, full logits."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor(example.labels[1:])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            mask = labels != -100
            total += torch.nn.functional.cross_entropy(logits[mask], labels[mask], reduction="sum").item()
            count += int(mask.sum())
    return total / max(count, 1)


def matmul_params(model) -> int:
    """Parameters that take part in a matmul per token: every Linear, plus the output layer."""
    import torch
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    linear = sum(m.weight.numel() for n, m in base.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in n and n != "lm_head")
    return linear + base.get_output_embeddings().weight.numel()


def matmul_peak_gflops(size: int = 2048, repeat: int = 5) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _print_table(name: str, prepared: Path, results: dict, peak: float) -> None:
    report = json.loads((prepared / "report.json").read_text())
    base = results["llmft"]
    print(f"\ndataset {name}: {report['split']['train']} train / {report['split']['validation']} validation examples, "
          f"{base['useful_tokens']:,} useful training tokens, length p50 {report['length']['p50']} "
          f"max {report['length']['max']}")
    print(f"{'engine':<12} {'steps':>5} {'wall s':>8} {'useful tok/s':>12} {'peak RSS GB':>11} {'val loss':>9} "
          f"{'MFU':>6} {'llmft speedup':>13}")
    for engine, r in results.items():
        rate = r["useful_tokens"] / r["train_seconds"]
        mfu = 6 * r["matmul_params"] * rate / (peak * 1e9)
        speedup = (base["useful_tokens"] / base["train_seconds"]) / rate
        print(f"{engine:<12} {r['steps']:>5} {r['train_seconds']:>8.1f} {rate:>12.0f} {r['peak_rss_gb']:>11.2f} "
              f"{r['validation_loss']:>9.4f} {mfu:>6.1%} {speedup:>12.2f}x")


if __name__ == "__main__":
    sys.exit(main())
