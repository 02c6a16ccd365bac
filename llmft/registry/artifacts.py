"""A version's files: copied into the artifact store with their sha256, verified before any use.

    files = store(final_dir, artifacts_dir(home, tenant_id, version_id))  # {"adapter_model.safetensors": {...}}
    verify(folder, files)                                                  # IntegrityError names the file

Only safetensors weights are stored; a pickle checkpoint (`.bin`, `.pt`) is refused (Trainer's
`training_args.bin` is left out: it is bookkeeping, not part of the model).
"""

import os
import shutil
from pathlib import Path

from llmft.files import sha256_file

REFUSED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
LEFT_OUT = {"training_args.bin"}  # Trainer's pickled arguments: bookkeeping, not the model; never shipped


class IntegrityError(Exception):
    """An artifact is missing, changed, or was never recorded: it must not be loaded."""


def artifacts_dir(home: Path, tenant_id: str, version_id: str) -> Path:
    return Path(home) / "artifacts" / tenant_id / version_id


def store(source: Path, target: Path) -> dict:
    """Copy the folder's files (no links, no pickles) into `target` atomically; their hashes and sizes."""
    source = Path(source)
    files = sorted(p for p in source.rglob("*") if (p.is_file() or p.is_symlink()) and p.name not in LEFT_OUT)
    for path in files:
        if path.is_symlink():
            raise IntegrityError(f"{path.relative_to(source)}: a link; artifacts must be plain files")
        if path.suffix in REFUSED:
            raise IntegrityError(f"{path.relative_to(source)}: not safetensors; pickled weights are refused")
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    recorded = {}
    for path in files:
        relative = path.relative_to(source).as_posix()
        copy = staging / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        recorded[relative] = {"sha256": sha256_file(copy), "bytes": copy.stat().st_size}
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return recorded


def add_file(folder: Path, files: dict, name: str, text: str) -> dict:
    """Write a generated file (the model card, the evaluation report) and record its hash."""
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8")
    return {**files, name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}}


def verify(folder: Path, files: dict) -> None:
    """Every recorded file present with its hash, and no unrecorded weights; IntegrityError otherwise."""
    folder = Path(folder)
    for relative, meta in files.items():
        path = folder / relative
        if not path.is_file():
            raise IntegrityError(f"{relative}: missing from {folder.name}")
        if path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            raise IntegrityError(f"{relative}: its sha256 no longer matches the registered one; refusing to load it")
    extra = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    unknown = sorted(set(extra) - set(files))
    if unknown:
        raise IntegrityError(f"{unknown[0]}: not part of the registered version; refusing to load it")
