"""Checkout end to end: PostgreSQL, Redis, the app over its real ASGI stack, real
functions (the Rust discount and C delivery customization examples, a C function that
returns its configuration, WAT modules that trap, loop and print invalid output).

Carts are built and checked out through the storefront API; run logs travel through
Redis and an ingestion loop into PostgreSQL, as in production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import sqlalchemy as sa
import wasmtime
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.demo import create_product
from cartwheel.deploy import Deployer, DeployRequest, activate_version
from cartwheel.models import (
    DeliveryMethodType,
    DeliveryOption,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
    PaymentMethod,
    ProductVariant,
    RunLog,
    VersionStatus,
)
from cartwheel.runlog import RunLogQueue, run_ingest_loop
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, create_shop, issue_token

ROOT = Path(__file__).resolve().parents[2]
ECHO_C = ROOT / "tests/server/checkout_fixtures/echo_config.c"
LINES = "cart.lines.discounts.generate.run"
DELIVERY = "cart.delivery-options.transform.run"
SHIPPING = "cart.delivery-options.discounts.generate.run"
PAYMENT = "cart.payment-methods.transform.run"
VALIDATION = "cart.validations.generate.run"
KINDS = {
    LINES: ("discount", InstanceKind.DISCOUNT),
    SHIPPING: ("discount", InstanceKind.DISCOUNT),
    DELIVERY: ("deliveryCustomization", InstanceKind.DELIVERY_CUSTOMIZATION),
    PAYMENT: ("paymentCustomization", InstanceKind.PAYMENT_CUSTOMIZATION),
    VALIDATION: ("validation", InstanceKind.VALIDATION),
}
FAILING_QUERY = "query Input($mode: String!) { cart { attribute(key: $mode) { value } } }"
TRAP_WAT = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
LOOP_WAT = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
INVALID_BODY = '{"operations":[{"orderDiscountsAdd":{"candidates":[],"selectionStrategy":"ALL"}}]}'
_ESCAPED = INVALID_BODY.replace('"', '\\"')
INVALID_WAT = f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{_ESCAPED}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(INVALID_BODY)}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


@pytest.fixture(scope="session")
def echo_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("e2e-wasm") / "echo.wasm"
    subprocess.run(
        ["clang", "--target=wasm32-wasi", "-Oz", "-s", "-o", str(out), str(ECHO_C)], check=True
    )
    return out.read_bytes()


def echo_query(target: str) -> str:
    owner = KINDS[target][0]
    return (
        f'query Input {{ {owner} {{ metafield(namespace: "test", key: "ops") {{ jsonValue }} }} }}'
    )


@dataclass
class Store:
    """One shop of the platform, driven through its storefront API."""

    settings: Settings
    factory: sessionmaker[Session]
    engine: Engine
    client: AppClient
    shop_id: int
    token: str
    variants: dict[str, str]
    payment_methods: dict[str, str]
    echo: bytes
    functions: dict[str, int] = field(default_factory=dict)

    # -- merchant side (server library: the admin API is tested on its own) ---------
    def deploy(
        self,
        handle: str,
        target: str,
        wasm: bytes,
        query: str,
        variables: tuple[str, str] | None = None,
    ) -> int:
        if handle in self.functions:
            return self.functions[handle]
        deployer = Deployer(self.settings, self.factory)
        with self.factory() as session:
            outcome = deployer.deploy(
                ShopScope(session, self.shop_id),
                DeployRequest(handle, handle, target, wasm, query, *(variables or (None, None))),
            )
            version_id, function_id = outcome.version.id, outcome.version.function_id
        deployer.schedule(self.shop_id, outcome.version)
        with self.factory() as session:
            scope = ShopScope(session, self.shop_id)
            version = scope.get(FunctionVersion, version_id)
            assert version.status is VersionStatus.READY, version.error_message
            activate_version(scope, scope.get(Function, function_id), version)
        self.functions[handle] = function_id
        return function_id

    def instance(
        self, function_id: int, target: str, config: Any = None, key: str = "ops", **fields: Any
    ) -> int:
        with self.factory() as session, session.begin():
            scope = ShopScope(session, self.shop_id)
            inst = scope.create(
                FunctionInstance,
                function_id=function_id,
                kind=KINDS[target][1],
                title=fields.pop("title", target),
                **fields,
            )
            if config is not None:
                namespace = "test" if key == "ops" else "cartwheel"
                scope.set_metafield(inst, namespace, key, "json", orjson.dumps(config).decode())
            return inst.id

    def echo_instance(self, target: str, ops: list[dict[str, Any]], **fields: Any) -> int:
        function_id = self.deploy(f"echo-{target}", target, self.echo, echo_query(target))
        return self.instance(function_id, target, {"operations": ops}, **fields)

    def disable_all(self) -> None:
        with self.factory() as session, session.begin():
            scope = ShopScope(session, self.shop_id)
            for inst in scope.list(FunctionInstance):
                scope.update(inst, enabled=False)

    # -- buyer side (storefront API) --------------------------------------------------
    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(
            method,
            f"/storefront{path}",
            content=orjson.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def cart(self, *lines: tuple[str, int], **fields: Any) -> tuple[str, list[str]]:
        cart = self.call(
            "POST",
            "/carts",
            {
                "lines": [{"merchandiseId": self.variants[v], "quantity": q} for v, q in lines],
                **fields,
            },
        )
        return cart["id"].rsplit("/", 1)[1], [line["id"] for line in cart["lines"]]

    def checkout(self, cart: str) -> Any:
        return self.call("POST", f"/carts/{cart}/checkout")

    def run_logs(self) -> list[RunLog]:
        with self.factory() as session:
            scope = ShopScope(session, self.shop_id)
            return scope.scalars(scope.select(RunLog).order_by(RunLog.id))


@contextmanager
def open_store(
    url: str,
    tmp: Path,
    echo: bytes,
    redis_url: str | None,
    *,
    currency: str = "USD",
    prices: dict[str, str] | None = None,
    delivery: tuple[tuple[str, str, str, DeliveryMethodType], ...] = (
        ("standard", "Standard Shipping", "5.00", DeliveryMethodType.SHIPPING),
        ("express", "Express Shipping", "15.00", DeliveryMethodType.SHIPPING),
    ),
) -> Iterator[Store]:
    settings = Settings(database_url=url, redis_url=redis_url, data_dir=tmp)
    engine = make_engine(settings)
    factory = session_factory(engine)
    prices = prices or {"shirt": "19.99", "socks": "5.00", "coat": "120.00"}
    with factory() as session, session.begin():
        shop = create_shop(
            session, handle=f"e2e-{currency.lower()}", name="E2E", currency_code=currency
        )
        session.flush()
        scope = ShopScope(session, shop.id)
        for handle, price in prices.items():
            create_product(
                scope,
                handle=handle,
                title=handle.title(),
                variants=[("Default", handle, price, None)],
            )
        for position, (handle, title, cost, method) in enumerate(delivery):
            scope.create(
                DeliveryOption,
                handle=handle,
                title=title,
                cost=Decimal(cost),
                currency_code=currency,
                delivery_method_type=method,
                position=position,
            )
        for position, name in enumerate(("Card", "Cash on Delivery", "Invoice")):
            scope.create(PaymentMethod, name=name, position=position)
        _, token = issue_token(session, shop.id, ["storefront"])
        shop_id = shop.id
    with factory() as session:
        scope = ShopScope(session, shop_id)
        variants = {
            v.sku or "": v.gid for v in scope.list(ProductVariant, order_by=(ProductVariant.id,))
        }
        methods = {m.name: m.gid for m in scope.list(PaymentMethod)}
    with AppClient(create_app(settings)) as client:
        yield Store(settings, factory, engine, client, shop_id, token, variants, methods, echo)
    engine.dispose()


@pytest.fixture
def store(
    migrated_pg_url: str, tmp_path: Path, echo_wasm: bytes, redis_url: str
) -> Iterator[Store]:
    with open_store(migrated_pg_url, tmp_path, echo_wasm, redis_url) as s:
        yield s


def ingest_all(store: Store) -> None:
    """What `cartwheel runlog ingest` does, until the queue is empty, once the app's
    run-log writer has delivered every run so far (it lingers to batch them)."""
    assert store.settings.redis_url is not None
    writer = store.client.app.state.services.storefront.pipeline.run_log
    assert writer is not None
    assert writer.flush(30)
    stop = threading.Event()
    stop.set()
    run_ingest_loop(RunLogQueue.from_url(store.settings.redis_url, timeout_s=5), store.engine, stop)


def product_op(
    value: dict[str, Any], *line_ids: str, strategy: str = "FIRST", message: str = "m"
) -> dict[str, Any]:
    return {
        "productDiscountsAdd": {
            "selectionStrategy": strategy,
            "candidates": [
                {
                    "message": message,
                    "targets": [{"cartLine": {"id": i}} for i in line_ids],
                    "value": value,
                }
            ],
        }
    }


def order_op(value: dict[str, Any], *, excluded: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "orderDiscountsAdd": {
            "selectionStrategy": "FIRST",
            "candidates": [
                {
                    "targets": [{"orderSubtotal": {"excludedCartLineIds": list(excluded)}}],
                    "value": value,
                }
            ],
        }
    }


def test_shop_with_line_discount_delivery_and_payment_customization_and_validation(
    store: Store,
) -> None:
    examples = ROOT / "examples"
    discount = store.deploy(
        "tiered-vip-discount",
        LINES,
        (examples / "discount-function/discount-function.wasm").read_bytes(),
        (examples / "discount-function/input.graphql").read_text(),
        ("cartwheel", "function-configuration"),
    )
    store.instance(
        discount,
        LINES,
        {
            "basis": "QUANTITY",
            "tiers": [{"minimum": 3, "percentage": "10", "message": "3+ items: 10% off"}],
            "vipTags": ["VIP"],
            "vipBonusPercentage": "5",
        },
        key="function-configuration",
        title="Tiered",
        discount_classes=["PRODUCT"],
    )
    delivery = store.deploy(
        "remote-area-delivery",
        DELIVERY,
        (examples / "delivery-customization/delivery-customization.wasm").read_bytes(),
        (examples / "delivery-customization/input.graphql").read_text(),
        ("cartwheel", "function-configuration"),
    )
    store.instance(
        delivery,
        DELIVERY,
        {
            "provinceCodes": ["AK", "HI"],
            "hideTitleContaining": "express",
            "renameSuffix": " (remote)",
        },
        key="function-configuration",
    )
    store.echo_instance(
        PAYMENT,
        [{"paymentMethodHide": {"paymentMethodId": store.payment_methods["Cash on Delivery"]}}],
    )
    store.echo_instance(VALIDATION, [])

    cart, _ = store.cart(
        ("shirt", 3),
        ("socks", 1),
        deliveryAddress={
            "countryCode": "US",
            "provinceCode": "AK",
            "city": "Juneau",
            "zip": "99801",
        },
    )
    body = store.checkout(cart)
    # 3 × 19.99 = 59.97 → 10% = 5.997 → 6.00; socks 5.00 → 0.50. Shipping 5.00.
    assert [[a["amount"] for a in ln["discountAllocations"]] for ln in body["lines"]] == [
        ["6.00"],
        ["0.50"],
    ]
    assert body["lines"][0]["discountAllocations"][0]["message"] == "3+ items: 10% off"
    assert body["totals"] == {
        "subtotal": "64.97",
        "lineDiscounts": "6.50",
        "orderDiscounts": "0.00",
        "shipping": "5.00",
        "shippingDiscounts": "0.00",
        "discounts": "6.50",
        "total": "63.47",
    }
    options = body["deliveryGroups"][0]["deliveryOptions"]
    assert [(o["handle"], o["title"]) for o in options] == [
        ("standard", "Standard Shipping (remote)")
    ]
    assert [m["name"] for m in body["paymentMethods"]] == ["Card", "Invoice"]
    assert body["blocked"] is False
    assert body["errors"] == []

    ingest_all(store)
    logs = store.run_logs()
    assert sorted(log.target for log in logs) == sorted([LINES, DELIVERY, PAYMENT, VALIDATION])
    assert {log.status for log in logs} == {"succeeded"}
    assert all(log.fuel_consumed for log in logs)
    (rust_log,) = [log for log in logs if log.target == LINES]
    assert rust_log.variables is not None
    assert rust_log.variables["key"] == "function-configuration"
    assert orjson.loads(rust_log.input)["cart"]["lines"][0]["quantity"] == 3


def test_exact_money_for_each_discount_shape(store: Store) -> None:
    cart, (shirt, socks, coat) = store.cart(
        ("shirt", 2), ("socks", 3), ("coat", 1)
    )  # 39.98 + 15 + 120 = 174.98
    combines_all = {"combines_with_order_discounts": True, "combines_with_product_discounts": True}
    cases: list[tuple[str, list[tuple[list[dict[str, Any]], dict[str, Any]]], dict[str, str]]] = [
        (
            "percentage",
            [([product_op({"percentage": {"value": "12.5"}}, shirt)], {})],
            {"lineDiscounts": "5.00"},
        ),  # 4.9975
        (
            "fixed split over lines",
            [([product_op({"fixedAmount": {"amount": "10"}}, shirt, coat)], {})],
            {"lineDiscounts": "10.00"},
        ),
        (
            "fixed per item",
            [
                (
                    [
                        product_op(
                            {"fixedAmount": {"amount": "2", "appliesToEachItem": True}}, socks
                        )
                    ],
                    {},
                )
            ],
            {"lineDiscounts": "6.00"},
        ),
        (
            "FIRST",
            [
                (
                    [
                        {
                            "productDiscountsAdd": {
                                "selectionStrategy": "FIRST",
                                "candidates": [
                                    {
                                        "targets": [{"cartLine": {"id": socks}}],
                                        "value": {"percentage": {"value": "10"}},
                                    },
                                    {
                                        "targets": [{"cartLine": {"id": coat}}],
                                        "value": {"percentage": {"value": "10"}},
                                    },
                                ],
                            }
                        }
                    ],
                    {},
                )
            ],
            {"lineDiscounts": "1.50"},
        ),
        (
            "MAXIMUM",
            [
                (
                    [
                        {
                            "productDiscountsAdd": {
                                "selectionStrategy": "MAXIMUM",
                                "candidates": [
                                    {
                                        "targets": [{"cartLine": {"id": socks}}],
                                        "value": {"percentage": {"value": "10"}},
                                    },
                                    {
                                        "targets": [{"cartLine": {"id": coat}}],
                                        "value": {"percentage": {"value": "10"}},
                                    },
                                ],
                            }
                        }
                    ],
                    {},
                )
            ],
            {"lineDiscounts": "12.00"},
        ),
        (
            "order fixed, excluded line",
            [([order_op({"fixedAmount": {"amount": "20"}}, excluded=(coat,))], {})],
            {"orderDiscounts": "20.00", "lineDiscounts": "0.00"},
        ),
        (
            "non-combinable: the better set wins",
            [
                ([product_op({"percentage": {"value": "10"}}, coat)], {}),  # 12.00
                ([order_op({"percentage": {"value": "5"}})], {}),  # 8.75
            ],
            {"lineDiscounts": "12.00", "orderDiscounts": "0.00"},
        ),
        (
            "combinable: both, order on discounted lines",
            [
                ([product_op({"percentage": {"value": "10"}}, coat)], combines_all),
                ([order_op({"percentage": {"value": "5"}})], combines_all),  # 5% of 162.98 = 8.149
            ],
            {"lineDiscounts": "12.00", "orderDiscounts": "8.15", "total": "159.83"},
        ),
    ]
    for name, instances, expected in cases:
        store.disable_all()
        for ops, flags in instances:
            store.echo_instance(LINES, ops, title=name, **flags)
        totals = store.checkout(cart)["totals"]
        assert {k: totals[k] for k in expected} == expected, name
        allocated = sum(
            Decimal(a["amount"])
            for ln in store.checkout(cart)["lines"]
            for a in ln["discountAllocations"]
        )
        assert allocated == Decimal(totals["lineDiscounts"]) + Decimal(totals["orderDiscounts"]), (
            name
        )


@pytest.mark.parametrize(
    ("currency", "prices", "shipping", "expected"),
    [
        # 3 × 1999 = 5997 → 15% = 899.55 → 900; order 100 over 5097 + 333 → 94 + 6.
        (
            "JPY",
            {"shirt": "1999", "socks": "333"},
            "500",
            {"lineDiscounts": "900", "orderDiscounts": "100", "total": "5830"},
        ),
        # 3 × 1.999 = 5.997 → 15% = 0.89955 → 0.900; order 0.100 over 5.097 + 0.333.
        (
            "KWD",
            {"shirt": "1.999", "socks": "0.333"},
            "1.250",
            {"lineDiscounts": "0.900", "orderDiscounts": "0.100", "total": "6.580"},
        ),
    ],
)
def test_zero_and_three_decimal_currencies(
    migrated_pg_url: str,
    tmp_path: Path,
    echo_wasm: bytes,
    redis_url: str,
    currency: str,
    prices: dict[str, str],
    shipping: str,
    expected: dict[str, str],
) -> None:
    delivery = (("standard", "Standard", shipping, DeliveryMethodType.SHIPPING),)
    with open_store(
        migrated_pg_url,
        tmp_path,
        echo_wasm,
        redis_url,
        currency=currency,
        prices=prices,
        delivery=delivery,
    ) as store:
        cart, (shirt, _) = store.cart(("shirt", 3), ("socks", 1))
        both = {"combines_with_order_discounts": True, "combines_with_product_discounts": True}
        store.echo_instance(LINES, [product_op({"percentage": {"value": "15"}}, shirt)], **both)
        amount = "100" if currency == "JPY" else "0.1"
        store.echo_instance(LINES, [order_op({"fixedAmount": {"amount": amount}})], **both)
        body = store.checkout(cart)
        assert body["currencyCode"] == currency
        assert {k: body["totals"][k] for k in expected} == expected
        allocations = [[a["amount"] for a in ln["discountAllocations"]] for ln in body["lines"]]
        if currency == "JPY":
            assert allocations == [["900", "94"], ["6"]]
        else:
            assert allocations == [["0.900", "0.094"], ["0.006"]]


def test_failing_functions_do_not_break_checkout_and_are_logged(store: Store) -> None:
    cart, (shirt, _) = store.cart(("shirt", 2), ("socks", 1))
    store.echo_instance(
        LINES, [product_op({"percentage": {"value": "50"}}, shirt)], title="half off shirts"
    )
    for handle, wat, target in (
        ("trap", TRAP_WAT, LINES),
        ("fuel", LOOP_WAT, DELIVERY),
        ("invalid", INVALID_WAT, LINES),
    ):
        function_id = store.deploy(
            handle, target, wasmtime.wat2wasm(wat), FAILING_QUERY, ("test", "vars")
        )
        with store.factory() as session, session.begin():
            scope = ShopScope(session, store.shop_id)
            inst = scope.create(
                FunctionInstance, function_id=function_id, kind=KINDS[target][1], title=handle
            )
            scope.set_metafield(inst, "test", "vars", "json", '{"mode": "gift"}')
    body = store.checkout(cart)
    assert body["totals"]["lineDiscounts"] == "19.99"  # 50% of 39.98, the failing ones add nothing
    assert body["totals"]["total"] == "29.99"  # 44.98 − 19.99 + 5.00
    assert [o["handle"] for o in body["deliveryGroups"][0]["deliveryOptions"]] == [
        "standard",
        "express",
    ]
    ingest_all(store)
    codes = sorted((log.error_code or "ok") for log in store.run_logs())
    assert codes == ["INSTRUCTION_LIMIT_EXCEEDED", "INVALID_OUTPUT", "RUNTIME_ERROR", "ok"]

    # A failing validation blocks only when it is configured to.
    function_id = store.deploy(
        "trap-validation", VALIDATION, wasmtime.wat2wasm(TRAP_WAT), FAILING_QUERY, ("test", "vars")
    )
    with store.factory() as session, session.begin():
        scope = ShopScope(session, store.shop_id)
        inst = scope.create(
            FunctionInstance,
            function_id=function_id,
            kind=InstanceKind.VALIDATION,
            title="Fraud check",
            block_on_failure=True,
        )
        scope.set_metafield(inst, "test", "vars", "json", '{"mode": "gift"}')
    body = store.checkout(cart)
    assert body["blocked"] is True
    assert "Fraud check could not check this cart" in body["errors"][0]["message"]
    assert body["totals"]["total"] == "29.99"  # still priced, but blocked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server(port: int, directory: Path) -> None:
    subprocess.run(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(directory),
            "--daemonize",
            "yes",
        ],
        check=True,
    )
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("private redis-server did not start")


@pytest.mark.slow
def test_concurrent_checkouts_log_every_run_even_when_redis_stops(
    migrated_pg_url: str, tmp_path: Path, echo_wasm: bytes
) -> None:
    """8 buyers check out concurrently while the ingestion loop runs; the (private)
    Redis is shut down in the middle. Every run of every checkout ends up in PostgreSQL
    exactly once and checkouts keep answering."""
    port = _free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    _redis_server(port, redis_dir)
    url = f"redis://127.0.0.1:{port}/0"
    with open_store(migrated_pg_url, tmp_path, echo_wasm, url) as store:
        carts = [store.cart(("shirt", 1 + n % 3), ("socks", 1)) for n in range(8)]
        store.echo_instance(LINES, [order_op({"percentage": {"value": "10"}})])
        store.echo_instance(PAYMENT, [])
        store.echo_instance(VALIDATION, [])
        stop = threading.Event()
        ingester = threading.Thread(
            target=run_ingest_loop,
            args=(RunLogQueue.from_url(url, timeout_s=1), store.engine, stop),
            kwargs={"consumer": "e2e"},
            daemon=True,
        )
        ingester.start()
        latencies: list[float] = []
        totals: set[str] = set()
        per_buyer = 30

        def buyer(n: int) -> None:
            cart, _ = carts[n]
            for _ in range(per_buyer):
                started = time.perf_counter()
                body = store.checkout(cart)
                latencies.append(time.perf_counter() - started)
                totals.add(f"{n}:{body['totals']['total']}")

        threads = [threading.Thread(target=buyer, args=(n,), daemon=True) for n in range(8)]
        try:
            for t in threads:
                t.start()
            while len(latencies) < 8 * per_buyer // 3:  # Redis goes away a third of the way
                time.sleep(0.005)
            redis.Redis(port=port).shutdown(nosave=False)
            for t in threads:
                t.join()
        finally:
            stop.set()
            ingester.join(30)
        assert len(totals) == 8, "every buyer always got the same, correct total"
        latencies.sort()
        assert latencies[int(len(latencies) * 0.99)] < 1.0, "checkout latency stays bounded"
        # Shutdown flushes the writer (the app's lifespan closes the storefront).
    _redis_server(port, redis_dir)  # Redis comes back with what it had accepted
    engine = make_engine(Settings(database_url=migrated_pg_url))
    try:
        drained = threading.Event()
        drained.set()
        run_ingest_loop(RunLogQueue.from_url(url, timeout_s=1), engine, drained, consumer="e2e-2")
        with engine.connect() as conn:
            n_logs = conn.execute(sa.select(sa.func.count()).select_from(RunLog)).scalar_one()
            targets = dict(
                conn.execute(
                    sa.select(RunLog.target, sa.func.count()).group_by(RunLog.target)
                ).all()
            )
    finally:
        redis.Redis(port=port).shutdown(nosave=True)
        engine.dispose()
    assert n_logs == 8 * per_buyer * 3
    assert set(targets.values()) == {8 * per_buyer}
