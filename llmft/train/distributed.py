"""Training on several processes through torch.distributed: torchrun starts them, we agree.

    llmft train --config F --nproc-per-node 2                       # one host, 2 processes
    llmft train --config F --nproc-per-node 8 --nnodes 2 --node-rank 0 --rdzv-endpoint HOST:29500

`torchrun_command` builds the torchrun command line (the CLI and the job runner use it); every
process then runs `llmft.train.run.train`, where Hugging Face Trainer wraps the model in DDP,
FSDP or DeepSpeed. The helpers here are the few collectives our own code needs so that all
ranks take the same decisions (stop, early stopping, validation loss) and only rank 0 writes.
Outside torchrun they are no-ops: one process is world size 1.
"""

import os
import sys
from contextlib import contextmanager

import torch
import torch.distributed as dist

from llmft.processes import die_with_launcher


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sums over all ranks (float64, on the device the process group runs on)."""
    if world_size() == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def shard(count: int) -> range:
    """The indices of `count` items this rank takes: every world_size-th, none twice, none padded."""
    return range(rank(), count, world_size())


def torchrun_command(module_args: list[str], *, nproc_per_node: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, shutdown_timeout: int = 300) -> list[str]:
    """`python -m torch.distributed.run ... -m <module_args>`: one host static, several hosts by rendezvous."""
    if nproc_per_node < 1 or nnodes < 1:
        raise ValueError("nproc_per_node and nnodes must be at least 1")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}",
               f"--nnodes={nnodes}", "--max-restarts=0", f"--shutdown-timeout={shutdown_timeout}"]
    if nnodes == 1 and rdzv_endpoint is None:
        command.append("--standalone")  # a free port on this host, no rendezvous server to run
    else:
        if rdzv_endpoint is None:
            raise ValueError("several nodes need --rdzv-endpoint HOST:PORT (a host all of them reach)")
        command += [f"--node-rank={node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    return command + ["-m", *module_args]


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init() -> None:
    """Join the process group torchrun prepared (gloo on CPU, NCCL on CUDA); nothing outside torchrun.
    Trainer would do it too, later: we need it first, to prepare the data on rank 0 before the others."""
    if launched_by_torchrun() and not dist.is_initialized():
        from accelerate import PartialState

        die_with_launcher()  # torchrun starts ranks in sessions of their own: killing its group spares them

        PartialState(cpu=not torch.cuda.is_available())


@contextmanager
def main_first():
    """Rank 0 runs the block first (writes the data cache, clears the output folder), then the others.
    Several hosts need `output.output_dir` and LLMFT_HOME on storage they all share."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()
