"""Apply semantics: exact money for every discount shape, combinations, codes,
customizations, validation and cart transforms."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cartwheel.apply import (
    CheckoutState,
    CodeStatus,
    CombinesWith,
    DiscountClass,
    DiscountSource,
    PricedCheckout,
    apply_cart_transform,
    apply_delivery_customization,
    apply_payment_customization,
    apply_validation,
    collect_discounts,
    finalize,
)
from functions_sdk.apis.outputs import Operation
from functions_sdk.output import validate_output
from functions_sdk.snapshot import Snapshot

D = Decimal
NO_COMBINATION = CombinesWith()


def snapshot(
    lines: list[tuple[str, int]],
    *,
    currency: str = "USD",
    delivery: list[tuple[str, str]] = (("standard", "5.00"), ("express", "15.00")),  # type: ignore[assignment]
    codes: list[str] = (),  # type: ignore[assignment]
) -> Snapshot:
    """A cart with lines (unit price, quantity) numbered gid://cartwheel/CartLine/1..n."""
    money = lambda a: {"amount": a, "currencyCode": currency}  # noqa: E731
    return {
        "version": 1,
        "shop": {
            "id": "gid://cartwheel/Shop/1",
            "currencyCode": currency,
            "localTime": "2026-01-01T10:00:00",
            "metafields": [],
        },
        "localization": {"country": "US", "language": "EN"},
        "presentmentCurrencyRate": "1.0",
        "cart": {
            "id": "gid://cartwheel/Cart/1",
            "attributes": [],
            "buyerIdentity": None,
            "lines": [
                {
                    "id": f"gid://cartwheel/CartLine/{n}",
                    "quantity": qty,
                    "attributes": [],
                    "cost": {
                        "amountPerQuantity": money(price),
                        "compareAtAmountPerQuantity": None,
                        "subtotalAmount": money(str(D(price) * qty)),
                        "totalAmount": money(str(D(price) * qty)),
                    },
                    "merchandise": {
                        "__typename": "ProductVariant",
                        "id": f"gid://cartwheel/ProductVariant/{n}",
                        "sku": f"SKU-{n}",
                        "title": f"Variant {n}",
                        "requiresShipping": True,
                        "metafields": [],
                        "product": {
                            "id": f"gid://cartwheel/Product/{n}",
                            "handle": f"p{n}",
                            "title": f"Product {n}",
                            "vendor": None,
                            "productType": None,
                            "isGiftCard": False,
                            "tags": [],
                            "collectionIds": [],
                            "metafields": [],
                        },
                    },
                }
                for n, (price, qty) in enumerate(lines, start=1)
            ],
            "cost": {
                "subtotalAmount": money("0"),
                "totalAmount": money("0"),
                "totalTaxAmount": None,
            },
            "deliveryGroups": [
                {
                    "id": "gid://cartwheel/DeliveryGroup/1",
                    "deliveryAddress": {
                        "countryCode": "US",
                        "provinceCode": "NY",
                        "city": "NYC",
                        "zip": "10001",
                    },
                    "selectedDeliveryOption": {"handle": delivery[0][0]} if delivery else None,
                    "deliveryOptions": [
                        {
                            "handle": h,
                            "title": h.title(),
                            "cost": money(c),
                            "deliveryMethodType": "SHIPPING",
                        }
                        for h, c in delivery
                    ],
                }
            ],
        },
        "paymentMethods": [
            {"id": "gid://cartwheel/PaymentMethod/1", "name": "Card"},
            {"id": "gid://cartwheel/PaymentMethod/2", "name": "Cash on delivery"},
            {"id": "gid://cartwheel/PaymentMethod/3", "name": "Invoice"},
        ],
        "enteredDiscountCodes": [{"code": c, "rejectable": True} for c in codes],
    }  # type: ignore[typeddict-item]


def line(n: int) -> str:
    return f"gid://cartwheel/CartLine/{n}"


def pct(
    value: str, *lines_: int, message: str = "pct", quantity: int | None = None
) -> dict[str, Any]:
    return {
        "message": message,
        "targets": [
            {"cartLine": {"id": line(n), **({"quantity": quantity} if quantity else {})}}
            for n in lines_
        ],
        "value": {"percentage": {"value": value}},
    }


