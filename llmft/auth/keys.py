"""API keys: shown once, stored as sha256, revocable, each bound to a tenant and a role.

    llmft keys create --tenant acme --role admin
    llmft keys revoke llmft_ab12cd34

A key is `llmft_<8 hex prefix>_<43 url-safe secret>`: 256 random bits, so a plain sha256
at rest is enough (no salt or slow hash needed, as for GitHub or Stripe tokens).
"""

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmft.db.tables import ApiKey, Tenant, now

ROLES = ("admin", "member", "viewer")
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")  # a new tenant's name (\Z: no trailing newline)


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the Authorization header on every request."""

    tenant_id: str
    tenant_name: str
    role: str
    key_id: str

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "member")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, *, tenant: str, role: str, name: str | None = None) -> tuple[str, ApiKey]:
    """(the key in clear — shown once, never stored —, its row). Creates the tenant if new."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    row = session.scalar(select(Tenant).where(Tenant.name == tenant))
    if row is None:
        if not TENANT.fullmatch(tenant):
            raise ValueError(f"tenant {tenant!r}: a new tenant's name is letters, digits, '.', '_' or '-' "
                             "(100 at most), starting with a letter or digit")
        row = Tenant(name=tenant)
        session.add(row)
        session.flush()
    prefix = secrets.token_hex(4)
    key = f"llmft_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(tenant_id=row.id, role=role, prefix=f"llmft_{prefix}", secret_hash=hash_key(key), name=name)
    session.add(api_key)
    session.flush()
    return key, api_key


def revoke_key(session: Session, prefix_or_id: str) -> bool:
    row = session.scalar(select(ApiKey).where((ApiKey.prefix == prefix_or_id) | (ApiKey.id == prefix_or_id)))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now()
    return True


def authenticate(session: Session, key: str) -> Principal | None:
    """The principal for a presented key, or None (unknown or revoked: the caller answers 401)."""
    row = session.scalar(select(ApiKey).where(ApiKey.secret_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    tenant = session.get(Tenant, row.tenant_id)
    row.last_used_at = now()
    return Principal(tenant_id=tenant.id, tenant_name=tenant.name, role=row.role, key_id=row.id)
