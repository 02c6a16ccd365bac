"""Liveness and readiness: the database, the broker, and at least one job worker's heartbeat. Anyone reads whether
the service is ready; which check failed and the workers' names (host:pid) only an admin key reads."""

from apiflask import APIBlueprint
from sqlalchemy import text

from llmft.api.auth import auth, principal
from llmft.api.context import celery, db, settings
from llmft.db.engine import engine_for
from llmft.jobs.lease import live_workers

bp = APIBlueprint("health", __name__, tag="health")


@bp.get("/healthz")
@bp.doc(summary="The process is up")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@bp.auth_required(auth, optional=True)
@bp.doc(summary="The database and the broker answer and a job worker has a recent heartbeat (the checks and the "
                "workers for an admin key)", responses={200: "ready", 503: "a dependency is down, or no worker is alive"})
def readyz():
    current = settings()
    checks, workers = {}, []
    try:  # readiness reports any failure of a dependency, whatever its type
        with engine_for(current.sqlalchemy_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        with db() as session:
            workers = live_workers(session, within_seconds=2 * current.lease_seconds)
        checks["workers"] = "ok" if workers else f"error: no worker heartbeat in {2 * current.lease_seconds} s"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        with celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"error: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not_ready"}
    caller = principal()
    if caller is not None and caller.role == "admin":
        body.update(checks=checks, workers=workers)
    return body, 200 if ready else 503
