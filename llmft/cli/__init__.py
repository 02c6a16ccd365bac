"""The `llmft` command. Every subcommand is a thin wrapper over a plain function.

    llmft model tiny --out DIR
    llmft data validate FILE [--model tiny-r1] [--max-length N] [--json]
    llmft data prepare FILE --out DIR [--model tiny-r1] [--validation-file F]
    llmft data preview FILE [--model tiny-r1] [-n 3]

    llmft train --config FILE [--set key=value ...] [--resume]
    llmft train --config FILE --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT]
    llmft model init --config config.json --tokenizer tiny-r1 --out DIR

Exit codes: 0 success, 1 the data has errors (the report says which), 2 bad arguments,
config or model, 3 training stopped on request (checkpoint saved; resume with --resume), 4 training
stopped because the loss became NaN or infinite (the last good checkpoint is kept).
"""

import argparse
import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

EXIT_DATA_ERRORS, EXIT_USAGE = 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    from llmft.config import ConfigError
    from llmft.bases.resolve import ModelNotFoundError

    try:
        return args.run(args)
    except (ConfigError, ModelNotFoundError) as error:
        print(f"llmft: {error}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmft", description="Fine-tune, evaluate and serve causal LMs.")
    commands = parser.add_subparsers(title="commands")

    model = commands.add_parser("model", help="base models").add_subparsers(title="model commands")
    tiny = model.add_parser("tiny", help="write the tiny offline Qwen2 model with the real R1 tokenizer")
    tiny.add_argument("--out", type=Path, required=True, help="folder to write")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_model_tiny)

    init = model.add_parser("init", help="write a model of a given shape with random weights (fast)")
    init.add_argument("--config", type=Path, required=True, help="a config.json (e.g. the 1.5B model's)")
    init.add_argument("--tokenizer", required=True, help="folder or model name whose tokenizer to copy (tiny-r1 works)")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=_model_init)

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
    train.set_defaults(run=_train)

    serve = commands.add_parser("serve", help="start the API (embedded defaults: SQLite under $LLMFT_HOME)")
    serve.add_argument("--host", help="address to listen on (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    serve.add_argument("--threads", type=int, default=32,
                       help="threads per worker process (a streaming answer holds one while it streams)")
    serve.add_argument("--no-worker", action="store_true", help="do not start a job worker beside the API")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="start a job worker (Celery + lease reaper)")
    worker.add_argument("--name", default="worker", help="worker name (hostname is appended)")
    worker.add_argument("--slots", type=int, help="training processes this worker runs at once (default WORKER_SLOTS, 1)")
    worker.set_defaults(run=_worker)

    db = commands.add_parser("db", help="database schema").add_subparsers(title="db commands")
    db_upgrade = db.add_parser("upgrade", help="migrate the database (DATABASE_URL or $LLMFT_HOME's SQLite) to the "
                                               "current schema")
    db_upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    db_upgrade.set_defaults(run=_db_upgrade)
    db.add_parser("current", help="print the database's schema revision").set_defaults(run=_db_current)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(title="keys commands")
    create_key = keys.add_parser("create", help="create a key (printed once) for a tenant, creating the tenant")
    create_key.add_argument("--tenant", required=True)
    create_key.add_argument("--role", choices=["admin", "member", "viewer"], default="member")
    create_key.add_argument("--name", help="a label for the key")
    create_key.set_defaults(run=_keys_create)
    revoke = keys.add_parser("revoke", help="revoke a key by its prefix (llmft_xxxxxxxx) or id")
    revoke.add_argument("key")
    revoke.set_defaults(run=_keys_revoke)

    from llmft.cli.eval import add_parser as add_eval_parser
    from llmft.cli.models import add_parser as add_models_parser

    add_models_parser(commands)
    add_eval_parser(commands)

    data = commands.add_parser("data", help="validate, prepare and preview data").add_subparsers(title="data commands")
    validate = data.add_parser("validate", help="report every problem and the statistics of a data file")
    _data_arguments(validate)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.set_defaults(run=_data_validate)

    prepare = data.add_parser("prepare", help="clean, split, tokenize and write a data file for training")
    _data_arguments(prepare)
    prepare.add_argument("--out", type=Path, required=True, help="folder for the prepared data")
    prepare.add_argument("--validation-file", help="a separate validation file (instead of a split)")
    prepare.add_argument("--validation-ratio", type=float, help="share held out for validation (default 0.1)")
    prepare.add_argument("--seed", type=int, help="seed of the split (default 42)")
    prepare.add_argument("--on-invalid", choices=["error", "drop"], help="records with errors (default error)")
    prepare.add_argument("--on-overlength", choices=["error", "drop", "truncate"], help="default error")
    prepare.add_argument("--no-cache", action="store_true", help="prepare again even if cached")
    prepare.add_argument("--json", action="store_true", help="print the report as JSON")
    prepare.set_defaults(run=_data_prepare)

    preview = data.add_parser("preview", help="print examples with the trained spans marked")
    _data_arguments(preview)
    preview.add_argument("-n", type=int, default=3, help="how many examples (default 3)")
    preview.add_argument("--start", type=int, default=1, help="first record number to show (default 1)")
    preview.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    preview.set_defaults(run=_data_preview)
    return parser


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="JSONL, JSON, CSV or Parquet file")
    parser.add_argument("--model", default="tiny-r1", help="base model: tiny-r1, a hub id or a folder (default tiny-r1)")
    parser.add_argument("--max-length", type=int, help="longest example in tokens (default 2048)")
    parser.add_argument("--think-mode", choices=["mask", "train", "omit"], help="assistant turns without reasoning")
    parser.add_argument("--train-on-inputs", action="store_true", default=None, help="also train on prompts")


