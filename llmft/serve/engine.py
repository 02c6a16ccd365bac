"""The default inference backend: concurrent requests decoded together, tokens streamed.

    engine = Engine(max_batch=16, cache_bytes=4 << 30, max_waiting=256)
    generation = engine.submit(target, prompt_ids, Sampling(max_new_tokens=64), reasoning_open=True, timeout=120)
    for index, kind, value in generation.events():   # ("reasoning" | "content", text), ("done", Completion)
        ...

The engine schedules token ids: the models it runs come from its `ModelCache` (serve/models.py),
each running batch and its KV cache is a `Backbone` (serve/batch.py), and each row's tokens
become text through `OutputText` (serve/text.py). Each row's think block and loops are watched by
serve/budgets.py: at its thinking budget the engine feeds the close block's tokens itself, and a row whose last
tokens repeat one block ends with finish_reason "repetition".

Batching is continuous: one thread runs every model's decode loop; a request joins the batch
of its base model at the next step (its prompt prefilled, its KV cache appended to the batch's,
left-padded to the same length) and leaves it when it ends, so a short answer never waits for a
long one. Rows for different adapters of one base share a batch (PEFT's per-row `adapter_names`);
rows of the base itself run as `__base__`. A prompt that begins as an earlier one of the same model and adapter did
prefills only its new tokens (serve/prefix_cache.py: blocks of 32 tokens, `prefix_cache_bytes`, least recently
used dropped first; 0 turns it off). With `one_row_bf16` (CPU only), a step of a single row reads bfloat16 copies of
the weights (serve/one_row_bf16.py).
"""

import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import replace

import torch

from llmft.errors import ServiceError
from llmft.monitor.histogram import Histogram
from llmft.serve.backend import (
    BATCH_BUCKETS,
    TTFT_BUCKETS,
    Busy,
    Completion,
    Generation,
    ModelLoadError,
    Request,
    Target,
)
from llmft.serve.batch import Backbone, Row
from llmft.serve.budgets import Repetition, Thinking
from llmft.serve.models import ModelCache
from llmft.serve.prefix_cache import PrefixCache
from llmft.serve.sampling import Sampling, choose, generator_for
from llmft.serve.text import OutputText

log = logging.getLogger("llmft.serve")


