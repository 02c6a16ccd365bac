"""Prepared data on disk: examples as readable JSONL, tokens as safetensors (no pickle)."""

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from llmft.data.normalize import Example
from llmft.data.tokenize import Tokenized


def example_to_dict(example: Example) -> dict:
    out: dict = {"text": example.text} if example.text is not None else {"messages": []}
    for message in example.messages:
        item = {"role": message.role, "content": message.content}
        if message.reasoning is not None:
            item["reasoning_content"] = message.reasoning
        if message.weight is not None:
            item["weight"] = message.weight
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
        out["messages"].append(item)
    return {**out, **example.extra, "source_record": example.record}


def write_examples(path: Path, examples: list[Example]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example_to_dict(example), ensure_ascii=False) + "\n")


def write_tokens(path: Path, tokenized: list[Tokenized]) -> None:
    lengths = np.array([len(t) for t in tokenized], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = lambda attr: np.array([x for t in tokenized for x in getattr(t, attr)], dtype=np.int32)  # noqa: E731
    stats = np.array([[t.prompt_tokens, t.reasoning_tokens, t.answer_tokens] for t in tokenized], dtype=np.int32)
    save_file({"input_ids": flat("input_ids"), "labels": flat("labels"), "offsets": offsets,
               "stats": stats.reshape(-1, 3)}, str(path))


def read_tokens(path: Path) -> list[Tokenized]:
    arrays = load_file(str(path))
    ids, labels, offsets, stats = arrays["input_ids"], arrays["labels"], arrays["offsets"], arrays["stats"]
    return [
        Tokenized(ids[a:b].tolist(), labels[a:b].tolist(), *map(int, stats[i]))
        for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))
    ]


def sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


