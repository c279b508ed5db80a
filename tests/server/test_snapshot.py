"""Snapshot loading: the exact `functions_sdk.snapshot` format, built from the database in
a number of SQL statements that does not grow with the cart (1, 20 and 200 lines)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from cartwheel.demo import create_cart, seed_demo
from cartwheel.errors import NotFoundError
from cartwheel.models import (
    Cart,
    Collection,
    CollectionMembership,
    Customer,
    DeliveryOption,
    Metafield,
    MetafieldOwnerType,
    MetafieldType,
    PaymentMethod,
    Product,
    ProductVariant,
)
from cartwheel.snapshot import load_snapshot
from cartwheel.tenancy import ShopScope, create_shop

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "examples" / "carts" / "small.json"

SNAPSHOT_STATEMENTS = 6
"""cart+shop+customer (and change stamps), lines+variants+products, memberships,
metafields, delivery options, payment methods (see cartwheel/snapshot.py)."""

CACHED_SNAPSHOT_STATEMENTS = 4
"""The same while the shop's delivery options and payment methods are unchanged."""


@contextmanager
def count_statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements the session's connection executes inside the block."""
    statements: list[str] = []
    connection = session.connection()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def _shop_with_catalog(session: Session, products: int) -> tuple[ShopScope, list[int], Customer]:
    shop = create_shop(session, handle="big", name="Big", timezone="Europe/Paris")
    scope = ShopScope(session, shop.id)
    scope.set_metafield(shop, "cartwheel", "config", MetafieldType.JSON, '{"x": 1}')
    collections = [scope.create(Collection, handle=f"c{i}", title=f"C{i}") for i in range(3)]
    created = scope.create_many(
        Product,
        [
            {"handle": f"p{i}", "title": f"Product {i}", "tags": ["t", f"t{i % 5}"]}
            for i in range(products)
        ],
    )
    variants = scope.create_many(
        ProductVariant,
        [
            {
                "product_id": product.id,
                "title": f"V{i}",
                "sku": f"SKU-{i}",
                "price": Decimal(f"{10 + i}.25"),
                "compare_at_price": Decimal(f"{20 + i}.00") if i % 2 else None,
                "currency_code": "USD",
            }
            for i, product in enumerate(created)
        ],
    )
    scope.create_many(
        CollectionMembership,
        [
            {"collection_id": collections[i % 3].id, "product_id": product.id}
            for i, product in enumerate(created)
        ],
    )
    metafield = {"namespace": "custom", "key": "n", "type": MetafieldType.NUMBER_INTEGER}
    scope.create_many(
        Metafield,
        [
            {
                **metafield,
                "owner_type": MetafieldOwnerType.PRODUCT,
                "owner_id": p.id,
                "value": str(i),
            }
            for i, p in enumerate(created)
        ]
        + [
            {
                **metafield,
                "owner_type": MetafieldOwnerType.PRODUCT_VARIANT,
                "owner_id": v.id,
                "value": "1",
            }
            for v in variants
        ],
    )
    variant_ids = [v.id for v in variants]
    customer = scope.create(
        Customer,
        email="vip@example.com",
        first_name="Vera",
        last_name="Ip",
        tags=["vip"],
        number_of_orders=3,
        amount_spent=Decimal("300.5"),
        amount_spent_currency="USD",
    )
    scope.set_metafield(customer, "custom", "tier", MetafieldType.SINGLE_LINE_TEXT_FIELD, "gold")
    for i, handle in enumerate(("standard", "express")):
        scope.create(
            DeliveryOption,
            handle=handle,
            title=handle.title(),
            cost=Decimal(5 * (i + 1)),
            currency_code="USD",
            position=i,
        )
    scope.create(PaymentMethod, name="Card")
    scope.create(PaymentMethod, name="Cash", active=False)
    return scope, variant_ids, customer


def test_statement_count_is_constant_across_cart_sizes(any_db_session: Session) -> None:
    scope, variant_ids, customer = _shop_with_catalog(any_db_session, 200)
    counts = {}
    for size in (1, 20, 200):
        cart = create_cart(
            scope,
            [(v, 1 + i % 3) for i, v in enumerate(variant_ids[:size])],
            customer=customer,
            delivery_address={"countryCode": "FR", "provinceCode": None, "city": "Paris"},
        )
        any_db_session.expunge_all()  # nothing cached: every fact comes from SQL
        with count_statements(any_db_session) as statements:
            snapshot = load_snapshot(ShopScope(any_db_session, scope.shop_id), cart.id)
        assert len(snapshot["cart"]["lines"]) == size
        assert all(
            line["merchandise"]["product"]["collectionIds"] for line in snapshot["cart"]["lines"]
        )
        counts[size] = len(statements)
    # the first load reads the shop's delivery options and payment methods; they are
    # then cached behind their change stamp
    assert counts == {
        1: SNAPSHOT_STATEMENTS,
        20: CACHED_SNAPSHOT_STATEMENTS,
        200: CACHED_SNAPSHOT_STATEMENTS,
    }


