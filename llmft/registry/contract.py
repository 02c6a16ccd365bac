"""A version's reasoning contract: how its conversations were rendered and how it should be sampled.

    contract = base_contract("tiny-r1")      # a base: what its own name and files say
    version.lineage["reasoning"]             # a fine-tune: written at registration (registry/service.py)
    target.contract                          # what serving uses: the version's over its base's

The contract is one dict:
    renderer_version          data.render.RENDERER_VERSION of the training render (None for a base)
    reasoning_format          how reasoning was rendered: r1 | template | think_tags | drop
    think_mode                mask | train | omit (None for a base: nothing was trained)
    generation_prompt_sha256  sha256 of the generation-prompt ids of a fixed probe conversation:
                              a serving prompt built differently from training shows as another hash
    temperature, top_p        recommended sampling: DeepSeek's 0.6 / 0.95 for R1, else the base's
                              generation_config.json (None where it says nothing)
    max_tokens                recommended new-token budget (None: the server's default); capped by settings
    thinking_budget           default cap on reasoning tokens (the engine closes the think block there)
    eos_rate, closed_think_rate  measured by the version's evaluation, when it has them
"""

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from llmft.bases.resolve import load_tokenizer, resolve_model
from llmft.data.normalize import Message
from llmft.data.render import is_r1_tokenizer, resolve_format, serving_format
from llmft.data.tokenize import prompt_ids

KEYS = ("renderer_version", "reasoning_format", "think_mode", "generation_prompt_sha256", "temperature", "top_p",
        "max_tokens", "thinking_budget", "eos_rate", "closed_think_rate")
# DeepSeek's usage recommendations for the R1 series: temperature 0.5-0.7 (0.6), top_p 0.95, 32768 new tokens.
R1_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
R1_THINKING_BUDGET = 16384
THINKING_BUDGET = 4096  # other models: a fine-tune that learned to reason on short traces

PROBE = (Message("system", "You are a careful assistant."), Message("user", "What is 17 + 25?"),
         Message("assistant", "42", reasoning="17 + 25: 17 + 20 = 37, 37 + 5 = 42."),
         Message("user", "And 42 * 2?"))


_bases: dict[str, dict] = {}  # base model name -> its contract, worked out once per process


def base_contract(base_model: str, *, tokenizer=None) -> dict:
    """The contract of a base model, served as it was shipped (its own chat template, or our R1 renderer)."""
    if base_model not in _bases:
        _bases[base_model] = _base_contract(base_model, tokenizer)
    return dict(_bases[base_model])


def _base_contract(base_model: str, tokenizer) -> dict:
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(str(resolve_model(base_model)))
    r1 = is_r1_tokenizer(tokenizer)
    sampling = dict(R1_SAMPLING) if r1 else _generation_config(base_model)
    reasoning_format = serving_format(tokenizer)
    return {"renderer_version": None, "reasoning_format": reasoning_format, "think_mode": None,
            "generation_prompt_sha256": prompt_sha256(tokenizer, reasoning_format=reasoning_format, think_mode=None),
            **sampling, "thinking_budget": R1_THINKING_BUDGET if r1 else THINKING_BUDGET,
            "eos_rate": None, "closed_think_rate": None}


def trained_contract(base_model: str, *, renderer_version: str, reasoning_format: str | None, think_mode: str | None,
                     evaluation: dict | None = None, tokenizer=None) -> dict:
    """The contract a fine-tune is registered with (its lineage["reasoning"]): how its data was rendered
    (`reasoning_format` as prepare resolved it; None, from a run before formats: as the base is served), the
    hash of the generation prompt that render gives, the base's recommended sampling and thinking budget, and
    the EOS and closed-think rates its evaluation measured (`evaluation["candidate"]`), when it has them."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(str(resolve_model(base_model)))
    reasoning_format = reasoning_format or serving_format(tokenizer)
    measured = (evaluation or {}).get("candidate") or {}
    return {**base_contract(base_model, tokenizer=tokenizer), "renderer_version": renderer_version,
            "reasoning_format": reasoning_format, "think_mode": think_mode,
            "generation_prompt_sha256": prompt_sha256(tokenizer, reasoning_format=reasoning_format, think_mode=think_mode),
            "eos_rate": measured.get("eos_rate"), "closed_think_rate": measured.get("closed_think_rate")}


def run_reasoning(tokenizer, *, data: dict, has_reasoning: bool) -> dict:
    """What a run's data options fix of its contract before it registers (serving its checkpoints by name):
    the format prepare resolves for `data` (its job config's data group) on data with or without reasoning."""
    requested, think_mode = data.get("reasoning_format", "auto"), data.get("think_mode", "mask")
    try:
        reasoning_format = resolve_format(tokenizer, requested=requested, renderer=data.get("renderer", "auto"),
                                          has_reasoning=has_reasoning)
    except ValueError:  # prepare refused these options: the run wrote no checkpoint under them
        return {}
    return {"reasoning_format": reasoning_format, "think_mode": think_mode,
            "generation_prompt_sha256": prompt_sha256(tokenizer, reasoning_format=reasoning_format, think_mode=think_mode)}


def version_contract(base: dict, reasoning: dict | None) -> dict:
    """A version's contract: what its lineage recorded over its base's (an old version without one: the base's)."""
    return {**base, **{key: value for key, value in (reasoning or {}).items() if value is not None}}


def prompt_sha256(tokenizer, *, reasoning_format: str, think_mode: str | None) -> str:
    """sha256 of the generation-prompt ids of the probe conversation under this format."""
    ids, _ = prompt_ids(tokenizer, list(PROBE), reasoning_format=reasoning_format, think_mode=think_mode)
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


def _generation_config(base_model: str) -> dict:
    values = _generation_values(str(resolve_model(base_model)))
    return {"temperature": values.get("temperature"), "top_p": values.get("top_p"), "max_tokens": None}


@lru_cache(maxsize=32)
def _generation_values(folder: str) -> dict:
    path = Path(folder) / "generation_config.json"
    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8"))
    if not values.get("do_sample", True):  # greedy by default: no sampling values to recommend
        return {}
    return {key: values[key] for key in ("temperature", "top_p") if isinstance(values.get(key), (int, float))}
