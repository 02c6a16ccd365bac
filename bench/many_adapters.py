"""Many LoRA versions of one base served at once: throughput with every row of a batch on a different adapter,
against the same batch on the base alone; memory and load time per adapter.

    .venv/bin/python bench/many_adapters.py [--model smollm2-135m] [--adapters 32] [--rank 16] [--max-tokens 32]
                                            [--json out.json]

One run, in this process, on the inference engine (llmft/serve/engine.py): A adapters of rank R on every linear
layer of the base (q, k, v, o, gate, up, down), random non-zero weights, saved as training saves them. Rounds of A
concurrent greedy requests with the same prompts (the first user messages of data/sample/brokerage_support.jsonl),
each making up to M tokens (the mean made is printed: a side whose answers stop early runs smaller batches):
  base    every request to the base model
  mixed   request i to adapter i: one batch holding all A adapters
The figure is mixed tokens/s over base tokens/s (target >= 70% at 32 adapters). Load time is the first round's
wall time on each adapter alone (its load and one token), memory the adapter's parameters in the engine.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
TARGET = 0.70
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m", help="a built-in base (smollm2-135m, tiny-r1) or a folder")
    parser.add_argument("--adapters", type=int, default=32)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32, help="most new tokens per request")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each kind (the best is kept)")
    parser.add_argument("--peft-loop", action="store_true",
                        help="PEFT's own mixed-batch loop instead of llmft's batched LoRA layers (the comparison)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))
    if args.peft_loop:
        import llmft.serve.multi_lora

        llmft.serve.multi_lora.install = lambda model: None  # the engine imports it at each adapter load

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from llmft.bases.resolve import load_tokenizer, resolve_model, weights_source
    from llmft.data.normalize import Message
    from llmft.serve.backend import Target
    from llmft.serve.engine import Engine
    from llmft.serve.service import chat_prompt

    tokenizer = load_tokenizer(str(resolve_model(args.model)))
    questions = [json.loads(line)["messages"][0]["content"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    prompts = [chat_prompt(tokenizer, [Message("user", questions[i % len(questions)])])[0]
               for i in range(args.adapters)]
    folder = Path(tempfile.mkdtemp(prefix="llmft-adapters-"))
    started = time.monotonic()
    targets = []
    for i in range(args.adapters):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(weights_source(args.model), dtype=torch.float32)
        config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=MODULES, init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(folder / f"a{i}")
        targets.append(Target(key=f"mv-{i}", label=f"bot:{i}", base_model=args.model, kind="adapter",
                              folder=folder / f"a{i}"))
    print(f"machine: {os.cpu_count()} cores; {args.model}; {args.adapters} adapters of rank {args.rank} on "
          f"{', '.join(MODULES)} (made in {time.monotonic() - started:.0f} s); {args.max_tokens} tokens per request; "
          f"LoRA layers: {'PEFT loop' if args.peft_loop else 'batched (serve/multi_lora.py)'}")

    base = Target(key=f"base:{args.model}", label=args.model, base_model=args.model)
    engine = Engine(max_batch=args.adapters, prefix_cache_bytes=0)  # every prompt runs whole on both sides
    _round(engine, [base], prompts[:1], 1)  # loads the base
    loads = []
    for target, prompt in zip(targets, prompts):
        began = time.monotonic()
        _round(engine, [target], [prompt], 1)
        loads.append(time.monotonic() - began)
    memory = [entry["bytes"] for entry in engine.loaded() if entry["kind"] == "adapter"]
    result = {"model": args.model, "adapters": args.adapters, "rank": args.rank, "max_tokens": args.max_tokens,
              "layers": "peft_loop" if args.peft_loop else "batched",
              "load_seconds_median": statistics.median(loads), "adapter_mb": statistics.mean(memory) / 2**20}
    for name, round_targets in (("base", [base] * args.adapters), ("mixed", targets)):
        result[name], result[f"{name}_mean_tokens"] = max(_round(engine, round_targets, prompts, args.max_tokens)
                                                          for _ in range(args.rounds))
    ratio = result["mixed"] / result["base"]
    result["mixed_over_base"] = ratio
    print(f"base only: {result['base']:.1f} tok/s ({result['base_mean_tokens']:.1f} tokens an answer); "
          f"{args.adapters} adapters mixed: {result['mixed']:.1f} tok/s ({result['mixed_mean_tokens']:.1f}); "
          f"ratio {ratio:.2f} (target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})")
    print(f"per adapter: {result['adapter_mb']:.2f} MB in memory, loaded and first token in "
          f"{result['load_seconds_median']:.2f} s (median)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


def _round(engine, targets, prompts, max_tokens: int) -> tuple[float, float]:
    """(tokens per second, mean tokens per answer) of one round: request i to targets[i] with prompts[i], at once."""
    from llmft.serve.sampling import Sampling

    started = time.monotonic()
    generations = [engine.submit(target, prompt, Sampling(max_new_tokens=max_tokens, temperature=0), reasoning_open=False, timeout=900)
                   for target, prompt in zip(targets, prompts)]
    tokens = [generation.results()[0].completion_tokens for generation in generations]
    return sum(tokens) / (time.monotonic() - started), sum(tokens) / len(tokens)


if __name__ == "__main__":
    main()
