"""The checkout pipeline on PostgreSQL with real deployed wasm functions.

Functions are deployed through the real deploy pipeline (`Deployer`, inline), so
modules are precompiled into the module cache as in production. Most use a small C
function (checkout_fixtures/echo_config.c) that returns its instance's configuration
metafield as output, which lets each test state exact operations; failures use inline
WAT (a trap, an endless loop, an invalid output).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import wasmtime
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cartwheel.checkout import CheckoutPipeline, CheckoutResult
from cartwheel.db import make_engine, session_factory
from cartwheel.demo import create_cart, create_product
from cartwheel.deploy import Deployer, DeployRequest, activate_version
from cartwheel.models import (
    DeliveryOption,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
    PaymentMethod,
    RunLog,
    VersionStatus,
)
from cartwheel.runlog import RunLogWriter, Spool
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, create_shop
from functions_sdk.runner import ModuleCache

D = Decimal
FIXTURES = Path(__file__).parent / "checkout_fixtures"

OWNERS = {
    "cart.transform.run": ("cartTransform", InstanceKind.CART_TRANSFORM),
    "cart.lines.discounts.generate.run": ("discount", InstanceKind.DISCOUNT),
    "cart.delivery-options.transform.run": (
        "deliveryCustomization",
        InstanceKind.DELIVERY_CUSTOMIZATION,
    ),
    "cart.delivery-options.discounts.generate.run": ("discount", InstanceKind.DISCOUNT),
    "cart.payment-methods.transform.run": (
        "paymentCustomization",
        InstanceKind.PAYMENT_CUSTOMIZATION,
    ),
    "cart.validations.generate.run": ("validation", InstanceKind.VALIDATION),
}

TRAP_WAT = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
LOOP_WAT = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'


def invalid_output_wat() -> str:
    body = '{"operations":[{"productDiscountsAdd":{"candidates":[],"selectionStrategy":"BEST"}}]}'
    escaped = body.replace('"', '\\"')
    return f"""(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 64) "{escaped}")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64))
        (i32.store (i32.const 4) (i32.const {len(body)}))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def echo_query(target: str) -> str:
    owner = OWNERS[target][0]
    return (
        f'query Input {{ {owner} {{ metafield(namespace: "test", key: "ops") {{ jsonValue }} }} }}'
    )


FAILING_QUERY = "query Input($mode: String!) { cart { attribute(key: $mode) { value } } }"
"""Needs a variable only the instance supplies: the deploy's smoke run is skipped, so a
function that fails on every input still becomes ready (as one failing only on real
carts would)."""


@pytest.fixture(scope="session")
def echo_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("wasm") / "echo_config.wasm"
    subprocess.run(
        [
            "clang",
            "--target=wasm32-wasi",
            "-Oz",
            "-s",
            "-o",
            str(out),
            str(FIXTURES / "echo_config.c"),
        ],
        check=True,
    )
    return out.read_bytes()


@dataclass
class Shop:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    shop_id: int
    variants: list[int]
    pipeline: CheckoutPipeline
    writer: RunLogWriter

    def scope(self, session: Session) -> ShopScope:
        return ShopScope(session, self.shop_id)

    def deploy(
        self, handle: str, target: str, wasm: bytes, query: str, *, variables: bool = False
    ) -> int:
        deployer = Deployer(self.settings, self.factory)
        with self.factory() as session:
            outcome = deployer.deploy(
                self.scope(session),
                DeployRequest(
                    handle=handle,
                    title=handle,
                    target=target,
                    wasm=wasm,
                    input_query=query,
                    input_variables_namespace="test" if variables else None,
                    input_variables_key="vars" if variables else None,
                ),
            )
            version_id, function_id = outcome.version.id, outcome.version.function_id
        deployer.schedule(self.shop_id, outcome.version)
        with self.factory() as session:
            scope = self.scope(session)
            version = scope.get(FunctionVersion, version_id)
            assert version.status is VersionStatus.READY, version.error_message
            activate_version(scope, scope.get(Function, function_id), version)
        return function_id

    def instance(
        self,
        function_id: int,
        target: str,
        ops: list[dict[str, Any]] | None = None,
        *,
        variables: dict[str, Any] | None = None,
        raw_variables: str | None = None,
        **fields: Any,
    ) -> int:
        with self.factory() as session, session.begin():
            scope = self.scope(session)
            instance = scope.create(
                FunctionInstance,
                function_id=function_id,
                kind=OWNERS[target][1],
                title=fields.pop("title", f"instance of {function_id}"),
                **fields,
            )
            if ops is not None:
                scope.set_metafield(
                    instance, "test", "ops", "json", orjson.dumps({"operations": ops}).decode()
                )
            if variables is not None or raw_variables is not None:
                value = (
                    raw_variables if raw_variables is not None else orjson.dumps(variables).decode()
                )
                scope.set_metafield(instance, "test", "vars", "json", value)
            return instance.id

    def echo(self, target: str, ops: list[dict[str, Any]], echo_wasm: bytes, **fields: Any) -> int:
        function_id = self.deploy(f"echo-{target}", target, echo_wasm, echo_query(target))
        return self.instance(function_id, target, ops, **fields)

    def cart(self, lines: list[tuple[int, int]], **fields: Any) -> int:
        with self.factory() as session, session.begin():
            return create_cart(
                self.scope(session), [(self.variants[v], q) for v, q in lines], **fields
            ).id

    def checkout(self, cart_id: int) -> CheckoutResult:
        with self.factory() as session, session.begin():
            return self.pipeline.evaluate(self.scope(session), cart_id)

    def run_logs(self) -> list[RunLog]:
        assert self.writer.flush(30)
        with self.factory() as session:
            return list(
                self.scope(session).scalars(self.scope(session).select(RunLog).order_by(RunLog.id))
            )


