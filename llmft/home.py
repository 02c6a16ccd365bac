"""Where llmft keeps its state: `$LLMFT_HOME`, default `./var`."""

import os
from pathlib import Path


def llmft_home() -> Path:
    """The state folder (models built on first use, caches, database, artifacts)."""
    return Path(os.environ.get("LLMFT_HOME", "var")).resolve()
