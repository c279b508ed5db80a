"""The deploy pipeline: upload → checks → immutable version → precompile + smoke run →
ready → activation.

1. `Deployer.deploy` runs the cheap checks synchronously, so their errors return in the
   `functionDeploy` mutation with a code: the target exists (UNKNOWN_TARGET), the module
   passes the runner's load checks (INVALID_MODULE, MODULE_TOO_LARGE, FORBIDDEN_IMPORT,
   ...) and the input query the Function API's checks (INPUT_QUERY_*, with locations).
2. It records an immutable, content-addressed `FunctionVersion` (`version_digest` of the
   module hash, target, query and variables reference). Deploying identical content
   again returns the existing version: deploys are idempotent.
3. `prepare_version` precompiles the module (the serialized artifact lands in the module
   cache shared by the node's processes) and smoke-runs it on a sample cart under the
   target's limits. It runs as an RQ job when Redis is configured (`cartwheel.jobs`),
   inline otherwise, and commits its outcome (`pending` → `ready` | `failed`) in one
   statement guarded by `status = 'pending'`, so a retried or concurrent job can never
   half-finish a version.
4. `activate_version` moves `Function.active_version_id` in one guarded UPDATE: only a
   ready version of the same function can become active, and checkout sees either the
   old version or the new one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from rq import Queue
from sqlalchemy.orm import Session, sessionmaker

from cartwheel.errors import ConflictError, InvalidRequestError, NotFoundError, PlatformError
from cartwheel.models import Function, FunctionVersion, VersionStatus, version_digest
from cartwheel.settings import Settings
from cartwheel.tenancy import SCOPE_OPTION, ShopScope
from functions_sdk.apis import Target, get_target
from functions_sdk.errors import CartwheelError
from functions_sdk.query import compile_query
from functions_sdk.runner import ErrorCode, ModuleCache, RunStatus, load_module, run
from functions_sdk.runner.engine import get_engine
from functions_sdk.snapshot import SNAPSHOT_VERSION, Snapshot

logger = logging.getLogger(__name__)

SMOKE_FATAL_ERRORS = frozenset(
    {
        ErrorCode.INVALID_MODULE,
        ErrorCode.INSTRUCTION_LIMIT_EXCEEDED,
        ErrorCode.TIMEOUT,
        ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
        ErrorCode.STACK_LIMIT_EXCEEDED,
    }
)
"""Smoke-run errors that fail a version: the platform cannot run the module within the
target's limits even on a small sample cart. Other failures (a non-zero exit, an output
the sample cart makes invalid) depend on the function's configuration and data, which a
deploy does not have, so they are logged and the version is still ready."""

MAX_HANDLE_LENGTH = 255
MAX_TITLE_LENGTH = 255


def _money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currencyCode": "USD"}


def smoke_snapshot() -> Snapshot:
    """The sample cart every new version runs on once before it can be activated:
    two lines, a customer, one delivery group with two options, two payment methods."""
    product: dict[str, object] = {
        "id": "gid://cartwheel/Product/1",
        "handle": "sample-tee",
        "title": "Sample tee",
        "vendor": "Cartwheel",
        "productType": "Shirts",
        "isGiftCard": False,
        "tags": ["sample"],
        "collectionIds": ["gid://cartwheel/Collection/1"],
        "metafields": [],
    }
    lines: list[dict[str, object]] = [
        {
            "id": f"gid://cartwheel/CartLine/{n}",
            "quantity": n,
            "attributes": [],
            "cost": {
                "amountPerQuantity": _money("25.00"),
                "compareAtAmountPerQuantity": None,
                "subtotalAmount": _money(f"{25 * n}.00"),
                "totalAmount": _money(f"{25 * n}.00"),
            },
            "merchandise": {
                "__typename": "ProductVariant",
                "id": f"gid://cartwheel/ProductVariant/{n}",
                "sku": f"TEE-{n}",
                "title": f"Size {n}",
                "requiresShipping": True,
                "metafields": [],
                "product": product,
            },
        }
        for n in (1, 2)
    ]
    snapshot: dict[str, object] = {
        "version": SNAPSHOT_VERSION,
        "shop": {
            "id": "gid://cartwheel/Shop/1",
            "currencyCode": "USD",
            "localTime": "2026-01-15T12:00:00",
            "metafields": [],
        },
        "localization": {"country": "US", "language": "EN"},
        "presentmentCurrencyRate": "1.0",
        "cart": {
            "id": "gid://cartwheel/Cart/1",
            "attributes": [],
            "buyerIdentity": {
                "email": "buyer@example.com",
                "phone": None,
                "isAuthenticated": True,
                "customer": {
                    "id": "gid://cartwheel/Customer/1",
                    "email": "buyer@example.com",
                    "displayName": "Sample Buyer",
                    "numberOfOrders": 3,
                    "amountSpent": _money("120.00"),
                    "tags": [],
                    "metafields": [],
                },
            },
            "lines": lines,
            "cost": {
                "subtotalAmount": _money("75.00"),
                "totalAmount": _money("75.00"),
                "totalTaxAmount": None,
            },
            "deliveryGroups": [
                {
                    "id": "gid://cartwheel/CartDeliveryGroup/1",
                    "deliveryAddress": {
                        "countryCode": "US",
                        "provinceCode": "NY",
                        "city": "New York",
                        "zip": "10001",
                    },
                    "selectedDeliveryOption": {"handle": "standard"},
                    "deliveryOptions": [
                        {
                            "handle": "standard",
                            "title": "Standard",
                            "cost": _money("5.00"),
                            "deliveryMethodType": "SHIPPING",
                        },
                        {
                            "handle": "express",
                            "title": "Express",
                            "cost": _money("15.00"),
                            "deliveryMethodType": "SHIPPING",
                        },
                    ],
                }
            ],
        },
        "paymentMethods": [
            {"id": "gid://cartwheel/PaymentMethod/1", "name": "Card"},
            {"id": "gid://cartwheel/PaymentMethod/2", "name": "Cash on delivery"},
        ],
        "enteredDiscountCodes": [],
    }
    return snapshot  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """Everything `functionDeploy` receives."""

    handle: str
    title: str
    target: str
    wasm: bytes
    input_query: str
    input_variables_namespace: str | None = None
    input_variables_key: str | None = None


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    """The version a deploy resolved to, and whether this deploy created it."""

    version: FunctionVersion
    created: bool


def _module_cache(settings: Settings) -> ModuleCache:
    assert settings.module_cache_dir is not None  # Settings.__post_init__ fills it
    return ModuleCache(settings.module_cache_dir)


def artifact_ref(settings: Settings, target: Target, module_sha256: str) -> str:
    """Where the precompiled artifact of a module lives: its module-cache path (or key,
    for a memory-only cache), for the engine configuration of `target`'s limits."""
    engine = get_engine(target.limits.stack_bytes)
    cache = _module_cache(settings)
    path = cache.path(engine, module_sha256)
    return str(path) if path is not None else f"module-cache:{cache.key(engine, module_sha256)}"