def fixed(amount: str, *lines_: int, each: bool = False, message: str = "fixed") -> dict[str, Any]:
    return {
        "message": message,
        "targets": [{"cartLine": {"id": line(n)}} for n in lines_],
        "value": {"fixedAmount": {"amount": amount, "appliesToEachItem": each}},
    }


def order(value: dict[str, Any], excluded: tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "targets": [{"orderSubtotal": {"excludedCartLineIds": [line(n) for n in excluded]}}],
        "value": value,
        **extra,
    }


def product_op(*candidates: dict[str, Any], strategy: str = "FIRST") -> dict[str, Any]:
    return {"productDiscountsAdd": {"candidates": list(candidates), "selectionStrategy": strategy}}


def order_op(*candidates: dict[str, Any], strategy: str = "FIRST") -> dict[str, Any]:
    return {"orderDiscountsAdd": {"candidates": list(candidates), "selectionStrategy": strategy}}


def source(
    n: int,
    *,
    classes: tuple[DiscountClass, ...] = tuple(DiscountClass),
    combines: CombinesWith = NO_COMBINATION,
    code: str | None = None,
) -> DiscountSource:
    return DiscountSource(f"d{n}", f"Discount {n}", n, frozenset(classes), combines, code)


def price(
    snap: Snapshot, *functions: tuple[DiscountSource, list[dict[str, Any]]]
) -> PricedCheckout:
    state = CheckoutState.from_snapshot(snap)
    for src, ops in functions:
        target = (
            "cart.delivery-options.discounts.generate.run"
            if any("deliveryDiscountsAdd" in op for op in ops)
            else "cart.lines.discounts.generate.run"
        )
        collect_discounts(state, ops_of(target, ops), src)
    return finalize(state)


def ops_of(target: str, operations: list[dict[str, Any]]) -> tuple[Operation, ...]:
    """Typed operations, through the same validation checkout uses."""
    return validate_output(target, {"operations": operations}).operations


def assert_consistent(result: PricedCheckout) -> None:
    """Line allocations add up to the line and order discounts; nothing below zero."""
    allocated = sum((a.amount for ln in result.lines for a in ln.allocations), D(0))
    assert allocated == result.line_discounts + result.order_discounts
    assert all(ln.total >= 0 for ln in result.lines)
    assert result.total == (
        sum((ln.total for ln in result.lines), D(0)) + result.shipping - result.shipping_discounts
    )


def test_no_functions_prices_the_cart() -> None:
    result = price(snapshot([("19.99", 2), ("5.00", 1)]))
    assert (result.subtotal, result.shipping, result.total) == (D("44.98"), D("5.00"), D("49.98"))
    assert not result.blocked


def test_percentage_on_lines_rounds_per_line() -> None:
    # 15% of 39.98 = 5.997 → 6.00; 15% of 3.33 = 0.4995 → 0.50
    result = price(
        snapshot([("19.99", 2), ("3.33", 1)]), (source(1), [product_op(pct("15", 1, 2))])
    )
    assert [a.amount for ln in result.lines for a in ln.allocations] == [D("6.00"), D("0.50")]
    assert result.line_discounts == D("6.50")
    assert result.total == D("43.31") - D("6.50") + D("5.00")
    assert_consistent(result)


def test_percentage_limited_to_a_quantity() -> None:
    result = price(snapshot([("10.00", 5)]), (source(1), [product_op(pct("50", 1, quantity=2))]))
    assert result.line_discounts == D("10.00")


def test_fixed_amount_split_across_targets_and_per_item() -> None:
    snap = snapshot([("10.00", 1), ("20.00", 1), ("0.50", 3)])
    split = price(snap, (source(1), [product_op(fixed("10.00", 1, 2))]))
    assert [a.amount for ln in split.lines for a in ln.allocations] == [D("3.33"), D("6.67")]
    each = price(snap, (source(1), [product_op(fixed("1.00", 1, 3, each=True))]))
    # 1.00 off line 1 (qty 1); line 3 is 3 × 0.50 = 1.50, 3 × 1.00 capped at 1.50.
    assert [a.amount for ln in each.lines for a in ln.allocations] == [D("1.00"), D("1.50")]
    assert each.lines[2].total == D("0.00")
    assert_consistent(each)


def test_no_price_below_zero() -> None:
    snap = snapshot([("4.00", 1)])
    result = price(snap, (source(1), [product_op(fixed("10.00", 1))]))
    assert result.lines[0].total == D("0.00")
    result = price(snap, (source(1), [order_op(order({"fixedAmount": {"amount": "100"}}))]))
    assert result.order_discounts == D("4.00")
    assert result.total == D("5.00")  # shipping only


