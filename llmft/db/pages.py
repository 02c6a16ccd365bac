"""Cursor pages over a tenant's rows, newest first (or oldest first): `after` is the id of the last row already seen.

    rows = newest_first(session, Job, tenant_id=t, after="job-…", limit=21, where=[Job.status == "running"])
    rows = newest_first(session, Dataset, tenant_id=t, after=None, limit=11, prefix="ds", order="asc")
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmft.db.tables import is_id
from llmft.errors import NotFound


def newest_first(session: Session, model, *, tenant_id: str, after: str | None, limit: int, prefix: str,
                 where: list | tuple = (), order: str = "desc") -> list:
    """Up to `limit` rows of the tenant past `after` (older; newer with order="asc", the rows oldest first);
    NotFound when `after` is no row of the tenant."""
    query = select(model).where(model.tenant_id == tenant_id, *where)
    if after:
        anchor = session.get(model, after) if is_id(after, prefix) else None
        if anchor is None or anchor.tenant_id != tenant_id:
            raise NotFound(f"after: no {model.__tablename__[:-1]} {after!r} to page from", details={"field": "after"})
        if order == "asc":
            query = query.where((model.created_at > anchor.created_at) |
                                ((model.created_at == anchor.created_at) & (model.id > anchor.id)))
        else:
            query = query.where((model.created_at < anchor.created_at) |
                                ((model.created_at == anchor.created_at) & (model.id < anchor.id)))
    ordering = (model.created_at.asc(), model.id.asc()) if order == "asc" else (model.created_at.desc(), model.id.desc())
    return list(session.scalars(query.order_by(*ordering).limit(limit)))
