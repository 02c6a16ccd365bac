"""Prepare preference pairs or RL prompts: checked, split, and rendered as their trainers take them.

    llmft data prepare pairs.jsonl --kind preference --out DIR --model smollm2-135m

Writes to DIR: train.jsonl and validation.jsonl (the rows: `{prompt, chosen, rejected}` for pairs, TRL's
non-conversational form; `{prompt, reference, record}` for prompts), report.json and manifest.json (the sha256 of
the rows and everything they were made from), and the validation split as SFT conversations for evaluating the
result as every version is evaluated (llmft/evaluate/run.py): validation.conversations.jsonl and its
.tokens.safetensors, a pair's prompt with its chosen answer, a prompt with its reference answer (prompts without one
are left out), each with its record's other fields for the graders. The split is SFT's (split.py: by seed and content), on each pair's
prompt and chosen turn. Nothing is cached: rendering rows costs less than looking them up.
"""

import hashlib
import json
from pathlib import Path

from llmft import __version__
from llmft.bases.resolve import load_tokenizer, resolve_model, tokenizer_fingerprint
from llmft.data.config import DataConfig
from llmft.data.kinds import check_kind, kind_report
from llmft.data.normalize import Example, Message
from llmft.data.prepare import DataError, Prepared, blocking_codes
from llmft.data.render import RENDERER_VERSION, render, renders_r1
from llmft.data.split import split_indices
from llmft.data.store import write_examples, write_tokens
from llmft.data.tokenize import tokenize_rendered
from llmft.files import sha256_file


def prepare_rows(path: Path, *, kind: str, model: str, config: DataConfig, out: Path, spec=None) -> Prepared:
    """Check `path` as `kind` ("preference" or "prompts"; with `spec`, a GraderSpec, prompts carry its fields),
    split it and write its rows to `out`; DataError (with the report) on errors the options do not drop."""
    from llmft.data.preference import preference_rows
    from llmft.data.rl_prompts import prompt_rows

    path, out = Path(path), Path(out)
    folder = resolve_model(model)
    tokenizer = load_tokenizer(str(folder))
    sources = [path] + ([Path(config.validation_file)] if config.validation_file else [])
    checked = [_checked(source, kind, tokenizer, model, config, spec) for source in sources]
    train, validation = checked[0], checked[-1]
    if len(sources) > 1:
        train_ids, val_ids = list(range(len(train.examples))), list(range(len(validation.examples)))
        how = f"validation file {sources[1].name}"
    else:
        train_ids, val_ids = split_indices([_split_key(kind, e) for e in train.examples],
                                           ratio=config.validation_ratio, seed=config.seed)
        how = f"ratio {config.validation_ratio}, seed {config.seed}"
    make = preference_rows if kind == "preference" else prompt_rows
    render = {"reasoning_format": train.reasoning_format, "think_mode": config.think_mode}
    files = {"train.jsonl": _jsonl(make(tokenizer, [train.examples[i] for i in train_ids], **render)),
             "validation.jsonl": _jsonl(make(tokenizer, [validation.examples[i] for i in val_ids], **render))}
    report = kind_report(kind, train, source=path.name, model=model, max_length=config.max_length)
    report["split"] = {"train": len(train_ids), "validation": len(val_ids), "how": how}
    report["sha256"] = hashlib.sha256("".join(files.values()).encode("utf-8")).hexdigest()
    manifest = {
        "kind": kind,
        "sha256": report["sha256"],
        "sources": [{"name": p.name, "sha256": sha256_file(p)} for p in sources],
        "model": model,
        "tokenizer_sha256": tokenizer_fingerprint(folder),
        "renderer_version": RENDERER_VERSION,
        "reasoning_format": train.reasoning_format,
        "config": config.model_dump(),
        "graders": spec.dump() if spec is not None else None,
        "llmft_version": __version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, text in {**files, "report.json": _json(report), "manifest.json": _json(manifest)}.items():
        (out / name).write_text(text, encoding="utf-8")
    _write_conversations(out, "validation.conversations", [validation.examples[i] for i in val_ids], kind=kind,
                         tokenizer=tokenizer, config=config, reasoning_format=train.reasoning_format)
    return Prepared(out, report, manifest, cache_hit=False)


CONVERSATION_FIELDS = ("messages", "prompt", "completion")  # a prompt record's turns; its other fields go along


def reference_conversation(kind: str, example) -> Example | None:
    """The SFT conversation evaluation scores a result on: a pair's prompt and chosen answer; a prompt and its
    reference answer (None without one), with the record's other fields (what graders read) kept."""
    if kind == "preference":
        return example.conversation("chosen")
    if example.reference is None:
        return None
    turn = Message("assistant", example.reference, example.reference_reasoning)
    extra = {key: value for key, value in example.record.items() if key not in CONVERSATION_FIELDS}
    return Example([*example.messages, turn], record=example.number, line=example.line, extra=extra)


def _write_conversations(out: Path, name: str, examples: list, *, kind: str, tokenizer, config: DataConfig,
                         reasoning_format: str) -> None:
    """NAME.jsonl and NAME.tokens.safetensors as prepare.py writes a split: the reference conversations, rendered as
    training renders them and cut at max_length (the tokens score the result's loss on the reference answers)."""
    conversations = [c for c in (reference_conversation(kind, e) for e in examples) if c is not None]
    r1 = renders_r1(config.renderer, tokenizer)
    tokens = [tokenize_rendered(render(c, r1=r1, tokenizer=tokenizer, think_mode=config.think_mode,
                                       reasoning_format=reasoning_format), tokenizer, max_tokens=config.max_length)
              for c in conversations]
    write_examples(out / f"{name}.jsonl", conversations)
    write_tokens(out / f"{name}.tokens.safetensors", tokens)


def _checked(source: Path, kind: str, tokenizer, model: str, config: DataConfig, spec):
    _, checked = check_kind(source, kind, tokenizer=tokenizer, config=config, spec=spec)
    if blocking_codes(checked, config) or not checked.examples:
        raise DataError(kind_report(kind, checked, source=source.name, model=model, max_length=config.max_length))
    return checked


def _split_key(kind: str, example) -> Example:
    """What decides an example's side of the split: a pair's prompt and chosen turn, a prompt's turns."""
    return example.conversation("chosen") if kind == "preference" else Example(example.messages)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"
