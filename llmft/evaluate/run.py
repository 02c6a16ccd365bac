"""Evaluate a fine-tune next to its base model on the same validation examples.

    report = evaluate(base_model="tiny-r1", candidate=Path(".../final"), examples=Path(".../validation.jsonl"),
                      tokens=Path(".../validation.tokens.safetensors"))

Perplexity over the trained tokens (the same labels training used); then greedy generations
for up to `max_samples` conversations (200), scored on the answer with the reasoning removed (BLEU,
ROUGE-L, exact match, fact hit) and checked as reasoning output (ends with EOS within the budget,
closes `</think>`, empty reasoning, lengths). The budget, `max_new_tokens="auto"`, is 1.5 times the
longest reference turn generated for (reasoning and EOS included, in the evaluated tokenizer's
tokens), at least 16 and at most MAX_NEW_TOKENS_CAP. Prompts are batched shortest first.
`report["samples"]` holds every generated example: question, reference and each side's answer
with its scores, each text cut to ANSWER_CHARS (the report is stored in the database). A LoRA
candidate shares the base weights in memory: the base side runs with the adapter disabled.
"""

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.r1_tokenizer import THINK_CLOSE, THINK_OPEN
from llmft.bases.resolve import weights_source
from llmft.data.config import DataConfig
from llmft.data.normalize import Message
from llmft.data.prepare import prepare
from llmft.data.render import generation_prompt
from llmft.data.store import read_tokens
from llmft.data.tokenize import IGNORE
from llmft.evaluate.metrics import fact_share, perplexity, reasoning_stats, rouge_l, score_answers, split_reasoning

MAX_NEW_TOKENS_CAP = 1024  # the most new tokens "auto" asks for
MIN_NEW_TOKENS = 16  # the fewest
AUTO_FACTOR = 1.5  # "auto": this many times the longest reference turn
ANSWER_CHARS = 2000  # each text kept in report["samples"] is cut to this many characters


def evaluate(*, base_model: str, candidate: Path | None, examples: Path, tokens: Path, max_samples: int = 200,
             max_new_tokens: int | Literal["auto"] = "auto", batch_size: int = 8,
             max_eval_tokens: int = 200_000) -> dict:
    if max_new_tokens != "auto" and not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
        raise ValueError(f"max_new_tokens: \"auto\" or a positive integer, got {max_new_tokens!r}")
    started = time.time()
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(candidate or weights_source(base_model))
    base = AutoModelForCausalLM.from_pretrained(weights_source(base_model), dtype=dtype,
                                                use_safetensors=True).to(device)
    models: dict[str, tuple[torch.nn.Module, object]] = {}
    if candidate is None:
        models["base"] = (base, contextlib.nullcontext)
    elif (Path(candidate) / "adapter_config.json").is_file():
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(base, str(candidate)).to(device)
        models["base"], models["candidate"] = (tuned, tuned.disable_adapter), (tuned, contextlib.nullcontext)
    else:
        tuned = AutoModelForCausalLM.from_pretrained(str(candidate), dtype=dtype, use_safetensors=True).to(device)
        models["base"], models["candidate"] = (base, contextlib.nullcontext), (tuned, contextlib.nullcontext)

    scored = read_tokens(tokens)
    conversations = _conversations(examples, max_samples)
    prompts = [generation_prompt(tokenizer, messages) for messages, _ in conversations]
    references = [turn.content for _, turn in conversations]
    budget = max_new_tokens
    if max_new_tokens == "auto":
        budget = auto_max_new_tokens([len(tokenizer(_reference_turn(prompt, turn), add_special_tokens=False)
                                          ["input_ids"]) + 1 for prompt, (_, turn) in zip(prompts, conversations)])
    report = {"examples": len(scored), "generated": len(prompts), "max_new_tokens": budget,
              "max_new_tokens_auto": max_new_tokens == "auto"}
    outputs = {}
    for side, (model, context) in models.items():
        model.eval()
        with context(), torch.inference_mode():
            loss = _mean_loss(model, scored, device, max_eval_tokens)
            texts, finished = _generate(model, tokenizer, prompts, device, budget, batch_size)
        outputs[side] = texts, finished
        stats = reasoning_stats(texts, finished)
        report[side] = {"eval_loss": loss, "perplexity": perplexity(loss),
                        **{k: v for k, v in score_answers(texts, references).items() if k != "count"},
                        **{k: v for k, v in stats.items() if k != "count"}}
    report["samples"] = _samples(conversations, outputs)
    report["seconds"] = round(time.time() - started, 2)
    return report


class NothingToEvaluate(ValueError):
    """The data file leaves no validation examples (too few to hold any out)."""