def make_shop(
    url: str,
    tmp: Path,
    currency: str = "USD",
    prices: tuple[str, ...] = ("20.00", "5.00", "100.00"),
) -> Shop:
    settings = Settings(database_url=url, data_dir=tmp)
    engine = make_engine(settings)
    factory = session_factory(engine)
    with factory() as session, session.begin():
        shop = create_shop(
            session, handle=f"shop-{currency.lower()}", name="Shop", currency_code=currency
        )
        session.flush()
        scope = ShopScope(session, shop.id)
        variants = []
        for n, price in enumerate(prices):
            product = create_product(
                scope,
                handle=f"p{n}",
                title=f"Product {n}",
                variants=[("Default", f"SKU{n}", price, None)],
            )
            variants.append(product.variants[0].id if product.variants else 0)
        for position, (handle, cost) in enumerate((("standard", "5.00"), ("express", "15.00"))):
            scope.create(
                DeliveryOption,
                handle=handle,
                title=handle.title(),
                cost=D(cost),
                currency_code=currency,
                position=position,
            )
        for position, name in enumerate(("Card", "Cash on delivery", "Invoice")):
            scope.create(PaymentMethod, name=name, position=position)
        shop_id = shop.id
    with factory() as session:
        from cartwheel.models import ProductVariant

        variants = [
            v.id
            for v in ShopScope(session, shop_id).list(ProductVariant, order_by=(ProductVariant.id,))
        ]
    assert settings.module_cache_dir is not None
    writer = RunLogWriter(engine, Spool(tmp / "spool.jsonl"))
    pipeline = CheckoutPipeline(module_cache=ModuleCache(settings.module_cache_dir), run_log=writer)
    return Shop(settings, engine, factory, shop_id, variants, pipeline, writer)


@pytest.fixture
def shop(migrated_pg_url: str, tmp_path: Path) -> Iterator[Shop]:
    s = make_shop(migrated_pg_url, tmp_path)
    yield s
    s.pipeline.close()
    s.engine.dispose()


def line_gid(result: CheckoutResult, n: int) -> str:
    return result.priced.lines[n].id


def cart_lines(shop: Shop, cart_id: int) -> list[str]:
    from cartwheel.models import CartLine

    with shop.factory() as session:
        return [
            ln.gid
            for ln in shop.scope(session).list(
                CartLine, CartLine.cart_id == cart_id, order_by=(CartLine.position,)
            )
        ]


