"""Merge a LoRA version into its base: a full safetensors model that `from_pretrained` loads.

    merge_adapter(base_model="tiny-r1", adapter_dir=verified_folder(...), out=Path("runs/job-.../merged"))

The export job (`POST /api/v1/models/NAME/versions/V/export`) runs this in the trainer child
and registers the folder as the model's next version, `kind` full, lineage `exported_from`.
"""

import os
import shutil
from pathlib import Path

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.resolve import weights_source


def merge_adapter(*, base_model: str, adapter_dir: Path, out: Path) -> Path:
    base = AutoModelForCausalLM.from_pretrained(weights_source(base_model), dtype="auto", use_safetensors=True)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    staging = Path(out).with_name(Path(out).name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(staging)
    if Path(out).exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return Path(out)
