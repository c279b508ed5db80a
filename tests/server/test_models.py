"""The schema's behaviour on both backends: global ids, exact money, UTC timestamps,
str enums stored as their value, content addresses, cascades and constraints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cartwheel.errors import ConflictError, InvalidIdError, InvalidRequestError
from cartwheel.ids import decode_gid, encode_gid, parse_gid
from cartwheel.models import (
    Cart,
    CartLine,
    Customer,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
    Product,
    ProductVariant,
    RunLog,
    VersionStatus,
    version_digest,
)
from cartwheel.tenancy import ShopScope, create_shop


@pytest.fixture
def scope(any_db_session: Session) -> ShopScope:
    shop = create_shop(any_db_session, handle="models", name="Models")
    return ShopScope(any_db_session, shop.id)


def _function(scope: ShopScope) -> tuple[Function, FunctionVersion]:
    function = scope.create(
        Function,
        handle="volume",
        title="Volume discount",
        target="cart.lines.discounts.generate.run",
    )
    query = "query Input { cart { lines { id } } }"
    version = scope.create(
        FunctionVersion,
        function_id=function.id,
        content_sha256=version_digest("a" * 64, function.target, query),
        module_sha256="a" * 64,
        module_size=4,
        module_bytes=b"\0asm",
        target=function.target,
        input_query=query,
        input_variables_namespace="$app:volume",
        input_variables_key="config",
    )
    return function, version


# --- global ids ----------------------------------------------------------------------------


def test_gid_round_trip() -> None:
    gid = encode_gid("Product", 123)
    assert gid == "gid://cartwheel/Product/123"
    assert parse_gid(gid) == ("Product", 123)
    assert decode_gid(gid, "Product") == 123
    assert decode_gid(gid) == 123
    assert decode_gid(encode_gid("Cart", 2**63 - 1), "Cart") == 2**63 - 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "123",
        "gid://shopify/Product/1",
        "gid://cartwheel/Product/",
        "gid://cartwheel/Product/0",
        "gid://cartwheel/Product/01",
        "gid://cartwheel/Product/-1",
        "gid://cartwheel/product/1",
        "gid://cartwheel/Product/1/2",
        "gid://cartwheel/Product/1 ",
        f"gid://cartwheel/Product/{2**63}",
    ],
)
def test_malformed_gids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidIdError) as caught:
        decode_gid(bad)
    assert caught.value.code == "INVALID_ID"
    assert caught.value.http_status == 400
    assert "gid://cartwheel/" in caught.value.message


def test_a_gid_of_another_type_is_rejected() -> None:
    with pytest.raises(InvalidIdError, match="expects a 'Customer' id"):
        decode_gid("gid://cartwheel/Product/1", "Customer")


@pytest.mark.parametrize(("type_name", "id"), [("Product", 0), ("Product", -3), ("bad type", 1)])
def test_encoding_invalid_ids_is_a_programming_error(type_name: str, id: int) -> None:
    with pytest.raises(ValueError, match="global id"):
        encode_gid(type_name, id)


def test_records_expose_their_gid(scope: ShopScope) -> None:
    product = scope.create(Product, handle="p", title="P")
    assert product.gid == f"gid://cartwheel/Product/{product.id}"
    assert scope.shop.gid == f"gid://cartwheel/Shop/{scope.shop_id}"
    function, _ = _function(scope)
    for kind, type_name in [
        (InstanceKind.DISCOUNT, "Discount"),
        (InstanceKind.DELIVERY_CUSTOMIZATION, "DeliveryCustomization"),
        (InstanceKind.PAYMENT_CUSTOMIZATION, "PaymentCustomization"),
        (InstanceKind.VALIDATION, "Validation"),
        (InstanceKind.CART_TRANSFORM, "CartTransform"),
    ]:
        instance = scope.create(FunctionInstance, function_id=function.id, kind=kind, title="x")
        assert instance.gid == f"gid://cartwheel/{type_name}/{instance.id}"


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["19.99", "0.0001", "12345678901.2345", "-5.5", "0"])
def test_money_is_exact(scope: ShopScope, amount: str) -> None:
    product = scope.create(Product, handle="p", title="P")
    variant = scope.create(
        ProductVariant,
        product_id=product.id,
        price=Decimal(amount),
        compare_at_price=None,
        currency_code="USD",
    )
    scope.session.expire_all()
    stored = scope.get(ProductVariant, variant.id).price
    assert isinstance(stored, Decimal)
    assert stored == Decimal(amount)


def test_timestamps_are_utc_aware(scope: ShopScope) -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 21, 12, 0, tzinfo=paris)
    customer = scope.create(Customer, amount_spent_currency="USD", created_at=moment)
    scope.session.expire_all()
    stored = scope.get(Customer, customer.id)
    assert stored.created_at == moment
    assert stored.created_at.tzinfo == UTC
    assert stored.created_at.hour == 11
    assert stored.updated_at.tzinfo == UTC
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        scope.create(Customer, amount_spent_currency="USD", created_at=datetime(2026, 1, 1))


def test_json_lists_and_documents_round_trip(scope: ShopScope) -> None:
    cart = scope.create(
        Cart,
        currency_code="USD",
        attributes=[{"key": "gift", "value": None}, {"key": "note", "value": "é ✓"}],
        delivery_address={"countryCode": "FR", "zip": "75001"},
        discount_codes=["A", "B"],
    )
    scope.session.expire_all()
    stored = scope.get(Cart, cart.id)
    assert stored.attributes == [{"key": "gift", "value": None}, {"key": "note", "value": "é ✓"}]
    assert stored.delivery_address == {"countryCode": "FR", "zip": "75001"}
    assert stored.discount_codes == ["A", "B"]


def test_states_are_str_enums_stored_as_their_value(scope: ShopScope) -> None:
    _, version = _function(scope)
    assert version.status is VersionStatus.PENDING
    raw = scope.session.execute(
        sa.text("SELECT status FROM function_versions WHERE id = :id"), {"id": version.id}
    ).scalar_one()
    assert raw == "pending"
    scope.update(version, status=VersionStatus.READY, artifact_ref="cache/abc.cwasm")
    scope.session.expire_all()
    assert scope.get(FunctionVersion, version.id).status == "ready"


def test_version_digest_is_a_content_address() -> None:
    base = version_digest("a" * 64, "t", "{ q }", "ns", "key")
    assert base == version_digest("a" * 64, "t", "{ q }", "ns", "key")
    assert len(base) == 64
    assert base != version_digest("b" * 64, "t", "{ q }", "ns", "key")
    assert base != version_digest("a" * 64, "t2", "{ q }", "ns", "key")
    assert base != version_digest("a" * 64, "t", "{ q2 }", "ns", "key")
    assert base != version_digest("a" * 64, "t", "{ q }", "ns", "other")
    # parts are length-prefixed: moving a boundary changes the address
    assert version_digest("a", "bc", "") != version_digest("ab", "c", "")


def test_the_same_content_cannot_be_deployed_twice_to_a_function(scope: ShopScope) -> None:
    function, version = _function(scope)
    with pytest.raises(ConflictError):
        scope.create(
            FunctionVersion,
            function_id=function.id,
            content_sha256=version.content_sha256,
            module_sha256=version.module_sha256,
            module_size=4,
            target=function.target,
            input_query=version.input_query,
        )
    assert scope.count(FunctionVersion) == 1


def test_module_bytes_load_only_when_asked(scope: ShopScope) -> None:
    _, version = _function(scope)
    scope.session.expire_all()
    loaded = scope.get(FunctionVersion, version.id)
    assert "module_bytes" not in loaded.__dict__
    assert loaded.module_bytes == b"\0asm"


# --- relations ------------------------------------------------------------------------------


def test_active_version_pointer_and_cascades(scope: ShopScope) -> None:
    function, version = _function(scope)
    instance = scope.create(
        FunctionInstance,
        function_id=function.id,
        kind=InstanceKind.DISCOUNT,
        title="10% off",
        discount_classes=["PRODUCT"],
        combines_with_order_discounts=True,
    )
    assert instance.is_automatic
    assert instance.enabled
    assert not instance.combines_with_shipping_discounts
    scope.update(function, active_version_id=version.id)
    scope.session.expire_all()
    assert scope.get(Function, function.id).active_version is not None
    # deleting the active version leaves the function with nothing active
    scope.delete(FunctionVersion, version.id)
    scope.session.expire_all()
    assert scope.get(Function, function.id).active_version_id is None
    # deleting the function deletes its instances; run logs stay until retention
    scope.create(
        RunLog,
        function_id=function.id,
        version_id=version.id,
        instance_id=instance.id,
        target=function.target,
        status="success",
        input="{}",
        input_bytes=2,
        duration_ms=0.4,
        fuel_consumed=12_345,
        variables={"value": {"min": 2}, "namespace": "$app:volume", "key": "config"},
    )
    scope.delete(function)
    assert scope.count(FunctionInstance) == 0
    (log,) = scope.list(RunLog)
    assert log.variables == {"value": {"min": 2}, "namespace": "$app:volume", "key": "config"}


def test_cart_line_quantity_must_be_positive(scope: ShopScope) -> None:
    product = scope.create(Product, handle="p", title="P")
    variant = scope.create(
        ProductVariant, product_id=product.id, price=Decimal(1), currency_code="USD"
    )
    cart = scope.create(Cart, currency_code="USD")
    with pytest.raises(InvalidRequestError) as caught:
        scope.create(CartLine, cart_id=cart.id, variant_id=variant.id, quantity=0)
    assert caught.value.code == "BAD_REQUEST"
    # the transaction is still usable
    assert scope.create(CartLine, cart_id=cart.id, variant_id=variant.id, quantity=2).id > 0


def test_deleting_a_customer_keeps_their_carts(scope: ShopScope) -> None:
    customer = scope.create(Customer, email="c@example.com", amount_spent_currency="USD")
    cart = scope.create(Cart, currency_code="USD", customer_id=customer.id)
    scope.delete(customer)
    scope.session.expire_all()
    assert scope.get(Cart, cart.id).customer_id is None
