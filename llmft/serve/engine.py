"""The inference engine: models kept in memory, concurrent requests decoded together, tokens streamed.

    engine = Engine(max_batch=16, cache_bytes=4 << 30, max_waiting=256)
    request = engine.submit(target, prompt_ids, Sampling(max_new_tokens=64), reasoning_open=True, timeout=120)
    for kind, value in request.events():   # ("reasoning", text), ("content", text), ("done", Completion)
        ...

One copy of a base model's weights per process. The LoRA adapters of registered versions are
loaded into it on first use; a full-weight version is its own model. Everything loaded counts
against one memory budget and the least recently used model nobody is using is dropped first.

Batching is continuous: one thread runs every model's decode loop; a request joins the batch
of its base model at the next step (its prompt prefilled, its KV cache appended to the batch's,
left-padded to the same length) and leaves it when it ends, so a short answer never waits for a
long one. Rows for different adapters of one base share a batch (PEFT's per-row `adapter_names`);
rows of the base itself run as `__base__`.
"""

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.errors import ServiceError
from llmft.bases.resolve import resolve_model, weights_source
from llmft.monitor.histogram import Histogram
from llmft.serve.backend import Busy, Completion, Generation, ModelLoadError, Request, Target
from llmft.serve.batch import _Backbone, _Row
from llmft.serve.sampling import Sampling, choose, generator_for
from llmft.serve.text import OutputText

log = logging.getLogger("llmft.serve")
BASE_ROW = "__base__"
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class _Loaded:
    key: str
    bytes: int
    backbone: str        # the key of the Backbone holding it
    kind: str
    users: int = 0


