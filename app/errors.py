"""The gateway's exception tree: every error a client or operator can see descends from one root."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every gateway error; carries the HTTP status and a snake_case code for clients."""

    status: int = 500
    code: str = "gateway_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    """The request cannot be understood (malformed body, bad field)."""

    status = 400
    code = "bad_request"


class InvalidEvent(BadRequest):
    """An event breaks the tracking API's validation rules."""

    code = "invalid_event"


class Unauthorized(GatewayError):
    """No valid source key was presented."""

    status = 401
    code = "unauthorized"


class Forbidden(GatewayError):
    """The key is valid but not allowed to do this (wrong kind, foreign origin)."""

    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    """The named thing does not exist."""

    status = 404
    code = "not_found"


class MethodNotAllowed(GatewayError):
    """The route exists but not for this HTTP method."""

    status = 405
    code = "method_not_allowed"


class Conflict(GatewayError):
    """The request conflicts with the gateway's configuration or state."""

    status = 409
    code = "conflict"


class Gone(GatewayError):
    """The thing existed but has expired."""

    status = 410
    code = "gone"


class PayloadTooLarge(GatewayError):
    """The body is over the configured size limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    """The body's content type or encoding is not one the route accepts."""

    status = 415
    code = "unsupported_media_type"


class TooManyRequests(GatewayError):
    """The caller is over its rate limit; `retry_after` says when to come back, in seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BadToken(BadRequest):
    """An identity token is malformed, forged or made for another purpose."""

    code = "bad_token"


class TokenExpired(Gone):
    """An identity token was genuine but is past its lifetime."""

    code = "token_expired"


class ServiceUnavailable(GatewayError):
    """The gateway cannot serve this now (invalid settings, store unreachable)."""

    status = 503
    code = "unavailable"


class SettingsInvalid(ServiceUnavailable):
    """The settings file is missing or fails validation; `problems` lists every reason."""

    code = "settings_invalid"

    def __init__(self, problems: list[str], public: list[str] | None = None) -> None:
        # The message is what clients read: `public` (no file paths) when given.
        super().__init__("settings are invalid: " + "; ".join(public or problems))
        self.problems = problems
