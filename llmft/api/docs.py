"""Swagger UI at /docs from files in the package, so the API documentation works offline.

    app.config.update(DOCS_CONFIG)              # in create_app, before the docs route is registered

The script, style and icon are llmft/web/static/docs/ (swagger-ui-dist, its version and license in the
README there), served by the dashboard's static route. The page is sent with a Content-Security-Policy
that allows this origin only: its one inline script by its hash, inline styles (Swagger UI sets them).
"""

import base64
import functools
import hashlib
import re

ASSETS = "/ui/static/docs"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _with_security_headers(view):
    @functools.wraps(view)
    def docs(*args, **kwargs):
        page = view(*args, **kwargs)
        hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
                          for script in _INLINE_SCRIPT.findall(page))
        policy = (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
                  "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                  "form-action 'self'")
        return page, {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                      "Referrer-Policy": "no-referrer"}
    return docs


DOCS_CONFIG = {
    "SWAGGER_UI_BUNDLE_JS": f"{ASSETS}/swagger-ui-bundle.js",
    "SWAGGER_UI_STANDALONE_PRESET_JS": f"{ASSETS}/swagger-ui-standalone-preset.js",
    "SWAGGER_UI_CSS": f"{ASSETS}/swagger-ui.css",
    "DOCS_FAVICON": f"{ASSETS}/favicon-32x32.png",
    "DOCS_DECORATORS": [_with_security_headers],
}
