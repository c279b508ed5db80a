"""GraphQL's error transport: every error leaves with a stable `extensions.code`.

One schema extension formats every error of a result, in one place:

- a `CartwheelError` (the server's `PlatformError` family and the SDK's errors: an
  invalid module, an invalid input query...) keeps its message and gets
  ``extensions = {"code": ..., **details}`` with camelCase keys (e.g. ``locations`` of an
  input query error, ``importName`` of a forbidden import);
- an error GraphQL itself raised (syntax, validation, depth and alias limits) gets
  ``GRAPHQL_PARSE_FAILED`` or ``GRAPHQL_VALIDATION_FAILED``;
- an error coercing the request's variables gets ``BAD_USER_INPUT`` (or
  ``GRAPHQL_VALIDATION_FAILED`` where graphql-core reports it without a cause);
- anything else is a bug: it is logged with its traceback and masked as
  ``INTERNAL_ERROR`` so no internal detail reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult

from functions_sdk.errors import CartwheelError

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = (
    "Unexpected error on the server; it has been logged. Retry later, and report it with "
    "the time of the request if it persists."
)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def format_error(error: GraphQLError) -> GraphQLError:
    """The client-facing form of one GraphQL error (see the module docstring)."""
    original = error.original_error
    if isinstance(original, CartwheelError):
        details = {_camel(k): _json_safe(v) for k, v in original.details.items()}
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={**details, "code": original.code},
        )
    if original is not None and error.path is None:
        # On no field, yet with a cause: raised while coercing the request's variables
        # before any resolver ran (e.g. a wrong enum value). The client's mistake;
        # graphql-core's message names the variable and the expected type.
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            extensions={"code": "BAD_USER_INPUT"},
        )
    if original is None or isinstance(error, GraphQLSyntaxError):
        if error.extensions and "code" in error.extensions:
            return error
        code = (
            "GRAPHQL_PARSE_FAILED"
            if isinstance(error, GraphQLSyntaxError)
            else "GRAPHQL_VALIDATION_FAILED"
        )
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={**(error.extensions or {}), "code": code},
        )
    logger.error(
        "unexpected error in GraphQL field %s",
        ".".join(str(p) for p in error.path or ()),
        exc_info=(type(original), original, original.__traceback__),
    )
    return GraphQLError(
        INTERNAL_ERROR_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_ERROR"},
    )


class ErrorFormatter(SchemaExtension):
    """Schema extension applying `format_error` to every error of every result."""

    def on_operation(self) -> Iterator[None]:
        yield
        sent: list[GraphQLError] = []
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | StrawberryExecutionResult) and (
            result.errors
        ):
            result.errors = sent = [format_error(e) for e in result.errors]
        # Errors raised before execution (parse, validation) are on the context.
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                format_error(e) for e in self.execution_context.pre_execution_errors
            ]
            sent = sent or self.execution_context.pre_execution_errors
        services = getattr(self.execution_context.context, "services", None)
        if services is not None:
            for error in sent:
                code = (error.extensions or {}).get("code", "INTERNAL_ERROR")
                services.metrics.graphql_errors.labels(str(code)).inc()