class Engine:
    """The default `InferenceBackend` (serve/backend.py): one scheduler thread for every model in memory."""

    def __init__(self, *, max_batch: int = 16, cache_bytes: int = 8 << 30, max_waiting: int = 256,
                 device: str | None = None, prefix_cache_bytes: int = 512 << 20, one_row_bf16: bool = False):
        self.max_batch, self.cache_bytes, self.max_waiting = max_batch, cache_bytes, max_waiting
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device == "cuda" else torch.float32  # no bf16 GEMM on most CPUs
        self._waiting: list[Request] = []
        self._admitting: list[Request] = []  # taken from _waiting, not yet in a batch
        self._wake = threading.Condition()
        self.stats = {"requests": 0, "tokens": 0, "steps": 0, "rows_stepped": 0, "loads": 0, "evictions": 0}
        self.prefixes = PrefixCache(budget=prefix_cache_bytes)  # 0: off
        self.models = ModelCache(budget=cache_bytes, device=self.device, dtype=self.dtype, stats=self.stats,
                                 prefixes=self.prefixes, one_row_bf16=one_row_bf16 and self.device == "cpu")
        self.histograms = {"ttft": Histogram(TTFT_BUCKETS), "batch": Histogram(BATCH_BUCKETS)}  # read by /metrics
        self._recent: deque[tuple[float, int]] = deque(maxlen=4096)  # (time, tokens) of recent decoding steps
        self._thread = threading.Thread(target=self._loop, name="llmft-inference", daemon=True)
        self._thread.start()

    # -- called from request threads ---------------------------------------------------------------

    def submit(self, target: Target, prompt_ids: list[int], sampling: Sampling, *, reasoning_open: bool,
               split_reasoning: bool = True, timeout: float = 120.0, n: int = 1) -> Generation:
        """Queue `n` choices for one prompt (choice i samples with seed + i when a seed is given)."""
        events: queue.Queue = queue.Queue()
        deadline = time.monotonic() + timeout
        requests = [Request(target, prompt_ids, replace(sampling, seed=None if sampling.seed is None else sampling.seed + i),
                            reasoning_open, split_reasoning, deadline, i, events) for i in range(n)]
        with self._wake:
            active = (len(self._waiting) + len(self._admitting)
                      + sum(len(b.rows) for b in self.models.backbones.values()))
            if active + n > self.max_waiting:
                raise Busy(f"{active} generations are already queued or running "
                           f"(INFERENCE_MAX_WAITING={self.max_waiting}); retry shortly",
                           retry_after=self._seconds_to_a_free_place())
            self._waiting.extend(requests)
            self.stats["requests"] += 1
            self._wake.notify()
        return Generation(requests, events)

    def _seconds_to_a_free_place(self, window: float = 10.0) -> int:
        """Busy's Retry-After: the tokens the running generation closest to its max_new_tokens has left, at the
        recent rate of decoding steps (one token per row per step); 1 to 60 s."""
        now = time.monotonic()
        steps = [at for at, _ in list(self._recent) if at >= now - window]
        left = min((row.request.sampling.max_new_tokens - len(row.tokens)
                    for backbone in list(self.models.backbones.values()) for row in list(backbone.rows)), default=0)
        if len(steps) < 2 or not left:
            return 1
        steps_per_second = (len(steps) - 1) / max(steps[-1] - steps[0], 1e-3)
        return min(60, max(1, math.ceil(left / steps_per_second)))

    def recent_tokens_per_second(self, window: float = 10.0) -> float:
        """Tokens generated per second over the last `window` seconds."""
        since = time.monotonic() - window
        return sum(tokens for at, tokens in list(self._recent) if at >= since) / window

    def loaded(self) -> list[dict]:
        return self.models.loaded()

    def close(self) -> None:
        """Nothing outlives the process: the scheduler is a daemon thread and the weights are this process's memory."""

    # -- the scheduler thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not any(b.rows for b in self.models.backbones.values()):
                    self._wake.wait()
                waiting, self._waiting = self._waiting, []
                self._admitting = waiting  # still counted by submit while they are prefilled into a batch
            later = self._admit(waiting)
            with self._wake:
                self._waiting[:0] = later  # first come, first served: back at the front
                self._admitting = []
            for backbone in list(self.models.backbones.values()):
                if backbone.rows:
                    self._guarded(backbone, self._step)

    def _admit(self, waiting: list[Request]) -> list[Request]:
        """Start what fits in its batch; return what must wait for a free place."""
        now = time.monotonic()
        joining: dict[str, list[Row]] = {}
        later = []
        for request in waiting:
            if request.cancelled:
                continue
            if now > request.deadline:
                request._put("error", Busy("the request timed out waiting for a place in a batch "
                                           "(INFERENCE_TIMEOUT_SECONDS); retry later"))
                continue
            try:
                backbone_key, adapter = self.models.acquire(request.target)
            except ServiceError as error:
                request._put("error", error)
                continue
            except Exception as error:  # a broken artifact or out of memory: this request fails, others go on
                log.exception("loading %s failed", request.target.label)
                request._put("error", ModelLoadError(f"could not load {request.target.label}: "
                                                     f"{type(error).__name__}: {error}"))
                continue
            backbone = self.models.backbones[backbone_key]
            if len(backbone.rows) + len(joining.get(backbone_key, [])) >= self.max_batch:
                self.models.release(request.target)
                later.append(request)
                continue
            sampling = request.sampling
            joining.setdefault(backbone_key, []).append(Row(
                request=request, adapter=adapter, generator=generator_for(sampling, self.device),
                text=OutputText(backbone.tokenizer, reasoning_open=request.reasoning_open and request.split_reasoning,
                                split_reasoning=request.split_reasoning, stop=sampling.stop),
                thinking=Thinking(inside=request.reasoning_open, budget=sampling.thinking_budget,
                                  close_ids=backbone.think_close),
                loop=Repetition(sampling.repetition_window)))
        for key, rows in joining.items():
            self._guarded(self.models.backbones[key], lambda backbone, rows=rows: self._prefill(backbone, rows), rows)
        return later

    def _guarded(self, backbone: Backbone, work, extra_rows: list[Row] = ()) -> None:
        """Run a batch step; if it fails, every row in that batch fails (and the next batch starts clean)."""
        try:
            with torch.inference_mode():
                work(backbone)
        except Exception as error:
            log.exception("inference step failed")
            for row in [*backbone.rows, *[r for r in extra_rows if r not in backbone.rows]]:
                row.request._put("error", ModelLoadError(f"generation failed: {type(error).__name__}: {error}",
                                                         code="generation_failed"))
                self.models.release(row.request.target)
            backbone.keep([])

    def _prefill(self, backbone: Backbone, rows: list[Row]) -> None:
        logits = backbone.prefill(rows)
        self._advance(backbone, rows, logits)

    def _step(self, backbone: Backbone) -> None:
        logits = backbone.step()
        self.stats["steps"] += 1
        self.stats["rows_stepped"] += len(backbone.rows)
        self.histograms["batch"].observe(len(backbone.rows))
        self._advance(backbone, backbone.rows, logits)

    def _advance(self, backbone: Backbone, rows: list[Row], logits: torch.Tensor) -> None:
        """Choose each row's next token (a row closing its think block at its budget takes the close block's
        next token instead: fed, not sampled), stream its text, end the rows that are done."""
        tokens = choose(logits, [row.request.sampling for row in rows], [row.generator for row in rows])
        now = time.monotonic()
        self._recent.append((now, len(rows)))
        for row, sampled in zip(rows, tokens):
            request = row.request
            if request.cancelled:
                row.finish = "cancelled"
                continue
            forced = row.thinking.forced()
            token = sampled if forced is None else forced
            row.tokens.append(token)
            self.stats["tokens"] += 1
            if row.first_token_at is None:
                row.first_token_at = now
                self.histograms["ttft"].observe(now - request.created)
            if token in backbone.eos:
                row.finish = "stop"
            else:
                for delta in row.text.add(token):
                    request._put(*delta)
                row.thinking.add(token, row.text.text, forced=forced is not None)
                if row.text.stopped:
                    row.finish = "stop"
                elif row.loop.add(token):
                    row.finish = "repetition"
                elif len(row.tokens) >= request.sampling.max_new_tokens or now > request.deadline:
                    row.finish = "length"
        finished = [row for row in rows if row.finish]
        for row in finished:
            self._finish(row)
        if finished:
            backbone.keep([row for row in backbone.rows if not row.finish])

    def _finish(self, row: Row) -> None:
        request = row.request
        if row.finish != "cancelled":
            for delta in row.text.finish():
                request._put(*delta)
            ttft = row.first_token_at - request.created if row.first_token_at else None
            request._put("done", Completion(
                reasoning="".join(row.text.reasoning), content="".join(row.text.content), finish_reason=row.finish,
                prompt_tokens=len(request.prompt_ids), completion_tokens=len(row.tokens), time_to_first_token=ttft,
                token_ids=list(row.tokens), reasoning_tokens=row.thinking.reasoning_tokens))
        self.models.release(request.target)
