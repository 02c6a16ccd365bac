"""One running batch of a model in memory: its rows, their KV cache, rows joining and leaving; prompts that start
as an earlier one did take that prefix's KV from the prefix cache (serve/prefix_cache.py)."""

from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache

from llmft.serve.backend import Request
from llmft.serve.budgets import THINK_CLOSE_TEXT, Repetition, Thinking
from llmft.serve.prefix_cache import PrefixCache
from llmft.serve.text import OutputText


@dataclass
class Row:
    request: Request
    adapter: str
    generator: torch.Generator
    text: OutputText
    thinking: Thinking       # the think block: reasoning tokens, the forced close at the budget
    loop: Repetition         # the repetition detector
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    first_token_at: float | None = None


class Backbone:
    """One set of weights in memory with its adapters, its running batch and that batch's KV cache."""

    def __init__(self, model, tokenizer, device: str, *, name: str = "", prefixes: PrefixCache | None = None):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.name, self.prefixes = name, prefixes  # the prefix cache, shared by every backbone of the engine
        self.adapters: set[str] = set()
        self.rows: list[Row] = []
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.mask: torch.Tensor | None = None
        eos = model.generation_config.eos_token_id if model.generation_config else None
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {tokenizer.eos_token_id}
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.think_close = tokenizer(THINK_CLOSE_TEXT, add_special_tokens=False)["input_ids"]  # fed at a budget

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache | None,
                adapters: list[str]):
        kwargs = {"adapter_names": adapters} if self.adapters else {}
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                          use_cache=True, logits_to_keep=1, **kwargs)

    def prefill(self, rows: list[Row]) -> torch.Tensor:
        """Run the new rows' prompts, append their cache to the batch's; the logits of their last position. Rows
        whose prompts start with a prefix the prefix cache knows run only the rest, on top of that prefix's KV
        (together when their known prefixes are as long); the others run together, left-padded. Every prompt's full
        blocks are then kept in the prefix cache."""
        logits: dict[int, torch.Tensor] = {}
        cold, warm = [], {}
        for row in rows:
            known, past = (0, None) if self.prefixes is None else \
                self.prefixes.match(self._namespace(row), row.request.prompt_ids)
            if past is None:
                cold.append(row)
            else:
                warm.setdefault(known, []).append((row, past))
        groups = [(cold, self._prefill_together(cold))] if cold else []
        for known, pairs in warm.items():
            group = [row for row, _ in pairs]
            groups.append((group, self._prefill_after(group, known, [past for _, past in pairs])))
        for group, group_logits in groups:
            for row, row_logits in zip(group, group_logits):
                logits[id(row)] = row_logits
        return torch.stack([logits[id(row)] for row in rows])

    def _left_padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) of `sequences` left-padded to the longest, on the CPU."""
        length = max(map(len, sequences))
        ids = torch.full((len(sequences), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for i, tokens in enumerate(sequences):
            ids[i, length - len(tokens):] = torch.tensor(tokens)
            mask[i, length - len(tokens):] = 1
        return ids, mask

    def _prefill_together(self, rows: list[Row]) -> torch.Tensor:
        ids, mask = self._left_padded([row.request.prompt_ids for row in rows])
        length = ids.shape[1]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        out = self.forward(ids, mask, positions, None, [row.adapter for row in rows])
        keys = [layer.keys for layer in out.cache.layers]
        values = [layer.values for layer in out.cache.layers]
        if self.prefixes is not None:
            for i, row in enumerate(rows):
                start = length - len(row.request.prompt_ids)
                self.prefixes.store(self._namespace(row), row.request.prompt_ids, [k[i, :, start:] for k in keys],
                                    [v[i, :, start:] for v in values])
        self._join(rows, keys, values, mask)
        return out.logits[:, -1]

    def _prefill_after(self, rows: list[Row], known: int, pasts: list[list[tuple[torch.Tensor, torch.Tensor]]]
                       ) -> torch.Tensor:
        """The rows' prompts after their first `known` tokens, whose KV (`pasts`, one per row) the prefix cache gave:
        the rest left-padded after the known part (the mask skips the padding; positions count real tokens)."""
        ids, tail = self._left_padded([row.request.prompt_ids[known:] for row in rows])
        positions = known + (tail.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones((len(rows), known), dtype=torch.long), tail], 1)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        past = [(torch.cat([p[layer][0] for p in pasts]), torch.cat([p[layer][1] for p in pasts]))
                for layer in range(len(pasts[0]))]
        out = self.forward(ids, mask, positions, DynamicCache(ddp_cache_data=past), [row.adapter for row in rows])
        keys = [layer.keys for layer in out.cache.layers]
        values = [layer.values for layer in out.cache.layers]
        for i, row in enumerate(rows):
            real = mask[i].nonzero().squeeze(-1)  # the known prefix and the row's own tokens, not the padding
            self.prefixes.store(self._namespace(row), row.request.prompt_ids, [k[i][:, real] for k in keys],
                                [v[i][:, real] for v in values])
        self._join(rows, keys, values, mask)
        return out.logits[:, -1]

    def _join(self, rows: list[Row], keys: list[torch.Tensor], values: list[torch.Tensor], mask: torch.Tensor) -> None:
        """Append rows and their cache to the batch, left-padding the shorter side to the same width."""
        if self.rows:
            width = max(self.mask.shape[1], mask.shape[1])
            self.keys = [torch.cat([_left_pad(a, width, 2), _left_pad(b, width, 2)]) for a, b in zip(self.keys, keys)]
            self.values = [torch.cat([_left_pad(a, width, 2), _left_pad(b, width, 2)])
                           for a, b in zip(self.values, values)]
            self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
        else:
            self.keys, self.values, self.mask = keys, values, mask
        self.rows.extend(rows)

    def _namespace(self, row: Row) -> tuple:
        """What a prefix's KV is shared within: one model, one adapter, one tenant (a cached prefix answers faster,
        so sharing it across tenants would let one time another's prompts)."""
        return (self.name, row.adapter, row.request.target.tenant)

    def step(self) -> torch.Tensor:
        """One decode step for every row; the next-token logits."""
        ids = torch.tensor([[row.tokens[-1]] for row in self.rows], device=self.device)
        positions = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=self.mask.dtype, device=self.device)], 1)
        cache = DynamicCache(ddp_cache_data=list(zip(self.keys, self.values)))
        out = self.forward(ids, self.mask, positions, cache, [row.adapter for row in self.rows])
        self.keys = [layer.keys for layer in out.cache.layers]
        self.values = [layer.values for layer in out.cache.layers]
        return out.logits[:, -1]

    def keep(self, rows: list[Row]) -> None:
        """Drop every row not in `rows` from the batch and its cache; trim padding nobody needs any more."""
        if len(rows) == len(self.rows):
            return
        if not rows:
            self.rows, self.keys, self.values, self.mask = [], [], [], None
            return
        index = torch.tensor([i for i, row in enumerate(self.rows) if row in rows], device=self.device)
        mask = self.mask[index]
        first = int(mask.any(0).nonzero()[0])
        self.mask = mask[:, first:]
        self.keys = [k[index][:, :, first:] for k in self.keys]
        self.values = [v[index][:, :, first:] for v in self.values]
        self.rows = [row for row in self.rows if row in rows]


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim)
