"""The admin GraphQL schema: store data + functions, with the API's limits.

Limits on what one operation may ask for (each refusal is a GRAPHQL_VALIDATION_FAILED /
GRAPHQL_PARSE_FAILED error with a message naming the limit):
- depth (`MAX_QUERY_DEPTH`), so nesting cannot multiply work;
- aliases (`MAX_ALIASES`), so one field cannot be asked for many times over;
- tokens (`MAX_TOKENS`), bounding the parse and validation work of a document;
- list sizes: every list field takes `first` ≤ 100 (`cartwheel.api.store.MAX_PAGE_SIZE`).
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from cartwheel.api.errors import ErrorFormatter
from cartwheel.api.functions import FunctionsMutation, FunctionsQuery
from cartwheel.api.permissions import ADMIN, DEPLOY, field
from cartwheel.api.store import Info_, StoreMutation, StoreQuery
from cartwheel.api.types import Shop

MAX_QUERY_DEPTH = 8
"""Deepest selection nesting accepted (the deepest useful query is 6 levels)."""

MAX_ALIASES = 15
"""Most aliases in one operation."""

MAX_TOKENS = 2_000
"""Most lexical tokens in one document."""


@strawberry.type(description="Read the shop's data, functions, instances and run logs.")
class Query(StoreQuery, FunctionsQuery):
    @field(ADMIN, DEPLOY, description="The shop the token belongs to.")
    def shop(self, info: Info_) -> Shop:
        return Shop.from_model(info.context.scope.shop)


@strawberry.type(description="Change the shop's data, deploy functions, configure instances.")
class Mutation(StoreMutation, FunctionsMutation):
    pass


class AdminSchema(strawberry.Schema):
    """The schema; errors are logged by `ErrorFormatter` (unexpected ones only, with their
    traceback), not by Strawberry's default hook, which logs every refused request."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema() -> strawberry.Schema:
    """The admin schema with its limits and error formatting."""
    return AdminSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            ErrorFormatter,
        ],
    )