def _data_config(args):
    from llmft.config import DataConfig, check

    names = {"max_length": "max_length", "think_mode": "think_mode", "train_on_inputs": "train_on_inputs",
             "validation_file": "validation_file", "validation_ratio": "validation_ratio", "seed": "seed",
             "on_invalid": "on_invalid", "on_overlength": "on_overlength"}
    values = {key: getattr(args, attr) for key, attr in names.items() if getattr(args, attr, None) is not None}
    return check(DataConfig, values, where="options")


def _serve(args) -> int:

    from llmft.api.server import serve
    from llmft.processes import die_with_parent
    from llmft.settings import load_settings

    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    settings = load_settings(**overrides)
    _say_how_to_start(settings)
    worker = None
    if not args.no_worker:  # the embedded default: one worker process beside the API, gone when the API goes
        worker = subprocess.Popen([sys.executable, "-m", "llmft.cli", "worker", "--name", "embedded"],
                                  preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    try:
        serve(settings, workers=args.workers, threads=args.threads)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=120)
    return 0


def _say_how_to_start(settings) -> None:
    from sqlalchemy import func, select

    from llmft.db.tables import ApiKey
    from llmft.db.session import create_schema, session_scope

    settings.llmft_home.mkdir(parents=True, exist_ok=True)
    create_schema(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        keys = session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))
    base = f"http://{settings.host}:{settings.port}"
    print(f"llmft: API on {base} (docs {base}/docs), state in {settings.llmft_home}", file=sys.stderr)
    if not keys:
        print("llmft: no API key yet; create one with: llmft keys create --tenant NAME --role admin", file=sys.stderr)


def _worker(args) -> int:
    from llmft.jobs.worker import start_worker
    from llmft.settings import load_settings

    if args.slots is not None and not 1 <= args.slots <= 64:
        print("llmft: --slots must be between 1 and 64", file=sys.stderr)
        return 2
    start_worker(load_settings(), name=args.name, slots=args.slots)
    return 0


