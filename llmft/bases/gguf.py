"""A GGUF file (llama.cpp, Ollama) to an ordinary Hugging Face folder that trains and serves.

    llmft base import SmolLM2-135M-Instruct.Q4_1.gguf --out var/models/smollm2

Transformers reads the GGUF with the `gguf` package and dequantizes it; we write what
`from_pretrained` reads everywhere else: safetensors weights in float32 (exact: a Q4_1/Q8_0 value is
an fp16 scale times a small integer plus an fp16 offset, which bf16 would round; and CPU training
and serving here run in float32), the tokenizer with its chat template, a generation config whose
eos and pad ids are the tokenizer's, and `llmft_manifest.json` with every file's sha256. The folder
appears whole or not at all: written beside `out`, fsynced, renamed, under a file lock.
"""

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from llmft.config import ConfigError
from llmft.files import fsync_dir, fsync_file, sha256_file

MANIFEST = "llmft_manifest.json"
GGUF_MAGIC = b"GGUF"


def import_gguf(gguf_path: Path, out: Path, *, replace: bool = False) -> Path:
    """Write the causal LM in `gguf_path` to the folder `out` (refused if `out` holds files, unless `replace`)."""
    gguf_path, out = Path(gguf_path).expanduser().resolve(), Path(out).expanduser().absolute()
    _check_file(gguf_path)
    if out.exists() and not replace and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: already exists and is not an empty folder; remove it or choose another")
    config = _read_config(gguf_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(out.parent, os.O_RDONLY)  # imports into one folder wait for each other; no lock file is left
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            _write_folder(gguf_path, config, staging)
            _publish(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(lock)
    return out


def verify_manifest(folder: Path) -> list[str]:
    """The files of `folder` whose sha256 differs from its manifest (or that are missing); [] when intact."""
    files = json.loads((Path(folder) / MANIFEST).read_text())["files"]
    return [name for name, digest in sorted(files.items())
            if not (Path(folder) / name).is_file() or sha256_file(Path(folder) / name) != digest]


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: no such GGUF file")
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ConfigError(f"{path}: not a GGUF file (it does not start with the bytes 'GGUF')")


def _read_config(path: Path):
    """The transformers config of the GGUF, refused unless it is a causal LM transformers can load."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as error:  # the gguf reader raises ValueError, IndexError, struct errors... on a bad file
        raise ConfigError(f"{path}: transformers cannot read this GGUF ({type(error).__name__}: {error})") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(f"{path}: its architecture {config.model_type!r} is not a causal language model "
                          "(transformers has no AutoModelForCausalLM for it); llmft fine-tunes causal LMs only")
    return config


def _write_folder(path: Path, config, staging: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, config=config,
                                                     dtype=torch.float32)
    except Exception as error:  # truncated tensor data, unknown quantization type, shapes that do not fit
        raise ConfigError(f"{path}: transformers cannot load this GGUF ({type(error).__name__}: {error})") from None
    # The weights are dequantized now: without this, save_pretrained refuses ("GGUF ... cannot be saved").
    del model.config.quantization_config
    model.hf_quantizer = None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(config, "max_position_embeddings", None):  # mamba has none; the GGUF's tokenizer says "unbounded"
        tokenizer.model_max_length = config.max_position_embeddings
    for holder in (model.config, model.generation_config):
        holder.bos_token_id, holder.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        holder.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.init_kwargs.pop("local_files_only", None)  # how it was loaded (HF_HUB_OFFLINE): not part of it
    tokenizer.save_pretrained(staging)
    files = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file()}
    (staging / MANIFEST).write_text(json.dumps(
        {"source": {"file": path.name, "sha256": sha256_file(path)}, "files": files}, indent=1) + "\n")


def _publish(staging: Path, out: Path) -> None:
    staging.chmod(0o755)
    for path in staging.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the folder is read by the server and the job children alike
        fsync_file(path)
    fsync_dir(staging)
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(staging, out)
    fsync_dir(out.parent)
