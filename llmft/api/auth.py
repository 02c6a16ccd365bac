"""Bearer API keys -> the calling Principal; viewers are read-only."""

from apiflask import HTTPTokenAuth, abort
from flask import g

from llmft.api.context import db
from llmft.auth.keys import Principal, authenticate

auth = HTTPTokenAuth(scheme="Bearer", description="An API key from `llmft keys create`.")


@auth.verify_token
def _verify(token: str) -> Principal | None:
    if not token:
        return None
    with db() as session:
        principal = authenticate(session, token)
    if principal is not None:
        g.principal = principal
    return principal


@auth.error_processor
def _auth_error(error):
    from llmft.api.errors import error_body

    message = "missing, unknown or revoked API key; send Authorization: Bearer <key>"
    return error_body("unauthorized", message), 401, {"WWW-Authenticate": 'Bearer realm="llmft"'}


def principal() -> Principal:
    return auth.current_user


def require_write() -> Principal:
    caller = auth.current_user
    if not caller.can_write:
        abort(403, message=f"role {caller.role} cannot change anything; use a member or admin key",
              extra_data={"code": "forbidden"})
    return caller
