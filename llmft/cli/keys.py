"""`llmft keys ...`: API keys, made and revoked on the server's machine.

    llmft keys create --tenant acme [--role admin|member|viewer] [--name LABEL]   # printed once
    llmft keys revoke llmft_xxxxxxxx
"""

import sys

from llmft import exit_codes


def add_parser(commands) -> None:
    keys = commands.add_parser("keys", help="API keys").add_subparsers(title="keys commands")
    create = keys.add_parser("create", help="create a key (printed once) for a tenant, creating the tenant")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", choices=["admin", "member", "viewer"], default="member")
    create.add_argument("--name", help="a label for the key")
    create.set_defaults(run=_create)
    revoke = keys.add_parser("revoke", help="revoke a key by its prefix (llmft_xxxxxxxx) or id")
    revoke.add_argument("key")
    revoke.set_defaults(run=_revoke)


def _create(args) -> int:
    from llmft.auth.keys import create_key
    from llmft.db.session import create_schema, session_scope
    from llmft.settings import load_settings

    settings = load_settings()
    create_schema(settings.sqlalchemy_url)
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            key, row = create_key(session, tenant=args.tenant, role=args.role, name=args.name)
    except ValueError as error:
        print(f"llmft: {error}", file=sys.stderr)
        return exit_codes.USAGE
    print(key)
    print(f"{row.prefix} ({args.role} of tenant {args.tenant}); shown once, stored hashed", file=sys.stderr)
    return exit_codes.OK


def _revoke(args) -> int:
    from llmft.auth.keys import revoke_key
    from llmft.db.session import create_schema, session_scope
    from llmft.settings import load_settings

    settings = load_settings()
    create_schema(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        revoked = revoke_key(session, args.key)
    print(f"revoked {args.key}" if revoked else f"llmft: no active key {args.key}", file=sys.stderr)
    return exit_codes.OK if revoked else exit_codes.USAGE
