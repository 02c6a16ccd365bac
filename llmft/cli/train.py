"""`llmft train`: fine-tune from a config file, on this process or on several through torchrun.

    llmft train --config FILE [--set key=value ...] [--resume]
    llmft train --config FILE --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT]

Exit codes (llmft/exit_codes.py): 0 trained; 1 the data has errors (the report says which); 2 bad
arguments or config, or the output folder already holds a run; 3 stopped on request (checkpoint
saved; continue with --resume); 4 the loss became NaN or infinite (the last good checkpoint kept).
"""

import sys
from pathlib import Path

from llmft import exit_codes


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="fine-tune from a config file")
    train.add_argument("--config", type=Path, help="YAML config (see config/demo.yaml)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. training.max_steps=20 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the last committed checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--nproc-per-node", type=int, metavar="N",
                       help="train on N processes of this host through torchrun (DDP unless distributed.strategy says)")
    train.add_argument("--nnodes", type=int, default=1, metavar="M", help="hosts taking part (with --nproc-per-node)")
    train.add_argument("--node-rank", type=int, default=0, metavar="R", help="this host's rank among --nnodes")
    train.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="rendezvous address every host reaches (needed with --nnodes > 1)")
    train.set_defaults(run=run)


def run(args) -> int:
    """One process trains here; under torchrun this runs on every rank (`python -m llmft.train`)."""
    from llmft.data.prepare import DataError
    from llmft.data.report import format_report
    from llmft.train.config import load_config
    from llmft.train.distributed import is_main
    from llmft.train.run import train

    config = load_config(args.config, args.overrides)
    if args.nproc_per_node is not None or args.nnodes > 1:
        return _torchrun(args, config)
    try:
        result = train(config, resume=args.resume, progress=not args.no_progress)
    except DataError as error:
        if is_main():
            print(format_report(error.report))
            print("llmft: the training data has errors; fix them or set data.on_invalid: drop", file=sys.stderr)
        return exit_codes.ERRORS
    if is_main():
        _report(result)
    return exit_codes.for_status(result.status)


def _report(result) -> None:
    summary = result.summary
    if result.status == "nan_loss":
        print(f"llmft: the loss or gradient became NaN or infinite at step {summary.nan_step}; stopped. "
              f"Last good checkpoint: {summary.last_good_checkpoint} (lower training.learning_rate, "
              f"check the data, then --resume)", file=sys.stderr)
    elif result.status == "reward_failed":
        print(f"llmft: {summary.reward_error}; stopped at step {summary.steps}. Last checkpoint: "
              f"{summary.last_good_checkpoint} (fix the graders or the data, then --resume)", file=sys.stderr)
    elif result.status == "stopped":
        print(f"stopped at step {summary.steps}; checkpoint saved in {result.output_dir / 'checkpoints'}; "
              f"continue with --resume")
    else:
        print(f"trained {summary.steps} steps in {summary.wall_time_s:.0f} s "
              f"({summary.tokens_per_second:.0f} tokens/s); train loss {summary.first_train_loss} -> "
              f"{summary.final_train_loss}; best validation loss {summary.best_eval_loss}")
        print(f"final model: {result.final_dir}")
    print("hyperparameters: " + _hyperparameters(summary))


def _hyperparameters(summary) -> str:
    """num_epochs 4.0 (auto), batch_size 1 (auto), learning_rate 0.001 (auto), ..."""
    return ", ".join(f"{name} {value}" + (" (auto)" if name in summary.auto else "")
                     for name, value in summary.hyperparameters.items() if value is not None)


def _torchrun(args, config) -> int:
    """The same command on N processes per host: the checks that need no model run here, once, then
    torchrun starts the ranks, each running `llmft.train` with these arguments (rank 0 reports).
    SIGTERM to this command goes on to torchrun, which passes it to every rank: they checkpoint together."""
    from llmft.train.launch import launch

    forwarded = [*(["--config", str(args.config)] if args.config else []),
                 *(arg for override in args.overrides for arg in ("--set", override)),
                 *(["--resume"] if args.resume else []), *(["--no-progress"] if args.no_progress else [])]
    launched = launch(["llmft.train", *forwarded], config=config, resume=args.resume,
                      nproc_per_node=args.nproc_per_node or 1, nnodes=args.nnodes, node_rank=args.node_rank,
                      rdzv_endpoint=args.rdzv_endpoint)
    return launched.exit_code
