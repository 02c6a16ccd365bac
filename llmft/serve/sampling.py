"""Next-token choice for a batch: greedy rows in one argmax, sampled rows with their own seeded generator.

    tokens = choose(logits, [Sampling(temperature=0), Sampling(temperature=0.7, top_p=0.9)], generators)

Each sampled row draws from its own `torch.Generator`, so a request with a `seed` gets the same
tokens whichever other requests share its batch.
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


def choose(logits: torch.Tensor, samplings: list[Sampling], generators: list[torch.Generator]) -> list[int]:
    """One token per row of `logits` [rows, vocab]."""
    logits = logits.float()
    tokens = logits.argmax(dim=-1).tolist()
    for row, sampling in enumerate(samplings):
        if sampling.temperature >= GREEDY_BELOW:
            tokens[row] = _sample(logits[row], sampling, generators[row])
    return tokens


def _sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each one
        sorted_probs[before >= sampling.top_p] = 0.0     # keep the smallest set reaching top_p (at least one)
        return int(order[torch.multinomial(sorted_probs, 1, generator=generator)])
    return int(torch.multinomial(probs, 1, generator=generator))


def generator_for(sampling: Sampling, device: str) -> torch.Generator:
    generator = torch.Generator(device=device)
    if sampling.seed is None:
        generator.seed()
    else:
        generator.manual_seed(sampling.seed)
    return generator
