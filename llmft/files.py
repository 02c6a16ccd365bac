"""Files written to last: sha256 of a file read in blocks, and fsync of a file or a folder (so a rename that
publishes a folder survives a crash). Shared by the data cache, checkpoints, the registry and base imports.
And `private_files`: what `llmft serve` and `llmft worker` create under $LLMFT_HOME is this user's alone."""

import hashlib
import os
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def private_files() -> None:
    """From now on this process and its children create files 0600 and folders 0700 (umask 077): $LLMFT_HOME
    holds the database, uploaded data and models. `llmft serve`, `llmft worker` and gunicorn's start call it."""
    os.umask(0o077)