def evaluate_file(*, base_model: str, candidate: Path | None, data_file: Path, max_length: int = 2048,
                  validation_ratio: float = 0.1, whole_file: bool = False, **options) -> dict:
    """`evaluate` on the validation split training makes of `data_file` (the same hash-based split, so
    a model is never scored on what it was trained on), or on every example of it with `whole_file`
    (a file held out from training, such as a validation file); `options` go to `evaluate`."""
    config = DataConfig(max_length=max_length, validation_ratio=0.0 if whole_file else validation_ratio)
    prepared = prepare(Path(data_file), model=base_model, config=config)
    split = "train" if whole_file else "validation"
    if not prepared.report["split"][split]:
        raise NothingToEvaluate(f"{Path(data_file).name} has no examples to evaluate on" if whole_file else
                                f"{Path(data_file).name} has no validation examples to evaluate on "
                                f"(too few to hold {validation_ratio:.0%} out)")
    report = _evaluate_split(base_model=base_model, candidate=candidate, folder=prepared.folder, split=split,
                             **options)
    report["dataset"] = Path(data_file).name
    return report


def evaluate_fine_tune(*, base_model: str, final_dir: Path, data_dir: Path, **options) -> dict:
    """A training run's final model next to its base on the validation split its data was prepared with:
    what a fine-tuning job runs before it registers the version (and bench/quality.py measures)."""
    return _evaluate_split(base_model=base_model, candidate=Path(final_dir), folder=Path(data_dir),
                           split="validation", **options)


def _evaluate_split(*, base_model: str, candidate: Path | None, folder: Path, split: str, **options) -> dict:
    """`evaluate` on one split of a prepared data folder (its `SPLIT.jsonl` and `SPLIT.tokens.safetensors`)."""
    return evaluate(base_model=base_model, candidate=candidate, examples=folder / f"{split}.jsonl",
                    tokens=folder / f"{split}.tokens.safetensors", **options)


def auto_max_new_tokens(lengths: list[int]) -> int:
    """AUTO_FACTOR times the longest reference turn (`lengths`: tokens, EOS included), rounded up, then
    raised to MIN_NEW_TOKENS and capped at MAX_NEW_TOKENS_CAP."""
    return min(MAX_NEW_TOKENS_CAP, max(MIN_NEW_TOKENS, math.ceil(AUTO_FACTOR * max(lengths, default=0))))


def _conversations(path: Path, limit: int) -> list[tuple[list[Message], Message]]:
    """(the messages before the last assistant turn, that turn) for chat examples."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        messages = [Message(m["role"], m["content"], m.get("reasoning_content")) for m in record.get("messages", [])]
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if not last:
            continue
        out.append((messages[:last], messages[last]))
        if len(out) == limit:
            break
    return out


def _mean_loss(model, scored, device: str, max_tokens: int) -> float:
    """Mean cross-entropy over the trained tokens, one example at a time (no padding, exact)."""
    total, count, seen = 0.0, 0, 0
    for item in scored:
        ids = torch.tensor([item.input_ids], device=device)
        labels = torch.tensor([item.labels], device=device)
        logits = model(input_ids=ids).logits[:, :-1].float()
        target = labels[:, 1:]
        mask = target != IGNORE
        if mask.any():
            total += torch.nn.functional.cross_entropy(logits[mask], target[mask], reduction="sum").item()
            count += int(mask.sum())
        seen += len(item.input_ids)
        if seen >= max_tokens:
            break
    return total / count if count else math.nan


def _reference_turn(prompt: str, turn: Message) -> str:
    """The reference turn as the model would write it after `prompt`: the reasoning block (its rest, when the
    prompt opened it; an empty one then too), then the answer. Only its length in tokens is used."""
    if prompt.endswith(THINK_OPEN + "\n"):
        return f"{turn.reasoning or ''}\n{THINK_CLOSE}\n\n{turn.content}"
    if turn.reasoning:
        return f"{THINK_OPEN}\n{turn.reasoning}\n{THINK_CLOSE}\n\n{turn.content}"
    return turn.content


def _generate(model, tokenizer, prompts: list[str], device: str, max_new_tokens: int, batch_size: int):
    """Greedy generations (the think block re-opened in front) and whether each ended with EOS in budget, in the
    order of `prompts`; batched shortest prompt first, so that a batch pads little."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = [len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    texts, finished = [""] * len(prompts), [False] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for i, row in zip(chunk, output[:, batch["input_ids"].shape[1]:].tolist()):
            ended = tokenizer.eos_token_id in row
            row = row[: row.index(tokenizer.eos_token_id)] if ended else row
            text = tokenizer.decode(row, skip_special_tokens=False)
            texts[i] = THINK_OPEN + "\n" + text if prompts[i].endswith(THINK_OPEN + "\n") else text
            finished[i] = ended
    return texts, finished


def _samples(conversations: list[tuple[list[Message], Message]], outputs: dict) -> list[dict]:
    """Every generated example: the question, the reference answer and each side's answer (reasoning removed,
    as scored) with whether it ended with EOS, its ROUGE-L and its fact share (None: no facts to check)."""
    samples = []
    for i, (messages, turn) in enumerate(conversations):
        sample = {"prompt": messages[-1].content[:ANSWER_CHARS], "reference": turn.content[:ANSWER_CHARS]}
        for side, (texts, finished) in outputs.items():
            answer = split_reasoning(texts[i])[1]
            sample[side] = {"answer": answer[:ANSWER_CHARS], "ended_with_eos": finished[i],
                            "rouge_l": rouge_l([answer], [turn.content]), "fact_hit": fact_share(answer, turn.content)}
        samples.append(sample)
    return samples