def test_first_and_maximum_strategies() -> None:
    snap = snapshot([("100.00", 1)])
    candidates = (pct("10", 1, message="ten"), fixed("25.00", 1, message="25 off"), pct("20", 1))
    first = price(snap, (source(1), [product_op(*candidates, strategy="FIRST")]))
    assert first.line_discounts == D("10.00")
    assert first.discounts[0].message == "ten"
    maximum = price(snap, (source(1), [product_op(*candidates, strategy="MAXIMUM")]))
    assert maximum.line_discounts == D("25.00")
    assert maximum.discounts[0].message == "25 off"


def test_order_discount_excludes_lines_and_allocates_exactly() -> None:
    snap = snapshot([("10.00", 1), ("10.00", 1), ("10.00", 1), ("50.00", 1)])
    result = price(
        snap, (source(1), [order_op(order({"fixedAmount": {"amount": "10.00"}}, excluded=(4,)))])
    )
    allocations = [[a.amount for a in ln.allocations] for ln in result.lines]
    assert allocations == [[D("3.34")], [D("3.33")], [D("3.33")], []]
    assert result.order_discounts == D("10.00")
    assert_consistent(result)


def test_non_combinable_discounts_best_total_wins() -> None:
    snap = snapshot([("100.00", 1), ("50.00", 1)])
    # d1: 10% on line 1 (10.00); d2: 15 off the order (15.00). They do not combine.
    result = price(
        snap,
        (source(1, classes=(DiscountClass.PRODUCT,)), [product_op(pct("10", 1))]),
        (
            source(2, classes=(DiscountClass.ORDER,)),
            [order_op(order({"fixedAmount": {"amount": "15"}}))],
        ),
    )
    assert [d.instance_id for d in result.discounts] == ["d2"]
    assert result.total == D("150.00") - D("15.00") + D("5.00")


def test_combinable_discounts_stack_order_on_discounted_lines() -> None:
    snap = snapshot([("100.00", 1), ("50.00", 1)])
    both = CombinesWith(order_discounts=True, product_discounts=True)
    result = price(
        snap,
        (source(1, classes=(DiscountClass.PRODUCT,), combines=both), [product_op(pct("10", 1))]),
        (
            source(2, classes=(DiscountClass.ORDER,), combines=both),
            [order_op(order({"percentage": {"value": "10"}}))],
        ),
    )
    # product: 10.00 off line 1 → 90 + 50 = 140; order 10% of 140 = 14.00 allocated 9.00 / 5.00
    assert result.line_discounts == D("10.00")
    assert result.order_discounts == D("14.00")
    assert [[a.amount for a in ln.allocations] for ln in result.lines] == [
        [D("10.00"), D("9.00")],
        [D("5.00")],
    ]
    assert result.total == D("126.00") + D("5.00")
    assert_consistent(result)


def test_combination_needs_both_sides() -> None:
    snap = snapshot([("100.00", 1)])
    result = price(
        snap,
        (source(1, combines=CombinesWith(order_discounts=True)), [product_op(pct("10", 1))]),
        # d2 does not accept product discounts beside it: only the better one applies.
        (source(2), [order_op(order({"percentage": {"value": "5"}}))]),
    )
    assert [d.instance_id for d in result.discounts] == ["d1"]


def test_product_discounts_on_one_line_do_not_stack_best_applies() -> None:
    snap = snapshot([("100.00", 1), ("10.00", 1)])
    combines = CombinesWith(product_discounts=True)
    result = price(
        snap,
        (source(1, combines=combines), [product_op(pct("10", 1, 2))]),
        (source(2, combines=combines), [product_op(pct("30", 1))]),
    )
    assert [[a.instance_id for a in ln.allocations] for ln in result.lines] == [["d2"], ["d1"]]
    assert result.line_discounts == D("31.00")


def test_delivery_discount_all_strategy_and_cap() -> None:
    snap = snapshot([("10.00", 1)])
    op = {
        "deliveryDiscountsAdd": {
            "selectionStrategy": "ALL",
            "candidates": [
                {
                    "targets": [{"deliveryOption": {"handle": "standard"}}],
                    "value": {"percentage": {"value": "100"}},
                },
                {
                    "targets": [{"deliveryOption": {"handle": "express"}}],
                    "value": {"fixedAmount": {"amount": "5"}},
                },
            ],
        }
    }
    result = price(snap, (source(1, classes=(DiscountClass.SHIPPING,)), [op]))
    options = {o.key: o for o in result.groups[0].options}
    assert (options["standard"].total, options["express"].total) == (D("0.00"), D("10.00"))
    assert result.shipping_discounts == D("5.00")  # standard is selected
    assert result.total == D("10.00")