def test_cached_delivery_options_and_payment_methods_follow_every_change(
    any_db_session: Session,
) -> None:
    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)

    def lists() -> tuple[list[tuple[str, str]], list[str]]:
        snapshot = load_snapshot(scope, demo.cart_id)
        (group,) = snapshot["cart"]["deliveryGroups"]
        options = [(o["handle"], o["cost"]["amount"]) for o in group["deliveryOptions"]]
        return options, [m["name"] for m in snapshot["paymentMethods"]]

    options, methods = lists()
    assert lists() == (options, methods)  # served from the cache
    with count_statements(any_db_session) as statements:
        lists()
    assert len(statements) == CACHED_SNAPSHOT_STATEMENTS
    drone = scope.create(
        DeliveryOption, handle="drone", title="Drone", cost=Decimal(9), currency_code="USD"
    )
    assert dict(lists()[0])["drone"] == "9.00"  # created
    scope.update(drone, cost=Decimal(7))
    assert dict(lists()[0])["drone"] == "7.00"  # updated
    any_db_session.execute(
        scope.update_statement(DeliveryOption)
        .where(DeliveryOption.id == drone.id)
        .values(title="Drone!", cost=Decimal(5))
    )
    assert dict(lists()[0])["drone"] == "5.00"  # updated by a set-based statement
    scope.delete(drone)
    assert lists()[0] == options  # deleted
    first = scope.list(PaymentMethod, order_by=(PaymentMethod.position, PaymentMethod.id))[0]
    scope.update(first, active=False)
    assert lists()[1] == methods[1:]  # deactivated
    scope.update(first, name="Card", active=True)
    assert lists()[1] == ["Card", *methods[1:]]  # renamed and reactivated
    scope.create(PaymentMethod, name="Invoice", position=99)
    assert lists()[1] == ["Card", *methods[1:], "Invoice"]  # created


def test_snapshot_of_the_demo_cart(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)
    now = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
    snapshot = load_snapshot(scope, f"gid://cartwheel/Cart/{demo.cart_id}", now=now)

    assert snapshot["version"] == 1
    assert snapshot["shop"]["localTime"] == "2026-11-21T10:30:00"  # America/Toronto
    assert snapshot["localization"] == {"country": "CA", "language": "EN"}
    cart = snapshot["cart"]
    assert cart["id"] == f"gid://cartwheel/Cart/{demo.cart_id}"
    assert cart["attributes"][0] == {"key": "channel", "value": "online"}
    lines = cart["lines"]
    assert [line["quantity"] for line in lines] == [2, 1, 1]
    tee = lines[0]
    assert tee["cost"]["amountPerQuantity"] == {"amount": "39.75", "currencyCode": "USD"}
    assert tee["cost"]["subtotalAmount"] == {"amount": "79.50", "currencyCode": "USD"}
    assert tee["merchandise"]["__typename"] == "ProductVariant"
    assert tee["merchandise"]["product"]["tags"] == ["cotton", "organic", "summer"]
    assert len(tee["merchandise"]["product"]["collectionIds"]) == 2
    assert lines[1]["cost"]["compareAtAmountPerQuantity"] == {
        "amount": "120.00",
        "currencyCode": "USD",
    }
    assert cart["cost"]["subtotalAmount"] == {"amount": "192.50", "currencyCode": "USD"}
    assert cart["cost"]["totalTaxAmount"] is None
    buyer = cart["buyerIdentity"]
    assert buyer is not None
    assert buyer["isAuthenticated"] is True
    customer = buyer["customer"]
    assert customer is not None
    assert customer["displayName"] == "Ada Lovelace"
    assert "vip" in customer["tags"]
    assert customer["amountSpent"] == {"amount": "1840.55", "currencyCode": "USD"}
    assert {m["key"] for m in customer["metafields"]} == {"tier", "points"}
    (group,) = cart["deliveryGroups"]
    assert group["selectedDeliveryOption"] == {"handle": "standard"}
    assert [o["handle"] for o in group["deliveryOptions"]] == [
        "standard",
        "express",
        "local",
        "pickup",
    ]
    assert group["deliveryOptions"][3]["deliveryMethodType"] == "PICK_UP"
    assert group["deliveryAddress"] == {
        "countryCode": "CA",
        "provinceCode": "ON",
        "city": "Toronto",
        "zip": "M5V 2T6",
    }
    assert [m["name"] for m in snapshot["paymentMethods"]] == [
        "Credit card",
        "PayPal",
        "Cash on Delivery (COD)",
        "Gift card",
    ]
    assert snapshot["paymentMethods"][0]["id"].startswith(
        "gid://cartwheel/PaymentCustomizationPaymentMethod/"
    )
    assert snapshot["enteredDiscountCodes"] == [{"code": "WELCOME10", "rejectable": True}]
    json.dumps(snapshot)  # plain JSON, no Decimal or datetime left


