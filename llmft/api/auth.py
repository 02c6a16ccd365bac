"""Bearer API keys -> the calling Principal; viewers are read-only.

The Authorization header is parsed here and only here (`bearer_token`): the scheme in any case, then any run of
spaces or tabs, then the key. The request is authenticated once (`caller`), by the rate limiter's key function or
by the view's auth, whichever asks first.
"""

import re

from apiflask import HTTPTokenAuth, abort
from flask import g, request
from werkzeug.datastructures import Authorization

from llmft.api.context import db
from llmft.auth.keys import Principal, authenticate

_BEARER = re.compile(r"bearer[ \t]+([^ \t]+)[ \t]*", re.IGNORECASE)


def bearer_token(header: str) -> str | None:
    """The key in an `Authorization: Bearer <key>` header (any case, any run of spaces or tabs), else None."""
    match = _BEARER.fullmatch(header)
    return match.group(1) if match else None


def caller() -> Principal | None:
    """The request's principal, authenticated on the first call and remembered for the request; None when the
    header is missing or names no active key."""
    if "llmft_caller" not in g:
        token = bearer_token(request.headers.get("Authorization", ""))
        principal_ = None
        if token is not None:
            with db() as session:
                principal_ = authenticate(session, token)
        g.llmft_caller = principal_
    return g.llmft_caller


class _BearerAuth(HTTPTokenAuth):
    def get_auth(self) -> Authorization | None:
        token = bearer_token(request.headers.get("Authorization", ""))
        return None if token is None else Authorization("bearer", token=token)


auth = _BearerAuth(scheme="Bearer", description="An API key from `llmft keys create`.")


@auth.verify_token
def _verify(token: str) -> Principal | None:
    return caller()  # the token is bearer_token's, already read by caller()


@auth.error_processor
def _auth_error(error):
    from llmft.api.errors import error_body

    message = "missing, unknown or revoked API key; send Authorization: Bearer <key>"
    return error_body("unauthorized", message), 401, {"WWW-Authenticate": 'Bearer realm="llmft"'}


def principal() -> Principal:
    return auth.current_user


def require_write() -> Principal:
    caller_ = auth.current_user
    if not caller_.can_write:
        abort(403, message=f"role {caller_.role} cannot change anything; use a member or admin key",
              extra_data={"code": "forbidden"})
    return caller_