def test_zero_decimal_currency_jpy() -> None:
    snap = snapshot([("1999", 3), ("333", 1)], currency="JPY", delivery=[("standard", "500")])
    both = CombinesWith(order_discounts=True, product_discounts=True)
    result = price(
        snap,
        (source(1, combines=both), [product_op(pct("15", 1))]),  # 15% of 5997 = 899.55 → 900
        (source(2, combines=both), [order_op(order({"fixedAmount": {"amount": "100"}}))]),
    )
    assert result.line_discounts == D("900")
    # order 100 over remaining 5097 and 333 → 93.87 / 6.13 → 94 / 6
    assert [[a.amount for a in ln.allocations] for ln in result.lines] == [
        [D("900"), D("94")],
        [D("6")],
    ]
    assert result.total == D("6330") - D("1000") + D("500")
    assert str(result.total) == "5830"
    assert_consistent(result)


def test_three_decimal_currency_kwd() -> None:
    snap = snapshot([("1.999", 1), ("0.250", 3)], currency="KWD", delivery=[("standard", "1.500")])
    result = price(
        snap,
        (source(1), [product_op(pct("12.5", 1, 2))]),  # 0.249875 → 0.250 ; 0.09375 → 0.094
    )
    assert [a.amount for ln in result.lines for a in ln.allocations] == [D("0.250"), D("0.094")]
    assert str(result.total) == "3.905"  # 2.749 - 0.344 + 1.500


def test_discount_codes_accept_and_reject() -> None:
    snap = snapshot([("100.00", 1)], codes=["SAVE10", "bogus", "WELCOME"])
    accepted = {"enteredDiscountCodesAccept": {"codes": [{"code": "WELCOME"}]}}
    tied = order({"percentage": {"value": "5"}}, associatedDiscountCode={"code": "WELCOME"})
    result = price(
        snap,
        (source(1, code="save10"), [product_op(pct("10", 1))]),
        # d2 accepts WELCOME, its candidate is tied to it; it does not combine with d1
        # and saves less, so WELCOME is reported as not combinable.
        (source(2), [accepted, order_op(tied)]),
    )
    statuses = {c.code: c.status for c in result.codes}
    assert statuses == {
        "SAVE10": CodeStatus.APPLIED,
        "bogus": CodeStatus.NOT_FOUND,
        "WELCOME": CodeStatus.NOT_COMBINABLE,
    }
    assert result.line_discounts == D("10.00")


def test_candidate_tied_to_an_unaccepted_code_is_dropped() -> None:
    snap = snapshot([("100.00", 1)], codes=["OTHER"])
    op = order_op(order({"percentage": {"value": "50"}}, associatedDiscountCode={"code": "VIP"}))
    result = price(snap, (source(1), [op]))
    assert result.order_discounts == D("0.00")


def test_order_candidate_conditions() -> None:
    snap = snapshot([("30.00", 1), ("10.00", 2)])
    minimum = {"orderMinimumSubtotal": {"excludedCartLineIds": [], "minimumAmount": "50"}}
    too_high = {"orderMinimumSubtotal": {"excludedCartLineIds": [], "minimumAmount": "51"}}
    quantity = {"cartLineMinimumQuantity": {"ids": [line(2)], "minimumQuantity": 2}}
    ok = order({"fixedAmount": {"amount": "5"}}, conditions=[minimum, quantity])
    blocked = order({"fixedAmount": {"amount": "9"}}, conditions=[too_high])
    result = price(snap, (source(1), [order_op(blocked, ok, strategy="MAXIMUM")]))
    assert result.order_discounts == D("5.00")


def test_operation_of_a_class_the_discount_lacks_is_dropped() -> None:
    snap = snapshot([("100.00", 1)])
    result = price(snap, (source(1, classes=(DiscountClass.ORDER,)), [product_op(pct("10", 1))]))
    assert result.discount_total == 0