class Engine:
    def __init__(self, *, max_batch: int = 16, cache_bytes: int = 8 << 30, max_waiting: int = 256,
                 device: str | None = None):
        self.max_batch, self.cache_bytes, self.max_waiting = max_batch, cache_bytes, max_waiting
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device == "cuda" else torch.float32  # no bf16 GEMM on most CPUs
        self._waiting: list[Request] = []
        self._wake = threading.Condition()
        self._backbones: dict[str, _Backbone] = {}
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._tokenizers: dict[str, object] = {}
        self._tokenizer_lock = threading.Lock()
        self.stats = {"requests": 0, "tokens": 0, "steps": 0, "rows_stepped": 0, "loads": 0, "evictions": 0}
        self.histograms = {"ttft": Histogram(TTFT_BUCKETS), "batch": Histogram(BATCH_BUCKETS)}  # read by /metrics
        self._recent: deque[tuple[float, int]] = deque(maxlen=4096)  # (time, tokens) of recent decoding steps
        self._thread = threading.Thread(target=self._loop, name="llmft-inference", daemon=True)
        self._thread.start()

    # -- called from request threads ---------------------------------------------------------------

    def tokenizer(self, base_model: str):
        """The base model's tokenizer for building prompts (the scheduler decodes with its own copy)."""
        with self._tokenizer_lock:
            if base_model not in self._tokenizers:
                self._tokenizers[base_model] = AutoTokenizer.from_pretrained(resolve_model(base_model))
            return self._tokenizers[base_model]

    def submit(self, target: Target, prompt_ids: list[int], sampling: Sampling, *, reasoning_open: bool,
               split_reasoning: bool = True, timeout: float = 120.0, n: int = 1) -> Generation:
        """Queue `n` choices for one prompt (choice i samples with seed + i when a seed is given)."""
        events: queue.Queue = queue.Queue()
        deadline = time.monotonic() + timeout
        requests = [Request(target, prompt_ids, replace(sampling, seed=None if sampling.seed is None else sampling.seed + i),
                            reasoning_open, split_reasoning, deadline, i, events) for i in range(n)]
        with self._wake:
            active = len(self._waiting) + sum(len(b.rows) for b in self._backbones.values())
            if active + n > self.max_waiting:
                raise Busy(f"{active} generations are already queued or running "
                           f"(INFERENCE_MAX_WAITING={self.max_waiting}); retry shortly")
            self._waiting.extend(requests)
            self.stats["requests"] += 1
            self._wake.notify()
        return Generation(requests, events)

    def recent_tokens_per_second(self, window: float = 10.0) -> float:
        """Tokens generated per second over the last `window` seconds."""
        since = time.monotonic() - window
        return sum(tokens for at, tokens in list(self._recent) if at >= since) / window

    def is_loaded(self, key: str) -> bool:
        return key in self._loaded

    def loaded(self) -> list[dict]:
        with self._wake:
            return [{"key": e.key, "kind": e.kind, "bytes": e.bytes, "in_use": e.users} for e in self._loaded.values()]

    # -- the scheduler thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not any(b.rows for b in self._backbones.values()):
                    self._wake.wait()
                waiting, self._waiting = self._waiting, []
            later = self._admit(waiting)
            if later:
                with self._wake:
                    self._waiting[:0] = later  # first come, first served: back at the front
            for key, backbone in list(self._backbones.items()):
                if backbone.rows:
                    self._guarded(backbone, self._step)

    def _admit(self, waiting: list[Request]) -> list[Request]:
        """Start what fits in its batch; return what must wait for a free place."""
        now = time.monotonic()
        joining: dict[str, list[_Row]] = {}
        later = []
        for request in waiting:
            if request.cancelled:
                continue
            if now > request.deadline:
                request._put("error", Busy("the request timed out waiting for a place in a batch "
                                           "(INFERENCE_TIMEOUT_SECONDS); retry later"))
                continue
            try:
                backbone_key, adapter = self._acquire(request.target)
            except ServiceError as error:
                request._put("error", error)
                continue
            except Exception as error:  # a broken artifact or out of memory: this request fails, others go on
                log.exception("loading %s failed", request.target.label)
                request._put("error", ModelLoadError(f"could not load {request.target.label}: "
                                                     f"{type(error).__name__}: {error}"))
                continue
            backbone = self._backbones[backbone_key]
            if len(backbone.rows) + len(joining.get(backbone_key, [])) >= self.max_batch:
                self._release(request.target)
                later.append(request)
                continue
            sampling = request.sampling
            joining.setdefault(backbone_key, []).append(_Row(
                request=request, adapter=adapter, generator=generator_for(sampling, self.device),
                text=OutputText(backbone.tokenizer, reasoning_open=request.reasoning_open,
                                split_reasoning=request.split_reasoning, stop=sampling.stop)))
        for key, rows in joining.items():
            self._guarded(self._backbones[key], lambda backbone: self._prefill(backbone, rows), rows)
        return later

    def _guarded(self, backbone: _Backbone, work, extra_rows: list[_Row] = ()) -> None:
        """Run a batch step; if it fails, every row in that batch fails (and the next batch starts clean)."""
        try:
            with torch.inference_mode():
                work(backbone)
        except Exception as error:
            log.exception("inference step failed")
            for row in [*backbone.rows, *[r for r in extra_rows if r not in backbone.rows]]:
                row.request._put("error", ModelLoadError(f"generation failed: {type(error).__name__}: {error}",
                                                         code="generation_failed"))
                self._release(row.request.target)
            backbone.keep([])

    def _prefill(self, backbone: _Backbone, rows: list[_Row]) -> None:
        logits = backbone.prefill(rows)
        self._advance(backbone, rows, logits)

    def _step(self, backbone: _Backbone) -> None:
        logits = backbone.step()
        self.stats["steps"] += 1
        self.stats["rows_stepped"] += len(backbone.rows)
        self.histograms["batch"].observe(len(backbone.rows))
        self._advance(backbone, backbone.rows, logits)

    def _advance(self, backbone: _Backbone, rows: list[_Row], logits: torch.Tensor) -> None:
        """Choose each row's next token, stream its text, end the rows that are done."""
        tokens = choose(logits, [row.request.sampling for row in rows], [row.generator for row in rows])
        now = time.monotonic()
        self._recent.append((now, len(rows)))
        for row, token in zip(rows, tokens):
            request = row.request
            if request.cancelled:
                row.finish = "cancelled"
                continue
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
                if row.text.stopped:
                    row.finish = "stop"
                elif len(row.tokens) >= request.sampling.max_new_tokens or now > request.deadline:
                    row.finish = "length"
        finished = [row for row in rows if row.finish]
        for row in finished:
            self._finish(row)
        if finished:
            backbone.keep([row for row in backbone.rows if not row.finish])

    def _finish(self, row: _Row) -> None:
        request = row.request
        if row.finish != "cancelled":
            for delta in row.text.finish():
                request._put(*delta)
            ttft = row.first_token_at - request.created if row.first_token_at else None
            request._put("done", Completion(
                reasoning="".join(row.text.reasoning), content="".join(row.text.content), finish_reason=row.finish,
                prompt_tokens=len(request.prompt_ids), completion_tokens=len(row.tokens), time_to_first_token=ttft,
                token_ids=list(row.tokens)))
        self._release(request.target)

    # -- models in memory --------------------------------------------------------------------------

    def _acquire(self, target: Target) -> tuple[str, str]:
        """Load the target if needed and count one more user; (backbone key, adapter name for its rows)."""
        if target.kind == "adapter":
            base = Target(key=f"base:{target.base_model}", label=target.base_model, base_model=target.base_model)
            backbone_key, _ = self._acquire(base)
            try:
                self._use(target, lambda: self._load_adapter(target, backbone_key), backbone_key)
            except BaseException:
                self._release(base)
                raise
            return backbone_key, _adapter_name(target.key)
        self._use(target, lambda: self._load_model(target), target.key)
        return target.key, BASE_ROW

    def _use(self, target: Target, load, backbone_key: str) -> None:
        entry = self._loaded.get(target.key)
        if entry is None:
            size = _folder_bytes(target.folder) if target.folder else _folder_bytes(Path(weights_source(target.base_model)))
            self._make_room(size)
            started = time.monotonic()
            size = load() or size
            entry = _Loaded(key=target.key, bytes=size, backbone=backbone_key, kind=target.kind)
            with self._wake:
                self._loaded[target.key] = entry
            self.stats["loads"] += 1
            log.info("loaded %s (%s, %.1f MB) in %.1f s", target.label, target.kind, size / 1e6,
                     time.monotonic() - started)
        with self._wake:
            entry.users += 1
            self._loaded.move_to_end(target.key)

    def _release(self, target: Target) -> None:
        entry = self._loaded.get(target.key)
        if entry is not None:
            entry.users -= 1
        if target.kind == "adapter":
            self._release(Target(key=f"base:{target.base_model}", label=target.base_model,
                                 base_model=target.base_model))

    def _make_room(self, size: int) -> None:
        used = sum(entry.bytes for entry in self._loaded.values())
        for entry in list(self._loaded.values()):
            if used + size <= self.cache_bytes:
                return
            backbone = self._backbones.get(entry.backbone)
            if entry.users > 0 or (entry.kind != "adapter" and backbone is not None and backbone.adapters):
                continue
            self._evict(entry)
            used -= entry.bytes
        if used + size > self.cache_bytes and self._loaded:
            raise Busy(f"the models in use fill the inference memory budget (INFERENCE_CACHE_MB="
                       f"{self.cache_bytes >> 20}); retry when current requests end, or raise the budget")

    def _evict(self, entry: _Loaded) -> None:
        backbone = self._backbones[entry.backbone]
        if entry.kind == "adapter":
            name = _adapter_name(entry.key)
            backbone.adapters.discard(name)
            if backbone.adapters:
                backbone.model.delete_adapter(name)
            else:
                backbone.model = backbone.model.unload()  # the last adapter: back to the plain base model
        else:
            del self._backbones[entry.backbone]
        with self._wake:
            del self._loaded[entry.key]
        self.stats["evictions"] += 1
        log.info("dropped %s from memory (%s, %.1f MB)", entry.key, entry.kind, entry.bytes / 1e6)

    def _load_model(self, target: Target) -> int:
        source = str(target.folder) if target.folder else weights_source(target.base_model)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=self.dtype, use_safetensors=True).to(self.device)
        model.eval().requires_grad_(False)
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(target.base_model))
        self._backbones[target.key] = _Backbone(model, tokenizer, self.device)
        return sum(p.numel() * p.element_size() for p in model.parameters())

    def _load_adapter(self, target: Target, backbone_key: str) -> int:
        from peft import PeftModel

        backbone = self._backbones[backbone_key]
        name = _adapter_name(target.key)
        if backbone.adapters:
            backbone.model.load_adapter(str(target.folder), adapter_name=name, is_trainable=False)
        else:
            backbone.model = PeftModel.from_pretrained(backbone.model, str(target.folder), adapter_name=name,
                                                       is_trainable=False).to(self.device)
        backbone.model.eval()
        backbone.adapters.add(name)
        return sum(p.numel() * p.element_size() for n, p in backbone.model.named_parameters() if f".{name}." in n)


def _adapter_name(key: str) -> str:
    return "v_" + key.replace("-", "_")


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors")) if folder.is_dir() else 0
