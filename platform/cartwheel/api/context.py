"""The per-request GraphQL context: the services, the bearer token and, on demand, the
database session and the token's shop scope.

The session is opened lazily on the thread that executes the operation and closed by
the view when the operation ends; resolvers never open their own. Every data access
goes through `AdminContext.scope` (a `ShopScope` bound to the token's shop), so a
resolver cannot reach another shop's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from cartwheel.db import retry_on_dropped_connection
from cartwheel.errors import AuthenticationError, PermissionDeniedError
from cartwheel.tenancy import ShopScope, TokenContext, authenticate

if TYPE_CHECKING:
    from cartwheel.app import Services


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass
class AdminContext:
    """What every resolver gets as `info.context`."""

    request: Request
    response: Response
    services: Services
    token: str | None
    _session: Session | None = field(default=None, repr=False)
    _auth: TokenContext | None = field(default=None, repr=False)

    @property
    def session(self) -> Session:
        """This request's database session (opened on first use)."""
        if self._session is None:
            self._session = self.services.session_factory()
        return self._session

    @property
    def auth(self) -> TokenContext:
        """The authenticated token.

        Raises `AuthenticationError` (UNAUTHENTICATED) when the request has no bearer
        token or the token is unknown or revoked.
        """
        if self._auth is None:
            if self.token is None:
                raise AuthenticationError(
                    "This field needs an API token: send 'Authorization: Bearer <token>'. "
                    "Create one with `cartwheel token create`."
                )
            token = self.token
            # The request's first statement: on a pooled connection the database dropped
            # (a restart), it runs again once in a fresh session.
            self._auth = retry_on_dropped_connection(
                lambda: authenticate(self.session, token), reset=self.close
            )
            if self.session.dirty:
                # `authenticate` recorded the token's use: commit it now, before any
                # resolver writes, so read-only requests keep it and a failed mutation
                # cannot take it down with its own rollback.
                self.session.commit()
        return self._auth

    def require_scope(self, *scopes: str) -> TokenContext:
        """The token, if it has any of `scopes`.

        Raises `AuthenticationError` without a valid token, `PermissionDeniedError`
        (FORBIDDEN) when the token has none of `scopes`.
        """
        auth = self.auth
        if not set(scopes) & set(auth.scopes):
            needed = " or ".join(repr(s) for s in scopes)
            raise PermissionDeniedError(
                f"This token lacks the {needed} scope needed here; create a token with it "
                f"(`cartwheel token create --scope {scopes[0]}`).",
                required_scopes=list(scopes),
            )
        return auth

    @property
    def scope(self) -> ShopScope:
        """Data access bound to the token's shop."""
        return ShopScope(self.session, self.auth.shop_id)

    def close(self) -> None:
        """Close the session (rolling back anything left uncommitted)."""
        if self._session is not None:
            self._session.close()
            self._session = None
