"""`llmft db ...`: the database schema (DATABASE_URL, or the SQLite file under $LLMFT_HOME).

    llmft db upgrade [--revision head]
    llmft db current
"""

import sys

from llmft import exit_codes


def add_parser(commands) -> None:
    db = commands.add_parser("db", help="database schema").add_subparsers(title="db commands")
    upgrade = db.add_parser("upgrade", help="migrate the database (DATABASE_URL or $LLMFT_HOME's SQLite) to the "
                                            "current schema")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(run=_upgrade)
    db.add_parser("current", help="print the database's schema revision").set_defaults(run=_current)


def _upgrade(args) -> int:
    from llmft.db.migrate import upgrade
    from llmft.settings import load_settings

    settings = load_settings()
    before = _revision(settings.sqlalchemy_url)
    after = upgrade(settings.sqlalchemy_url, args.revision)
    print(f"llmft: database schema {before or 'empty'} -> {after}", file=sys.stderr)
    return exit_codes.OK


def _current(args) -> int:
    from llmft.db.migrate import head
    from llmft.settings import load_settings

    revision = _revision(load_settings().sqlalchemy_url)
    print(f"{revision or 'empty'} (head {head()})")
    return exit_codes.OK


def _revision(url: str) -> str | None:
    from sqlalchemy import inspect

    from llmft.db.migrate import BASELINE, current
    from llmft.db.session import engine_for

    tables = set(inspect(engine_for(url)).get_table_names())
    if tables and "alembic_version" not in tables:
        return f"{BASELINE} (made before migrations, not stamped)"
    return current(url)
