"""A training run on several processes through torchrun, for the CLI and for a job child alike.

    launched = launch(["llmft.train", "--config", "x.yaml"], config=config, resume=False, nproc_per_node=2)
    launched.exit_code     # 0, 3 (stopped), 4 (NaN loss), or torchrun's own code
    launched.summary       # the RunSummary rank 0 wrote during this launch, None if it wrote none

preflight (no model loaded: the config, the data files, the output folder, the launch arguments)
-> torchrun -> every rank runs `module_args` (which call train/run.train) -> wait -> summary.json.
docs/architecture.md shows where the ranks sit among the other processes.
"""

import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass

from llmft.processes import die_with_parent
from llmft.train.config import TrainConfig
from llmft.train.distributed import torchrun_command
from llmft.train.preflight import preflight
from llmft.train.summary import RunSummary


@dataclass
class Launched:
    code: int  # torchrun's exit code
    summary: RunSummary | None  # written by this launch's rank 0, else None

    @property
    def exit_code(self) -> int:
        if self.code != 0 and self.summary is not None and self.summary.status != "succeeded":
            return self.summary.exit_code  # torchrun reports a rank that exits 3 or 4 as failed: it stopped as told
        return self.code


def launch(module_args: list[str], *, config: TrainConfig, resume: bool, nproc_per_node: int, nnodes: int = 1,
           node_rank: int = 0, rdzv_endpoint: str | None = None, forward_sigterm: bool = True) -> Launched:
    """Run `python -m <module_args>` on torchrun's ranks once the preflight passes (ConfigError if not).

    forward_sigterm: SIGTERM to this process goes on to torchrun (the CLI, where the user signals the
    command alone). False where torchrun shares this process's group and receives the signal with
    it (a job child, which the runner signals as a group): this process then only waits.
    Either way torchrun passes SIGTERM to every rank, and the ranks checkpoint together."""
    preflight(config, resume=resume, nproc_per_node=nproc_per_node, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint)
    command = torchrun_command(module_args, nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank,
                               rdzv_endpoint=rdzv_endpoint)
    started = time.time()
    with _on_sigterm(forward=forward_sigterm) as children:
        torchrun = subprocess.Popen(command, preexec_fn=die_with_parent)  # killed, we take torchrun (and it its ranks)
        children.append(torchrun)
        code = torchrun.wait()
    return Launched(code, RunSummary.read(config.output.output_dir, since=started))


@contextmanager
def _on_sigterm(*, forward: bool):
    children: list[subprocess.Popen] = []

    def handle(signum, frame):
        for child in children if forward else ():
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield children
    finally:
        signal.signal(signal.SIGTERM, previous)
