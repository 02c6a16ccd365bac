import pytest
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key, hash_key, revoke_key
from llmft.db.session import session_scope
from llmft.db.tables import ApiKey


def test_a_key_is_shown_once_and_stored_only_as_its_hash(database_url):
    with session_scope(database_url) as session:
        key, row = create_key(session, tenant="acme", role="member")
    assert key.startswith(row.prefix + "_")
    with session_scope(database_url) as session:
        stored = session.scalar(select(ApiKey))
        assert stored.secret_hash == hash_key(key) and key not in (stored.prefix, stored.secret_hash)
        principal = authenticate(session, key)
    assert (principal.tenant_name, principal.role, principal.can_write) == ("acme", "member", True)


def test_revoked_and_unknown_keys_do_not_authenticate(database_url):
    with session_scope(database_url) as session:
        key, row = create_key(session, tenant="acme", role="viewer")
    with session_scope(database_url) as session:
        assert authenticate(session, key).can_write is False
        assert revoke_key(session, row.prefix) is True
        assert revoke_key(session, row.prefix) is False
    with session_scope(database_url) as session:
        assert authenticate(session, key) is None
        assert authenticate(session, key + "x") is None


def test_tenants_are_created_once_and_roles_are_checked(database_url):
    with session_scope(database_url) as session:
        _, first = create_key(session, tenant="acme", role="admin")
        _, second = create_key(session, tenant="acme", role="member")
        assert first.tenant_id == second.tenant_id
        with pytest.raises(ValueError, match="role must be one of"):
            create_key(session, tenant="acme", role="owner")


def test_one_engine_and_pool_per_url(database_url):
    from llmft.db.session import engine_for

    assert engine_for(database_url) is engine_for(database_url)
