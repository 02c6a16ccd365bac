"""Domain errors raised by the service functions; the HTTP layer maps each to one status code."""


class ServiceError(Exception):
    status = 400
    code = "bad_request"
    retry_after: int | None = None  # seconds: the Retry-After header of a 429 or 503

    def __init__(self, message: str, *, details: dict | None = None, code: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Invalid(ServiceError):
    status, code = 422, "invalid"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class Conflict(ServiceError):
    status, code = 409, "conflict"
