"""Errors of input queries: rejected at deploy time or when variables are bound.

Every error carries a stable `code` and `locations` (`[{"line": 1, "column": 1}]`,
1-based, in the query text) so that the admin API and the CLI can point at the
offending part of the query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError, SourceLocation

from functions_sdk.errors import CartwheelError

SYNTAX = "INPUT_QUERY_SYNTAX"
"""The query is not valid GraphQL syntax."""
INVALID = "INPUT_QUERY_INVALID"
"""The query does not validate against the target's input schema."""
TOO_LARGE = "INPUT_QUERY_TOO_LARGE"
"""The query is over the size limit (bytes, comments excluded)."""
TOO_COSTLY = "INPUT_QUERY_TOO_COSTLY"
"""The query's static cost is over the limit."""
LIST_TOO_LONG = "INPUT_QUERY_LIST_TOO_LONG"
"""A list literal in the query has too many items."""
VARIABLE = "INPUT_QUERY_VARIABLE"
"""A variable is undeclared, unused, declared twice or of the wrong type for its use."""
INVALID_VARIABLE_VALUE = "INVALID_VARIABLE_VALUE"
"""The variables metafield of an instance does not fit the query's variables."""

Location = dict[str, int]


def locations_of(locs: Iterable[SourceLocation] | None) -> list[Location]:
    """`[{"line", "column"}]` from graphql-core source locations."""
    return [{"line": loc.line, "column": loc.column} for loc in locs or ()]


class InvalidInputQueryError(CartwheelError):
    """An input query was rejected. `code` says which check failed, `locations` where."""

    code = INVALID

    def __init__(
        self,
        message: str,
        *,
        code: str,
        locations: list[Location] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, locations=locations or [], **details)
        self.locations: list[Location] = locations or []

    @classmethod
    def from_graphql(
        cls, error: GraphQLError, *, code: str, hint: str = ""
    ) -> InvalidInputQueryError:
        """Wrap a graphql-core error, keeping its message and locations."""
        message = error.message if not hint else f"{error.message} {hint}"
        return cls(message, code=code, locations=locations_of(error.locations))


class InvalidVariableValueError(InvalidInputQueryError):
    """The variables of a run (the instance's variables metafield) do not fit the query:
    not a JSON object, null for a non-null variable, a value of the wrong type, a list
    over the item limit. `locations` point at the variable's definition."""

    code = INVALID_VARIABLE_VALUE

    def __init__(self, message: str, *, locations: list[Location] | None = None, **details: Any):
        super().__init__(message, code=INVALID_VARIABLE_VALUE, locations=locations, **details)
