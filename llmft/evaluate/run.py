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
Every side also reports `eos_rate`, `closed_think_rate` (the names a version's reasoning contract
records) and `mean_reasoning_tokens`. Each side is prompted as it is served: the base as shipped, the
candidate in its reasoning contract's format and think mode (`reasoning`: from its prepared data, its
run's summary.json or its version's lineage; see `run_reasoning_of`), so a think_tags fine-tune is asked
with the `<think>` opener its trained turns began with, as /v1/chat/completions asks it.

With `graders` (a spec, llmft.evaluate.graders; docs/graders.md) each side reports, per grader NAME:
    grader.NAME                 mean score of the greedy answers (accuracy, 0 to 1)
    grader.NAME.pass@K          share of conversations where one of `pass_k` samples, drawn at the
                                model's recommended sampling (the reasoning contract's: 0.6 / 0.95
                                for R1), scores 1 (only when pass_k > 1)
    grader.NAME.budget_B        accuracy when the reasoning may take at most B tokens: at B the think
                                block is closed with "\n</think>\n\n" and the answer is generated
                                (ANSWER_TOKENS more), one key per budget in `thinking_budgets`
and each sample carries its greedy answer's `grades`. These flat keys are what a fine-tune's version
records as metrics, so PROMOTION_GATE can name them (`grader.total:max`). pass_k is at most
MAX_PASS_K, and at most MAX_BUDGETS budgets of up to MAX_THINKING_BUDGET tokens each (llmft.evaluate.graders).
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
from llmft.data.render import generation_prompt, prompt_text
from llmft.data.store import read_tokens
from llmft.data.tokenize import IGNORE
from llmft.evaluate.graders import ANSWER_TOKENS, GraderSpec, check_grading, check_records, grade, load_spec
from llmft.evaluate.metrics import fact_share, perplexity, reasoning_stats, rouge_l, score_answers, split_reasoning
from llmft.registry.contract import base_contract

MAX_NEW_TOKENS_CAP = 1024  # the most new tokens "auto" asks for
MIN_NEW_TOKENS = 16  # the fewest
AUTO_FACTOR = 1.5  # "auto": this many times the longest reference turn
ANSWER_CHARS = 2000  # each text kept in report["samples"] is cut to this many characters
THINK_CLOSING = "\n" + THINK_CLOSE + "\n\n"  # what a budget appends, as the engine does


