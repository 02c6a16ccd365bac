"""Evaluate a fine-tune next to its base model on the same validation examples.

    report = evaluate(base_model="tiny-r1", candidate=Path(".../final"), examples=Path(".../validation.jsonl"),
                      tokens=Path(".../validation.tokens.safetensors"))

Perplexity over the trained tokens (the same labels training used); then greedy generations
for up to `max_samples` conversations, scored on the answer with the reasoning removed (BLEU,
ROUGE-L, exact match) and checked as reasoning output (ends with EOS within the budget, closes
`</think>`, empty reasoning, lengths). A LoRA candidate shares the base weights in memory: the
base side runs with the adapter disabled.
"""

import contextlib
import json
import math
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.r1_tokenizer import THINK_OPEN
from llmft.bases.resolve import weights_source
from llmft.data.config import DataConfig
from llmft.data.normalize import Message
from llmft.data.prepare import prepare
from llmft.data.render import generation_prompt
from llmft.data.store import read_tokens
from llmft.data.tokenize import IGNORE
from llmft.evaluate.metrics import perplexity, reasoning_stats, score_answers


def evaluate(*, base_model: str, candidate: Path | None, examples: Path, tokens: Path, max_samples: int = 16,
             max_new_tokens: int = 128, batch_size: int = 8, max_eval_tokens: int = 200_000) -> dict:
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
    references = [reference for _, reference in conversations]
    report = {"examples": len(scored), "generated": len(prompts), "max_new_tokens": max_new_tokens}
    outputs = {}
    for side, (model, context) in models.items():
        model.eval()
        with context(), torch.inference_mode():
            loss = _mean_loss(model, scored, device, max_eval_tokens)
            texts, finished = _generate(model, tokenizer, prompts, device, max_new_tokens, batch_size)
        outputs[side] = texts
        stats = reasoning_stats(texts, finished)
        report[side] = {"eval_loss": loss, "perplexity": perplexity(loss),
                        **{k: v for k, v in score_answers(texts, references).items() if k != "count"},
                        **{k: v for k, v in stats.items() if k != "count"}}
    report["samples"] = [{"prompt": messages[-1].content, "reference": reference,
                          **{side: outputs[side][i] for side in outputs}}
                         for i, (messages, reference) in enumerate(conversations[:5])]
    report["seconds"] = round(time.time() - started, 2)
    return report


class NothingToEvaluate(ValueError):
    """The data file leaves no validation examples (too few to hold any out)."""


def evaluate_file(*, base_model: str, candidate: Path | None, data_file: Path, max_length: int = 2048,
                  validation_ratio: float = 0.1, **options) -> dict:
    """`evaluate` on the validation split training makes of `data_file` (the same hash-based split, so
    a model is never scored on what it was trained on); `options` go to `evaluate`."""
    prepared = prepare(Path(data_file), model=base_model,
                       config=DataConfig(max_length=max_length, validation_ratio=validation_ratio))
    if not prepared.report["split"]["validation"]:
        raise NothingToEvaluate(f"{Path(data_file).name} has no validation examples to evaluate on "
                                f"(too few to hold {validation_ratio:.0%} out)")
    report = evaluate(base_model=base_model, candidate=candidate, examples=prepared.folder / "validation.jsonl",
                      tokens=prepared.folder / "validation.tokens.safetensors", **options)
    report["dataset"] = Path(data_file).name
    return report


def _conversations(path: Path, limit: int) -> list[tuple[list[Message], str]]:
    """(the messages before the last assistant turn, that turn's answer) for chat examples."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        messages = [Message(m["role"], m["content"], m.get("reasoning_content")) for m in record.get("messages", [])]
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if not last:
            continue
        out.append((messages[:last], messages[last].content))
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


def _generate(model, tokenizer, prompts: list[str], device: str, max_new_tokens: int, batch_size: int):
    """Greedy generations (the think block re-opened in front) and whether each ended with EOS in budget."""
    texts, finished = [], []
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for prompt, row in zip(chunk, output[:, batch["input_ids"].shape[1]:].tolist()):
            ended = tokenizer.eos_token_id in row
            row = row[: row.index(tokenizer.eos_token_id)] if ended else row
            text = tokenizer.decode(row, skip_special_tokens=False)
            texts.append(THINK_OPEN + "\n" + text if prompt.endswith(THINK_OPEN + "\n") else text)
            finished.append(ended)
    return texts, finished
