"""Liveness and readiness."""

from apiflask import APIBlueprint
from flask import current_app
from sqlalchemy import text

from llmft.db.session import engine_for

bp = APIBlueprint("health", __name__, tag="health")


@bp.get("/healthz")
@bp.doc(summary="The process is up")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@bp.doc(summary="The database answers", responses={200: "ready", 503: "a dependency is down"})
def readyz():
    settings = current_app.config["SETTINGS"]
    checks = {}
    try:
        with engine_for(settings.sqlalchemy_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # readiness reports any failure of the dependency, whatever its type
        checks["database"] = f"error: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
