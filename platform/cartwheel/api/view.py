"""The `/graphql` endpoint: Strawberry's ASGI view, adapted to Cartwheel.

- Resolvers are synchronous (SQLAlchemy sessions, wasmtime compiles): each operation
  executes on a worker thread with `schema.execute_sync`, so the event loop never blocks
  and one request's session is only ever used by one thread at a time.
- Uploads follow the GraphQL multipart request spec (`functionDeploy(wasm: Upload!)`).
  The body size limit is enforced before this view by `cartwheel.app.BodySizeLimit`.
- GraphiQL is served from `cartwheel/static/graphiql/` instead of a CDN.
- Transport-level failures (a malformed body, a wrong method) answer JSON with an
  `extensions.code`, like every other error of the API.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from cartwheel.api.context import AdminContext, bearer_token

if TYPE_CHECKING:
    from cartwheel.app import Services

GRAPHIQL_HTML = (
    resources.files("cartwheel").joinpath("static/graphiql/index.html").read_text("utf-8")
)


def graphql_error_response(status_code: int, code: str, message: str) -> JSONResponse:
    """A GraphQL-shaped JSON error body for failures outside of execution."""
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status_code,
    )


class AdminGraphQL(GraphQL[AdminContext, None]):
    """Strawberry's ASGI GraphQL app with threaded execution and Cartwheel's context."""

    def __init__(self, schema: BaseSchema) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=False,
            subscription_protocols=(),
            multipart_uploads_enabled=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            response: Response = graphql_error_response(
                400, "BAD_REQUEST", "The admin API speaks HTTP only (no subscriptions)."
            )
            await response(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:
            response = graphql_error_response(exc.status_code, "BAD_REQUEST", exc.reason)
        await response(scope, receive, send)

    async def get_context(self, request: Request | Any, response: Response | Any) -> AdminContext:
        services: Services = request.app.state.services
        return AdminContext(
            request=request, response=response, services=services, token=bearer_token(request)
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(GRAPHIQL_HTML)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: AdminContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        allowed = OperationType.from_http(request_adapter.method)
        if not self.allow_queries_via_get and request_adapter.method == "GET":
            # GET requests are simple requests a browser sends cross-site: no operations.
            allowed = allowed - {OperationType.QUERY}
        execute = functools.partial(
            self._execute_in_thread,
            request_data=request_data,
            context=context,
            allowed=allowed,
        )
        try:
            return await anyio.to_thread.run_sync(execute)
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason(request_adapter.method)) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request.") from exc

    def _execute_in_thread(
        self,
        *,
        request_data: GraphQLRequestData,
        context: AdminContext,
        allowed: set[OperationType],
    ) -> ExecutionResult:
        try:
            result = self.schema.execute_sync(
                request_data.query,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        finally:
            context.close()
            _close_uploads(request_data.variables)
        return result


def _close_uploads(value: object) -> None:
    """Close the temporary files of multipart uploads found in `value` (variables)."""
    if isinstance(value, UploadFile):
        value.file.close()
    elif isinstance(value, dict):
        for item in value.values():
            _close_uploads(item)
    elif isinstance(value, list):
        for item in value:
            _close_uploads(item)
