"""summary.json: how a training run ended, the contract between the trainer and whoever reads it.

    summary = RunSummary.read(output_dir)                  # None when the run wrote none
    summary = RunSummary.read(output_dir, since=started)   # only one written after `started`

`train/run.py` writes it (rank 0) at the end of every run, stopped or not; the CLI and the job
child read it back after torchrun, and the registry takes its lineage and metrics from it.
"""

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmft import exit_codes

FILE = "summary.json"


class DataSummary(BaseModel):
    """The prepared data the run trained on."""

    model_config = ConfigDict(extra="forbid")

    sha256: str
    sources: list[dict]  # {"name", "sha256"} of each file read
    folder: str  # the prepared folder: train and validation splits, tokens
    train_examples: int
    validation_examples: int


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "stopped", "nan_loss", "reward_failed"]
    method: str | None = None  # method.type: lora, full, qlora, dpo, orpo, simpo (None: a run before methods)
    beta: float | None = None  # dpo, orpo, simpo: the method's beta
    steps: int
    epochs: float | None
    first_train_loss: float | None
    final_train_loss: float | None
    final_eval_loss: float | None
    best_eval_loss: float | None
    best_checkpoint: str | None  # a checkpoint folder's name
    stopped_by: str | None  # what ended the run early: stop_requested, early_stopping, nan_loss, reward_failed
    tokens_seen: int
    train_runtime_s: float
    tokens_per_second: float
    processes: int
    wall_time_s: float
    peak_rss_gb: float
    gpu_peak_memory_gb: float | None = None  # on CUDA only
    gpu_memory_fraction: float | None = None  # on CUDA only
    nan_step: int | None = None  # status nan_loss only: the step whose loss or gradient was not finite
    last_good_checkpoint: str | None = None  # status nan_loss and reward_failed only
    reward_error: str | None = None  # status reward_failed only: which reward failed, on which record, why
    final_dir: str | None  # the final model (status succeeded)
    tokenizer_sha256: str
    renderer_version: str
    reasoning_format: str | None = None  # data.reasoning_format as prepare resolved it (None: a run before formats)
    data: DataSummary
    config: dict  # the TrainConfig it ran with, its "auto" fields chosen
    hyperparameters: dict = {}  # num_epochs, batch_size, learning_rate, logging_steps, row_length, max_steps
    auto: list[str] = []  # which of them were "auto", chosen from the data (train/auto.py)
    llmft_version: str
    torch_version: str

    @property
    def exit_code(self) -> int:
        return exit_codes.for_status(self.status)

    def write(self, output_dir) -> Path:
        """Atomically (a reader sees the old file or the new one). The fields that only some runs
        have (GPU memory, the NaN step) are left out when empty, as the file always had them."""
        path = Path(output_dir) / FILE
        optional = {"gpu_peak_memory_gb", "gpu_memory_fraction", "nan_step", "last_good_checkpoint", "reasoning_format",
                    "reward_error", "method", "beta"}
        value = self.model_dump(exclude={name for name in optional if getattr(self, name) is None})
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, output_dir, *, since: float = 0.0) -> "RunSummary | None":
        """The summary of the run in `output_dir` if it was written after `since` (a Unix time), else None."""
        path = Path(output_dir) / FILE
        if not path.is_file() or path.stat().st_mtime < since:
            return None
        return cls.model_validate(json.loads(path.read_text()))  # json, not pydantic's: a NaN loss reads back