def test_delivery_hide_rename_move_and_selection_fallback() -> None:
    delivery = [("standard", "5.00"), ("express", "15.00"), ("pickup", "0.00")]
    snap = snapshot([("10.00", 1)], delivery=delivery)
    state = CheckoutState.from_snapshot(snap)
    ops = ops_of(
        "cart.delivery-options.transform.run",
        [
            {"deliveryOptionHide": {"deliveryOptionHandle": "standard"}},
            {
                "deliveryOptionRename": {
                    "deliveryOptionHandle": "express",
                    "title": "Express (1 day)",
                }
            },
            {"deliveryOptionMove": {"deliveryOptionHandle": "pickup", "index": 0}},
        ],
    )
    apply_delivery_customization(state, ops, "c1")
    result = finalize(state)
    group = result.groups[0]
    assert [(o.key, o.title) for o in group.options] == [
        ("pickup", "Pickup"),
        ("express", "Express (1 day)"),
    ]
    assert group.selected == "pickup"
    assert result.shipping == D("0.00")
    view = state.view(snap)
    handles = [o["handle"] for o in view["cart"]["deliveryGroups"][0]["deliveryOptions"]]
    assert handles == ["pickup", "express"]


def test_payment_hide_rename_move() -> None:
    state = CheckoutState.from_snapshot(snapshot([("10.00", 1)]))
    pm = "gid://cartwheel/PaymentMethod/"
    ops = ops_of(
        "cart.payment-methods.transform.run",
        [
            {"paymentMethodHide": {"paymentMethodId": pm + "2"}},
            {"paymentMethodRename": {"paymentMethodId": pm + "3", "name": "Pay later"}},
            {"paymentMethodMove": {"paymentMethodId": pm + "3", "index": 0}},
            {"paymentMethodHide": {"paymentMethodId": pm + "99"}},
        ],
    )
    apply_payment_customization(state, ops, "p1")
    assert [m.title for m in finalize(state).payment_methods] == ["Pay later", "Card"]
    assert state.notes == [f"p1: unknown payment method {pm}99"]


def test_validation_errors_block() -> None:
    state = CheckoutState.from_snapshot(snapshot([("10.00", 1)]))
    ops = ops_of(
        "cart.validations.generate.run",
        [{"validationAdd": {"errors": [{"message": "Max 5 per order", "target": "$.cart"}]}}],
    )
    apply_validation(state, ops, "v1")
    result = finalize(state)
    assert result.blocked
    assert result.errors[0].message == "Max 5 per order"


def test_cart_transform_expand_merge_update_keep_money_exact() -> None:
    snap = snapshot([("10.00", 1), ("20.00", 2), ("7.00", 1)])
    state = CheckoutState.from_snapshot(snap)
    variant = "gid://cartwheel/ProductVariant/"
    ops = ops_of(
        "cart.transform.run",
        [
            {
                "lineExpand": {
                    "cartLineId": line(1),
                    "title": "Bundle",
                    "expandedCartItems": [
                        {"merchandiseId": variant + "10", "quantity": 1},
                        {"merchandiseId": variant + "11", "quantity": 2},
                    ],
                }
            },
            {
                "linesMerge": {
                    "parentVariantId": variant + "99",
                    "title": "Kit",
                    "cartLines": [
                        {"cartLineId": line(2), "quantity": 2},
                        {"cartLineId": line(3), "quantity": 1},
                    ],
                    "price": {"percentageDecrease": {"value": "10"}},
                }
            },
        ],
    )
    apply_cart_transform(state, ops, "t1")
    update = {
        "lineUpdate": {
            "cartLineId": line(1) + "#0",
            "price": {"adjustment": {"fixedPricePerUnit": {"amount": "3.50"}}},
        }
    }
    apply_cart_transform(state, ops_of("cart.transform.run", [update]), "t2")
    result = finalize(state)
    subtotals = {ln.id: ln.subtotal for ln in result.lines}
    # Expanded 10.00 over quantities 1:2 → 3.33 / 6.67, then line #0 set to 3.50.
    assert subtotals[line(1) + "#0"] == D("3.50")
    assert subtotals[line(1) + "#1"] == D("6.67")
    assert subtotals[line(2) + "+merged"] == D("42.30")  # (40 + 7) − 10%
    assert result.subtotal == D("52.47")
    view = state.view(snap)
    assert len(view["cart"]["lines"]) == 3
    assert view["cart"]["cost"]["subtotalAmount"]["amount"] == "52.47"
