"""Checkpoints published atomically: written elsewhere, fsynced, renamed into place, then marked.

Trainer writes each checkpoint into `output_dir/.staging/`; `publish` moves it to
`output_dir/checkpoints/checkpoint-N` with one rename and then writes the `COMMITTED` marker.
Resume only ever reads committed checkpoints, so a save cut short by a crash is never used.
"""

import json
import os
import shutil
from pathlib import Path

from llmft.files import fsync_dir, fsync_file

MARKER = "COMMITTED"
PREFIX = "checkpoint-"


def staging_dir(output_dir: Path) -> Path:
    return Path(output_dir) / ".staging"


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def publish(staged: Path, output_dir: Path, *, info: dict) -> Path:
    """Move a fully written checkpoint folder into place and mark it committed."""
    _fsync_tree(staged)
    target = checkpoints_dir(output_dir) / staged.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # a checkpoint of this step from an earlier, interrupted attempt
        shutil.rmtree(target)
    os.replace(staged, target)
    fsync_dir(target.parent)
    marker = target / MARKER
    marker.write_text(json.dumps(info, sort_keys=True) + "\n")
    fsync_file(marker)
    return target


def committed(output_dir: Path) -> list[Path]:
    """Committed checkpoints, oldest step first."""
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest(output_dir: Path) -> Path | None:
    found = committed(output_dir)
    return found[-1] if found else None


def info(checkpoint: Path) -> dict:
    return json.loads((checkpoint / MARKER).read_text())


def rotate(output_dir: Path, *, keep: int, protect: Path | None) -> list[Path]:
    """Delete the oldest committed checkpoints beyond `keep`, never `protect` (the best one)."""
    found = committed(output_dir)
    removable = [p for p in found if p != protect]
    doomed = removable[: max(0, len(found) - keep)]
    for path in doomed:
        (path / MARKER).unlink()  # uncommit first: a crash mid-delete leaves no half checkpoint marked
        shutil.rmtree(path)
    return doomed


def clear_staging(output_dir: Path) -> None:
    shutil.rmtree(staging_dir(output_dir), ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_file(path)
    fsync_dir(folder)