def product(
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


def order(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "orderDiscountsAdd": {
            "selectionStrategy": "FIRST",
            "candidates": [
                {"targets": [{"orderSubtotal": {"excludedCartLineIds": []}}], "value": value}
            ],
        }
    }


LINES = "cart.lines.discounts.generate.run"
VALIDATION = "cart.validations.generate.run"


def test_every_target_applies_in_order(shop: Shop, echo_wasm: bytes) -> None:
    cart = shop.cart([(0, 2), (1, 1)])  # 40.00 + 5.00
    l1, _l2 = cart_lines(shop, cart)
    shop.echo(
        LINES,
        [product({"percentage": {"value": "15"}}, l1)],
        echo_wasm,
        discount_classes=["PRODUCT"],
    )
    shop.echo(
        "cart.delivery-options.transform.run",
        [
            {"deliveryOptionRename": {"deliveryOptionHandle": "standard", "title": "Slow"}},
            {"deliveryOptionHide": {"deliveryOptionHandle": "express"}},
        ],
        echo_wasm,
    )
    shop.echo(
        "cart.delivery-options.discounts.generate.run",
        [
            {
                "deliveryDiscountsAdd": {
                    "selectionStrategy": "ALL",
                    "candidates": [
                        {
                            "targets": [{"deliveryOption": {"handle": "standard"}}],
                            "value": {"fixedAmount": {"amount": "2.50"}},
                        }
                    ],
                }
            }
        ],
        echo_wasm,
        discount_classes=["SHIPPING"],
        combines_with_product_discounts=True,
    )
    with shop.factory() as session:
        cod = shop.scope(session).list(PaymentMethod, PaymentMethod.name == "Cash on delivery")[0]
    payment_ops = [{"paymentMethodHide": {"paymentMethodId": cod.gid}}]
    shop.echo("cart.payment-methods.transform.run", payment_ops, echo_wasm)
    shop.echo(VALIDATION, [], echo_wasm)
    # The shipping discount only combines if the product discount accepts it too.
    with shop.factory() as session, session.begin():
        scope = shop.scope(session)
        for inst in scope.list(FunctionInstance):
            if inst.discount_classes == ["PRODUCT"]:
                scope.update(inst, combines_with_shipping_discounts=True)
    result = shop.checkout(cart)
    priced = result.priced
    assert not result.blocked
    assert [a.amount for a in priced.lines[0].allocations] == [D("6.00")]
    assert [(o.key, o.title, o.total) for o in priced.groups[0].options] == [
        ("standard", "Slow", D("2.50"))
    ]
    assert [m.title for m in priced.payment_methods] == ["Card", "Invoice"]
    assert priced.total == D("45.00") - D("6.00") + D("5.00") - D("2.50")
    assert {d.status for d in result.diagnostics} == {"succeeded"}
    assert set(result.timings) >= {
        "snapshot",
        "registry",
        "input_query",
        "wasm",
        "validation",
        "apply",
        "log",
        "total",
    }
    logs = shop.run_logs()
    assert len(logs) == 5
    assert {log.status for log in logs} == {"succeeded"}
    assert all(log.cart_id == cart and log.fuel_consumed for log in logs)


def test_failing_functions_are_dropped_and_logged_with_their_codes(
    shop: Shop, echo_wasm: bytes
) -> None:
    cart = shop.cart([(2, 1)])  # 100.00
    (l1,) = cart_lines(shop, cart)
    good = shop.echo(
        LINES, [product({"fixedAmount": {"amount": "10"}}, l1)], echo_wasm, title="good"
    )
    for handle, wat in (("trap", TRAP_WAT), ("fuel", LOOP_WAT), ("invalid", invalid_output_wat())):
        function_id = shop.deploy(
            handle, LINES, wasmtime.wat2wasm(wat), FAILING_QUERY, variables=True
        )
        shop.instance(function_id, LINES, variables={"mode": "x"}, title=handle)
    result = shop.checkout(cart)
    assert result.priced.total == D("95.00")  # 100 − 10 + 5 shipping: only the good one
    assert [d.instance_id for d in result.priced.discounts] == [f"gid://cartwheel/Discount/{good}"]
    by_title = {d.title: d for d in result.diagnostics}
    assert by_title["trap"].error_code == "RUNTIME_ERROR"
    assert by_title["fuel"].error_code == "INSTRUCTION_LIMIT_EXCEEDED"
    assert by_title["invalid"].error_code == "INVALID_OUTPUT"
    assert by_title["invalid"].errors[0]["path"].endswith("selectionStrategy")
    codes = sorted((log.error_code or "-", log.status) for log in shop.run_logs())
    assert codes == [
        ("-", "succeeded"),
        ("INSTRUCTION_LIMIT_EXCEEDED", "failed"),
        ("INVALID_OUTPUT", "failed"),
        ("RUNTIME_ERROR", "failed"),
    ]


def test_block_on_failure_validation_blocks_and_plain_one_does_not(
    shop: Shop, echo_wasm: bytes
) -> None:
    cart = shop.cart([(0, 1)])
    function_id = shop.deploy(
        "trap-validation", VALIDATION, wasmtime.wat2wasm(TRAP_WAT), FAILING_QUERY, variables=True
    )
    lenient = shop.instance(function_id, VALIDATION, variables={"mode": "x"}, title="lenient")
    assert not shop.checkout(cart).blocked
    shop.instance(
        function_id, VALIDATION, variables={"mode": "x"}, title="strict", block_on_failure=True
    )
    result = shop.checkout(cart)
    assert result.blocked
    assert "strict could not check this cart (RUNTIME_ERROR)" in result.priced.errors[0].message
    assert lenient  # both ran; only the strict one blocks
    assert len(result.priced.errors) == 1


def test_validation_errors_block(shop: Shop, echo_wasm: bytes) -> None:
    cart = shop.cart([(0, 9)])
    shop.echo(
        VALIDATION,
        [{"validationAdd": {"errors": [{"message": "At most 5 per item", "target": "$.cart"}]}}],
        echo_wasm,
    )
    result = shop.checkout(cart)
    assert result.blocked
    assert [e.message for e in result.priced.errors] == ["At most 5 per item"]


def test_code_discount_runs_only_when_its_code_is_entered(shop: Shop, echo_wasm: bytes) -> None:
    cart = shop.cart([(2, 1)])
    (l1,) = cart_lines(shop, cart)
    shop.echo(
        LINES,
        [product({"percentage": {"value": "20"}}, l1)],
        echo_wasm,
        discount_codes=["SPRING20"],
    )
    result = shop.checkout(cart)
    assert result.priced.discount_total == 0
    assert [d.status for d in result.diagnostics] == ["skipped"]
    assert shop.run_logs() == []
    with shop.factory() as session, session.begin():
        from cartwheel.models import Cart

        shop.scope(session).update(Cart, cart, discount_codes=["spring20", "NOPE"])
    result = shop.checkout(cart)
    assert result.priced.line_discounts == D("20.00")
    assert {c.code: c.status.value for c in result.priced.codes} == {
        "spring20": "APPLIED",
        "NOPE": "NOT_FOUND",
    }


def test_invalid_variables_fail_only_that_function(shop: Shop, echo_wasm: bytes) -> None:
    cart = shop.cart([(0, 1)])
    function_id = shop.deploy("needs-vars", LINES, echo_wasm, FAILING_QUERY, variables=True)
    shop.instance(function_id, LINES, raw_variables='{"mode": null}')
    result = shop.checkout(cart)
    assert result.diagnostics[0].error_code == "INVALID_VARIABLE_VALUE"
    (log,) = shop.run_logs()
    assert (log.error_code, log.variables) == (
        "INVALID_VARIABLE_VALUE",
        {"namespace": "test", "key": "vars", "value": '{"mode": null}'},
    )


def test_many_instances_of_one_target_run_in_parallel_and_apply_in_order(
    shop: Shop, echo_wasm: bytes
) -> None:
    cart = shop.cart([(2, 1)])
    (l1,) = cart_lines(shop, cart)
    function_id = shop.deploy("echo-many", LINES, echo_wasm, echo_query(LINES))
    for pct in ("5", "30", "10", "30", "1"):
        shop.instance(
            function_id, LINES, [product({"percentage": {"value": pct}}, l1, message=pct)]
        )
    result = shop.checkout(cart)
    # Non-combinable: the best one wins; of the two 30 % the earlier instance.
    (applied,) = result.priced.discounts
    assert (applied.amount, applied.message) == (D("30.00"), "30")
    assert applied.instance_id == result.diagnostics[1].instance_id
    assert len(shop.run_logs()) == 5


def test_cart_transform_changes_what_discounts_see(shop: Shop, echo_wasm: bytes) -> None:
    cart = shop.cart([(0, 2)])  # 2 × 20.00
    (l1,) = cart_lines(shop, cart)
    update = {
        "lineUpdate": {
            "cartLineId": l1,
            "price": {"adjustment": {"fixedPricePerUnit": {"amount": "12.00"}}},
        }
    }
    shop.echo("cart.transform.run", [update], echo_wasm)
    shop.echo(LINES, [product({"percentage": {"value": "50"}}, l1)], echo_wasm)
    result = shop.checkout(cart)
    assert result.priced.subtotal == D("24.00")
    assert result.priced.line_discounts == D("12.00")


def test_registry_cache_follows_every_change(shop: Shop, echo_wasm: bytes) -> None:
    cart = shop.cart([(2, 1)])  # 100.00
    (l1,) = cart_lines(shop, cart)
    instance_id = shop.echo(LINES, [product({"percentage": {"value": "10"}}, l1)], echo_wasm)
    assert shop.checkout(cart).priced.line_discounts == D("10.00")
    assert shop.checkout(cart).priced.line_discounts == D("10.00")  # served from the cache
    ops = {"operations": [product({"percentage": {"value": "25"}}, l1)]}
    with shop.factory() as session, session.begin():
        scope = shop.scope(session)
        instance = scope.get(FunctionInstance, instance_id)
        scope.set_metafield(instance, "test", "ops", "json", orjson.dumps(ops).decode())
    assert shop.checkout(cart).priced.line_discounts == D("25.00")  # configuration changed
    with shop.factory() as session, session.begin():
        shop.scope(session).update(FunctionInstance, instance_id, enabled=False)
    assert shop.checkout(cart).priced.line_discounts == D("0.00")  # disabled
    with shop.factory() as session, session.begin():
        shop.scope(session).update(FunctionInstance, instance_id, enabled=True)
    assert shop.checkout(cart).priced.line_discounts == D("25.00")  # enabled again
