"""Cursor pages over a tenant's rows, newest first: `after` is the id of the last row already seen.

    rows = newest_first(session, Job, tenant_id=t, after="job-…", limit=21, where=[Job.status == "running"])
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmft.db.tables import is_id
from llmft.errors import NotFound


def newest_first(session: Session, model, *, tenant_id: str, after: str | None, limit: int, prefix: str,
                 where: list | tuple = ()) -> list:
    """Up to `limit` rows of the tenant older than `after`; NotFound when `after` is no row of the tenant."""
    query = select(model).where(model.tenant_id == tenant_id, *where)
    if after:
        anchor = session.get(model, after) if is_id(after, prefix) else None
        if anchor is None or anchor.tenant_id != tenant_id:
            raise NotFound(f"after: no {model.__tablename__[:-1]} {after!r} to page from", details={"field": "after"})
        query = query.where((model.created_at < anchor.created_at) |
                            ((model.created_at == anchor.created_at) & (model.id < anchor.id)))
    return list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)))