def _check_fields(request: DeployRequest) -> None:
    handle = request.handle.strip()
    if not handle or len(handle) > MAX_HANDLE_LENGTH:
        raise InvalidRequestError(
            f"A function handle needs 1 to {MAX_HANDLE_LENGTH} characters.", field="handle"
        )
    if not request.title.strip() or len(request.title) > MAX_TITLE_LENGTH:
        raise InvalidRequestError(
            f"A function title needs 1 to {MAX_TITLE_LENGTH} characters.", field="title"
        )
    if (request.input_variables_namespace is None) != (request.input_variables_key is None):
        raise InvalidRequestError(
            "The input variables metafield needs both a namespace and a key, or neither.",
            field="inputVariables",
        )


def check_deploy(
    request: DeployRequest, *, cache: ModuleCache | None = None
) -> tuple[Target, str, str]:
    """The synchronous checks of a deploy.

    Returns the target, the module's SHA-256 and its ABI. With `cache`, the compile the
    module checks need is kept there (the precompile step then finds it). Raises the
    SDK's errors unchanged (each has a stable code): `UnknownTargetError`,
    `InvalidModuleError`, `InvalidInputQueryError`; and `InvalidRequestError` for a bad
    handle, title or variables reference.
    """
    _check_fields(request)
    target = get_target(request.target)
    compiled = load_module(request.wasm, limits=target.limits, cache=cache)
    compile_query(target, request.input_query)
    return target, compiled.sha256, compiled.abi


