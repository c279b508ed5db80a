"""Checkout: run every active function of the shop, in order, and price the result.

This module is the one place that reads as the whole data flow of a checkout:

    snapshot   load the cart snapshot once                (cartwheel.snapshot)
    registry   the enabled instances with a ready version (cartwheel.models)
    for each target in checkout order (functions_sdk.apis.TARGETS):
      for each instance of that target (≤ 25), in parallel threads when several:
        input query   compiled plan → input JSON            (functions_sdk.query)
        run           sandbox under scaled limits           (functions_sdk.runner)
        validate      output JSON → typed operations        (functions_sdk.output)
        log           run record, off the hot path          (cartwheel.runlog)
      apply          operations, in instance order          (cartwheel.apply)
    finalize         combinations, allocation, totals        (cartwheel.apply)

Fail-open: a function that fails in any step (an invalid variables metafield, a trap,
a limit, an invalid output) contributes nothing and the checkout goes on; the failure is
in its run log and, with `debug`, in the diagnostics. A validation instance with
`block_on_failure` blocks the checkout instead. Functions of later targets see the
cart as earlier targets left it (transformed lines, customized delivery options).

Compiled modules and input queries are cached per (immutable) version, so the checkout
path never compiles wasm when the deploy pipeline left an artifact in the module cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager

from cartwheel.apply import (
    CheckoutState,
    CombinesWith,
    DiscountClass,
    DiscountSource,
    PricedCheckout,
    apply_cart_transform,
    apply_delivery_customization,
    apply_payment_customization,
    apply_validation,
    block,
    collect_discounts,
    finalize,
)
from cartwheel.errors import PlatformError
from cartwheel.ids import parse_gid
from cartwheel.models import (
    Function,
    FunctionInstance,
    FunctionVersion,
    MetafieldOwnerType,
    VersionStatus,
)
from cartwheel.runlog import RunLogWriter, RunRecord
from cartwheel.snapshot import REGISTRY_STAMP, build_snapshot, load_cart_facts
from cartwheel.tenancy import ShopScope, shop_statement
from functions_sdk.apis import TARGETS, Target, get_target
from functions_sdk.apis.outputs import Operation
from functions_sdk.limits import scale_factor_for_lines
from functions_sdk.output import InvalidOutputError, References, validate_output
from functions_sdk.query import InputQuery, InvalidInputQueryError, compile_query
from functions_sdk.runner import CompiledModule, ModuleCache, RunResult, load_module, run
from functions_sdk.snapshot import Metafield as MetafieldDoc
from functions_sdk.snapshot import Owner, Snapshot

MAX_INSTANCES_PER_TARGET = 25
"""Active functions per target and shop that run at checkout (Shopify's limit)."""

PREPARED_VERSIONS_CACHED = 512
"""Versions (compiled module + compiled input query) kept in memory per process."""

CHECKOUT_THREADS = 2
"""Threads running the independent functions of one target (wasm releases the GIL)."""

REGISTRY_MAX_AGE_S = 30.0
"""Longest a shop's cached registry is trusted even when its change stamp is unchanged."""

REGISTRIES_CACHED = 4096
"""Shops whose registry is cached per process."""

STAGES = ("snapshot", "registry", "input_query", "wasm", "validation", "apply", "log")
"""Timed stages of an evaluation, in `CheckoutResult.timings` (milliseconds)."""


# --------------------------------------------------------------------------------------
# What runs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedVersion:
    """A ready version, compiled for running: its module and its input query."""

    module: CompiledModule
    query: InputQuery


@dataclass(frozen=True, slots=True)
class ActiveFunction:
    """One enabled instance of the shop with its active, ready version."""

    instance_id: int
    instance_gid: str
    title: str
    function_id: int
    version_id: int
    target: Target
    prepared: PreparedVersion
    owner: Owner
    variables: dict[str, Any] | None
    """Input query variables, or None when `variables_error` says why there are none."""
    variables_error: str | None
    variables_source: dict[str, Any] | None
    """The metafield the variables came from (namespace, key, value), for run logs."""
    discount_classes: frozenset[DiscountClass]
    combines_with: CombinesWith
    codes: tuple[str, ...]
    """Discount codes that trigger it; empty for an automatic discount."""
    block_on_failure: bool
    position: int


@dataclass(frozen=True, slots=True)
class FunctionDiagnostic:
    """What one function did in one checkout (shown only with `debug`)."""

    instance_id: str
    title: str
    target: str
    status: str
    """succeeded, failed or skipped (a code discount whose code was not entered)."""
    error_code: str | None = None
    message: str | None = None
    operations: int = 0
    duration_ms: float = 0.0
    fuel_consumed: int | None = None
    logs: str = ""
    errors: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """A priced checkout, what each function did and how long each stage took."""

    cart_id: str
    """Global id of the cart."""
    priced: PricedCheckout
    diagnostics: tuple[FunctionDiagnostic, ...]
    timings: dict[str, float]

    @property
    def blocked(self) -> bool:
        return self.priced.blocked


@dataclass(slots=True)
class _Invocation:
    fn: ActiveFunction
    operations: tuple[Operation, ...] = ()
    ok: bool = False
    error_code: str | None = None
    message: str | None = None
    errors: tuple[dict[str, Any], ...] = ()
    result: RunResult | None = None
    record: RunRecord | None = None
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------


class CheckoutPipeline:
    """Evaluates checkouts. One per process: it owns the caches of prepared versions,
    the thread pool and (optionally) the run-log writer.

    `module_cache` is the node's cache of precompiled modules (the deploy pipeline fills
    it); `run_log` receives a record of every run (None: runs are not logged, as in
    benchmarks of the pure pipeline).
    """

    def __init__(
        self,
        *,
        module_cache: ModuleCache | None,
        run_log: RunLogWriter | None,
        threads: int = CHECKOUT_THREADS,
    ) -> None:
        self.module_cache = module_cache
        self.run_log = run_log
        self._prepared: OrderedDict[int, PreparedVersion] = OrderedDict()
        self._registry: OrderedDict[int, tuple[tuple[Any, ...], float, list[ActiveFunction]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="cartwheel-checkout")

    def close(self) -> None:
        """Stop the thread pool and flush the run-log writer."""
        self._pool.shutdown(wait=True)
        if self.run_log is not None:
            self.run_log.close()

    # -- entry points ------------------------------------------------------------------

    def evaluate(self, scope: ShopScope, cart_id: int | str) -> CheckoutResult:
        """Evaluate the checkout of cart `cart_id` of the scope's shop.

        Raises `NotFoundError` when the cart is not in this shop. Function failures never
        raise (fail-open); platform faults (database down) do.
        """
        timings = dict.fromkeys(STAGES, 0.0)
        started = time.perf_counter()
        facts = load_cart_facts(scope, cart_id)
        snapshot = build_snapshot(facts)
        loaded = time.perf_counter()
        functions = self.active_functions(scope, stamp=facts.registry_stamp)
        timings["snapshot"] = (loaded - started) * 1000
        timings["registry"] = (time.perf_counter() - loaded) * 1000
        _, cart_key = parse_gid(snapshot["cart"]["id"])
        return self.evaluate_snapshot(
            snapshot, functions, shop_id=scope.shop_id, cart_id=cart_key, timings=timings
        )

    def evaluate_snapshot(
        self,
        snapshot: Snapshot,
        functions: Sequence[ActiveFunction],
        *,
        shop_id: int,
        cart_id: int | None,
        timings: dict[str, float] | None = None,
    ) -> CheckoutResult:
        """Run `functions` (in checkout order) against `snapshot` and price the result."""
        timings = timings if timings is not None else dict.fromkeys(STAGES, 0.0)
        started = time.perf_counter()
        state = CheckoutState.from_snapshot(snapshot)
        entered = {c["code"].casefold(): c["code"] for c in snapshot["enteredDiscountCodes"]}
        diagnostics: list[FunctionDiagnostic] = []
        for target in TARGETS:
            instances = [f for f in functions if f.target.name == target.name]
            instances = instances[:MAX_INSTANCES_PER_TARGET]
            if not instances:
                continue
            view = state.view(snapshot)
            references = References.from_input(view)
            line_count = len(view["cart"]["lines"])
            runnable: list[tuple[ActiveFunction, str | None]] = []
            for fn in instances:
                trigger = _triggering_code(fn, entered)
                if fn.codes and trigger is None:
                    diagnostics.append(_skipped(fn))
                else:
                    runnable.append((fn, trigger))
            invocations = self._invoke_all(
                runnable, view, references, line_count, shop_id=shop_id, cart_id=cart_id
            )
            applying = time.perf_counter()
            for invocation, (_, trigger) in zip(invocations, runnable, strict=True):
                _APPLY[target.name](state, invocation, trigger)
                diagnostics.append(_diagnostic(invocation))
                for stage, ms in invocation.timings.items():
                    timings[stage] += ms
            timings["apply"] += (time.perf_counter() - applying) * 1000
            logging_started = time.perf_counter()
            if self.run_log is not None:
                for invocation in invocations:
                    if invocation.record is not None:
                        self.run_log.submit(invocation.record)
            timings["log"] += (time.perf_counter() - logging_started) * 1000
        finalizing = time.perf_counter()
        priced = finalize(state)
        timings["apply"] += (time.perf_counter() - finalizing) * 1000
        timings["total"] = sum(timings[s] for s in ("snapshot", "registry")) + (
            (time.perf_counter() - started) * 1000
        )
        return CheckoutResult(snapshot["cart"]["id"], priced, tuple(diagnostics), timings)

    # -- registry ----------------------------------------------------------------------

    def active_functions(
        self, scope: ShopScope, *, stamp: tuple[Any, ...] | None = None
    ) -> list[ActiveFunction]:
        """The shop's enabled instances whose function has an active, ready version, in
        checkout order (target order, then instance id).

        Cached per shop behind a change stamp (one statement: row counts and latest
        `updated_at` of the shop's instances, functions and instance metafields), so an
        unchanged registry costs one small query; any change through the API (enable,
        configure, activate, roll back, delete) changes the stamp. Entries also expire
        after `REGISTRY_MAX_AGE_S`, which bounds staleness should app servers' clocks
        disagree (a change stamped earlier than the latest one). `stamp`: that stamp,
        already read in this transaction (`evaluate` reads it with the cart,
        `cartwheel.snapshot.REGISTRY_STAMP`); None reads it here.
        """
        if stamp is None:
            stamp = _registry_stamp(scope)
        now = time.monotonic()
        cached = self._registry.get(scope.shop_id)
        if cached is not None and cached[0] == stamp and now - cached[1] < REGISTRY_MAX_AGE_S:
            return cached[2]
        functions = self._load_registry(scope)
        with self._lock:
            self._registry[scope.shop_id] = (stamp, now, functions)
            self._registry.move_to_end(scope.shop_id)
            while len(self._registry) > REGISTRIES_CACHED:
                self._registry.popitem(last=False)
        return functions

    def _load_registry(self, scope: ShopScope) -> list[ActiveFunction]:
        statement = (
            scope.select(FunctionInstance)
            .join(Function, Function.id == FunctionInstance.function_id)
            .join(FunctionVersion, FunctionVersion.id == Function.active_version_id)
            .where(
                FunctionInstance.enabled.is_(True),
                Function.shop_id == scope.shop_id,
                FunctionVersion.shop_id == scope.shop_id,
                FunctionVersion.status == VersionStatus.READY,
            )
            .options(
                contains_eager(FunctionInstance.function).contains_eager(Function.active_version)
            )
            .order_by(FunctionInstance.id)
        )
        instances = scope.scalars(statement)
        if not instances:
            return []
        metafields = scope.metafields_of(
            {MetafieldOwnerType.FUNCTION_INSTANCE: [i.id for i in instances]}
        )
        out: list[ActiveFunction] = []
        for instance in instances:
            version = instance.function.active_version
            assert version is not None  # the join above requires it
            target = get_target(version.target)
            fields: list[MetafieldDoc] = [
                {"namespace": m.namespace, "key": m.key, "type": m.type.value, "value": m.value}
                for m in metafields.get((MetafieldOwnerType.FUNCTION_INSTANCE, instance.id), ())
            ]
            prepared = self._prepare(scope, version, target)
            out.append(_active_function(instance, version, target, prepared, fields))
        out.sort(key=lambda f: (f.target.order, f.instance_id))
        return [_with_position(f, n) for n, f in enumerate(out)]

    def _prepare(
        self, scope: ShopScope, version: FunctionVersion, target: Target
    ) -> PreparedVersion:
        cached = self._prepared.get(version.id)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._prepared.get(version.id)
            if cached is None:
                wasm = version.module_bytes
                if wasm is None:
                    raise PlatformError(
                        f"Version {version.gid} has no stored module bytes; deploy the "
                        "function again.",
                        code="MODULE_MISSING",
                    )
                cached = PreparedVersion(
                    load_module(wasm, limits=target.limits, cache=self.module_cache),
                    compile_query(target, version.input_query),
                )
                self._prepared[version.id] = cached
                while len(self._prepared) > PREPARED_VERSIONS_CACHED:
                    self._prepared.popitem(last=False)
            return cached

    # -- one target's functions --------------------------------------------------------

    def _invoke_all(
        self,
        runnable: Sequence[tuple[ActiveFunction, str | None]],
        view: Snapshot,
        references: References,
        line_count: int,
        *,
        shop_id: int,
        cart_id: int | None,
    ) -> list[_Invocation]:
        def call(item: tuple[ActiveFunction, str | None]) -> _Invocation:
            fn, trigger = item
            return _invoke(fn, view, references, line_count, trigger, shop_id, cart_id)

        if len(runnable) <= 1:
            return [call(item) for item in runnable]
        # The first runs on this thread while the pool takes the others.
        futures = [self._pool.submit(call, item) for item in runnable[1:]]
        first = call(runnable[0])
        return [first, *(f.result() for f in futures)]


_REGISTRY_STAMP = shop_statement(sa.select(*REGISTRY_STAMP))
"""The registry's change stamp alone (`evaluate` reads it with the cart instead)."""


def _registry_stamp(scope: ShopScope) -> tuple[Any, ...]:
    """Counts and latest `updated_at` of what the registry is built from, in one query."""
    return tuple(scope.execute(_REGISTRY_STAMP).one())


# --------------------------------------------------------------------------------------
# One function
# --------------------------------------------------------------------------------------


def _invoke(
    fn: ActiveFunction,
    view: Snapshot,
    references: References,
    line_count: int,
    trigger: str | None,
    shop_id: int,
    cart_id: int | None,
) -> _Invocation:
    """Input query → run → validate for one function. Never raises for the function's
    own failures; they are recorded in the invocation (and its run record)."""
    inv = _Invocation(fn)
    snapshot: Snapshot = view
    if trigger is not None:
        snapshot = {**view, "triggeringDiscountCode": trigger}
    t0 = time.perf_counter()
    if fn.variables_error is not None:
        inv.error_code, inv.message = "INVALID_VARIABLE_VALUE", fn.variables_error
        inv.record = _failed_record(fn, b"", inv.error_code, inv.message, shop_id, cart_id)
        return inv
    try:
        input_json = fn.prepared.query.execute(snapshot, owner=fn.owner, variables=fn.variables)
    except InvalidInputQueryError as exc:
        inv.error_code, inv.message = exc.code, exc.message
        inv.record = _failed_record(fn, b"", exc.code, exc.message, shop_id, cart_id)
        return inv
    t1 = time.perf_counter()
    limits = fn.target.limits.scaled(scale_factor_for_lines(line_count))
    result = run(fn.prepared.module, input_json, limits)
    t2 = time.perf_counter()
    inv.result = result
    override: str | None = None
    if result.ok:
        try:
            inv.operations = validate_output(
                fn.target.name, result.output, input=references
            ).operations
            inv.ok = True
        except InvalidOutputError as exc:
            override, inv.message = exc.code, exc.message
            inv.errors = tuple(dict(e) for e in exc.errors)
    else:
        inv.message = result.message
    inv.error_code = override or (result.error_code.value if result.error_code else None)
    t3 = time.perf_counter()
    inv.record = RunRecord.from_run(
        result,
        input=input_json,
        shop_id=shop_id,
        function_id=fn.function_id,
        version_id=fn.version_id,
        instance_id=fn.instance_id,
        cart_id=cart_id,
        target=fn.target.name,
        variables=fn.variables_source,
        error_code=override,
        error_message=inv.message if override else None,
    )
    inv.timings = {
        "input_query": (t1 - t0) * 1000,
        "wasm": (t2 - t1) * 1000,
        "validation": (t3 - t2) * 1000,
    }
    return inv


def _failed_record(
    fn: ActiveFunction, input: bytes, code: str, message: str, shop_id: int, cart_id: int | None
) -> RunRecord:
    """The record of a run that failed before the module started."""
    return RunRecord(
        shop_id=shop_id,
        function_id=fn.function_id,
        version_id=fn.version_id,
        instance_id=fn.instance_id,
        cart_id=cart_id,
        target=fn.target.name,
        export=fn.prepared.module.entry,
        status="failed",
        error_code=code,
        error_message=message,
        input=input.decode(),
        input_bytes=len(input),
        input_truncated=False,
        output=None,
        output_bytes=0,
        logs="",
        logs_truncated=False,
        fuel_consumed=None,
        peak_memory_bytes=None,
        duration_ms=0.0,
        variables=fn.variables_source,
        created_at=datetime.now(UTC),
    )


# --------------------------------------------------------------------------------------
# Apply, per target
# --------------------------------------------------------------------------------------


def _apply_transform(state: CheckoutState, inv: _Invocation, trigger: str | None) -> None:
    apply_cart_transform(state, inv.operations, inv.fn.instance_gid)


def _apply_discounts(state: CheckoutState, inv: _Invocation, trigger: str | None) -> None:
    fn = inv.fn
    source = DiscountSource(
        fn.instance_gid, fn.title, fn.position, fn.discount_classes, fn.combines_with, trigger
    )
    # A failed discount still counts as having run: its code is reported NOT_APPLICABLE.
    collect_discounts(state, inv.operations, source)


def _apply_delivery(state: CheckoutState, inv: _Invocation, trigger: str | None) -> None:
    apply_delivery_customization(state, inv.operations, inv.fn.instance_gid)


def _apply_payment(state: CheckoutState, inv: _Invocation, trigger: str | None) -> None:
    apply_payment_customization(state, inv.operations, inv.fn.instance_gid)


def _apply_validation(state: CheckoutState, inv: _Invocation, trigger: str | None) -> None:
    if inv.ok:
        apply_validation(state, inv.operations, inv.fn.instance_gid)
    elif inv.fn.block_on_failure:
        block(
            state,
            inv.fn.instance_gid,
            f"{inv.fn.title} could not check this cart ({inv.error_code}); "
            "checkout is blocked until it can. Try again or contact the store.",
        )


_APPLY: dict[str, Callable[[CheckoutState, _Invocation, str | None], None]] = {
    "cart.transform.run": _apply_transform,
    "cart.lines.discounts.generate.run": _apply_discounts,
    "cart.delivery-options.transform.run": _apply_delivery,
    "cart.delivery-options.discounts.generate.run": _apply_discounts,
    "cart.payment-methods.transform.run": _apply_payment,
    "cart.validations.generate.run": _apply_validation,
}
assert set(_APPLY) == {t.name for t in TARGETS}, "every target needs an apply step"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _triggering_code(fn: ActiveFunction, entered: dict[str, str]) -> str | None:
    for code in fn.codes:
        if code.casefold() in entered:
            return code
    return None


def _active_function(
    instance: FunctionInstance,
    version: FunctionVersion,
    target: Target,
    prepared: PreparedVersion,
    fields: list[MetafieldDoc],
) -> ActiveFunction:
    variables: dict[str, Any] | None = None
    error: str | None = None
    source: dict[str, Any] | None = None
    namespace, key = version.input_variables_namespace, version.input_variables_key
    value: str | None = None
    if namespace is not None and key is not None:
        value = next(
            (m["value"] for m in fields if m["namespace"] == namespace and m["key"] == key), None
        )
        source = {"namespace": namespace, "key": key, "value": value}
    try:
        variables = prepared.query.variables_from_metafield(value)
    except InvalidInputQueryError as exc:
        error = exc.message
    classes = frozenset(DiscountClass(c) for c in instance.discount_classes) or frozenset(
        DiscountClass
    )
    owner: Owner = {
        "id": instance.gid,
        "metafields": fields,
        "discountClasses": sorted(c.value for c in classes),
    }
    return ActiveFunction(
        instance_id=instance.id,
        instance_gid=instance.gid,
        title=instance.title,
        function_id=instance.function_id,
        version_id=version.id,
        target=target,
        prepared=prepared,
        owner=owner,
        variables=variables,
        variables_error=error,
        variables_source=source,
        discount_classes=classes,
        combines_with=CombinesWith(
            order_discounts=instance.combines_with_order_discounts,
            product_discounts=instance.combines_with_product_discounts,
            shipping_discounts=instance.combines_with_shipping_discounts,
        ),
        codes=tuple(instance.discount_codes),
        block_on_failure=instance.block_on_failure,
        position=0,
    )


def _with_position(fn: ActiveFunction, position: int) -> ActiveFunction:
    return replace(fn, position=position)


def _skipped(fn: ActiveFunction) -> FunctionDiagnostic:
    return FunctionDiagnostic(
        fn.instance_gid, fn.title, fn.target.name, "skipped", message="code not entered"
    )


def _diagnostic(inv: _Invocation) -> FunctionDiagnostic:
    result = inv.result
    return FunctionDiagnostic(
        instance_id=inv.fn.instance_gid,
        title=inv.fn.title,
        target=inv.fn.target.name,
        status="succeeded" if inv.ok else "failed",
        error_code=inv.error_code,
        message=inv.message,
        operations=len(inv.operations),
        duration_ms=result.duration_ms if result else 0.0,
        fuel_consumed=result.fuel_consumed if result else None,
        logs=result.logs if result else "",
        errors=inv.errors,
    )


__all__ = [
    "MAX_INSTANCES_PER_TARGET",
    "STAGES",
    "ActiveFunction",
    "CheckoutPipeline",
    "CheckoutResult",
    "FunctionDiagnostic",
    "PreparedVersion",
]
