"""Next-token choice for a batch: greedy rows in one argmax, sampled rows with their own seeded generator.

    tokens = choose(logits, [Sampling(temperature=0), Sampling(temperature=0.7, top_p=0.9)], generators)

Each sampled row draws from its own `torch.Generator`; a request with a `seed` gets the same tokens
whichever other requests share its batch (see `choose`).
"""

from dataclasses import dataclass

import torch

GREEDY_BELOW = 1e-4  # a temperature this small is greedy (dividing by less overflows float32)


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.6   # 0: greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    thinking_budget: int | None = None  # most tokens inside the think block; then the engine closes it
    repetition_window: int = 0          # end with "repetition" when this many last tokens repeat a block; 0: off


def choose(logits: torch.Tensor, samplings: list[Sampling], generators: list[torch.Generator]) -> list[int]:
    """One token per row of `logits` [rows, vocab]: one batched softmax, then per row an inverse-CDF draw
    (one uniform number: far cheaper than `multinomial` over 152k tokens), or for a seeded row a draw that
    does not depend on which other rows share the batch."""
    logits = logits.float()
    tokens = logits.argmax(dim=-1).tolist()
    rows = [row for row, sampling in enumerate(samplings) if sampling.temperature >= GREEDY_BELOW]
    if not rows:
        return tokens
    temperatures = torch.tensor([samplings[row].temperature for row in rows], device=logits.device)
    probs = torch.softmax(logits[rows] / temperatures[:, None], dim=-1)
    for j, row in enumerate(rows):
        generator = generators[row]
        candidates, ids = _nucleus(probs[j], samplings[row].top_p)
        if samplings[row].seed is None:
            cdf = candidates.cumsum(0)
            draw = torch.rand((), generator=generator, device=generator.device) * cdf[-1]
            pick = min(int(torch.searchsorted(cdf, draw.reshape(1), right=True)), len(cdf) - 1)
        else:
            # Seeded: an exponential race (argmax p / Exp(1), one draw per token in token-id order). A
            # cumulative sum moves with the last digits of the logits, which change with the batch; each
            # token's own comparison does not, so a seed gives the same tokens whatever shares the batch.
            if ids is not None:
                ids, order = ids.sort()
                candidates = candidates[order]
            noise = torch.rand(candidates.shape, generator=generator, device=generator.device).clamp_(min=1e-12)
            pick = int((candidates / -noise.log()).argmax())
        tokens[row] = int(ids[pick]) if ids is not None else pick
    return tokens


def _nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The smallest most-likely set of tokens whose mass reaches top_p (all tokens when top_p is 1).
    Looks at the top 256, then 4x more, before sorting everything: a full sort costs ~8 ms a row."""
    if top_p >= 1.0:
        return probs, None
    size = 256
    while True:
        values, ids = probs.topk(min(size, probs.numel()))
        mass = values.cumsum(0)
        if mass[-1] >= top_p or size >= probs.numel():
            keep = (mass - values) < top_p  # a token stays if the mass ranked above it is short of top_p
            keep[0] = True                   # the most likely always (a top_p below float32's range keeps none)
            return values[keep], ids[keep]
        size *= 4


def generator_for(sampling: Sampling, device: str) -> torch.Generator:
    generator = torch.Generator(device=device)
    if sampling.seed is None:
        generator.seed()
    else:
        generator.manual_seed(sampling.seed)
    return generator
