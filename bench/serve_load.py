"""llmft's inference server under load against plain sequential `model.generate`: same tiny model, same prompts.

    .venv/bin/python bench/serve_load.py [--max-tokens 64] [--clients 1,4,8,16] [--requests N] [--json out.json]

One run, in a fresh $LLMFT_HOME:
  sequential generate  in this process, one prompt at a time: `model.generate(..., do_sample=True,
                       temperature=1, top_k=0)` with min_new_tokens = max_new_tokens = M, so every request
                       makes exactly M tokens
  server c=N           `llmft serve --threads 64` in a subprocess (continuous batching), N client threads
                       sending streaming chat completions (temperature 1, max_tokens M) one after another
                       from a shared queue of R requests (default R = max(16, 2N))
Both sides get the same chat prompts (first user messages of data/sample/brokerage_support.jsonl, rendered
by the server's own `chat_prompt`). The baseline runs before the server starts, so the two never compete
for the CPU. Prints output tokens/s, the ratio to sequential generate, p50/p95 latency and time to first
token, and whether the server at 8 clients reaches 3x sequential generate. Both sides sample at
temperature 1: greedy decoding of the random tiny model yields only newlines, which stream as no text,
so the server's time to first token could not be seen.
"""

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
MODEL = "tiny-r1"
TARGET_CLIENTS, TARGET_RATIO = 8, 3.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request (M)")
    parser.add_argument("--requests", type=int, help="requests per level (default max(16, 2 x clients))")
    parser.add_argument("--clients", default="1,4,8,16", help="comma-separated concurrency levels")
    parser.add_argument("--port", type=int, help="server port (default: a free one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    levels = [int(part) for part in args.clients.split(",") if part.strip()]
    counts = {c: args.requests or max(16, 2 * c) for c in levels}

    home = Path(tempfile.mkdtemp(prefix="llmft-serve-load-"))
    os.environ["LLMFT_HOME"] = str(home)  # before any llmft import: the tiny model is built here
    for name in ("DATABASE_URL", "REDIS_URL"):  # embedded SQLite only, never a shared database
        os.environ.pop(name, None)
    prompts = user_prompts(max(counts.values()))
    print(f"machine: {os.cpu_count()} cores; {MODEL}, {args.max_tokens} tokens per request; state in {home}")

    rows = [sequential_generate(prompts, args.max_tokens)]
    server, port = start_server(home, args.port)
    try:
        key = create_key(home)
        base_url = f"http://127.0.0.1:{port}/v1"
        for text in prompts[:2]:  # warm-up: model loaded, first batch run
            one_request(client_for(base_url, key), text, args.max_tokens)
        for clients in levels:
            rows.append(server_level(base_url, key, prompts[:counts[clients]], clients, args.max_tokens))
    except BaseException:
        print(f"server log ({home / 'server.log'}), last lines:\n{tail(home / 'server.log')}", file=sys.stderr)
        raise
    finally:
        stop_server(server)
    report(rows, args)


def user_prompts(count: int) -> list[str]:
    """The first user message of each sample chat, cycled to `count`."""
    chats = [json.loads(line)["messages"] for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    firsts = [next(m["content"] for m in chat if m["role"] == "user") for chat in chats]
    return [firsts[i % len(firsts)] for i in range(count)]


def sequential_generate(prompts: list[str], max_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    from llmft.bases.resolve import ensure_tiny_model
    from llmft.data.normalize import Message
    from llmft.serve.service import chat_prompt

    class FirstToken(BaseStreamer):
        """generate() puts the prompt first, then each new token: remember when the first new one came."""
        def __init__(self):
            self.calls, self.at = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2:
                self.at = time.perf_counter()

        def end(self):
            pass

    folder = ensure_tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    inputs = [torch.tensor([chat_prompt(tokenizer, [Message("user", text)])[0]]) for text in prompts]
    options = {"max_new_tokens": max_tokens, "min_new_tokens": max_tokens, "do_sample": True,
               "temperature": 1.0, "top_p": 1.0, "top_k": 0,
               "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id}
    latencies, ttfts, tokens = [], [], []
    with torch.inference_mode():
        model.generate(inputs[0], **options)  # warm-up, untimed
        began = time.perf_counter()
        for input_ids in inputs:
            streamer, start = FirstToken(), time.perf_counter()
            output = model.generate(input_ids, streamer=streamer, **options)
            latencies.append(time.perf_counter() - start)
            ttfts.append(streamer.at - start)
            tokens.append(output.shape[1] - input_ids.shape[1])
        wall = time.perf_counter() - began
    return summarize("sequential generate", wall, latencies, ttfts, tokens)


def start_server(home: Path, port: int | None) -> tuple[subprocess.Popen, int]:
    port = port or free_port()
    command = [sys.executable, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "64"]
    with open(home / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(command, cwd=home, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    wait_ready(server, f"http://127.0.0.1:{port}/healthz", home / "server.log", seconds=180)
    return server, port


def wait_ready(server: subprocess.Popen, url: str, log: Path, seconds: int = 300) -> None:
    """Until `url` answers 200; the server stopped and an error with its log's last lines if it exits or is not
    ready after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{server.args[0]} exited with {server.returncode}; log:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"{url}: not ready after {seconds} s; log:\n{tail(log)}")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def create_key(home: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "create", "--tenant", "bench", "--role", "admin"],
                          cwd=home, env=dict(os.environ), capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[0]


def client_for(base_url: str, key: str):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)


def one_request(client, text: str, max_tokens: int) -> tuple[float, float | None, int | None]:
    """Latency, time to first reasoning/content delta, and usage.completion_tokens of one streamed chat."""
    start, first, tokens = time.perf_counter(), None, None
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=1.0,
        stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if first is None and (getattr(choice.delta, "reasoning_content", None) or choice.delta.content):
                first = time.perf_counter()
    end = time.perf_counter()
    return end - start, (first - start) if first is not None else None, tokens


def server_level(base_url: str, key: str, prompts: list[str], clients: int, max_tokens: int) -> dict:
    results, wall = run_clients(prompts, clients, lambda: client_for(base_url, key),
                                lambda client, text: one_request(client, text, max_tokens))
    latencies, ttfts, tokens = zip(*results)
    if None in tokens:
        raise RuntimeError(f"c={clients}: {tokens.count(None)} streams ended without a usage chunk")
    return summarize(f"server c={clients}", wall, latencies, [t for t in ttfts if t is not None], tokens)


def run_clients(prompts: list[str], clients: int, make_client, ask) -> tuple[list, float]:
    """`clients` threads, each with its own `make_client()`, taking prompts from one shared queue until it is empty and
    calling `ask(client, prompt)`; the results (in completion order) and the wall time. A failed request fails the
    run."""
    work = queue.Queue()
    for text in prompts:
        work.put(text)
    results, lock = [], threading.Lock()

    def client_loop() -> None:
        client = make_client()
        while True:
            try:
                text = work.get_nowait()
            except queue.Empty:
                return
            result = ask(client, text)
            with lock:
                results.append(result)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return results, time.perf_counter() - began


def summarize(mode: str, wall: float, latencies, ttfts, tokens) -> dict:
    return {"mode": mode, "requests": len(latencies), "tokens": sum(tokens), "wall_s": wall,
            "tokens_per_s": sum(tokens) / wall, "tokens_min": min(tokens), "tokens_max": max(tokens),
            "latency_p50_s": percentile(latencies, 50), "latency_p95_s": percentile(latencies, 95),
            "ttft_p50_s": percentile(ttfts, 50), "ttft_p95_s": percentile(ttfts, 95),
            "missing_ttft": len(latencies) - len(ttfts)}


def percentile(values, q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default); None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def report(rows: list[dict], args) -> None:
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["ratio"] = row["tokens_per_s"] / base
    header = (f"{'mode':<20} {'requests':>8} {'tokens':>7} {'tok/s':>8} {'ratio':>6} {'p50 lat':>8} {'p95 lat':>8}"
              f" {'p50 TTFT':>9} {'p95 TTFT':>9}")
    print(f"\n{header}\n{'-' * len(header)}")

    def seconds(value, width):
        return f"{value:>{width - 1}.3f}s" if value is not None else f"{'n/a':>{width}}"

    for r in rows:
        print(f"{r['mode']:<20} {r['requests']:>8} {r['tokens']:>7} {r['tokens_per_s']:>8.1f} {r['ratio']:>5.2f}x"
              f" {seconds(r['latency_p50_s'], 8)} {seconds(r['latency_p95_s'], 8)}"
              f" {seconds(r['ttft_p50_s'], 9)} {seconds(r['ttft_p95_s'], 9)}")
    for r in rows:
        if r["tokens_min"] != args.max_tokens or r["tokens_max"] != args.max_tokens:
            print(f"note: {r['mode']}: {r['tokens_min']}..{r['tokens_max']} tokens per request "
                  f"(asked {args.max_tokens})")
        if r["missing_ttft"]:
            print(f"note: {r['mode']}: {r['missing_ttft']} of {r['requests']} streams had no non-empty "
                  "reasoning/content delta, so no TTFT (text that is only whitespace streams as nothing)")
    target = next((r for r in rows if r["mode"] == f"server c={TARGET_CLIENTS}"), None)
    if target is None:
        print(f"target: server at {TARGET_CLIENTS} clients not measured")
    else:
        verdict = "PASS" if target["ratio"] >= TARGET_RATIO else "FAIL"
        print(f"target: server at {TARGET_CLIENTS} clients >= {TARGET_RATIO:.1f}x sequential generate: "
              f"{verdict} ({target['ratio']:.2f})")
    if args.json:
        summary = {"max_tokens": args.max_tokens, "cpu_count": os.cpu_count(), "rows": rows,
                   "target": {"clients": TARGET_CLIENTS, "ratio": TARGET_RATIO,
                              "measured": target["ratio"] if target else None}}
        args.json.write_text(json.dumps(summary, indent=2))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    main()
