"""`llmft serve`: the API, with one job worker beside it unless --no-worker.

    llmft serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--threads 32] [--no-worker]

The embedded default: SQLite and the broker under $LLMFT_HOME, no other service needed.
"""

import signal
import subprocess
import sys

from llmft import exit_codes


def add_parser(commands) -> None:
    serve = commands.add_parser("serve", help="start the API (embedded defaults: SQLite under $LLMFT_HOME)")
    serve.add_argument("--host", help="address to listen on (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    serve.add_argument("--threads", type=int, default=32,
                       help="threads per worker process (a streaming answer holds one while it streams)")
    serve.add_argument("--no-worker", action="store_true", help="do not start a job worker beside the API")
    serve.set_defaults(run=run)


def run(args) -> int:
    from llmft.api.server import serve
    from llmft.files import private_files
    from llmft.processes import die_with_parent
    from llmft.settings import load_settings

    private_files()  # the database, uploads and models under $LLMFT_HOME: 0600 files, 0700 folders
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
    return exit_codes.OK


def _say_how_to_start(settings) -> None:
    from sqlalchemy import func, select

    from llmft.db.session import create_schema, session_scope
    from llmft.db.tables import ApiKey

    settings.llmft_home.mkdir(parents=True, exist_ok=True)
    create_schema(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        keys = session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))
    base = f"http://{settings.host}:{settings.port}"
    print(f"llmft: API on {base} (docs {base}/docs), state in {settings.llmft_home}", file=sys.stderr)
    if not keys:
        print("llmft: no API key yet; create one with: llmft keys create --tenant NAME --role admin", file=sys.stderr)