class Deployer:
    """The deploy pipeline of one app: checks, versions, scheduling, activation."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        queue: Queue | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.queue = queue
        self.cache = _module_cache(settings)

    def deploy(self, scope: ShopScope, request: DeployRequest) -> DeployOutcome:
        """Check `request` and record its version (or find the identical one).

        Commits the scope's session. The version is `pending` when created; call
        `schedule` to prepare it. Raises the errors of `check_deploy`, and
        `ConflictError` when the handle names a function of another target.
        """
        _check_fields(request)
        handle = request.handle.strip()
        digest = version_digest(
            hashlib.sha256(request.wasm).hexdigest(),
            get_target(request.target).name,
            request.input_query,
            request.input_variables_namespace,
            request.input_variables_key,
        )
        session = scope.session
        # Identical content was checked when it was first deployed and versions never
        # change: answer a repeat without compiling anything.
        existing = scope.scalars(
            scope.select(FunctionVersion)
            .join(Function, Function.id == FunctionVersion.function_id)
            .where(Function.handle == handle, FunctionVersion.content_sha256 == digest)
        )
        if existing:
            session.commit()
            return DeployOutcome(existing[0], created=False)
        target, module_sha256, abi = check_deploy(request, cache=self.cache)
        function = self._function(scope, handle, request.title, target.name)
        try:
            version = scope.create(
                FunctionVersion,
                function_id=function.id,
                content_sha256=digest,
                module_sha256=module_sha256,
                module_size=len(request.wasm),
                module_bytes=request.wasm,
                abi=abi,
                target=target.name,
                input_query=request.input_query,
                input_variables_namespace=request.input_variables_namespace,
                input_variables_key=request.input_variables_key,
                status=VersionStatus.PENDING,
            )
        except ConflictError:
            # A concurrent identical deploy won the race (the savepoint of `create` kept
            # this transaction usable): its version is this deploy's version.
            existing = scope.scalars(
                scope.select(FunctionVersion).where(
                    FunctionVersion.function_id == function.id,
                    FunctionVersion.content_sha256 == digest,
                )
            )
            if not existing:
                raise
            session.commit()
            return DeployOutcome(existing[0], created=False)
        if function.title != request.title:
            function.title = request.title
        session.commit()
        return DeployOutcome(version, created=True)

    def _function(self, scope: ShopScope, handle: str, title: str, target: str) -> Function:
        found = scope.scalars(scope.select(Function).where(Function.handle == handle))
        if found:
            function = found[0]
        else:
            try:
                function = scope.create(Function, handle=handle, title=title, target=target)
            except ConflictError:
                # Created concurrently by an identical deploy: use that one.
                function = scope.scalars(scope.select(Function).where(Function.handle == handle))[0]
        if function.target != target:
            raise ConflictError(
                f"The function {handle!r} targets {function.target!r}; a function's target "
                f"never changes. Deploy to {target!r} under another handle.",
                handle=handle,
                target=function.target,
            )
        return function

    def schedule(self, shop_id: int, version: FunctionVersion) -> None:
        """Prepare a pending version: as an RQ job with Redis, inline without.

        Inline, the version is ready or failed when this returns; with a queue it is
        still pending and a worker finishes it. Safe to call again for a version that
        stayed pending (its job lost, Redis down at enqueue time): a live job is not
        queued twice, and preparation is idempotent. Raises `QueueUnavailableError`
        when Redis does not answer.
        """
        if version.status is not VersionStatus.PENDING:
            return
        if self.queue is not None:
            from cartwheel.jobs import enqueue_prepare_version

            enqueue_prepare_version(self.queue, shop_id, version.id)
        else:
            prepare_version(self.settings, self.session_factory, shop_id, version.id)


def _finish(
    factory: sessionmaker[Session],
    shop_id: int,
    version_id: int,
    values: dict[str, object],
) -> bool:
    """Write a pending version's outcome; False when it was no longer pending."""
    with factory() as session, session.begin():
        scope = ShopScope(session, shop_id)
        result = session.execute(
            sa.update(FunctionVersion)
            .where(
                FunctionVersion.id == version_id,
                FunctionVersion.shop_id == scope.shop_id,
                FunctionVersion.status == VersionStatus.PENDING,
            )
            .values(finished_at=datetime.now(UTC), **values)
            .execution_options(synchronize_session=False, **{SCOPE_OPTION: scope.shop_id})
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_version_failed(
    factory: sessionmaker[Session], shop_id: int, version_id: int, code: str, message: str
) -> None:
    """Fail a pending version with `code` (no-op when it already finished)."""
    _finish(
        factory,
        shop_id,
        version_id,
        {"status": VersionStatus.FAILED, "error_code": code, "error_message": message},
    )


def prepare_version(
    settings: Settings, factory: sessionmaker[Session], shop_id: int, version_id: int
) -> VersionStatus:
    """Precompile and smoke-run a pending version, then mark it ready or failed.

    Idempotent: a version that is no longer pending is left alone and its status
    returned. Raises `NotFoundError` for an unknown version and lets platform faults
    (database, disk) propagate so the job is retried.
    """
    with factory() as session:
        scope = ShopScope(session, shop_id)
        version = scope.get(FunctionVersion, version_id)
        if version.status is not VersionStatus.PENDING:
            return version.status
        wasm = version.module_bytes
        target_name = version.target
        input_query = version.input_query
    if wasm is None:
        raise NotFoundError(f"Version {version_id} has no stored module bytes.")
    try:
        target = get_target(target_name)
        compiled = load_module(wasm, limits=target.limits, cache=_module_cache(settings))
        query = compile_query(target, input_query)
    except CartwheelError as exc:
        if isinstance(exc, PlatformError):
            raise
        mark_version_failed(factory, shop_id, version_id, exc.code, exc.message)
        return VersionStatus.FAILED
    values: dict[str, object] = {
        "status": VersionStatus.READY,
        "abi": compiled.abi,
        "artifact_ref": artifact_ref(settings, target, compiled.sha256),
    }
    try:
        # No instance yet, so no variables metafield: every variable is null.
        variables = query.variables_from_metafield(None)
        input_json = query.execute(smoke_snapshot(), variables=variables)
    except CartwheelError as exc:
        # The sample cart cannot feed this query (e.g. a required variable that only the
        # instance's metafield supplies): the smoke run is skipped, not failed.
        logger.info("version %s: smoke run skipped (%s: %s)", version_id, exc.code, exc.message)
    else:
        result = run(compiled, input_json, target.limits)
        fatal = result.error_code if result.error_code in SMOKE_FATAL_ERRORS else None
        if result.status is not RunStatus.SUCCEEDED and fatal is not None:
            values = {
                "status": VersionStatus.FAILED,
                "abi": compiled.abi,
                "error_code": fatal.value,
                "error_message": (
                    f"The smoke run on a sample 2-line cart failed: {result.message}. A "
                    "function must run within the target's limits on a small cart; "
                    "reproduce with `cartwheel fn run` and the same limits."
                ),
            }
        elif result.status is not RunStatus.SUCCEEDED:
            logger.info(
                "version %s: smoke run failed (%s), not fatal on sample data",
                version_id,
                result.error_code,
            )
    _finish(factory, shop_id, version_id, values)
    with factory() as session:
        return ShopScope(session, shop_id).get(FunctionVersion, version_id).status


def activate_version(scope: ShopScope, function: Function, version: FunctionVersion) -> None:
    """Make `version` the one checkout runs for `function`, atomically.

    Raises `InvalidRequestError` (VERSION_NOT_READY) unless the version is ready, and
    `NotFoundError` when it is not a version of `function`. Commits.
    """
    if version.function_id != function.id:
        raise NotFoundError(
            f"{version.gid} is not a version of {function.gid}; list the function's "
            "versions with `functionVersions`."
        )
    result = scope.session.execute(
        sa.update(Function)
        .where(
            Function.id == function.id,
            Function.shop_id == scope.shop_id,
            sa.exists().where(
                FunctionVersion.id == version.id,
                FunctionVersion.function_id == function.id,
                FunctionVersion.status == VersionStatus.READY,
            ),
        )
        .values(active_version_id=version.id, updated_at=datetime.now(UTC))
        .execution_options(synchronize_session=False, **{SCOPE_OPTION: scope.shop_id})
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        scope.session.rollback()
        raise InvalidRequestError(
            f"Version {version.gid} is {version.status.value}; only a ready version can be "
            "activated. Poll `functionVersions` until its status is READY.",
            code="VERSION_NOT_READY",
            status=version.status.value,
        )
    scope.session.commit()
    # The UPDATE bypassed the identity map: reload the function's columns on next access.
    scope.session.expire(function)


def rollback_version(scope: ShopScope, function: Function) -> FunctionVersion:
    """Activate the newest ready version older than the active one.

    Raises `InvalidRequestError` (NO_PREVIOUS_VERSION) when there is none.
    """
    current = function.active_version_id
    stmt = scope.select(FunctionVersion).where(
        FunctionVersion.function_id == function.id,
        FunctionVersion.status == VersionStatus.READY,
    )
    if current is not None:
        stmt = stmt.where(FunctionVersion.id < current)
    found = scope.scalars(stmt.order_by(FunctionVersion.id.desc()).limit(1))
    if not found:
        raise InvalidRequestError(
            f"{function.gid} has no ready version before the active one to roll back to.",
            code="NO_PREVIOUS_VERSION",
        )
    activate_version(scope, function, found[0])
    return found[0]
