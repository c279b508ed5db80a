"""The server's exceptions: one root with a stable `code` and an HTTP status.

`PlatformError` extends the SDK's `CartwheelError`, so a transport maps every error the
server raises, its own or the SDK's, in one handler: `code` goes to the client
(`extensions.code` in GraphQL, the JSON body elsewhere), `http_status` to the response.
Messages say what to do next. Anything that is not a `CartwheelError` is a bug and is
masked as `INTERNAL_ERROR`.
"""

from __future__ import annotations

from typing import Any

from functions_sdk.errors import CartwheelError


class PlatformError(CartwheelError):
    """Root of every error the server raises on purpose."""

    code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, **details)
        if http_status is not None:
            self.http_status = http_status


class AuthenticationError(PlatformError):
    """No credentials, or credentials that do not identify a live token."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDeniedError(PlatformError):
    """The token is valid but its scopes do not allow the operation."""

    code = "FORBIDDEN"
    http_status = 403


class NotFoundError(PlatformError):
    """The record does not exist *in the caller's shop*.

    Another shop's records are reported exactly like missing ones, so ids leak nothing.
    """

    code = "NOT_FOUND"
    http_status = 404


class InvalidRequestError(PlatformError):
    """The request is malformed or a value does not validate."""

    code = "BAD_REQUEST"
    http_status = 400


class InvalidIdError(InvalidRequestError):
    """A global id that does not parse or names the wrong type."""

    code = "INVALID_ID"


class InvalidMetafieldError(InvalidRequestError):
    """A metafield whose value does not match its declared type."""

    code = "INVALID_METAFIELD"


class ConflictError(PlatformError):
    """The change contradicts the current state (a duplicate handle, an immutable field)."""

    code = "CONFLICT"
    http_status = 409


class ImmutableFieldError(ConflictError):
    """An update tried to change a field that never changes once written."""

    code = "IMMUTABLE_FIELD"


class RateLimitedError(PlatformError):
    """Too many requests for this token; retry after `retry_after` seconds."""

    code = "RATE_LIMITED"
    http_status = 429


class PayloadTooLargeError(PlatformError):
    """The request body exceeds the configured upload limit."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class DatabaseNotReadyError(PlatformError):
    """The database schema is missing or behind the code."""

    code = "DATABASE_NOT_READY"
    http_status = 503


class DatabaseUnavailableError(PlatformError):
    """The database refused or dropped the connection (down, restarting, unreachable).

    Transient: the request changed nothing and may be retried; pooled connections are
    replaced by themselves once the database answers again.
    """

    code = "DATABASE_UNAVAILABLE"
    http_status = 503