def evaluate(*, base_model: str, candidate: Path | None, examples: Path, tokens: Path, max_samples: int = 200,
             max_new_tokens: int | Literal["auto"] = "auto", batch_size: int = 8,
             max_eval_tokens: int = 200_000, graders: GraderSpec | list | dict | None = None, pass_k: int = 1,
             thinking_budgets: tuple[int, ...] | list[int] = (), answer_tokens: int = ANSWER_TOKENS,
             seed: int = 0, reasoning: dict | None = None) -> dict:
    if max_new_tokens != "auto" and not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
        raise ValueError(f"max_new_tokens: \"auto\" or a positive integer, got {max_new_tokens!r}")
    spec = load_spec(graders) if graders is not None else None
    thinking_budgets = check_grading(spec, pass_k, thinking_budgets, answer_tokens)
    conversations = _conversations(examples, max_samples)
    if spec is not None:
        check_records(spec, [record for _, _, record in conversations])
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
    prompts = {side: _prompts(tokenizer, conversations, reasoning if side == "candidate" else None)
               for side in models}
    references = [turn.content for _, turn, _ in conversations]
    budget = max_new_tokens
    if max_new_tokens == "auto":
        budget = auto_max_new_tokens([len(tokenizer(_reference_turn(prompt, turn), add_special_tokens=False)
                                          ["input_ids"]) + 1 for side_prompts in prompts.values()
                                      for prompt, (_, turn, _) in zip(side_prompts, conversations)])
    report = {"examples": len(scored), "generated": len(conversations), "max_new_tokens": budget,
              "max_new_tokens_auto": max_new_tokens == "auto"}
    sampling = contract_sampling(base_model, tokenizer)
    if spec is not None:
        report |= {"graders": spec.dump(), "pass_k": pass_k, "thinking_budgets": list(thinking_budgets),
                   "answer_tokens": answer_tokens, "sampling": sampling if pass_k > 1 else None}
    outputs, grades = {}, {}
    for side, (model, context) in models.items():
        model.eval()
        with context(), torch.inference_mode():
            loss = _mean_loss(model, scored, device, max_eval_tokens)
            texts, finished = _generate(model, tokenizer, prompts[side], device, budget, batch_size)
            outputs[side] = texts, finished
            stats = reasoning_stats(texts, finished)
            report[side] = {"eval_loss": loss, "perplexity": perplexity(loss),
                            **{k: v for k, v in score_answers(texts, references).items() if k != "count"},
                            **{k: v for k, v in stats.items() if k != "count"},
                            "eos_rate": stats["ended_with_eos"], "closed_think_rate": stats["closed_think"],
                            "mean_reasoning_tokens": mean_reasoning_tokens(tokenizer, texts)}
            if spec is not None:
                torch.manual_seed(seed)
                grades[side] = _grade_all(spec, texts, finished, conversations)
                report[side] |= _graded(model, tokenizer, spec, conversations, prompts[side], grades[side], device=device,
                                        budget=budget, batch_size=batch_size, pass_k=pass_k, sampling=sampling,
                                        thinking_budgets=thinking_budgets, answer_tokens=answer_tokens)
    report["samples"] = _samples(conversations, outputs, grades)
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


def evaluate_fine_tune(*, base_model: str, final_dir: Path, data_dir: Path, split: str = "validation",
                       **options) -> dict:
    """A training run's final model next to its base on the validation split its data was prepared with:
    what a fine-tuning job runs before it registers the version (and bench/quality.py measures). A preference or
    GRPO run's rows folder holds that split as SFT conversations: `split="validation.conversations"`
    (data/prepare_rows.py), so every version is evaluated alike."""
    options.setdefault("reasoning", prepared_reasoning(Path(data_dir)))
    return _evaluate_split(base_model=base_model, candidate=Path(final_dir), folder=Path(data_dir),
                           split=split, **options)


def prepared_reasoning(data_dir: Path) -> dict:
    """The reasoning format and think mode a prepared data folder was rendered with (its manifest.json)."""
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    return {"reasoning_format": manifest.get("reasoning_format"),
            "think_mode": (manifest.get("config") or {}).get("think_mode")}


def run_reasoning_of(final_dir: Path) -> dict | None:
    """The reasoning format and think mode a training run's model was trained with: from the summary.json
    of the run folder it sits in (`RUN/final`, or a checkpoint's `RUN/checkpoints/checkpoint-N`); None when there
    is none (a folder from elsewhere: evaluated as its base is served)."""
    for folder in (Path(final_dir), *list(Path(final_dir).parents)[:2]):
        path = folder / "summary.json"
        if path.is_file():
            summary = json.loads(path.read_text(encoding="utf-8"))
            return {"reasoning_format": summary.get("reasoning_format"),
                    "think_mode": ((summary.get("config") or {}).get("data") or {}).get("think_mode")}
    return None


def _prompts(tokenizer, conversations, reasoning: dict | None) -> list[str]:
    """Each conversation's generation prompt as serving builds it for a model trained under `reasoning`
    (its contract's reasoning_format and think_mode; None: the base as shipped)."""
    if not reasoning or not reasoning.get("reasoning_format"):
        return [generation_prompt(tokenizer, messages) for messages, _, _ in conversations]
    return [prompt_text(tokenizer, messages, reasoning_format=reasoning["reasoning_format"],
                        think_mode=reasoning.get("think_mode")) for messages, _, _ in conversations]


