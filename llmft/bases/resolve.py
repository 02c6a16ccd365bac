"""Base model names to local folders, and tokenizer loading.

A base model is named by a built-in name (`tiny-r1`, built on first use under
`$LLMFT_HOME/models`), an alias of a hub id (`deepseek-r1-1.5b`), a local folder, or a
Hugging Face hub id. Everything downstream works on the local folder this returns.
"""

import fcntl
import hashlib
import re
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from llmft.bases.tiny import build_tiny_model
from llmft.settings import llmft_home

TINY = "tiny-r1"
ALIASES = {
    "deepseek-r1-1.5b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "deepseek-r1-distill-qwen-1.5b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


class ModelNotFoundError(Exception):
    """The base model is neither a known name, a local folder, nor reachable on the hub."""


def resolve_model(name: str) -> Path:
    """The local folder holding `name`'s config and tokenizer (built or fetched if needed)."""
    if name == TINY:
        return ensure_tiny_model()
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file() and not (local / "tokenizer_config.json").is_file():
            raise ModelNotFoundError(f"{local} is a folder but holds no config.json or tokenizer_config.json")
        return local.resolve()
    return _fetch_from_hub(ALIASES.get(name, name))


HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*/[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def requestable(name: str) -> bool:
    """What an API request may name as a base model: a built-in name or a hub id, never a local path
    (a path would let one tenant load files it does not own; local folders are for the CLI)."""
    if name == TINY or name in ALIASES:
        return True
    return bool(HUB_ID.match(name)) and len(name) <= 200 and not Path(name).exists()  # resolved as a folder first


def weights_source(name: str) -> str:
    """What `from_pretrained` should load the weights from: a local folder or a hub id."""
    if name == TINY:
        return str(ensure_tiny_model())
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else ALIASES.get(name, name)


def base_revision(name: str) -> str:
    """What exactly the base was: the hub snapshot's commit, else a sha256 over the folder's config and
    the names and sizes of its weight files (cheap, and it changes when the weights are replaced)."""
    folder = Path(weights_source(name))
    if not folder.is_dir():
        return "hub"
    if folder.parent.name == "snapshots":
        return folder.name
    digest = hashlib.sha256((folder / "config.json").read_bytes() if (folder / "config.json").is_file() else b"")
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return "sha256:" + digest.hexdigest()[:16]


def ensure_tiny_model() -> Path:
    """`$LLMFT_HOME/models/tiny-r1`, built once (a lock keeps concurrent builders apart)."""
    folder = llmft_home() / "models" / TINY
    if (folder / "tokenizer.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{TINY}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "tokenizer.json").is_file():
            build_tiny_model(folder)
    return folder


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)


def tokenizer_fingerprint(folder: Path) -> str:
    """sha256 over the tokenizer files of a model folder (cheap: no tokenizer is loaded)."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = Path(folder) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _fetch_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.jinja", "*.txt", "*.model"]))
    except HFValidationError as error:
        raise ModelNotFoundError(
            f"{repo_id!r} is not a built-in model ({TINY}, {', '.join(ALIASES)}), a local folder, "
            f"or a valid hub id: {error}"
        ) from None
    except Exception as error:  # offline, unknown repo, gated repo: all end here
        raise ModelNotFoundError(
            f"cannot reach {repo_id!r} on the Hugging Face hub ({type(error).__name__}). "
            f"Download it where the hub is reachable (`hf download {repo_id} --local-dir DIR`) "
            f"and pass the folder DIR instead, or use the offline demo model `{TINY}`."
        ) from None