def _shape(value: Any) -> Any:
    """The key structure of a JSON document (lists by their first element)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def _merge_null(a: Any, b: Any) -> bool:
    """Same shape, treating null and empty lists as compatible with anything."""
    if a is None or b is None or a == [] or b == []:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_merge_null(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return _merge_null(a[0], b[0])
    return False


def test_same_shape_as_the_sdk_fixture(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    snapshot = load_snapshot(ShopScope(any_db_session, demo.shop_id), demo.cart_id)
    fixture = json.loads(FIXTURE.read_text())
    fixture.pop("triggeringDiscountCode", None)  # per function instance, set by checkout
    assert _merge_null(_shape(dict(snapshot)), _shape(fixture))


def test_cart_of_another_shop_is_not_found(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    other = create_shop(any_db_session, handle="other", name="Other")
    with pytest.raises(NotFoundError):
        load_snapshot(ShopScope(any_db_session, other.id), demo.cart_id)
    with pytest.raises(NotFoundError):
        load_snapshot(ShopScope(any_db_session, other.id), f"gid://cartwheel/Cart/{demo.cart_id}")


def test_anonymous_digital_cart(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)
    gift = scope.list(Product, Product.handle == "gift-card")[0]
    cart = create_cart(scope, [(gift.variants[0].id, 1)])
    snapshot = load_snapshot(scope, cart.id)
    assert snapshot["cart"]["buyerIdentity"] is None
    # nothing to ship: no delivery group, as in Shopify
    assert snapshot["cart"]["deliveryGroups"] == []
    assert snapshot["cart"]["lines"][0]["merchandise"]["requiresShipping"] is False
    assert snapshot["cart"]["lines"][0]["merchandise"]["product"]["isGiftCard"] is True
    assert snapshot["localization"]["country"] == "CA"  # the shop's, without an address


def test_empty_cart_and_unknown_selected_option(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)
    cart = create_cart(scope, [], buyer_email="guest@example.com")
    snapshot = load_snapshot(scope, cart.id)
    assert snapshot["cart"]["lines"] == []
    assert snapshot["cart"]["cost"]["subtotalAmount"] == {"amount": "0.00", "currencyCode": "USD"}
    assert snapshot["cart"]["buyerIdentity"] == {
        "email": "guest@example.com",
        "phone": None,
        "isAuthenticated": False,
        "customer": None,
    }
    full = scope.get(Cart, demo.cart_id)
    scope.update(full, selected_delivery_option_handle="teleport")
    (group,) = load_snapshot(scope, full.id)["cart"]["deliveryGroups"]
    assert group["selectedDeliveryOption"] is None


def test_inactive_options_and_other_shops_data_are_left_out(any_db_session: Session) -> None:
    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)
    other = ShopScope(any_db_session, create_shop(any_db_session, handle="o", name="O").id)
    other.create(PaymentMethod, name="Other shop's method")
    other.create(
        DeliveryOption, handle="drone", title="Drone", cost=Decimal(1), currency_code="USD"
    )
    scope.update(scope.list(PaymentMethod, PaymentMethod.name == "PayPal")[0], active=False)
    snapshot = load_snapshot(scope, demo.cart_id)
    names = [m["name"] for m in snapshot["paymentMethods"]]
    assert names == ["Credit card", "Cash on Delivery (COD)", "Gift card"]
    handles = [o["handle"] for o in snapshot["cart"]["deliveryGroups"][0]["deliveryOptions"]]
    assert "drone" not in handles
    counted = any_db_session.scalar(sa.select(sa.func.count()).select_from(PaymentMethod.__table__))
    assert counted == 5


def test_input_queries_run_on_a_loaded_snapshot(any_db_session: Session) -> None:
    """The contract with the SDK: the example discount's input query runs on a snapshot
    loaded from the database, and the compiled executor agrees with graphql-core's."""
    from functions_sdk.apis import get_target
    from functions_sdk.query import compile_query

    demo = seed_demo(any_db_session)
    scope = ShopScope(any_db_session, demo.shop_id)
    snapshot = load_snapshot(scope, demo.cart_id)
    query = compile_query(
        get_target("cart.lines.discounts.generate.run"),
        (ROOT / "examples" / "discount-function" / "input.graphql").read_text(),
    )
    sale = scope.list(Collection, Collection.handle == "sale")[0]
    variables = query.variables_from_metafield(
        json.dumps({"excludedCollectionIds": [sale.gid], "vipTags": ["vip"]})
    )
    owner = {"id": "gid://cartwheel/Discount/1", "metafields": [], "discountClasses": ["PRODUCT"]}
    result = json.loads(query.execute(snapshot, owner=owner, variables=variables))
    assert result == json.loads(query.execute_reference(snapshot, owner=owner, variables=variables))
    lines = result["cart"]["lines"]
    assert [line["quantity"] for line in lines] == [2, 1, 1]
    # the linen shirt is in the Sale collection, the others are not
    excluded = [line["merchandise"]["product"]["inAnyCollection"] for line in lines]
    assert excluded == [False, True, False]
    assert result["cart"]["buyerIdentity"]["customer"]["hasAnyTag"] is True
    assert lines[0]["cost"]["subtotalAmount"]["amount"] == "79.50"
