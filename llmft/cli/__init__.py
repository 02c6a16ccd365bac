"""The `llmft` command: the parser is assembled here, each command group lives in its own module.

    llmft base tiny|init|import ... cli/base.py     base models (`llmft model` is the old name)
    llmft data validate|prepare|preview cli/data.py   a data file before training
    llmft train --config FILE         cli/train.py    fine-tune, on one process or through torchrun
    llmft eval --model M --dataset D  cli/eval.py     a model next to its base, graders too (`llmft evaluate`)
    llmft models list|show|alias|...  cli/models.py   the registry of a tenant
    llmft serve                       cli/serve.py    the API (and a worker beside it)
    llmft worker                      cli/worker.py   a job worker
    llmft db upgrade|current          cli/db.py       the database schema
    llmft keys create|revoke          cli/keys.py     API keys

Every subcommand is a thin wrapper over a plain function. Exit codes: llmft/exit_codes.py
(a bad argument, config or model is 2, with one line saying what is wrong).
"""

import argparse
import sys

from llmft import exit_codes
from llmft.cli import base, data, db, keys, models, serve, train, worker
from llmft.cli import eval as evaluation

GROUPS = (base, data, train, evaluation, models, serve, worker, db, keys)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return exit_codes.USAGE
    from llmft.bases.resolve import ModelNotFoundError
    from llmft.config import ConfigError

    try:
        return args.run(args)
    except (ConfigError, ModelNotFoundError) as error:
        print(f"llmft: {error}", file=sys.stderr)
        return exit_codes.USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmft", description="Fine-tune, evaluate and serve causal LMs.")
    commands = parser.add_subparsers(title="commands")
    for group in GROUPS:
        group.add_parser(commands)
    return parser
