"""`llmft worker`: a job worker (Celery consumer and lease reaper); `llmft serve` starts one itself.

    llmft worker [--name worker] [--slots N]
"""

import sys

from llmft import exit_codes


def add_parser(commands) -> None:
    worker = commands.add_parser("worker", help="start a job worker (Celery + lease reaper)")
    worker.add_argument("--name", default="worker", help="worker name (hostname is appended)")
    worker.add_argument("--slots", type=int, help="training processes this worker runs at once (default WORKER_SLOTS, 1)")
    worker.set_defaults(run=run)


def run(args) -> int:
    from llmft.files import private_files
    from llmft.jobs.worker import start_worker
    from llmft.settings import load_settings

    if args.slots is not None and not 1 <= args.slots <= 64:
        print("llmft: --slots must be between 1 and 64", file=sys.stderr)
        return exit_codes.USAGE
    private_files()  # checkpoints and models under $LLMFT_HOME: 0600 files, 0700 folders
    start_worker(load_settings(), name=args.name, slots=args.slots)
    return exit_codes.OK