def _evaluate_split(*, base_model: str, candidate: Path | None, folder: Path, split: str, **options) -> dict:
    """`evaluate` on one split of a prepared data folder (its `SPLIT.jsonl` and `SPLIT.tokens.safetensors`)."""
    return evaluate(base_model=base_model, candidate=candidate, examples=folder / f"{split}.jsonl",
                    tokens=folder / f"{split}.tokens.safetensors", **options)


def contract_sampling(base_model: str, tokenizer) -> dict:
    """The recommended sampling of the base's reasoning contract (llmft.registry.contract; a fine-tune keeps its
    base's): DeepSeek's 0.6 / 0.95 for R1, else the base's generation config, 1.0 where it says nothing."""
    contract = base_contract(base_model, tokenizer=tokenizer)
    return {"temperature": contract["temperature"] or 1.0, "top_p": contract["top_p"] or 1.0}


def mean_reasoning_tokens(tokenizer, texts: list[str]) -> float:
    """Mean length of the generations' reasoning (the think block's text), in the tokenizer's tokens."""
    if not texts:
        return 0.0
    return sum(len(tokenizer(split_reasoning(text)[0], add_special_tokens=False)["input_ids"])
               for text in texts) / len(texts)


def auto_max_new_tokens(lengths: list[int]) -> int:
    """AUTO_FACTOR times the longest reference turn (`lengths`: tokens, EOS included), rounded up, then
    raised to MIN_NEW_TOKENS and capped at MAX_NEW_TOKENS_CAP."""
    return min(MAX_NEW_TOKENS_CAP, max(MIN_NEW_TOKENS, math.ceil(AUTO_FACTOR * max(lengths, default=0))))


