"""`AdminClient`: the Cartwheel admin API over HTTP, for the developer's CLI and scripts.

    with AdminClient("http://127.0.0.1:8000", token) as client:
        deployed = client.deploy(handle="my-discount", title="My discount",
                                 target="cart.lines.discounts.generate.run",
                                 wasm=wasm_bytes, input_query=query_text)
        version = client.wait_until_ready(deployed.version.id)
        client.activate_version(version.id)

Every operation is a GraphQL document written out below (no schema download, no code
generation); `functionDeploy` uploads the module per the GraphQL multipart request spec.
Failures raise `ClientError` subclasses with a stable `code`:

- the server's own `extensions.code` (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND,
  INVALID_MODULE, INPUT_QUERY_INVALID with `locations`, VERSION_NOT_READY, ...), with the
  error's camelCase details as keyword details;
- SERVER_UNREACHABLE when nothing answers at the URL (refused, DNS, connect timeout);
- SERVER_TIMEOUT when the server accepted the connection but did not answer in time;
- SERVER_ERROR for a 5xx or a response that is not the admin API's JSON;
- DEPLOY_TIMEOUT when a version stays pending past `wait_until_ready`'s bound.

This module never imports the server (`cartwheel`): it speaks only HTTP.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from functions_sdk.errors import CartwheelError

DEFAULT_TIMEOUT_S = 30.0
"""Read/write timeout of one request (an upload of a 256 kB module takes milliseconds)."""

CONNECT_TIMEOUT_S = 5.0
"""How long to wait for the TCP connection before SERVER_UNREACHABLE."""

UPLOAD_CHUNK_BYTES = 16 * 1024
"""Upload granularity, so progress can be reported while the body is sent."""

DEFAULT_READY_TIMEOUT_S = 120.0
"""How long `wait_until_ready` polls a pending version by default."""

MAX_PAGE_SIZE = 100
"""The admin API's largest `first`."""


# --- errors --------------------------------------------------------------------------


class ClientError(CartwheelError):
    """A request to the admin API failed. `code` is the server's `extensions.code`, or
    one of the client's own codes (see the module docstring)."""

    code = "REQUEST_FAILED"


class ServerUnreachableError(ClientError):
    """Nothing answered at the server URL."""

    code = "SERVER_UNREACHABLE"


class ServerTimeoutError(ClientError):
    """The server took longer than the client's timeout to answer."""

    code = "SERVER_TIMEOUT"


class ServerError(ClientError):
    """The server failed (5xx, INTERNAL_ERROR) or did not answer as the admin API does."""

    code = "SERVER_ERROR"


class AuthenticationError(ClientError):
    """The token is missing, malformed, unknown or revoked."""

    code = "UNAUTHENTICATED"


class PermissionDeniedError(ClientError):
    """The token's scopes do not allow the operation."""

    code = "FORBIDDEN"


class NotFoundError(ClientError):
    """No such record in the token's shop."""

    code = "NOT_FOUND"


class DeployTimeoutError(ClientError):
    """A version was still pending when `wait_until_ready` gave up."""

    code = "DEPLOY_TIMEOUT"


_ERROR_CLASSES: dict[str, type[ClientError]] = {
    "UNAUTHENTICATED": AuthenticationError,
    "FORBIDDEN": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "INTERNAL_ERROR": ServerError,
}

_HINTS: dict[str, str] = {
    "UNAUTHENTICATED": "Check --token / CARTWHEEL_TOKEN.",
    "FORBIDDEN": "Deploys need a token with the `deploy` or `admin` scope; run logs, "
    "replays and instances need `admin`.",
}


def error_from_response(code: str, message: str, details: Mapping[str, Any]) -> ClientError:
    """The `ClientError` subclass for a server error `code` (unknown codes keep theirs)."""
    cls = _ERROR_CLASSES.get(code, ClientError)
    hint = _HINTS.get(code)
    text = f"{message} {hint}" if hint and hint not in message else message
    return cls(text, code=code, **dict(details))


# --- results -------------------------------------------------------------------------


def _to_dict(value: Any) -> dict[str, Any]:
    return dataclasses.asdict(value)


