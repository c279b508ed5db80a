"""The Function API registry and the input schemas' fact helpers."""

from __future__ import annotations

import pytest
from graphql import build_schema, get_named_type

from functions_sdk.apis import TARGETS, UnknownTargetError, get_target
from functions_sdk.apis.inputs import (
    METAFIELD_VALUE_BYTES_LIMIT,
    find_attribute,
    find_metafield,
    has_tags,
    in_collections,
    metafield_json_value,
    selected_delivery_option,
)
from functions_sdk.limits import Limits
from functions_sdk.snapshot import Metafield


def test_targets_are_in_checkout_order() -> None:
    assert [t.name for t in TARGETS] == [
        "cart.transform.run",
        "cart.lines.discounts.generate.run",
        "cart.delivery-options.transform.run",
        "cart.delivery-options.discounts.generate.run",
        "cart.payment-methods.transform.run",
        "cart.validations.generate.run",
    ]
    assert [t.order for t in TARGETS] == list(range(len(TARGETS)))
    assert all(t.limits == Limits() for t in TARGETS)


def test_get_target_and_unknown_target() -> None:
    assert get_target("cart.validations.generate.run").owner_field == "validation"
    with pytest.raises(UnknownTargetError) as info:
        get_target("purchase.product-discount.run")
    assert info.value.code == "UNKNOWN_TARGET"
    assert "cart.lines.discounts.generate.run" in info.value.message


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_each_input_schema_has_its_owner_and_the_shared_roots(target: object) -> None:
    from functions_sdk.apis import Target

    assert isinstance(target, Target)
    root = target.graphql_schema.query_type
    assert root is not None
    assert root.name == "Input"
    assert {"cart", "shop", "localization", "presentmentCurrencyRate"} <= set(root.fields)
    owner = root.fields[target.owner_field]
    assert str(owner.type).endswith("!")
    assert get_named_type(owner.type).fields["metafield"]  # type: ignore[union-attr]
    others = {
        "discount",
        "deliveryCustomization",
        "paymentCustomization",
        "validation",
        "cartTransform",
    } - {target.owner_field}
    assert not others & set(root.fields)
    assert ("paymentMethods" in root.fields) == (target.owner_field == "paymentCustomization")
    assert ("enteredDiscountCodes" in root.fields) == (target.owner_field == "discount")
    # The SDL is self-contained: it rebuilds into an equivalent schema.
    rebuilt = build_schema(target.input_sdl())
    assert set(rebuilt.type_map) == set(target.graphql_schema.type_map)
    # The output schema is the output engineer's, found by target name.
    assert target.output_schema.mutation_type is not None
    assert target.output_sdl()


def test_shopify_shapes() -> None:
    sdl = get_target("cart.lines.discounts.generate.run").input_sdl()
    for line in (
        "amount: Decimal!",
        "currencyCode: CurrencyCode!",
        "union Merchandise = ProductVariant | CustomProduct",
        "hasAnyTag(",
        "tags: [String!] = []",
        "ids: [ID!] = []",
        "hasTags(",
        "): [HasTagResponse!]!",
        "inCollections(",
        "metafield(\n    key: String!",
        "discountClasses: [DiscountClass!]!",
        "compareAtAmountPerQuantity: MoneyV2",
        "selectedDeliveryOption: CartDeliveryOption",
        "deliveryMethodType: DeliveryMethod!",
        "triggeringDiscountCode: String",
        "isoCode: CountryCode!",
    ):
        assert line in sdl, line


def _mf(value: str, type_: str = "json", ns: str = "custom", key: str = "k") -> Metafield:
    return {"namespace": ns, "key": key, "type": type_, "value": value}


def test_find_metafield_matches_namespace_and_key_and_hides_oversized_values() -> None:
    small, other, app = _mf("1"), _mf("2", ns="other"), _mf("3", ns="$app")
    assert find_metafield([other, small], "custom", "k") is small
    assert find_metafield([other, small, app], None, "k") is app
    assert find_metafield([small], "custom", "missing") is None
    at_limit = _mf("x" * METAFIELD_VALUE_BYTES_LIMIT)
    assert find_metafield([at_limit], "custom", "k") is at_limit
    # 2,501 characters of 4 bytes each: over the byte limit though short in characters.
    assert find_metafield([_mf("😀" * 2501)], "custom", "k") is None


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("json", '{"a": [1, 2.5]}', {"a": [1, 2.5]}),
        ("json", "null", None),
        ("json", "{oops", "{oops"),
        ("list.single_line_text_field", '["a", "b"]', ["a", "b"]),
        (
            "money",
            '{"amount": "5.00", "currency_code": "USD"}',
            {"amount": "5.00", "currency_code": "USD"},
        ),
        ("number_integer", "42", 42),
        ("number_integer", "4.2", "4.2"),
        ("number_decimal", "0.10", "0.10"),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("boolean", "yes", "yes"),
        ("single_line_text_field", "hi", "hi"),
        ("date", "2026-11-21", "2026-11-21"),
    ],
)
def test_metafield_json_value_by_type(type_: str, value: str, expected: object) -> None:
    assert metafield_json_value(_mf(value, type_)) == expected


def test_membership_and_lookup_helpers() -> None:
    assert has_tags(["a", "b"], ["b", "c", "b"]) == [
        {"tag": "b", "hasTag": True},
        {"tag": "c", "hasTag": False},
        {"tag": "b", "hasTag": True},
    ]
    assert has_tags(["a"], None) == []
    assert in_collections(["gid://x/1"], ["gid://x/1"]) == [
        {"collectionId": "gid://x/1", "isMember": True}
    ]
    attrs = [{"key": "a", "value": None}, {"key": "a", "value": "second"}]
    assert find_attribute(attrs, "a") is attrs[0]  # type: ignore[arg-type]
    assert find_attribute(attrs, "b") is None  # type: ignore[arg-type]
    option = {
        "handle": "std",
        "title": None,
        "cost": {"amount": "1.00", "currencyCode": "USD"},
        "deliveryMethodType": "SHIPPING",
    }
    group = {
        "id": "g",
        "deliveryAddress": None,
        "selectedDeliveryOption": {"handle": "std"},
        "deliveryOptions": [option],
    }
    assert selected_delivery_option(group) is option  # type: ignore[arg-type]
    group["selectedDeliveryOption"] = {"handle": "gone"}
    assert selected_delivery_option(group) is None  # type: ignore[arg-type]
    group["selectedDeliveryOption"] = None
    assert selected_delivery_option(group) is None  # type: ignore[arg-type]
