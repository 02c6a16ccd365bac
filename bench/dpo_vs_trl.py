"""DPO through llmft against TRL's DPOTrainer called directly, and what the DPO did: held-out preference accuracy.

    python bench/dpo_vs_trl.py [--config config/dpo.yaml] [--set training.num_epochs=1 ...]

One run, each engine in its own process, on config/dpo.yaml's data (SmolLM2-135M-Instruct, LoRA r16 alpha 32,
beta 0.1, sigmoid loss, batch 4, rate 1e-4, one epoch over data/sample/concise_preferences.jsonl):
  llmft   `train(config)`, what `llmft train --config config/dpo.yaml` runs: the pairs checked and rendered, TRL's
          DPOTrainer behind our run (atomic checkpoints, metrics.jsonl, events, the NaN stop), final/ and summary.json
  trl     trl.DPOTrainer on its own over the same rendered rows (llmft's, prepared here beforehand, not timed), with
          the same LoRA, precision, rate, schedule, batch, epochs, beta, max_length and seed; TRL's defaults elsewhere
          (TRL's configs default to bf16 autocast, which on this CPU alone makes a step about 20% faster: the
          precision is set to llmft's, fp32 on CPU unless training.precision says otherwise)
Both train without evaluating (validation is scored afterwards, below, by one shared function). Printed: wall time
of the whole training call (model load included), steps, the ratio trl/llmft (>= 1.0: our wrapper costs nothing),
and on the held-out pairs (concise_preferences_validation.jsonl) for the base, llmft's adapter and TRL's:
  prefers_chosen   share of pairs whose chosen answer has the higher summed log-probability under the model
  reward_accuracy  DPO's own measure, TRL's rewards/accuracies: the implicit reward margin
                   beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))) > 0, with the
                   base as the reference (the base's margins are all 0: it is its own reference)
  mean_margin      that margin's mean
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "dpo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="KEY=VALUE, as llmft train")
    parser.add_argument("--worker", choices=["llmft", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))
    if args.worker:
        return _worker(args)
    with tempfile.TemporaryDirectory() as scratch:
        config = _config(args, Path(scratch))
        rows = _prepare(config, Path(scratch))
        results = {}
        for engine in ("llmft", "trl"):
            command = [sys.executable, __file__, "--worker", engine, "--scratch", scratch, "--config", args.config,
                       *[f"--set={item}" for item in args.overrides]]
            subprocess.run(command, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            results[engine] = json.loads((Path(scratch) / f"{engine}.json").read_text())
        scores = _score(config, rows["validation"], results)
    _print(results, scores)


def _config(args, scratch: Path):
    from llmft.train.config import load_config

    overrides = [*args.overrides, f"output.output_dir={scratch / 'llmft-run'}", "training.eval_per_epoch=false",
                 "training.eval_steps=null"]
    return load_config(Path(args.config), overrides)


def _prepare(config, scratch: Path) -> dict[str, list[dict]]:
    """The rendered rows {prompt, chosen, rejected} as llmft trains on them (what the TRL side is given)."""
    from llmft.data.config import DataConfig
    from llmft.data.prepare_rows import prepare_rows

    options = DataConfig(**config.data.model_dump(exclude={"train_file", "row_length"}))
    prepare_rows(Path(config.data.train_file), kind="preference", model=config.model.base_model, config=options,
                 out=scratch / "rows")
    return {split: [json.loads(line) for line in (scratch / "rows" / f"{split}.jsonl").read_text().splitlines()]
            for split in ("train", "validation")}


def _worker(args) -> None:
    scratch = Path(args.scratch)
    config = _config(args, scratch)
    started = time.perf_counter()
    if args.worker == "llmft":
        from llmft.train.run import train

        result = train(config, progress=False)
        adapter, steps = result.final_dir, result.summary.steps
    else:
        adapter, steps = _trl(config, scratch)
    seconds = time.perf_counter() - started
    (scratch / f"{args.worker}.json").write_text(json.dumps({"seconds": seconds, "adapter": str(adapter),
                                                              "steps": steps}))


def _trl(config, scratch: Path):
    """TRL's DPOTrainer as its documentation shows it, with config's hyperparameters."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from llmft.bases.resolve import resolve_model, weights_source
    from llmft.train.load import training_precision

    t, lora = config.training, config.method.lora
    rows = [json.loads(line) for line in (scratch / "rows" / "train.jsonl").read_text().splitlines()]
    model = AutoModelForCausalLM.from_pretrained(weights_source(config.model.base_model), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model.base_model))
    args = DPOConfig(output_dir=str(scratch / "trl-run"), per_device_train_batch_size=t.batch_size,
                     num_train_epochs=t.num_epochs, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
                     warmup_steps=t.warmup_steps, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
                     seed=t.seed, data_seed=t.seed, logging_steps=t.logging_steps, beta=config.method.dpo.beta,
                     loss_type=[config.method.dpo.loss_type], max_length=config.data.max_length, use_cpu=True,
                     bf16=training_precision(config) == "bf16",  # TRL's own default is bf16: keep ours
                     save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True)
    peft = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                      bias="none", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft)
    output = trainer.train()
    trainer.save_model(str(scratch / "trl-final"))
    return scratch / "trl-final", output.global_step


def _score(config, rows: list[dict], results: dict) -> dict:
    """Each model's summed log-probabilities of both sides of every held-out pair, and the measures above."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmft.bases.resolve import resolve_model, weights_source

    beta = config.method.dpo.beta
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model.base_model))
    base = AutoModelForCausalLM.from_pretrained(weights_source(config.model.base_model), use_safetensors=True).eval()
    with torch.inference_mode():
        reference = _logps(base, tokenizer, rows)
        scores = {"base": _measures(reference, reference, beta)}
        for engine, result in results.items():
            tuned = PeftModel.from_pretrained(base, result["adapter"]).eval()
            scores[engine] = _measures(_logps(tuned, tokenizer, rows), reference, beta)
            base = tuned.unload()
    return scores


def _logps(model, tokenizer, rows: list[dict]) -> list[tuple[float, float]]:
    import torch

    out = []
    for row in rows:
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        sides = []
        for side in ("chosen", "rejected"):
            answer = tokenizer(row[side], add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1:-1].float()
            sides.append(logits.log_softmax(-1).gather(-1, torch.tensor(answer)[:, None]).sum().item())
        out.append((sides[0], sides[1]))
    return out


def _measures(policy: list[tuple[float, float]], reference: list[tuple[float, float]], beta: float) -> dict:
    margins = [beta * ((pc - rc) - (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, reference)]
    return {"prefers_chosen": sum(c > r for c, r in policy) / len(policy),
            "reward_accuracy": sum(m > 0 for m in margins) / len(margins),
            "mean_margin": sum(margins) / len(margins), "pairs": len(policy)}


def _print(results: dict, scores: dict) -> None:
    print("| engine | wall s | steps | held-out prefers chosen | reward accuracy | mean margin |")
    print("|---|---|---|---|---|---|")
    print(f"| base (before DPO) | - | - | {scores['base']['prefers_chosen']:.3f} | - | - |")
    for engine, result in results.items():
        s = scores[engine]
        print(f"| {engine} | {result['seconds']:.1f} | {result['steps']} | {s['prefers_chosen']:.3f} | "
              f"{s['reward_accuracy']:.3f} | {s['mean_margin']:.3f} |")
    print(f"ratio trl/llmft wall time: {results['trl']['seconds'] / results['llmft']['seconds']:.2f} "
          f"(>= 1.0: llmft is as fast or faster); held-out pairs: {scores['base']['pairs']}")


if __name__ == "__main__":
    main()
