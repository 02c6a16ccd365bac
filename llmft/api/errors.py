"""One error shape everywhere: {"error": {"code", "message", "details"}}; 4xx for every client mistake."""

import logging

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from werkzeug.exceptions import HTTPException

from llmft.errors import ServiceError

log = logging.getLogger("llmft.api")


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}},
    }},
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def install_error_handlers(app: APIFlask) -> None:
    @app.error_processor
    def _apiflask_error(error: HTTPError):
        """Errors raised by APIFlask itself (input validation: 422, auth: 401) and by abort()."""
        code = (error.extra_data or {}).get("code") or _CODES.get(error.status_code, "error")
        details = error.detail if isinstance(error.detail, dict) else {"detail": error.detail} if error.detail else {}
        return error_body(code, error.message or "", details), error.status_code, error.headers

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        return error_body(error.code, error.message, error.details), error.status, headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return error_body(_CODES.get(error.code, "error"), error.description or error.name), error.code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return error_body("internal_error", "an unexpected error happened; it has been logged"), 500


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid",
          429: "rate_limited", 500: "internal_error"}