def _db_upgrade(args) -> int:
    from llmft.db.migrate import upgrade
    from llmft.settings import load_settings

    settings = load_settings()
    before = _db_revision(settings.sqlalchemy_url)
    after = upgrade(settings.sqlalchemy_url, args.revision)
    print(f"llmft: database schema {before or 'empty'} -> {after}", file=sys.stderr)
    return 0


def _db_current(args) -> int:
    from llmft.db.migrate import head
    from llmft.settings import load_settings

    revision = _db_revision(load_settings().sqlalchemy_url)
    print(f"{revision or 'empty'} (head {head()})")
    return 0


def _db_revision(url: str) -> str | None:
    from sqlalchemy import inspect

    from llmft.db.migrate import BASELINE, current
    from llmft.db.session import engine_for

    tables = set(inspect(engine_for(url)).get_table_names())
    if tables and "alembic_version" not in tables:
        return f"{BASELINE} (made before migrations, not stamped)"
    return current(url)


def _keys_create(args) -> int:
    from llmft.auth.keys import create_key
    from llmft.db.session import create_schema, session_scope
    from llmft.settings import load_settings

    settings = load_settings()
    create_schema(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        key, row = create_key(session, tenant=args.tenant, role=args.role, name=args.name)
    print(key)
    print(f"{row.prefix} ({args.role} of tenant {args.tenant}); shown once, stored hashed", file=sys.stderr)
    return 0


def _keys_revoke(args) -> int:
    from llmft.auth.keys import revoke_key
    from llmft.db.session import create_schema, session_scope
    from llmft.settings import load_settings

    settings = load_settings()
    create_schema(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        revoked = revoke_key(session, args.key)
    print(f"revoked {args.key}" if revoked else f"llmft: no active key {args.key}", file=sys.stderr)
    return 0 if revoked else EXIT_USAGE


def _model_tiny(args) -> int:
    from llmft.bases.tiny import build_tiny_model

    print(build_tiny_model(args.out, seed=args.seed))
    return 0


def _model_init(args) -> int:
    from llmft.bases.init import init_model

    print(init_model(args.config, tokenizer=args.tokenizer, out=args.out, dtype=args.dtype, seed=args.seed))
    return 0


def _train(args) -> int:
    from llmft.data.prepare import DataError
    from llmft.data.report import format_report
    from llmft.train.config import load_config
    from llmft.train.distributed import is_main
    from llmft.train.run import EXIT_NAN_LOSS, EXIT_STOPPED, train

    config = load_config(args.config, args.overrides)
    if args.nproc_per_node is not None or args.nnodes > 1:
        return _train_torchrun(args, config)
    try:
        result = train(config, resume=args.resume, progress=not args.no_progress)
    except DataError as error:
        if is_main():
            print(format_report(error.report))
            print("llmft: the training data has errors; fix them or set data.on_invalid: drop", file=sys.stderr)
        return EXIT_DATA_ERRORS
    if not is_main():
        return {"succeeded": 0, "stopped": EXIT_STOPPED, "nan_loss": EXIT_NAN_LOSS}[result.status]
    summary = result.summary
    if result.status == "nan_loss":
        print(f"llmft: the loss or gradient became NaN or infinite at step {summary['nan_step']}; stopped. "
              f"Last good checkpoint: {summary['last_good_checkpoint']} (lower training.learning_rate, "
              f"check the data, then --resume)", file=sys.stderr)
        return EXIT_NAN_LOSS
    if result.status == "stopped":
        print(f"stopped at step {summary['steps']}; checkpoint saved in {result.output_dir / 'checkpoints'}; "
              f"continue with --resume")
        return EXIT_STOPPED
    print(f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s "
          f"({summary['tokens_per_second']:.0f} tokens/s); train loss {summary['first_train_loss']} -> "
          f"{summary['final_train_loss']}; best validation loss {summary['best_eval_loss']}")
    print(f"final model: {result.final_dir}")
    return 0


def _train_torchrun(args, config) -> int:
    """The same command on N processes per host: torchrun starts them, each runs `llmft.train`.
    SIGTERM to this command goes to torchrun, which passes it to every rank: they checkpoint together."""
    from llmft.train.distributed import torchrun_command
    from llmft.train.run import EXIT_NAN_LOSS, EXIT_STOPPED, read_summary

    if (args.nproc_per_node or 1) < 1 or args.nnodes < 1:
        print("llmft: --nproc-per-node and --nnodes must be at least 1", file=sys.stderr)
        return 2
    if args.nnodes > 1 and not args.rdzv_endpoint:
        print("llmft: --nnodes > 1 needs --rdzv-endpoint HOST:PORT, an address every host reaches", file=sys.stderr)
        return 2
    forwarded = [*(["--config", str(args.config)] if args.config else []),
                 *(arg for override in args.overrides for arg in ("--set", override)),
                 *(["--resume"] if args.resume else []), *(["--no-progress"] if args.no_progress else [])]
    command = torchrun_command(["llmft.train", *forwarded], nproc_per_node=args.nproc_per_node or 1,
                               nnodes=args.nnodes, node_rank=args.node_rank, rdzv_endpoint=args.rdzv_endpoint)
    started = time.time()
    with _forwarding_signals() as forward:
        child = subprocess.Popen(command)
        forward.append(child)
        code = child.wait()
    if code == 0:
        return 0
    summary = read_summary(config.output.output_dir, since=started)
    if summary is not None and summary["status"] in ("stopped", "nan_loss"):
        # torchrun reports a rank that exits 3 or 4 as failed: the run stopped as rank 0 told
        return EXIT_STOPPED if summary["status"] == "stopped" else EXIT_NAN_LOSS
    return code


@contextmanager
def _forwarding_signals():
    """SIGTERM to this process goes on to torchrun (which passes it to every rank)."""
    children: list = []

    def forward(signum, frame):
        for child in children:
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield children
    finally:
        signal.signal(signal.SIGTERM, previous)


def _data_validate(args) -> int:
    from llmft.data.report import build_report, format_report
    from llmft.data.validate import check_file
    from llmft.bases.resolve import load_tokenizer

    config = _data_config(args)
    checked = check_file(args.file, tokenizer=load_tokenizer(args.model), config=config)
    report = build_report(checked, source=str(args.file), model=args.model, max_length=config.max_length)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    return EXIT_DATA_ERRORS if report["errors"] else 0


def _data_prepare(args) -> int:
    from llmft.data.prepare import DataError, prepare
    from llmft.data.report import format_report

    config = _data_config(args)
    try:
        prepared = prepare(args.file, model=args.model, config=config, out=args.out, use_cache=not args.no_cache)
    except DataError as error:
        print(json.dumps(error.report, ensure_ascii=False, indent=1) if args.json else format_report(error.report))
        print("llmft: nothing written; fix the errors above or pass --on-invalid drop", file=sys.stderr)
        return EXIT_DATA_ERRORS
    report = prepared.report
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    if not args.json:
        print(f"wrote {prepared.folder} ({'cache hit' if prepared.cache_hit else 'prepared'})")
    return 0


def _data_preview(args) -> int:
    from llmft.data.preview import format_example
    from llmft.data.validate import check_file
    from llmft.bases.resolve import load_tokenizer

    config = _data_config(args)
    tokenizer = load_tokenizer(args.model)
    checked = check_file(args.file, tokenizer=tokenizer, config=config)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    shown = 0
    for example, tokens in zip(checked.examples, checked.tokenized):
        if example.record < args.start or shown >= args.n:
            continue
        where = f"line {example.line}" if example.line else f"record {example.record}"
        print(f"── {where}: {len(tokens)} tokens, {tokens.trained_tokens} trained "
              f"({'green' if color else '⟦…⟧'} = trained) ──")
        print(format_example(tokens, tokenizer, color=color))
        shown += 1
    if checked.errors:
        print(f"({checked.errors} records with errors not shown; run `llmft data validate`)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
