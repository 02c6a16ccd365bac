"""The dashboard: /ui serves the page, /ui/static/<file> its scripts and styles.

    app.register_blueprint(ui.bp)     # in create_app; then open http://127.0.0.1:8000/ui

The page asks for an API key itself and sends it on every API call, so these routes need none.
They are left out of the OpenAPI document (they are not API operations), and only the files of
`static/` listed in FILES are ever sent: nothing from the request reaches the file system.
"""

from pathlib import Path

from apiflask import APIBlueprint
from flask import abort, send_from_directory

STATIC = Path(__file__).parent / "static"
FILES = frozenset(str(path.relative_to(STATIC)) for path in STATIC.rglob("*") if path.is_file())
# The page's own files only; data from the API is inserted as text, never as markup.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

bp = APIBlueprint("ui", __name__, enable_openapi=False)
# Loading the page fetches a dozen files: they do not count against the caller's API rate limit.
bp.record_once(lambda state: state.app.extensions["llmft_limiter"].exempt(bp))


@bp.get("/ui")
@bp.get("/ui/")
def index():
    return _send("index.html")


@bp.get("/ui/static/<path:name>")
def static_file(name: str):
    if name not in FILES:
        abort(404)
    return _send(name)


def _send(name: str):
    response = send_from_directory(STATIC, name, max_age=0)
    response.headers.update(SECURITY_HEADERS)
    return response
