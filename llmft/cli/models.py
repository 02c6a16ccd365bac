"""`llmft models ...`: the registry from the shell, as an administrator of one tenant.

    llmft models list --tenant acme
    llmft models show support-bot:3 --tenant acme          # or NAME, or NAME@ALIAS
    llmft models alias support-bot production 3 --tenant acme [--force --reason "..."]
    llmft models alias support-bot staging --delete --tenant acme
    llmft models delete support-bot:2 --tenant acme
    llmft models verify support-bot@production --tenant acme
    llmft models export support-bot:3 --tenant acme         # LoRA merged into the base: the next version
"""

import getpass
import json
import sys

from sqlalchemy import select

from llmft import exit_codes
from llmft.auth.keys import Principal
from llmft.db.session import create_schema, session_scope
from llmft.db.tables import Tenant
from llmft.errors import ServiceError
from llmft.registry import service
from llmft.registry.artifacts import IntegrityError
from llmft.settings import load_settings


def run(args) -> int:
    """Dispatch one `models` subcommand; a registry refusal is a message and exit code 1."""
    settings = load_settings()
    create_schema(settings.sqlalchemy_url)
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            principal = tenant_principal(session, args.tenant)
            return COMMANDS[args.models_command](session, principal, settings, args)
    except (ServiceError, IntegrityError) as error:
        print(f"llmft: {error}", file=sys.stderr)
        return exit_codes.ERRORS


def tenant_principal(session, tenant: str) -> Principal:
    row = session.scalar(select(Tenant).where(Tenant.name == tenant))
    if row is None:
        raise ServiceError(f"no tenant {tenant!r} (llmft keys create --tenant {tenant} makes one)")
    return Principal(tenant_id=row.id, tenant_name=row.name, role="admin", key_id=f"cli:{getpass.getuser()}")


def _list(session, principal, settings, args) -> int:
    for model in service.list_models(session, principal=principal):
        aliases = " ".join(f"@{alias}={version}" for alias, version in model["aliases"].items())
        print(f"{model['name']}\tversions {len(model['versions'])} (latest {model['latest_version']})\t{aliases}")
    return exit_codes.OK


def _show(session, principal, settings, args) -> int:
    if ":" in args.ref or "@" in args.ref:
        model, version = service.resolve(session, principal=principal, ref=args.ref)
        described = service.describe_version(model, version)
    else:
        described = service.describe_model(session, service.get_model(session, principal=principal, name=args.ref))
    print(json.dumps(described, indent=2, default=str, ensure_ascii=False))
    return exit_codes.OK


def _alias(session, principal, settings, args) -> int:
    if args.delete:
        service.delete_alias(session, principal=principal, name=args.name, alias=args.alias)
        print(f"removed {args.name}@{args.alias}")
        return exit_codes.OK
    if args.version is None:
        raise ServiceError("give the VERSION the alias should point at (or --delete)")
    moved = service.set_alias(session, principal=principal, name=args.name, alias=args.alias, version=args.version,
                              gate=service.Gate.from_settings(settings), force=args.force, reason=args.reason)
    note = " (gate overridden: " + "; ".join(f["message"] for f in moved["failures"]) + ")" if moved["override"] else ""
    print(f"{args.name}@{args.alias} -> {args.version}" + (f" (was {moved['previous']})" if moved["previous"] else "")
          + note)
    return exit_codes.OK


def _delete(session, principal, settings, args) -> int:
    model, version = service.resolve(session, principal=principal, ref=args.ref)
    service.delete_version(session, principal=principal, name=model.name, version=version.version,
                           home=settings.llmft_home)
    print(f"deleted {model.name}:{version.version}")
    return exit_codes.OK


def _export(session, principal, settings, args) -> int:
    """Runs the export job here, in this process's own trainer child: no worker needed."""
    from llmft.jobs.runner import run_job
    from llmft.jobs.service import create_export_job

    model, version = service.resolve(session, principal=principal, ref=args.ref)
    job = create_export_job(session, principal=principal, name=model.name, version=version.version,
                            runs_dir=settings.runs_dir, max_attempts=settings.job_max_attempts)
    session.commit()
    status = run_job(settings, job.id, owner=f"cli:{getpass.getuser()}")
    session.refresh(job)
    if status != "succeeded":
        print(f"llmft: export job {job.id} {status}; llmft's job events say why", file=sys.stderr)
        return exit_codes.ERRORS
    print(f"{model.name}:{version.version} merged into {model.base_model}: {job.fine_tuned_model} (job {job.id})")
    return exit_codes.OK


def _verify(session, principal, settings, args) -> int:
    model, version = service.resolve(session, principal=principal, ref=args.ref)
    folder = service.verified_folder(settings.llmft_home, version)
    print(f"{model.name}:{version.version}: {len(version.files)} files match their sha256 ({folder})")
    return exit_codes.OK


COMMANDS = {"list": _list, "show": _show, "alias": _alias, "delete": _delete, "verify": _verify, "export": _export}


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="the model registry: versions, aliases").add_subparsers(
        title="models commands", dest="models_command")
    for name, help_text in (("list", "models with their versions and aliases"),
                            ("show", "a model (NAME) or a version (NAME:V, NAME@ALIAS) as JSON"),
                            ("alias", "point an alias at a version (gated aliases check metrics)"),
                            ("delete", "delete a version (refused while an alias points at it)"),
                            ("verify", "check every artifact of a version against its sha256"),
                            ("export", "merge a LoRA version into its base; the full model is the next version")):
        sub = models.add_parser(name, help=help_text)
        sub.add_argument("--tenant", required=True, help="the tenant whose registry this is")
        if name == "alias":
            sub.add_argument("name")
            sub.add_argument("alias")
            sub.add_argument("version", type=int, nargs="?")
            sub.add_argument("--delete", action="store_true", help="remove the alias")
            sub.add_argument("--force", action="store_true", help="move a gated alias past a failed gate (recorded)")
            sub.add_argument("--reason", help="why (recorded with the move)")
        elif name != "list":
            sub.add_argument("ref", help="NAME:V or NAME@ALIAS" + (" or NAME" if name == "show" else ""))
        sub.set_defaults(run=run)
