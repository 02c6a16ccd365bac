"""Prepare a data file for training: validated, cleaned, split, tokenized, hashed, cached.

    llmft data prepare FILE --model tiny-r1 --out DIR [--validation-file F] [--max-length N]

Writes to DIR: train.jsonl and validation.jsonl (the cleaned examples), their tokens as
train.tokens.safetensors / validation.tokens.safetensors, report.json and manifest.json
(the sha256 of the prepared data and everything it was made from).
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from llmft import __version__
from llmft.bases.resolve import load_tokenizer, resolve_model, tokenizer_fingerprint
from llmft.data import cache
from llmft.data.config import DataConfig
from llmft.data.issues import CODES
from llmft.data.render import RENDERER_VERSION
from llmft.data.report import build_report
from llmft.data.split import split_indices
from llmft.data.store import read_tokens, sha256_files, write_examples, write_tokens
from llmft.data.tokenize import Tokenized
from llmft.data.validate import Checked, check_file
from llmft.files import sha256_file

STRUCTURAL = {"file_unreadable", "file_empty"}  # never dropped: there is nothing left to train on
DATA_FILES = ("train.jsonl", "validation.jsonl", "train.tokens.safetensors", "validation.tokens.safetensors")


class DataError(Exception):
    """The data has errors that the options do not allow to drop; `report` says which."""

    def __init__(self, report: dict):
        self.report = report
        codes = ", ".join(report["issues_by_code"]) or "no examples left"
        super().__init__(f"{report['source']}: {report['errors']} errors ({codes})")


@dataclass
class Prepared:
    folder: Path
    report: dict
    manifest: dict
    cache_hit: bool

    def tokens(self, split: str) -> list[Tokenized]:
        return read_tokens(self.folder / f"{split}.tokens.safetensors")


def prepare(path: Path, *, model: str, config: DataConfig | None = None, out: Path | None = None,
            use_cache: bool = True) -> Prepared:
    config = config or DataConfig()
    path = Path(path)
    validation_path = Path(config.validation_file) if config.validation_file else None
    sources = [path] + ([validation_path] if validation_path else [])
    folder = resolve_model(model)
    key = cache.cache_key(
        source_hashes=[sha256_file(p) for p in sources],
        tokenizer_hash=tokenizer_fingerprint(folder),
        renderer_version=RENDERER_VERSION,
        options=config.model_dump(exclude={"validation_file"}),
    )
    hit = cache.lookup(key) if use_cache else None
    if hit is None:
        hit = cache.publish(key, _prepare_into(cache.new_staging(), sources, model, folder, config))
        cache_hit = False
    else:
        cache_hit = True
    result_folder = _copy_out(hit, out) if out else hit
    report = json.loads((result_folder / "report.json").read_text())
    manifest = json.loads((result_folder / "manifest.json").read_text())
    return Prepared(result_folder, report, manifest, cache_hit)


def _prepare_into(staging: Path, sources: list[Path], model: str, folder: Path, config: DataConfig) -> Path:
    tokenizer = load_tokenizer(str(folder))
    try:
        checked = [_check(source, tokenizer, model, config) for source in sources]
        train, validation = checked[0], checked[-1]
        if len(sources) > 1:
            train_ids, val_ids = list(range(len(train.examples))), list(range(len(validation.examples)))
            how = f"validation file {sources[1].name}"
        else:
            train_ids, val_ids = split_indices(train.examples, ratio=config.validation_ratio, seed=config.seed)
            how = f"ratio {config.validation_ratio}, seed {config.seed}"
        _write_split(staging, "train", train, train_ids)
        _write_split(staging, "validation", validation, val_ids)
        report = build_report(train, source=sources[0].name, model=model, max_length=config.max_length)
        report["split"] = {"train": len(train_ids), "validation": len(val_ids), "how": how}
        report["sha256"] = sha256_files([staging / name for name in DATA_FILES])
        manifest = {
            "sha256": report["sha256"],
            "sources": [{"name": p.name, "sha256": sha256_file(p)} for p in sources],
            "model": model,
            "tokenizer_sha256": tokenizer_fingerprint(folder),
            "renderer_version": RENDERER_VERSION,
            "reasoning_format": train.reasoning_format,  # data.reasoning_format as resolved (render.resolve_format)
            "config": config.model_dump(),
            "llmft_version": __version__,
        }
        (staging / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
        (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
        return staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check(source: Path, tokenizer, model: str, config: DataConfig) -> Checked:
    """check_file, raising DataError when errors remain that the options do not drop."""
    checked = check_file(source, tokenizer=tokenizer, config=config)
    if blocking_codes(checked, config) or not checked.examples:
        raise DataError(build_report(checked, source=source.name, model=model, max_length=config.max_length))
    return checked


def blocking_codes(checked: Checked, config: DataConfig) -> list[str]:
    """Error codes present that `on_invalid` / `on_overlength` do not turn into a counted drop."""
    codes = []
    for code in sorted(checked.issue_counts):
        if CODES[code][0] != "error":
            continue
        if code == "too_long" and config.on_overlength != "error":
            continue
        if code not in STRUCTURAL and code != "too_long" and config.on_invalid == "drop":
            continue
        codes.append(code)
    return codes


def _write_split(folder: Path, name: str, checked: Checked, indices: list[int]) -> None:
    write_examples(folder / f"{name}.jsonl", [checked.examples[i] for i in indices])
    write_tokens(folder / f"{name}.tokens.safetensors", [checked.tokenized[i] for i in indices])


def _copy_out(source: Path, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        shutil.copy2(item, out / item.name)
    return out

