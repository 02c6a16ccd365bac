"""Limits on JSON request bodies, checked before any view parses one (issue 18).

A JSON body may be at most MAX_JSON_MB (413 above: uploads, multipart forms, keep MAX_UPLOAD_MB) and nest
arrays and objects at most MAX_JSON_DEPTH deep (400 above): the depth is counted on the raw bytes, without
recursion, so a body of 100,000 `[` is refused before a parser overflows its stack on it.
"""

import re

from apiflask import APIFlask
from flask import request

from llmft.errors import ServiceError
from llmft.settings import Settings

MIB = 1024 * 1024
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class NestedTooDeep(ServiceError):
    status, code = 400, "json_too_deep"


def install_body_limits(app: APIFlask, settings: Settings) -> None:
    limit, depth = min(settings.max_json_mb, settings.max_upload_mb) * MIB, settings.max_json_depth

    @app.before_request
    def _check_json_body():
        if request.mimetype in FORM_TYPES:
            return None
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(f"the request body has {request.content_length} bytes; a JSON body may have "
                               f"{limit} (MAX_JSON_MB)", details={"limit": limit})
        request.max_content_length = limit  # a body without Content-Length (chunked) is read no further
        data = request.get_data(cache=True)
        if request.content_length is None and len(data) >= limit and request.environ["wsgi.input"].read(1):
            raise BodyTooLarge(f"the request body has more than {limit} bytes; a JSON body may have {limit} "
                               "(MAX_JSON_MB)", details={"limit": limit})
        if nested_deeper(data, depth):
            raise NestedTooDeep(f"the JSON body nests arrays or objects more than {depth} deep (MAX_JSON_DEPTH)",
                                details={"limit": depth})
        return None


def nested_deeper(data: bytes, limit: int) -> bool:
    """Whether `data` (JSON) opens more than `limit` arrays or objects inside each other; brackets in strings
    do not count."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
