"""Prefix caching: time to first token with a long shared system prompt, cold against warm, and the outputs with
the cache on against off.

    .venv/bin/python bench/prefix_cache.py [--model smollm2-135m] [--system-tokens 1000] [--clients 8]
                                           [--max-tokens 32] [--json out.json]

One run, in this process, on the inference engine itself (llmft/serve/engine.py; no HTTP in between, so the
figures are the engine's): a system prompt of about S tokens (the business rules of a support desk, repeated to
length) and C different customer questions (data/sample/brokerage_support.jsonl), rendered as the server renders a
chat. Three rounds of C concurrent greedy requests, each round C new questions:
  cold   a fresh engine: every prompt is prefilled whole (the cache holds nothing yet)
  warm   the same engine, new questions: the system prompt's blocks come from the prefix cache
  off    a fresh engine with prefix_cache_bytes=0, the warm round's questions: must decode the same tokens
The figure is mean TTFT cold / mean TTFT warm (target >= 3x at 1,000 tokens and 8 clients), beside the tokens
reused and the cache's memory. The model loads before the first round (its load is not in any TTFT).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
RULES = ("Harbor Brokerage support desk rules. Answer in two sentences at most. Name the account setting, form or "
         "page the customer needs. Never give investment advice or predict prices. Hand over to a human agent for "
         "margin calls, frozen accounts, tax forms, transfers above $50,000, complaints and anything about a death "
         "in the family. Quote fees from the fee schedule only: stock trades $0, options $0.65 per contract, wire "
         "transfers out $25, paper statements $2 a month. ")
TARGET = 3.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m", help="a built-in base (smollm2-135m, tiny-r1) or a folder")
    parser.add_argument("--system-tokens", type=int, default=1000, help="length of the shared system prompt")
    parser.add_argument("--clients", type=int, default=8, help="concurrent requests per round")
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens per request (greedy)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))

    from llmft.bases.resolve import load_tokenizer, resolve_model
    from llmft.data.normalize import Message
    from llmft.serve.backend import Target
    from llmft.serve.engine import Engine
    from llmft.serve.service import chat_prompt

    tokenizer = load_tokenizer(str(resolve_model(args.model)))
    system = RULES
    while len(tokenizer(system, add_special_tokens=False)["input_ids"]) < args.system_tokens:
        system += RULES
    questions = [json.loads(line)["messages"][0]["content"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    rounds = [questions[i * args.clients:(i + 1) * args.clients] for i in range(2)]
    prompts = [[chat_prompt(tokenizer, [Message("system", system), Message("user", q)])[0] for q in batch]
               for batch in rounds]
    target = Target(key=f"base:{args.model}", label=args.model, base_model=args.model)
    system_tokens = len(tokenizer(system, add_special_tokens=False)["input_ids"])
    print(f"machine: {os.cpu_count()} cores; {args.model}; system prompt {system_tokens} tokens, "
          f"prompts {min(map(len, prompts[0]))}-{max(map(len, prompts[0]))} tokens; {args.clients} concurrent; "
          f"{args.max_tokens} new tokens, greedy")

    # each engine first loads the model and runs prompts as long as the real ones but of other tokens (reversed:
    # no block of theirs is ever matched), so no round pays for a first call
    warmup = [list(reversed(p)) for p in prompts[0]]
    on = Engine(max_batch=max(16, args.clients))
    _round(on, target, warmup, 2)
    cold = _round(on, target, prompts[0], args.max_tokens)
    warm = _round(on, target, prompts[1], args.max_tokens)
    off = Engine(max_batch=max(16, args.clients), prefix_cache_bytes=0)
    _round(off, target, warmup, 2)
    plain = _round(off, target, prompts[1], args.max_tokens)

    same = [a["token_ids"] == b["token_ids"] for a, b in zip(warm, plain)]
    stats = dict(on.prefixes.stats, cache_mb=round(on.prefixes.used / 2**20, 1))
    result = {"model": args.model, "clients": args.clients, "prompt_tokens": [len(p) for p in prompts[1]],
              "max_tokens": args.max_tokens, "cache": stats, "identical_outputs": sum(same)}
    print(f"\n{'round':<8}{'mean TTFT':>12}{'p50 TTFT':>12}{'max TTFT':>12}{'tok/s':>10}")
    for name, rows in (("cold", cold), ("warm", warm), ("off", plain)):
        ttft = [row["ttft"] for row in rows]
        seconds = max(row["end"] for row in rows) - min(row["start"] for row in rows)
        tokens = sum(len(row["token_ids"]) for row in rows)
        result[name] = {"mean_ttft": statistics.mean(ttft), "p50_ttft": statistics.median(ttft),
                        "max_ttft": max(ttft), "tokens_per_second": tokens / seconds}
        print(f"{name:<8}{statistics.mean(ttft):>11.3f}s{statistics.median(ttft):>11.3f}s{max(ttft):>11.3f}s"
              f"{tokens / seconds:>10.1f}")
    ratio = result["cold"]["mean_ttft"] / result["warm"]["mean_ttft"]
    result["cold_over_warm"] = ratio
    print(f"\nmean TTFT cold / warm: {ratio:.2f}x (target >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'NOT met'}); "
          f"tokens reused {stats['tokens_reused']}, cache {stats['cache_mb']} MB; "
          f"outputs identical with the cache off: {sum(same)}/{len(same)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    sys.exit(0 if all(same) else 1)


def _round(engine, target, prompts: list[list[int]], max_tokens: int) -> list[dict]:
    from llmft.serve.sampling import Sampling

    start = time.monotonic()
    generations = [engine.submit(target, p, Sampling(max_new_tokens=max_tokens, temperature=0), reasoning_open=False,
                                 timeout=600) for p in prompts]
    rows = []
    for generation in generations:
        done = generation.results()[0]
        rows.append({"ttft": done.time_to_first_token, "token_ids": done.token_ids, "start": start,
                     "end": time.monotonic()})
    return rows


if __name__ == "__main__":
    main()