def _conversations(path: Path, limit: int) -> list[tuple[list[Message], Message, dict]]:
    """(the messages before the last assistant turn, that turn, the record) for chat examples."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        messages = [Message(m["role"], m["content"], m.get("reasoning_content")) for m in record.get("messages", [])]
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if not last:
            continue
        out.append((messages[:last], messages[last], record))
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


def _generate(model, tokenizer, prompts: list[str], device: str, max_new_tokens: int, batch_size: int,
              sampling: dict | None = None):
    """Generations (greedy, or sampled with `sampling`'s temperature and top_p; the think block re-opened in front)
    and whether each ended with EOS in budget, in the order of `prompts`; see `_continue`."""
    texts, finished = _continue(model, tokenizer, prompts, device, max_new_tokens, batch_size, sampling)
    return [_reopened(prompt, text) for prompt, text in zip(prompts, texts)], finished


def _continue(model, tokenizer, prompts: list[str], device: str, max_new_tokens: int, batch_size: int,
              sampling: dict | None = None):
    """What the model writes after each prompt (up to EOS, which is left out) and whether it ended with EOS within
    `max_new_tokens`; batched shortest prompt first, so that a batch pads little."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = [len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    decoding = {"do_sample": True, **sampling} if sampling else {"do_sample": False}
    texts, finished = [""] * len(prompts), [False] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        output = model.generate(**batch, max_new_tokens=max_new_tokens, **decoding,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for i, row in zip(chunk, output[:, batch["input_ids"].shape[1]:].tolist()):
            ended = tokenizer.eos_token_id in row
            row = row[: row.index(tokenizer.eos_token_id)] if ended else row
            texts[i] = tokenizer.decode(row, skip_special_tokens=False)
            finished[i] = ended
    return texts, finished


def _reopened(prompt: str, text: str) -> str:
    """The generation as the model's whole turn: with the `<think>` the prompt opened in front."""
    return THINK_OPEN + "\n" + text if prompt.endswith(THINK_OPEN + "\n") else text


def _generate_within(model, tokenizer, prompts: list[str], device: str, thinking_budget: int, answer_tokens: int,
                     batch_size: int):
    """Greedy generations whose reasoning takes at most `thinking_budget` tokens: first up to that many tokens; a
    row that ended with EOS is done; one that closed its think block goes on from the close, one still inside an
    open block gets "\n</think>\n\n" appended, and one that never opened a block goes on as it is, each for up to
    `answer_tokens` more."""
    first, ended = _continue(model, tokenizer, prompts, device, thinking_budget, batch_size)
    heads, pending = list(first), []
    for i, (prompt, text) in enumerate(zip(prompts, first)):
        if ended[i]:
            continue
        whole = _reopened(prompt, text)
        if THINK_CLOSE in text:
            heads[i] = text[:text.index(THINK_CLOSE) + len(THINK_CLOSE)]
        elif THINK_OPEN in whole:
            heads[i] = text + THINK_CLOSING
        pending.append(i)
    rest, rest_ended = _continue(model, tokenizer, [prompts[i] + heads[i] for i in pending], device, answer_tokens,
                                 batch_size) if pending else ([], [])
    texts, finished = list(heads), list(ended)
    for i, text, done in zip(pending, rest, rest_ended):
        texts[i], finished[i] = heads[i] + text, done
    return [_reopened(prompt, text) for prompt, text in zip(prompts, texts)], finished


def _grade_all(spec: GraderSpec, texts: list[str], finished: list[bool], conversations) -> list[dict[str, float]]:
    """Each generation's scores, by grader name, against its conversation's reference answer and record."""
    out = []
    for text, done, (_, turn, record) in zip(texts, finished, conversations):
        reasoning, answer, closed = split_reasoning(text)
        out.append(grade(spec, answer=answer, reasoning=reasoning, finished=done, closed=closed,
                         reference=split_reasoning(turn.content)[1], record=record))
    return out


def _graded(model, tokenizer, spec: GraderSpec, conversations, prompts: list[str], greedy: list[dict], *,
            device: str, budget: int, batch_size: int, pass_k: int, sampling: dict,
            thinking_budgets: tuple[int, ...], answer_tokens: int) -> dict:
    """One side's grader metrics: accuracy of the greedy answers, pass@k over sampled ones, accuracy per budget."""
    out = {f"grader.{name}": _mean([scores[name] for scores in greedy]) for name in spec.names}
    if pass_k > 1:
        repeated = [prompt for prompt in prompts for _ in range(pass_k)]
        texts, finished = _generate(model, tokenizer, repeated, device, budget, batch_size, sampling)
        scored = _grade_all(spec, texts, finished, [c for c in conversations for _ in range(pass_k)])
        for name in spec.names:
            passed = [any(s[name] >= 1.0 for s in scored[i * pass_k:(i + 1) * pass_k]) for i in range(len(prompts))]
            out[f"grader.{name}.pass@{pass_k}"] = _mean(passed)
    for thinking_budget in thinking_budgets:
        texts, finished = _generate_within(model, tokenizer, prompts, device, thinking_budget, answer_tokens,
                                           batch_size)
        scored = _grade_all(spec, texts, finished, conversations)
        out |= {f"grader.{name}.budget_{thinking_budget}": _mean([s[name] for s in scored]) for name in spec.names}
    return out


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else 0.0


def _samples(conversations: list[tuple[list[Message], Message, dict]], outputs: dict, grades: dict) -> list[dict]:
    """Every generated example: the question, the reference answer and each side's answer (reasoning removed,
    as scored) with whether it ended with EOS, its ROUGE-L, its fact share (None: no facts to check) and, with
    graders, its `grades`."""
    samples = []
    for i, (messages, turn, _) in enumerate(conversations):
        sample = {"prompt": messages[-1].content[:ANSWER_CHARS], "reference": turn.content[:ANSWER_CHARS]}
        for side, (texts, finished) in outputs.items():
            answer = split_reasoning(texts[i])[1]
            sample[side] = {"answer": answer[:ANSWER_CHARS], "ended_with_eos": finished[i],
                            "rouge_l": rouge_l([answer], [turn.content]), "fact_hit": fact_share(answer, turn.content)}
            if side in grades:
                sample[side]["grades"] = grades[side][i]
        samples.append(sample)
    return samples
