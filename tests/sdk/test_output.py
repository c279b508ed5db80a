"""Output validation for every target: valid outputs accepted as typed operations,
invalid ones rejected with JSON paths and stable codes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from functions_sdk.apis import TARGETS, UnknownTargetError
from functions_sdk.apis import outputs as o
from functions_sdk.output import (
    MAX_REPORTED_ERRORS,
    InvalidOutputError,
    References,
    ValidatedOutput,
    validate_output,
)

LINE_1 = "gid://cartwheel/CartLine/1"
LINE_2 = "gid://cartwheel/CartLine/2"
GROUP = "gid://cartwheel/CartDeliveryGroup/1"
CARD = "gid://cartwheel/PaymentMethod/1"
COD = "gid://cartwheel/PaymentMethod/2"

# A function input (the parts output references are checked against).
INPUT: dict[str, Any] = {
    "cart": {
        "lines": [{"id": LINE_1, "quantity": 2}, {"id": LINE_2, "quantity": 1}],
        "deliveryGroups": [
            {
                "id": GROUP,
                "deliveryOptions": [{"handle": "standard"}, {"handle": "express"}],
            }
        ],
    },
    "paymentMethods": [{"id": CARD, "name": "Card"}, {"id": COD, "name": "Cash on delivery"}],
    "enteredDiscountCodes": [{"code": "SUMMER10", "rejectable": True}],
}


def errors_of(target: str, output: Any, *, input: Any = INPUT) -> list[tuple[str, str]]:
    """(path, code) of every error, asserting the output is rejected."""
    with pytest.raises(InvalidOutputError) as info:
        validate_output(target, orjson.dumps(output), input=input)
    assert info.value.code == "INVALID_OUTPUT"
    assert info.value.error_count == len(info.value.errors)
    return [(e["path"], e["code"]) for e in info.value.errors]


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"operations": list(operations)}


# --------------------------------------------------------------------------------------
# cart.lines.discounts.generate.run
# --------------------------------------------------------------------------------------

LINES = o.CART_LINES_DISCOUNTS


def product_discount(value: dict[str, Any], line: str = LINE_1, **extra: Any) -> dict[str, Any]:
    candidate = {"targets": [{"cartLine": {"id": line}}], "value": value, **extra}
    return {"productDiscountsAdd": {"candidates": [candidate], "selectionStrategy": "FIRST"}}


def test_lines_discounts_valid_output_is_typed() -> None:
    output = ops(
        {
            "productDiscountsAdd": {
                "candidates": [
                    {
                        "targets": [{"cartLine": {"id": LINE_1, "quantity": 1}}],
                        "value": {"percentage": {"value": "12.5"}},
                        "message": "12.5% off",
                        "associatedDiscountCode": {"code": "SUMMER10"},
                    },
                    {
                        "targets": [{"cartLine": {"id": LINE_2}}],
                        "value": {"fixedAmount": {"amount": 5, "appliesToEachItem": True}},
                    },
                ],
                "selectionStrategy": "MAXIMUM",
            }
        },
        {
            "orderDiscountsAdd": {
                "candidates": [
                    {
                        "targets": [{"orderSubtotal": {"excludedCartLineIds": [LINE_2]}}],
                        "value": {"fixedAmount": {"amount": "10.00"}},
                        "conditions": [
                            {
                                "orderMinimumSubtotal": {
                                    "excludedCartLineIds": [],
                                    "minimumAmount": 50,
                                }
                            },
                            {"cartLineMinimumQuantity": {"ids": [LINE_1], "minimumQuantity": 2}},
                        ],
                    }
                ],
                "selectionStrategy": "FIRST",
            }
        },
        {"enteredDiscountCodesAccept": {"codes": [{"code": "summer10"}]}},
    )
    result = validate_output(LINES, orjson.dumps(output), input=INPUT)
    assert result == ValidatedOutput(
        LINES,
        (
            o.ProductDiscountsAddOperation(
                candidates=(
                    o.ProductDiscountCandidate(
                        targets=(o.CartLineTarget(LINE_1, 1),),
                        value=o.Percentage(Decimal("12.5")),
                        message="12.5% off",
                        associated_discount_code=o.AssociatedDiscountCode("SUMMER10"),
                    ),
                    o.ProductDiscountCandidate(
                        targets=(o.CartLineTarget(LINE_2),),
                        value=o.ProductDiscountCandidateFixedAmount(Decimal(5), True),
                    ),
                ),
                selection_strategy=o.ProductDiscountSelectionStrategy.MAXIMUM,
            ),
            o.OrderDiscountsAddOperation(
                candidates=(
                    o.OrderDiscountCandidate(
                        targets=(o.OrderSubtotalTarget((LINE_2,)),),
                        value=o.FixedAmount(Decimal("10.00")),
                        conditions=(
                            o.OrderMinimumSubtotal((), Decimal(50)),
                            o.CartLineMinimumQuantity((LINE_1,), 2),
                        ),
                    ),
                ),
                selection_strategy=o.OrderDiscountSelectionStrategy.FIRST,
            ),
            o.EnteredDiscountCodesAcceptOperation((o.DiscountCode("summer10"),)),
        ),
    )
    amount = result.operations[1]
    assert isinstance(amount, o.OrderDiscountsAddOperation)
    assert isinstance(amount.candidates[0].value, o.FixedAmount)
    assert isinstance(amount.candidates[0].value.amount, Decimal)


def test_lines_discounts_defaults_and_decimal_forms() -> None:
    for raw, expected in [("10", "10"), (10, "10"), (12.5, "12.5"), ("0.1", "0.1"), (0.1, "0.1")]:
        result = validate_output(
            LINES, ops(product_discount({"fixedAmount": {"amount": raw}})), input=INPUT
        )
        op = result.operations[0]
        assert isinstance(op, o.ProductDiscountsAddOperation)
        value = op.candidates[0].value
        assert value == o.ProductDiscountCandidateFixedAmount(Decimal(expected), False)


def test_lines_discounts_percentage_101_rejected_with_path() -> None:
    assert errors_of(LINES, ops(product_discount({"percentage": {"value": 101}}))) == [
        ("$.operations[0].productDiscountsAdd.candidates[0].value.percentage.value", "OUT_OF_RANGE")
    ]
    assert errors_of(LINES, ops(product_discount({"percentage": {"value": "-0.01"}}))) == [
        ("$.operations[0].productDiscountsAdd.candidates[0].value.percentage.value", "OUT_OF_RANGE")
    ]


def test_lines_discounts_negative_amount_rejected_with_path() -> None:
    output = ops(
        {"enteredDiscountCodesAccept": {"codes": []}},
        {
            "orderDiscountsAdd": {
                "candidates": [
                    {
                        "targets": [{"orderSubtotal": {"excludedCartLineIds": []}}],
                        "value": {"fixedAmount": {"amount": "-5.00"}},
                    }
                ],
                "selectionStrategy": "FIRST",
            }
        },
    )
    assert errors_of(LINES, output) == [
        ("$.operations[1].orderDiscountsAdd.candidates[0].value.fixedAmount.amount", "OUT_OF_RANGE")
    ]


def test_lines_discounts_unknown_cart_line_rejected_with_path() -> None:
    bad = "gid://cartwheel/CartLine/404"
    assert errors_of(LINES, ops(product_discount({"percentage": {"value": 10}}, line=bad))) == [
        (
            "$.operations[0].productDiscountsAdd.candidates[0].targets[0].cartLine.id",
            "UNKNOWN_REFERENCE",
        )
    ]
    excluded = ops(
        {
            "orderDiscountsAdd": {
                "candidates": [
                    {
                        "targets": [{"orderSubtotal": {"excludedCartLineIds": [LINE_1, bad]}}],
                        "value": {"percentage": {"value": 5}},
                    }
                ],
                "selectionStrategy": "FIRST",
            }
        }
    )
    assert errors_of(LINES, excluded) == [
        (
            "$.operations[0].orderDiscountsAdd.candidates[0].targets[0]"
            ".orderSubtotal.excludedCartLineIds[1]",
            "UNKNOWN_REFERENCE",
        )
    ]


def test_lines_discounts_wrong_types_rejected_with_paths() -> None:
    output = ops(
        {
            "productDiscountsAdd": {
                "candidates": [
                    {
                        "targets": [{"cartLine": {"id": LINE_1, "quantity": "2"}}],
                        "value": {"percentage": {"value": True}},
                        "message": 7,
                    }
                ],
                "selectionStrategy": "BEST",
            }
        },
        "productDiscountsAdd",
    )
    base = "$.operations[0].productDiscountsAdd"
    assert errors_of(LINES, output) == [
        (f"{base}.candidates[0].targets[0].cartLine.quantity", "INVALID_TYPE"),
        (f"{base}.candidates[0].value.percentage.value", "INVALID_TYPE"),
        (f"{base}.candidates[0].message", "INVALID_TYPE"),
        (f"{base}.selectionStrategy", "INVALID_TYPE"),
        ("$.operations[1]", "INVALID_TYPE"),
    ]


def test_lines_discounts_unknown_and_missing_fields_rejected_with_paths() -> None:
    output = ops(
        {
            "productDiscountsAdd": {
                "candidates": [{"targets": [{"cartLine": {"id": LINE_1}}], "mesage": "typo"}],
            }
        }
    )
    base = "$.operations[0].productDiscountsAdd"
    with pytest.raises(InvalidOutputError) as info:
        validate_output(LINES, output, input=INPUT)
    found = [(e["path"], e["code"]) for e in info.value.errors]
    assert found == [
        (f"{base}.candidates[0].mesage", "UNKNOWN_FIELD"),
        (f"{base}.candidates[0].value", "MISSING_FIELD"),
        (f"{base}.selectionStrategy", "MISSING_FIELD"),
    ]
    assert "Did you mean 'message'?" in info.value.errors[0]["message"]


def test_lines_discounts_one_of_rules() -> None:
    both = product_discount({"percentage": {"value": 1}, "fixedAmount": {"amount": 1}})
    none = product_discount({})
    null_member = product_discount({"percentage": None})
    two_ops = {
        **product_discount({"percentage": {"value": 1}}),
        "enteredDiscountCodesAccept": {"codes": []},
    }
    value = "$.operations[0].productDiscountsAdd.candidates[0].value"
    assert errors_of(LINES, ops(both)) == [(value, "ONE_OF")]
    assert errors_of(LINES, ops(none)) == [(value, "ONE_OF")]
    assert errors_of(LINES, ops(null_member)) == [(f"{value}.percentage", "ONE_OF")]
    assert errors_of(LINES, ops(two_ops)) == [("$.operations[0]", "ONE_OF")]


def test_lines_discounts_quantity_and_code_rules() -> None:
    zero = {
        "productDiscountsAdd": {
            "candidates": [
                {
                    "targets": [{"cartLine": {"id": LINE_1, "quantity": 0}}],
                    "value": {"percentage": {"value": 5}},
                }
            ],
            "selectionStrategy": "ALL",
        }
    }
    assert errors_of(LINES, ops(zero)) == [
        (
            "$.operations[0].productDiscountsAdd.candidates[0].targets[0].cartLine.quantity",
            "OUT_OF_RANGE",
        )
    ]
    accept = {"enteredDiscountCodesAccept": {"codes": [{"code": "WINTER"}]}}
    assert errors_of(LINES, ops(accept)) == [
        ("$.operations[0].enteredDiscountCodesAccept.codes[0].code", "UNKNOWN_REFERENCE")
    ]


# --------------------------------------------------------------------------------------
# cart.delivery-options.discounts.generate.run
# --------------------------------------------------------------------------------------

DELIVERY_DISCOUNTS = o.CART_DELIVERY_OPTIONS_DISCOUNTS


def delivery_discount(
    value: dict[str, Any], target: dict[str, Any] | None = None
) -> dict[str, Any]:
    target = target or {"deliveryOption": {"handle": "standard"}}
    return {
        "deliveryDiscountsAdd": {
            "candidates": [{"targets": [target], "value": value, "message": "Free shipping"}],
            "selectionStrategy": "ALL",
        }
    }


def test_delivery_discounts_valid_output_is_typed() -> None:
    output = ops(
        delivery_discount({"percentage": {"value": 100}}),
        delivery_discount({"fixedAmount": {"amount": "4.99"}}, {"deliveryGroup": {"id": GROUP}}),
        {"enteredDiscountCodesAccept": {"codes": [{"code": "SUMMER10"}]}},
    )
    result = validate_output(DELIVERY_DISCOUNTS, orjson.dumps(output), input=INPUT)
    assert result.operations == (
        o.DeliveryDiscountsAddOperation(
            (
                o.DeliveryDiscountCandidate(
                    targets=(o.DeliveryOptionTarget("standard"),),
                    value=o.Percentage(Decimal(100)),
                    message="Free shipping",
                ),
            ),
            o.DeliveryDiscountSelectionStrategy.ALL,
        ),
        o.DeliveryDiscountsAddOperation(
            (
                o.DeliveryDiscountCandidate(
                    targets=(o.DeliveryGroupTarget(GROUP),),
                    value=o.FixedAmount(Decimal("4.99")),
                    message="Free shipping",
                ),
            ),
            o.DeliveryDiscountSelectionStrategy.ALL,
        ),
        o.EnteredDiscountCodesAcceptOperation((o.DiscountCode("SUMMER10"),)),
    )


def test_delivery_discounts_invalid_outputs() -> None:
    value = "$.operations[0].deliveryDiscountsAdd.candidates[0].value"
    target = "$.operations[0].deliveryDiscountsAdd.candidates[0].targets[0]"
    assert errors_of(
        DELIVERY_DISCOUNTS, ops(delivery_discount({"percentage": {"value": 101}}))
    ) == [(f"{value}.percentage.value", "OUT_OF_RANGE")]
    assert errors_of(
        DELIVERY_DISCOUNTS, ops(delivery_discount({"fixedAmount": {"amount": -1}}))
    ) == [(f"{value}.fixedAmount.amount", "OUT_OF_RANGE")]
    # Delivery FixedAmount has no appliesToEachItem (unlike product discounts).
    with_each = delivery_discount({"fixedAmount": {"amount": 1, "appliesToEachItem": True}})
    assert errors_of(DELIVERY_DISCOUNTS, ops(with_each)) == [
        (f"{value}.fixedAmount.appliesToEachItem", "UNKNOWN_FIELD")
    ]
    unknown_option = delivery_discount(
        {"percentage": {"value": 5}}, {"deliveryOption": {"handle": "drone"}}
    )
    assert errors_of(DELIVERY_DISCOUNTS, ops(unknown_option)) == [
        (f"{target}.deliveryOption.handle", "UNKNOWN_REFERENCE")
    ]
    unknown_group = delivery_discount(
        {"percentage": {"value": 5}}, {"deliveryGroup": {"id": "gid://x/9"}}
    )
    assert errors_of(DELIVERY_DISCOUNTS, ops(unknown_group)) == [
        (f"{target}.deliveryGroup.id", "UNKNOWN_REFERENCE")
    ]
    wrong_strategy = delivery_discount({"percentage": {"value": 5}})
    wrong_strategy["deliveryDiscountsAdd"]["selectionStrategy"] = "FIRST"
    assert errors_of(DELIVERY_DISCOUNTS, ops(wrong_strategy)) == [
        ("$.operations[0].deliveryDiscountsAdd.selectionStrategy", "INVALID_TYPE")
    ]
    # A product discount is not a delivery operation.
    assert errors_of(DELIVERY_DISCOUNTS, ops(product_discount({"percentage": {"value": 5}}))) == [
        ("$.operations[0].productDiscountsAdd", "UNKNOWN_FIELD"),
        ("$.operations[0]", "ONE_OF"),
    ]
    missing = {"deliveryDiscountsAdd": {"selectionStrategy": "ALL"}}
    assert errors_of(DELIVERY_DISCOUNTS, ops(missing)) == [
        ("$.operations[0].deliveryDiscountsAdd.candidates", "MISSING_FIELD")
    ]


# --------------------------------------------------------------------------------------
# cart.delivery-options.transform.run
# --------------------------------------------------------------------------------------

DELIVERY = o.CART_DELIVERY_OPTIONS_TRANSFORM


def test_delivery_customization_valid_output_is_typed() -> None:
    output = ops(
        {"deliveryOptionHide": {"deliveryOptionHandle": "express"}},
        {"deliveryOptionMove": {"deliveryOptionHandle": "standard", "index": 0}},
        {
            "deliveryOptionRename": {
                "deliveryOptionHandle": "standard",
                "title": "Standard (3-5 days)",
            }
        },
    )
    result = validate_output(DELIVERY, orjson.dumps(output), input=INPUT)
    assert result.operations == (
        o.DeliveryOptionHideOperation("express"),
        o.DeliveryOptionMoveOperation("standard", 0),
        o.DeliveryOptionRenameOperation("standard", "Standard (3-5 days)"),
    )


def test_delivery_customization_invalid_outputs() -> None:
    assert errors_of(DELIVERY, ops({"deliveryOptionHide": {"deliveryOptionHandle": "drone"}})) == [
        ("$.operations[0].deliveryOptionHide.deliveryOptionHandle", "UNKNOWN_REFERENCE")
    ]
    assert errors_of(
        DELIVERY, ops({"deliveryOptionMove": {"deliveryOptionHandle": "standard", "index": -1}})
    ) == [("$.operations[0].deliveryOptionMove.index", "OUT_OF_RANGE")]
    assert errors_of(
        DELIVERY, ops({"deliveryOptionMove": {"deliveryOptionHandle": "standard", "index": 1.5}})
    ) == [("$.operations[0].deliveryOptionMove.index", "INVALID_TYPE")]
    assert errors_of(
        DELIVERY, ops({"deliveryOptionRename": {"deliveryOptionHandle": "standard"}})
    ) == [("$.operations[0].deliveryOptionRename.title", "MISSING_FIELD")]
    # Shopify's pre-2025 operation name is rejected with a clear path.
    assert errors_of(DELIVERY, ops({"hide": {"deliveryOptionHandle": "standard"}})) == [
        ("$.operations[0].hide", "UNKNOWN_FIELD"),
        ("$.operations[0]", "ONE_OF"),
    ]


# --------------------------------------------------------------------------------------
# cart.payment-methods.transform.run
# --------------------------------------------------------------------------------------

PAYMENT = o.CART_PAYMENT_METHODS_TRANSFORM


def test_payment_customization_valid_output_is_typed() -> None:
    output = ops(
        {"paymentMethodHide": {"paymentMethodId": COD}},
        {"paymentMethodHide": {"paymentMethodId": CARD, "placements": ["ACCELERATED_CHECKOUT"]}},
        {"paymentMethodMove": {"paymentMethodId": CARD, "index": 1}},
        {"paymentMethodRename": {"paymentMethodId": CARD, "name": "Credit card"}},
    )
    result = validate_output(PAYMENT, orjson.dumps(output), input=INPUT)
    assert result.operations == (
        o.PaymentMethodHideOperation(COD),
        o.PaymentMethodHideOperation(
            CARD, (o.PaymentCustomizationPaymentMethodPlacement.ACCELERATED_CHECKOUT,)
        ),
        o.PaymentMethodMoveOperation(CARD, 1),
        o.PaymentMethodRenameOperation(CARD, "Credit card"),
    )


def test_payment_customization_invalid_outputs() -> None:
    assert errors_of(
        PAYMENT, ops({"paymentMethodHide": {"paymentMethodId": "gid://x/PaymentMethod/9"}})
    ) == [("$.operations[0].paymentMethodHide.paymentMethodId", "UNKNOWN_REFERENCE")]
    assert errors_of(
        PAYMENT, ops({"paymentMethodRename": {"paymentMethodId": CARD, "name": None}})
    ) == [("$.operations[0].paymentMethodRename.name", "NULL_VALUE")]
    assert errors_of(
        PAYMENT, ops({"paymentMethodMove": {"paymentMethodId": CARD, "index": -3}})
    ) == [("$.operations[0].paymentMethodMove.index", "OUT_OF_RANGE")]
    assert errors_of(
        PAYMENT, ops({"paymentMethodHide": {"paymentMethodId": CARD, "placements": ["CHECKOUT"]}})
    ) == [("$.operations[0].paymentMethodHide.placements[0]", "INVALID_TYPE")]
    assert errors_of(
        PAYMENT, ops({"paymentMethodHide": {"paymentMethodId": CARD, "color": "red"}})
    ) == [("$.operations[0].paymentMethodHide.color", "UNKNOWN_FIELD")]


# --------------------------------------------------------------------------------------
# cart.validations.generate.run
# --------------------------------------------------------------------------------------

VALIDATIONS = o.CART_VALIDATIONS


def test_validations_valid_output_is_typed() -> None:
    output = ops(
        {
            "validationAdd": {
                "errors": [
                    {"message": "At most 5 per customer", "target": "$.cart.lines[0].quantity"},
                    {"message": "We do not ship to PO boxes", "target": "$.cart"},
                ]
            }
        }
    )
    result = validate_output(VALIDATIONS, orjson.dumps(output), input=INPUT)
    assert result.operations == (
        o.ValidationAddOperation(
            (
                o.ValidationError("At most 5 per customer", "$.cart.lines[0].quantity"),
                o.ValidationError("We do not ship to PO boxes", "$.cart"),
            )
        ),
    )


def test_validations_invalid_outputs() -> None:
    errors = "$.operations[0].validationAdd.errors"
    assert errors_of(VALIDATIONS, ops({"validationAdd": {"errors": [{"message": "No"}]}})) == [
        (f"{errors}[0].target", "MISSING_FIELD")
    ]
    assert errors_of(
        VALIDATIONS, ops({"validationAdd": {"errors": [{"message": "No", "target": "cart"}]}})
    ) == [(f"{errors}[0].target", "INVALID_FORMAT")]
    assert errors_of(
        VALIDATIONS, ops({"validationAdd": {"errors": [{"message": ["No"], "target": "$.cart"}]}})
    ) == [(f"{errors}[0].message", "INVALID_TYPE")]
    assert errors_of(
        VALIDATIONS,
        ops(
            {"validationAdd": {"errors": [{"message": "No", "target": "$.cart", "level": "warn"}]}}
        ),
    ) == [(f"{errors}[0].level", "UNKNOWN_FIELD")]


# --------------------------------------------------------------------------------------
# cart.transform.run
# --------------------------------------------------------------------------------------

TRANSFORM = o.CART_TRANSFORM


def test_cart_transform_valid_output_is_typed() -> None:
    output = ops(
        {
            "lineExpand": {
                "cartLineId": LINE_1,
                "title": "Bundle",
                "image": {"url": "https://cdn.example.com/bundle.png"},
                "price": {"percentageDecrease": {"value": "10"}},
                "expandedCartItems": [
                    {
                        "merchandiseId": "gid://cartwheel/ProductVariant/7",
                        "quantity": 1,
                        "price": {"adjustment": {"fixedPricePerUnit": {"amount": "9.99"}}},
                        "attributes": [{"key": "part", "value": "top"}],
                    }
                ],
            }
        },
        {
            "linesMerge": {
                "parentVariantId": "gid://cartwheel/ProductVariant/8",
                "cartLines": [
                    {"cartLineId": LINE_1, "quantity": 1},
                    {"cartLineId": LINE_2, "quantity": 1},
                ],
            }
        },
        {
            "lineUpdate": {
                "cartLineId": LINE_2,
                "price": {"adjustment": {"fixedPricePerUnit": {"amount": 12}}},
            }
        },
    )
    result = validate_output(TRANSFORM, orjson.dumps(output), input=INPUT)
    assert result.operations == (
        o.LineExpandOperation(
            cart_line_id=LINE_1,
            expanded_cart_items=(
                o.ExpandedItem(
                    merchandise_id="gid://cartwheel/ProductVariant/7",
                    quantity=1,
                    price=o.ExpandedItemPriceAdjustment(
                        o.ExpandedItemFixedPricePerUnitAdjustment(Decimal("9.99"))
                    ),
                    attributes=(o.AttributeOutput("part", "top"),),
                ),
            ),
            title="Bundle",
            image=o.ImageInput("https://cdn.example.com/bundle.png"),
            price=o.PriceAdjustment(o.PriceAdjustmentValue(Decimal(10))),
        ),
        o.LinesMergeOperation(
            cart_lines=(o.CartLineInput(LINE_1, 1), o.CartLineInput(LINE_2, 1)),
            parent_variant_id="gid://cartwheel/ProductVariant/8",
        ),
        o.LineUpdateOperation(
            cart_line_id=LINE_2,
            price=o.LineUpdateOperationPriceAdjustment(
                o.LineUpdateOperationFixedPricePerUnitAdjustment(Decimal(12))
            ),
        ),
    )


def test_cart_transform_invalid_outputs() -> None:
    update = "$.operations[0].lineUpdate"
    negative = {
        "lineUpdate": {
            "cartLineId": LINE_1,
            "price": {"adjustment": {"fixedPricePerUnit": {"amount": "-1"}}},
        }
    }
    assert errors_of(TRANSFORM, ops(negative)) == [
        (f"{update}.price.adjustment.fixedPricePerUnit.amount", "OUT_OF_RANGE")
    ]
    percent = {
        "lineExpand": {
            "cartLineId": LINE_1,
            "price": {"percentageDecrease": {"value": 101}},
            "expandedCartItems": [{"merchandiseId": "gid://x/1", "quantity": 1}],
        }
    }
    assert errors_of(TRANSFORM, ops(percent)) == [
        ("$.operations[0].lineExpand.price.percentageDecrease.value", "OUT_OF_RANGE")
    ]
    unknown_line = {"lineUpdate": {"cartLineId": "gid://cartwheel/CartLine/404", "title": "X"}}
    assert errors_of(TRANSFORM, ops(unknown_line)) == [
        (f"{update}.cartLineId", "UNKNOWN_REFERENCE")
    ]
    merge = {
        "linesMerge": {
            "parentVariantId": "gid://x/1",
            "cartLines": [{"cartLineId": LINE_1, "quantity": 0}, {"cartLineId": LINE_2}],
        }
    }
    assert errors_of(TRANSFORM, ops(merge)) == [
        ("$.operations[0].linesMerge.cartLines[0].quantity", "OUT_OF_RANGE"),
        ("$.operations[0].linesMerge.cartLines[1].quantity", "MISSING_FIELD"),
    ]
    image = {"lineUpdate": {"cartLineId": LINE_1, "image": {"url": "ftp://x/y.png"}}}
    assert errors_of(TRANSFORM, ops(image)) == [(f"{update}.image.url", "INVALID_TYPE")]
    old_name = {"update": {"cartLineId": LINE_1}}
    assert errors_of(TRANSFORM, ops(old_name)) == [
        ("$.operations[0].update", "UNKNOWN_FIELD"),
        ("$.operations[0]", "ONE_OF"),
    ]


# --------------------------------------------------------------------------------------
# Every target
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", o.OUTPUT_TARGETS)
def test_every_target_accepts_no_operations(target: str) -> None:
    assert validate_output(target, b'{"operations": []}') == ValidatedOutput(target, ())
    assert validate_output(target, {"operations": []}, input=INPUT).operations == ()


@pytest.mark.parametrize("target", o.OUTPUT_TARGETS)
@pytest.mark.parametrize(
    ("raw", "path", "code"),
    [
        (b"", "$", "MALFORMED_JSON"),
        (b'{"operations": [', "$", "MALFORMED_JSON"),
        (b"\xff\xfe", "$", "MALFORMED_JSON"),
        (b"null", "$", "INVALID_TYPE"),
        (b"[]", "$", "INVALID_TYPE"),
        (b'"operations"', "$", "INVALID_TYPE"),
        (b"{}", "$.operations", "MISSING_FIELD"),
        (b'{"operations": null}', "$.operations", "NULL_VALUE"),
        (b'{"operations": [null]}', "$.operations[0]", "NULL_VALUE"),
        (b'{"operations": [{}]}', "$.operations[0]", "ONE_OF"),
        (b'{"operations": [], "discounts": []}', "$.discounts", "UNKNOWN_FIELD"),
        (b'{"operations": [], "a b": 1}', '$["a b"]', "UNKNOWN_FIELD"),
    ],
)
def test_every_target_rejects_malformed_documents(
    target: str, raw: bytes, path: str, code: str
) -> None:
    with pytest.raises(InvalidOutputError) as info:
        validate_output(target, raw)
    assert [(e["path"], e["code"]) for e in info.value.errors] == [(path, code)]
    assert info.value.to_dict()["errors"] == info.value.errors
    assert target in info.value.message


def test_unknown_target_has_a_stable_code() -> None:
    with pytest.raises(o.UnknownOutputTargetError) as info:
        validate_output("purchase.product-discount.run", b'{"operations": []}')
    assert info.value.code == "UNKNOWN_TARGET"
    assert isinstance(info.value, UnknownTargetError)
    assert "cart.lines.discounts.generate.run" in info.value.message


def test_every_registered_target_has_an_output_schema_in_checkout_order() -> None:
    assert tuple(t.name for t in TARGETS) == o.OUTPUT_TARGETS
    for target in TARGETS:
        assert target.output_sdl() == o.output_sdl(target.name)


def test_references_unchecked_without_input_and_from_a_snapshot() -> None:
    unknown = ops(
        product_discount({"percentage": {"value": 10}}, line="gid://cartwheel/CartLine/9")
    )
    assert len(validate_output(LINES, unknown).operations) == 1
    # An input whose query did not select cart line ids cannot vouch for them.
    assert (
        len(
            validate_output(LINES, unknown, input={"cart": {"lines": [{"quantity": 1}]}}).operations
        )
        == 1
    )
    snapshot = {
        "cart": {
            "lines": [{"id": "gid://cartwheel/CartLine/9", "quantity": 1}],
            "deliveryGroups": [],
        },
        "paymentMethods": [],
        "enteredDiscountCodes": [],
    }
    refs = References.from_input(orjson.dumps(snapshot))
    assert refs.ids == {
        "cartLine": frozenset({"gid://cartwheel/CartLine/9"}),
        "deliveryGroup": frozenset(),
        "deliveryOption": frozenset(),
        "paymentMethod": frozenset(),
        "discountCode": frozenset(),
    }
    assert len(validate_output(LINES, unknown, input=refs).operations) == 1
    hide = ops({"deliveryOptionHide": {"deliveryOptionHandle": "standard"}})
    assert errors_of(DELIVERY, hide, input=refs) == [
        ("$.operations[0].deliveryOptionHide.deliveryOptionHandle", "UNKNOWN_REFERENCE")
    ]


def test_error_list_is_capped_but_counted() -> None:
    many = ops(*[product_discount({"percentage": {"value": 200}}) for _ in range(80)])
    with pytest.raises(InvalidOutputError) as info:
        validate_output(LINES, many, input=INPUT)
    assert len(info.value.errors) == MAX_REPORTED_ERRORS
    assert info.value.error_count == 80
    assert "(and 79 more)" in info.value.message


def test_python_objects_are_accepted_like_json() -> None:
    output = {"operations": ({"deliveryOptionHide": {"deliveryOptionHandle": "express"}},)}
    assert validate_output(DELIVERY, output, input=INPUT).operations == (
        o.DeliveryOptionHideOperation("express"),
    )
    # GraphQL input coercion: a single value where a list is expected is a list of one.
    single = {"operations": {"deliveryOptionHide": {"deliveryOptionHandle": "express"}}}
    assert validate_output(DELIVERY, single, input=INPUT).operations == (
        o.DeliveryOptionHideOperation("express"),
    )


def test_output_sdl_mirrors_shopify_names() -> None:
    sdl = o.output_sdl(LINES)
    assert "input CartOperation @oneOf {" in sdl
    assert (
        "cartLinesDiscountsGenerateRun(result: CartLinesDiscountsGenerateRunResult!): Void!" in sdl
    )
    assert "appliesToEachItem: Boolean = false" in sdl
    for target in o.OUTPUT_TARGETS:
        assert "@oneOf" in o.output_sdl(target)