@dataclass(frozen=True, slots=True)
class FunctionVersionInfo:
    """A deployed version (`FunctionVersion` in the admin API)."""

    id: str
    function_id: str
    status: str
    """PENDING, READY or FAILED."""
    active: bool
    target: str
    content_sha256: str
    module_sha256: str
    module_size: int
    abi: str | None
    error_code: str | None
    error_message: str | None
    created_at: str
    finished_at: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FunctionVersionInfo:
        return cls(
            id=data["id"],
            function_id=data["functionId"],
            status=data["status"],
            active=data["active"],
            target=data["target"],
            content_sha256=data["contentSha256"],
            module_sha256=data["moduleSha256"],
            module_size=data["moduleSize"],
            abi=data.get("abi"),
            error_code=data.get("errorCode"),
            error_message=data.get("errorMessage"),
            created_at=data["createdAt"],
            finished_at=data.get("finishedAt"),
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A function (`Function` in the admin API): a handle and its active version."""

    id: str
    handle: str
    title: str
    target: str
    active_version_id: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FunctionInfo:
        active = data.get("activeVersion")
        return cls(
            id=data["id"],
            handle=data["handle"],
            title=data["title"],
            target=data["target"],
            active_version_id=active["id"] if active else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True, slots=True)
class DeployResult:
    """What `functionDeploy` resolved to; `created` is False for identical content."""

    function: FunctionInfo
    version: FunctionVersionInfo
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function.to_dict(),
            "version": self.version.to_dict(),
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class FunctionRunInfo:
    """One logged run (`FunctionRun` in the admin API)."""

    id: str
    function_id: str
    version_id: str
    instance_id: str | None
    target: str
    export: str
    status: str
    """The runner's status: succeeded or failed."""
    error_code: str | None
    error_message: str | None
    input: str
    input_bytes: int
    input_truncated: bool
    output: str | None
    output_bytes: int
    logs: str
    logs_truncated: bool
    fuel_consumed: int | None
    peak_memory_bytes: int | None
    duration_ms: float
    created_at: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FunctionRunInfo:
        return cls(
            id=data["id"],
            function_id=data["functionId"],
            version_id=data["versionId"],
            instance_id=data.get("instanceId"),
            target=data["target"],
            export=data["export"],
            status=data["status"],
            error_code=data.get("errorCode"),
            error_message=data.get("errorMessage"),
            input=data["input"],
            input_bytes=data["inputBytes"],
            input_truncated=data["inputTruncated"],
            output=data.get("output"),
            output_bytes=data["outputBytes"],
            logs=data["logs"],
            logs_truncated=data["logsTruncated"],
            fuel_consumed=data.get("fuelConsumed"),
            peak_memory_bytes=data.get("peakMemoryBytes"),
            duration_ms=data["durationMs"],
            created_at=data["createdAt"],
        )

    @property
    def created(self) -> datetime:
        """`created_at` as an aware datetime."""
        return datetime.fromisoformat(self.created_at)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of run logs, newest first; pass `end_cursor` as `after` for the next."""

    runs: tuple[FunctionRunInfo, ...]
    has_next_page: bool
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class ShopInfo:
    """The shop a token belongs to."""

    id: str
    handle: str
    name: str
    currency_code: str


# --- documents -----------------------------------------------------------------------

_VERSION_FIELDS = """
  id functionId status active target contentSha256 moduleSha256 moduleSize abi
  errorCode errorMessage createdAt finishedAt
"""
_FUNCTION_FIELDS = "id handle title target activeVersion { id }"
_RUN_FIELDS = """
  id functionId versionId instanceId target export status errorCode errorMessage
  input inputBytes inputTruncated output outputBytes logs logsTruncated
  fuelConsumed peakMemoryBytes durationMs createdAt
"""

SHOP = "query Shop { shop { id handle name currencyCode } }"

FUNCTION_DEPLOY = f"""
mutation FunctionDeploy($wasm: Upload!, $input: FunctionDeployInput!) {{
  functionDeploy(wasm: $wasm, input: $input) {{
    created
    function {{ {_FUNCTION_FIELDS} }}
    version {{ {_VERSION_FIELDS} }}
  }}
}}
"""

FUNCTION_VERSION = f"""
query FunctionVersion($id: ID!) {{ functionVersion(id: $id) {{ {_VERSION_FIELDS} }} }}
"""

FUNCTION_ACTIVATE_VERSION = f"""
mutation FunctionActivateVersion($versionId: ID!) {{
  functionActivateVersion(versionId: $versionId) {{ {_FUNCTION_FIELDS} }}
}}
"""

FUNCTION = f"query Function($id: ID!) {{ function(id: $id) {{ {_FUNCTION_FIELDS} }} }}"

FUNCTIONS = f"""
query Functions($first: Int!, $after: String) {{
  functions(first: $first, after: $after) {{
    nodes {{ {_FUNCTION_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

FUNCTION_RUNS = f"""
query FunctionRuns(
  $functionId: ID, $status: String, $since: DateTime, $first: Int!, $after: String
) {{
  functionRuns(
    functionId: $functionId, status: $status, since: $since, first: $first, after: $after
  ) {{
    nodes {{ {_RUN_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

FUNCTION_RUN = f"query FunctionRun($id: ID!) {{ functionRun(id: $id) {{ {_RUN_FIELDS} }} }}"

DISCOUNT_CREATE = """
mutation DiscountCreate($input: DiscountCreateInput!) {
  discountCreate(input: $input) {
    id title functionId enabled discountClasses codes automatic
    metafields { namespace key type value }
  }
}
"""

DELIVERY_CUSTOMIZATION_CREATE = """
mutation DeliveryCustomizationCreate($input: CustomizationCreateInput!) {
  deliveryCustomizationCreate(input: $input) {
    id title functionId enabled metafields { namespace key type value }
  }
}
"""


# --- the client ----------------------------------------------------------------------


ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent, total bytes) while a body uploads."""


class AdminClient:
    """A synchronous client of one Cartwheel server's admin API, for one token.

    `transport` replaces the network (e.g. `httpx.MockTransport` or a WSGI/ASGI bridge);
    by default requests go over HTTP to `server`.
    """

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"cartwheel-cli/{_version()}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
            transport=transport,
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- transport --------------------------------------------------------------------

    def execute(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL operation; return its `data`, or raise its first error."""
        body = json.dumps({"query": document, "variables": dict(variables or {})})
        return self._send(
            content=body.encode(), headers={"Content-Type": "application/json"}, progress=None
        )

    def execute_upload(
        self,
        document: str,
        variables: Mapping[str, Any],
        files: Mapping[str, tuple[str, bytes]],
        *,
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Run one GraphQL operation with file uploads (the GraphQL multipart request
        spec): `files` maps a variable path (``"wasm"`` or ``"input.file"``) to
        ``(filename, bytes)``; those variables are sent as null and mapped to parts."""
        variables = dict(variables)
        mapping: dict[str, list[str]] = {}
        parts: dict[str, tuple[str, bytes, str]] = {}
        for index, (path, (filename, data)) in enumerate(files.items()):
            _set_path(variables, path, None)
            mapping[str(index)] = [f"variables.{path}"]
            parts[str(index)] = (filename, bytes(data), "application/wasm")
        # httpx encodes the multipart body (boundary, headers); it is then streamed in
        # chunks with a known length so the caller can show progress.
        encoded = httpx.Request(
            "POST",
            self.server,
            data={
                "operations": json.dumps({"query": document, "variables": variables}),
                "map": json.dumps(mapping),
            },
            files=parts,
        )
        return self._send(
            content=encoded.read(),
            headers={"Content-Type": encoded.headers["Content-Type"]},
            progress=progress,
        )

    def _send(
        self, *, content: bytes, headers: dict[str, str], progress: ProgressCallback | None
    ) -> dict[str, Any]:
        body: bytes | Iterator[bytes] = content
        if progress is not None:
            body = _chunks(content, progress)
            headers = {**headers, "Content-Length": str(len(content))}
        try:
            response = self._http.post("/graphql", content=body, headers=headers)
        except httpx.ConnectError as exc:
            raise ServerUnreachableError(
                f"Cannot reach the Cartwheel server at {self.server} ({exc}). Start it "
                "(`cartwheel serve` or `cartwheel demo --serve`) or fix --server / "
                "CARTWHEEL_SERVER.",
                server=self.server,
            ) from None
        except httpx.ConnectTimeout:
            raise ServerUnreachableError(
                f"Connecting to {self.server} timed out. Check the URL and that the server is up.",
                server=self.server,
            ) from None
        except httpx.TimeoutException:
            raise ServerTimeoutError(
                f"{self.server} did not answer in time. Retry, or raise --timeout.",
                server=self.server,
            ) from None
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(
                f"The request to {self.server} failed: {exc}.", server=self.server
            ) from None
        return _data(response, self.server)

    # -- operations -------------------------------------------------------------------

    def shop(self) -> ShopInfo:
        """The shop the token belongs to (any scope but storefront)."""
        data = self.execute(SHOP)["shop"]
        return ShopInfo(data["id"], data["handle"], data["name"], data["currencyCode"])

    def deploy(
        self,
        *,
        handle: str,
        title: str,
        target: str,
        wasm: bytes,
        input_query: str,
        input_variables: tuple[str, str] | None = None,
        filename: str = "function.wasm",
        progress: ProgressCallback | None = None,
    ) -> DeployResult:
        """Upload a module and its input query (`functionDeploy`).

        The server checks the target, module and query now (errors carry their codes,
        e.g. INVALID_MODULE or INPUT_QUERY_INVALID with `locations`); the new version is
        PENDING (prepared by a worker) or already READY/FAILED (inline). Identical
        content returns the existing version with `created` False.
        """
        deploy_input: dict[str, Any] = {
            "handle": handle,
            "title": title,
            "target": target,
            "inputQuery": input_query,
        }
        if input_variables is not None:
            deploy_input["inputVariables"] = {
                "namespace": input_variables[0],
                "key": input_variables[1],
            }
        data = self.execute_upload(
            FUNCTION_DEPLOY,
            {"input": deploy_input},
            {"wasm": (filename, wasm)},
            progress=progress,
        )["functionDeploy"]
        return DeployResult(
            function=FunctionInfo.from_api(data["function"]),
            version=FunctionVersionInfo.from_api(data["version"]),
            created=data["created"],
        )

    def function_version(self, version_id: str) -> FunctionVersionInfo:
        """A version by id."""
        return FunctionVersionInfo.from_api(
            self.execute(FUNCTION_VERSION, {"id": version_id})["functionVersion"]
        )

    def wait_until_ready(
        self,
        version_id: str,
        *,
        timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        poll_s: float = 0.25,
        on_poll: Callable[[FunctionVersionInfo], None] | None = None,
    ) -> FunctionVersionInfo:
        """Poll a version until it is READY or FAILED (returned, not raised).

        Raises `DeployTimeoutError` when it is still PENDING after `timeout_s` (is a
        `cartwheel worker` running?).
        """
        deadline = time.monotonic() + timeout_s
        delay = min(poll_s, 0.05)
        while True:
            version = self.function_version(version_id)
            if on_poll is not None:
                on_poll(version)
            if version.status != "PENDING":
                return version
            if time.monotonic() >= deadline:
                raise DeployTimeoutError(
                    f"Version {version_id} is still PENDING after {timeout_s:.0f} s. Check "
                    "that a `cartwheel worker` is running against the server's Redis, then "
                    "poll again (or deploy again: it is idempotent).",
                    versionId=version_id,
                )
            time.sleep(delay)
            delay = min(delay * 2, poll_s)

    def activate_version(self, version_id: str) -> FunctionInfo:
        """Make a READY version the one checkout runs (VERSION_NOT_READY otherwise)."""
        return FunctionInfo.from_api(
            self.execute(FUNCTION_ACTIVATE_VERSION, {"versionId": version_id})[
                "functionActivateVersion"
            ]
        )

    def function(self, function_id: str) -> FunctionInfo:
        """A function by id."""
        return FunctionInfo.from_api(self.execute(FUNCTION, {"id": function_id})["function"])

    def functions(self) -> list[FunctionInfo]:
        """Every function of the shop (all pages)."""
        found: list[FunctionInfo] = []
        after: str | None = None
        while True:
            page = self.execute(FUNCTIONS, {"first": MAX_PAGE_SIZE, "after": after})["functions"]
            found.extend(FunctionInfo.from_api(node) for node in page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def function_by_handle(self, handle: str) -> FunctionInfo:
        """The function with `handle`; `NotFoundError` when the shop has none."""
        for function in self.functions():
            if function.handle == handle:
                return function
        raise NotFoundError(
            f"No function with handle {handle!r} in this shop. Deploy it with "
            "`cartwheel fn deploy`, or pass its id (gid://cartwheel/Function/N).",
            handle=handle,
        )

    def function_runs(
        self,
        *,
        function_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> RunPage:
        """One page of logged runs, newest first (admin scope)."""
        variables: dict[str, Any] = {"first": first, "after": after}
        if function_id is not None:
            variables["functionId"] = function_id
        if status is not None:
            variables["status"] = status
        if since is not None:
            variables["since"] = since.isoformat()
        page = self.execute(FUNCTION_RUNS, variables)["functionRuns"]
        return RunPage(
            runs=tuple(FunctionRunInfo.from_api(node) for node in page["nodes"]),
            has_next_page=page["pageInfo"]["hasNextPage"],
            end_cursor=page["pageInfo"]["endCursor"],
        )

    def function_run(self, run_id: str) -> FunctionRunInfo:
        """One logged run by id, with its input and output (admin scope)."""
        return FunctionRunInfo.from_api(self.execute(FUNCTION_RUN, {"id": run_id})["functionRun"])

    def discount_create(
        self,
        *,
        function_id: str,
        title: str,
        discount_classes: list[str],
        codes: list[str] | None = None,
        combines_with: Mapping[str, bool] | None = None,
        metafields: list[Mapping[str, str]] | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Create a discount backed by a function (automatic without `codes`)."""
        data: dict[str, Any] = {
            "functionId": function_id,
            "title": title,
            "discountClasses": discount_classes,
            "codes": codes or [],
            "enabled": enabled,
            "metafields": [dict(mf) for mf in metafields or []],
        }
        if combines_with is not None:
            data["combinesWith"] = dict(combines_with)
        return self.execute(DISCOUNT_CREATE, {"input": data})["discountCreate"]  # type: ignore[no-any-return]

    def delivery_customization_create(
        self,
        *,
        function_id: str,
        title: str,
        metafields: list[Mapping[str, str]] | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Create a delivery customization backed by a function."""
        data = {
            "functionId": function_id,
            "title": title,
            "enabled": enabled,
            "metafields": [dict(mf) for mf in metafields or []],
        }
        return self.execute(DELIVERY_CUSTOMIZATION_CREATE, {"input": data})[  # type: ignore[no-any-return]
            "deliveryCustomizationCreate"
        ]


# --- helpers -------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cartwheel")
    except PackageNotFoundError:
        return "dev"


def _set_path(variables: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = variables
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _chunks(content: bytes, progress: ProgressCallback) -> Iterator[bytes]:
    total = len(content)
    progress(0, total)
    for start in range(0, total, UPLOAD_CHUNK_BYTES):
        chunk = content[start : start + UPLOAD_CHUNK_BYTES]
        yield chunk
        progress(start + len(chunk), total)


def _data(response: httpx.Response, server: str) -> dict[str, Any]:
    """The `data` of a GraphQL response, or the `ClientError` of its first error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if response.status_code >= 500:
            raise ServerError(
                f"The server at {server} failed (HTTP {response.status_code}). Retry; if it "
                "persists, check the server's logs.",
                status=response.status_code,
            )
        raise ServerError(
            f"{server} answered HTTP {response.status_code} without the admin API's JSON: "
            "is --server the URL of a Cartwheel server?",
            status=response.status_code,
        )
    errors = body.get("errors")
    if isinstance(body.get("error"), dict):  # REST-style errors of non-GraphQL routes
        errors = [{"message": body["error"].get("message", ""), "extensions": body["error"]}]
    if errors:
        first = errors[0]
        extensions = dict(first.get("extensions") or {})
        code = str(extensions.pop("code", "") or "")
        message = str(first.get("message") or "The server refused the request.")
        if not code:
            code = "SERVER_ERROR" if response.status_code >= 500 else "REQUEST_FAILED"
        extensions.pop("message", None)
        if first.get("path"):
            extensions.setdefault("path", first["path"])
        if response.status_code in (429,) and "Retry-After" in response.headers:
            extensions.setdefault("retryAfter", response.headers["Retry-After"])
        raise error_from_response(code, message, extensions)
    if response.status_code >= 500:
        raise ServerError(
            f"The server at {server} failed (HTTP {response.status_code}).",
            status=response.status_code,
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise ServerError(f"{server} answered without `data`: not the admin API?")
    return data
