"""Scope checks, declared per field: ``@strawberry.field(extensions=[requires(ADMIN)])``.

A token carries scopes (`TokenContext.scopes`). `admin` covers the shop's data and the
configuration of function instances; `deploy` covers uploading, activating and rolling
back function versions. Read access to functions and versions is granted by either, so
a CI token with only `deploy` can poll the status of what it deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from cartwheel.api.context import AdminContext

ADMIN = "admin"
"""Scope for store data, function instances and run logs."""

DEPLOY = "deploy"
"""Scope for function deploys, activation and rollback."""

ALL_SCOPES = (ADMIN, DEPLOY)


class HasScope(BasePermission):
    """Allows the field when the request's token has any of `scopes`.

    Raises `AuthenticationError` (UNAUTHENTICATED) without a valid token and
    `PermissionDeniedError` (FORBIDDEN) when the token lacks every one of `scopes`.
    """

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    def has_permission(self, source: Any, info: Info[AdminContext, Any], **kwargs: Any) -> bool:
        info.context.require_scope(*self.scopes)
        return True


def requires(*scopes: str) -> PermissionExtension:
    """The field extension that checks `scopes` before the resolver runs."""
    return PermissionExtension(permissions=[HasScope(*scopes)], fail_silently=False)


F = TypeVar("F", bound=Callable[..., Any])


def field(*scopes: str, description: str) -> Callable[[F], F]:
    """A query field (resolver method) that needs any of `scopes`."""

    def decorate(resolver: F) -> F:
        made = strawberry.field(resolver, extensions=[requires(*scopes)], description=description)
        return cast(F, made)

    return decorate


def mutation(*scopes: str, description: str) -> Callable[[F], F]:
    """A mutation (resolver method) that needs any of `scopes`."""

    def decorate(resolver: F) -> F:
        made = strawberry.mutation(
            resolver, extensions=[requires(*scopes)], description=description
        )
        return cast(F, made)

    return decorate
