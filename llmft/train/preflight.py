"""The checks of a training run that need no model, in one message, before anything starts.

    preflight(config, resume=False)                                 # train() runs it first
    preflight(config, resume=False, nproc_per_node=2)               # the launcher, before torchrun

Run in the launching process, they stop a run of N processes with one clear error instead of
the same error from every rank followed by torchrun's traceback (see train/launch.py).
"""

from pathlib import Path

from llmft.config import ConfigError
from llmft.train import checkpoints
from llmft.train.config import TrainConfig


def preflight(config: TrainConfig, *, resume: bool, nproc_per_node: int = 1, nnodes: int = 1,
              rdzv_endpoint: str | None = None) -> None:
    """Raise ConfigError naming every problem found: data files, the output folder, launch arguments."""
    problems = [*_data_problems(config), *_output_problems(config, resume=resume),
                *_launch_problems(nproc_per_node=nproc_per_node, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint)]
    if problems:
        raise ConfigError("; ".join(problems))


def _data_problems(config: TrainConfig) -> list[str]:
    if config.data.train_file is None:
        return ["data.train_file is required to train (a JSONL, JSON, CSV or Parquet file)"]
    files = {"data.train_file": config.data.train_file, "data.validation_file": config.data.validation_file}
    return [f"{field}: no file {path}" for field, path in files.items() if path is not None and not Path(path).is_file()]


def _output_problems(config: TrainConfig, *, resume: bool) -> list[str]:
    output_dir = Path(config.output.output_dir).resolve()
    latest = checkpoints.latest(output_dir)
    if latest is not None and not resume:
        return [f"{output_dir} already holds a run (last checkpoint {latest.name}); "
                "pass --resume to continue it, or choose another output.output_dir"]
    return []


def _launch_problems(*, nproc_per_node: int, nnodes: int, rdzv_endpoint: str | None) -> list[str]:
    problems = []
    if nproc_per_node < 1 or nnodes < 1:
        problems.append("--nproc-per-node and --nnodes must be at least 1")
    if nnodes > 1 and not rdzv_endpoint:
        problems.append("--nnodes > 1 needs --rdzv-endpoint HOST:PORT, an address every host reaches")
    return problems
