"""Models and adapters in memory: one copy of a base model's weights per process, the LoRA adapters of
registered versions loaded into it on first use, a full-weight version as a model of its own. A fine-tune's
committed checkpoint (a Trainer checkpoint folder: adapter_model.safetensors + adapter_config.json, or
config.json + model.safetensors, beside the optimizer and trainer state, which are not read) loads the same
way, under its own key ("checkpoint:JOB:checkpoint-N:MTIME", serve/service.py), never a version's.

    cache = ModelCache(budget=8 << 30, device="cpu", dtype=torch.float32, stats=stats)
    backbone_key, adapter = cache.acquire(target)   # loads if needed; one more user
    cache.backbones[backbone_key]                    # the weights, with their running batch
    cache.release(target)                            # one user less

Everything loaded counts against one memory budget and the least recently used model nobody is
using is dropped first (a base model only once none of its adapters is loaded).
"""

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.resolve import resolve_model, weights_source
from llmft.serve.backend import Busy, Target
from llmft.serve.batch import Backbone
from llmft.serve.one_row_bf16 import attach as attach_one_row_bf16
from llmft.serve.prefix_cache import PrefixCache

log = logging.getLogger("llmft.serve")
BASE_ROW = "__base__"  # the adapter name of rows that run on the base model itself


@dataclass
class _Loaded:
    key: str
    bytes: int
    backbone: str        # the key of the Backbone holding it
    kind: str
    users: int = 0



class ModelCache:
    """Loads and drops models; `stats` (shared with the engine) counts "loads" and "evictions"."""

    def __init__(self, *, budget: int, device: str, dtype: torch.dtype, stats: dict,
                 prefixes: PrefixCache | None = None, one_row_bf16: bool = False):
        self.budget, self.device, self.dtype, self.stats = budget, device, dtype, stats
        self.one_row_bf16 = one_row_bf16  # serve/one_row_bf16.py on every model loaded
        self.prefixes = prefixes  # given to every backbone: prompt prefixes' KV, kept across requests
        self.backbones: dict[str, Backbone] = {}
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def loaded(self) -> list[dict]:
        with self._lock:
            return [{"key": e.key, "kind": e.kind, "bytes": e.bytes, "in_use": e.users} for e in self._loaded.values()]

    # -- models in memory --------------------------------------------------------------------------

    def acquire(self, target: Target) -> tuple[str, str]:
        """Load the target if needed and count one more user; (backbone key, adapter name for its rows)."""
        if target.kind == "adapter":
            base = Target(key=f"base:{target.base_model}", label=target.base_model, base_model=target.base_model)
            backbone_key, _ = self.acquire(base)
            try:
                self._use(target, lambda: self._load_adapter(target, backbone_key), backbone_key)
            except BaseException:
                self.release(base)
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
            with self._lock:
                self._loaded[target.key] = entry
            self.stats["loads"] += 1
            log.info("loaded %s (%s, %.1f MB) in %.1f s", target.label, target.kind, size / 1e6,
                     time.monotonic() - started)
        with self._lock:
            entry.users += 1
            self._loaded.move_to_end(target.key)

    def release(self, target: Target) -> None:
        entry = self._loaded.get(target.key)
        if entry is not None:
            entry.users -= 1
        if target.kind == "adapter":
            self.release(Target(key=f"base:{target.base_model}", label=target.base_model,
                                 base_model=target.base_model))

    def _make_room(self, size: int) -> None:
        used = sum(entry.bytes for entry in self._loaded.values())
        for entry in list(self._loaded.values()):
            if used + size <= self.budget:
                return
            backbone = self.backbones.get(entry.backbone)
            if entry.users > 0 or (entry.kind != "adapter" and backbone is not None and backbone.adapters):
                continue
            self._evict(entry)
            used -= entry.bytes
        if used + size > self.budget and self._loaded:
            raise Busy(f"the models in use fill the inference memory budget (INFERENCE_CACHE_MB="
                       f"{self.budget >> 20}); retry when current requests end, or raise the budget")

    def _evict(self, entry: _Loaded) -> None:
        backbone = self.backbones[entry.backbone]
        if entry.kind == "adapter":
            name = _adapter_name(entry.key)
            backbone.adapters.discard(name)
            if backbone.adapters:
                backbone.model.delete_adapter(name)
            else:
                backbone.model = backbone.model.unload()  # the last adapter: back to the plain base model
        else:
            del self.backbones[entry.backbone]
        with self._lock:
            del self._loaded[entry.key]
        self.stats["evictions"] += 1
        log.info("dropped %s from memory (%s, %.1f MB)", entry.key, entry.kind, entry.bytes / 1e6)

    def _load_model(self, target: Target) -> int:
        source = str(target.folder) if target.folder else weights_source(target.base_model)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=self.dtype, use_safetensors=True).to(self.device)
        model.eval().requires_grad_(False)
        added = attach_one_row_bf16(model) if self.one_row_bf16 else 0
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(target.base_model))
        self.backbones[target.key] = Backbone(model, tokenizer, self.device, name=target.key, prefixes=self.prefixes)
        return added + sum(p.numel() * p.element_size() for p in model.parameters())

    def _load_adapter(self, target: Target, backbone_key: str) -> int:
        from peft import PeftModel

        from llmft.serve.multi_lora import install as install_batched_lora

        backbone = self.backbones[backbone_key]
        name = _adapter_name(target.key)
        if backbone.adapters:
            backbone.model.load_adapter(str(target.folder), adapter_name=name, is_trainable=False)
        else:
            backbone.model = PeftModel.from_pretrained(backbone.model, str(target.folder), adapter_name=name,
                                                       is_trainable=False).to(self.device)
        backbone.model.eval()
        install_batched_lora(backbone.model)  # every row's adapter in one pass per layer (serve/multi_lora.py)
        backbone.adapters.add(name)
        return sum(p.numel() * p.element_size() for n, p in backbone.model.named_parameters() if f".{name}." in n)

def _adapter_name(key: str) -> str:
    """A PEFT adapter name for the target key: letters, digits and '_' ("mv-1a2b" -> "v_mv_1a2b")."""
    return "v_" + re.sub(r"\W", "_", key, flags=re.ASCII)


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors")) if folder.is_dir() else 0
