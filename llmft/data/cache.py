"""Cache of prepared data, keyed by everything that changes the tokens.

Key: sha256 of (source file hashes, tokenizer files hash, renderer version, data options).
A hit needs neither the tokenizer nor the parser: only the hashes are computed.
Entries are published atomically (written to a temp folder, then renamed).
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from llmft.settings import llmft_home

CACHE_VERSION = "1"


def cache_key(*, source_hashes: list[str], tokenizer_hash: str, renderer_version: str, options: dict) -> str:
    material = json.dumps({"v": CACHE_VERSION, "sources": source_hashes, "tokenizer": tokenizer_hash,
                           "renderer": renderer_version, "options": options}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


def cache_dir() -> Path:
    return llmft_home() / "cache" / "prepared"


def lookup(key: str) -> Path | None:
    folder = cache_dir() / key
    return folder if (folder / "manifest.json").is_file() else None


def publish(key: str, staging: Path) -> Path:
    """Move a fully written `staging` folder into the cache under `key`."""
    target = cache_dir() / key
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, target)
    except OSError:  # another process published the same key first: theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return target


def new_staging() -> Path:
    cache_dir().mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_dir()))


def forget_source(sha256: str) -> int:
    """Remove every entry prepared from a source file with this sha256 (a deleted dataset); returns how many."""
    removed = 0
    for manifest in cache_dir().glob("*/manifest.json"):
        try:
            sources = json.loads(manifest.read_text())["sources"]
        except (OSError, ValueError, KeyError):  # being removed by another process, or not an entry
            continue
        if any(source.get("sha256") == sha256 for source in sources):
            shutil.rmtree(manifest.parent, ignore_errors=True)
            removed += 1
    return removed
