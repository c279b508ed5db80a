"""Output schemas of the Function API targets: what a function may write to stdout.

Each target's result is a GraphQL *input* type, as in Shopify's Function APIs, with the
same type names, field names and shapes (``@oneOf`` for operations, candidate values and
targets: exactly one field set). The SDL below is the single source of truth: it is
built into a graphql-core schema once per target, its input object types are bound to
the frozen dataclasses of this module (``out_type``) and its fields to snake_case names
(``out_name``), so graphql-core's own input coercion yields typed operations directly.

Beyond the types, Shopify documents value constraints ("validated against: >= 0 and
<= 100") and references (a cart line id must exist in the cart). Those are declared in
`FIELD_RULES`, next to the SDL, and enforced by `functions_sdk.output`.

Money and percentages are `decimal.Decimal`. A function may write a ``Decimal`` as a
JSON string (``"12.50"``, Shopify's serialisation) or as a JSON number (``12.5``, what
most JavaScript and Rust functions write); both are accepted.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    is_list_type,
    is_non_null_type,
    print_schema,
)

from functions_sdk.apis.registry import UnknownTargetError

CART_LINES_DISCOUNTS = "cart.lines.discounts.generate.run"
CART_DELIVERY_OPTIONS_DISCOUNTS = "cart.delivery-options.discounts.generate.run"
CART_DELIVERY_OPTIONS_TRANSFORM = "cart.delivery-options.transform.run"
CART_PAYMENT_METHODS_TRANSFORM = "cart.payment-methods.transform.run"
CART_VALIDATIONS = "cart.validations.generate.run"
CART_TRANSFORM = "cart.transform.run"

DECIMAL_MAX_DIGITS = 30
"""Largest number of significant digits accepted in a ``Decimal`` output value."""

DECIMAL_MAX_ABS = Decimal("1e15")
"""Largest magnitude accepted in a ``Decimal`` output value (money and percentages)."""


# --------------------------------------------------------------------------------------
# SDL (Shopify's names and shapes)
# --------------------------------------------------------------------------------------

_SCALARS = '''
"""A signed decimal number, written as a string ("29.99") or a JSON number (29.99)."""
scalar Decimal

"""A void type that can be used to return a null value from a mutation."""
scalar Void
'''

_DISCOUNT_COMMON = '''
"""A discount code that is associated with a discount candidate."""
input AssociatedDiscountCode {
  """The discount code."""
  code: String!
}

"""A discount code used by the buyer to add a discount to the cart."""
input DiscountCode {
  """The discount code; it must be one of the codes the buyer entered."""
  code: String!
}

"""Selects which entered discount codes to accept."""
input EnteredDiscountCodesAcceptOperation {
  """The list of discount codes to accept."""
  codes: [DiscountCode!]!
}

"""A percentage value."""
input Percentage {
  """The percentage value. Validated against: >= 0 and <= 100."""
  value: Decimal!
}

"""A fixed amount value."""
input FixedAmount {
  """The fixed amount, in the currency of the cart. Validated against: >= 0."""
  amount: Decimal!
}
'''

_CART_LINES_DISCOUNTS_SDL = '''
"""The cart.lines.discounts.generate.run target result."""
input CartLinesDiscountsGenerateRunResult {
  """The list of operations to apply discounts to the cart."""
  operations: [CartOperation!]!
}

"""The operations that can be performed to apply discounts to the cart."""
input CartOperation @oneOf {
  enteredDiscountCodesAccept: EnteredDiscountCodesAcceptOperation
  orderDiscountsAdd: OrderDiscountsAddOperation
  productDiscountsAdd: ProductDiscountsAddOperation
}

"""Applies product discounts that share a selection strategy."""
input ProductDiscountsAddOperation {
  candidates: [ProductDiscountCandidate!]!
  selectionStrategy: ProductDiscountSelectionStrategy!
}

"""The target and value of the discount to be applied to a cart line."""
input ProductDiscountCandidate {
  associatedDiscountCode: AssociatedDiscountCode
  message: String
  targets: [ProductDiscountCandidateTarget!]!
  value: ProductDiscountCandidateValue!
}

input ProductDiscountCandidateTarget @oneOf {
  cartLine: CartLineTarget
}

"""A discount applied to a specific cart line."""
input CartLineTarget {
  """The id of a cart line of the input."""
  id: ID!
  """How many units to discount; null means the whole line. Validated against: > 0."""
  quantity: Int
}

input ProductDiscountCandidateValue @oneOf {
  fixedAmount: ProductDiscountCandidateFixedAmount
  percentage: Percentage
}

input ProductDiscountCandidateFixedAmount {
  """Validated against: >= 0."""
  amount: Decimal!
  """Apply the amount to each entitled item instead of once across them."""
  appliesToEachItem: Boolean = false
}

enum ProductDiscountSelectionStrategy {
  ALL
  FIRST
  MAXIMUM
}

"""Applies order discounts that share a selection strategy."""
input OrderDiscountsAddOperation {
  candidates: [OrderDiscountCandidate!]!
  selectionStrategy: OrderDiscountSelectionStrategy!
}

"""A discount candidate to be applied to an eligible order."""
input OrderDiscountCandidate {
  associatedDiscountCode: AssociatedDiscountCode
  conditions: [Condition!]
  message: String
  targets: [OrderDiscountCandidateTarget!]!
  value: OrderDiscountCandidateValue!
}

input OrderDiscountCandidateTarget @oneOf {
  orderSubtotal: OrderSubtotalTarget
}

"""The order subtotal, minus the excluded cart lines."""
input OrderSubtotalTarget {
  excludedCartLineIds: [ID!]!
}

input OrderDiscountCandidateValue @oneOf {
  fixedAmount: FixedAmount
  percentage: Percentage
}

enum OrderDiscountSelectionStrategy {
  FIRST
  MAXIMUM
}

"""A condition that must hold for the candidate to apply."""
input Condition @oneOf {
  cartLineMinimumQuantity: CartLineMinimumQuantity
  cartLineMinimumSubtotal: CartLineMinimumSubtotal
  orderMinimumSubtotal: OrderMinimumSubtotal
}

input CartLineMinimumQuantity {
  ids: [ID!]!
  """Validated against: > 0."""
  minimumQuantity: Int!
}

input CartLineMinimumSubtotal {
  ids: [ID!]!
  """Validated against: >= 0."""
  minimumAmount: Decimal!
}

input OrderMinimumSubtotal {
  excludedCartLineIds: [ID!]!
  """Validated against: >= 0."""
  minimumAmount: Decimal!
}
'''

_CART_DELIVERY_OPTIONS_DISCOUNTS_SDL = '''
"""A function-scoped handle to a resource, such as a delivery option."""
scalar Handle

"""The cart.delivery-options.discounts.generate.run target result."""
input CartDeliveryOptionsDiscountsGenerateRunResult {
  operations: [DeliveryOperation!]!
}

input DeliveryOperation @oneOf {
  deliveryDiscountsAdd: DeliveryDiscountsAddOperation
  enteredDiscountCodesAccept: EnteredDiscountCodesAcceptOperation
}

input DeliveryDiscountsAddOperation {
  candidates: [DeliveryDiscountCandidate!]!
  selectionStrategy: DeliveryDiscountSelectionStrategy!
}

input DeliveryDiscountCandidate {
  associatedDiscountCode: AssociatedDiscountCode
  message: String
  targets: [DeliveryDiscountCandidateTarget!]!
  value: DeliveryDiscountCandidateValue!
}

input DeliveryDiscountCandidateTarget @oneOf {
  deliveryGroup: DeliveryGroupTarget
  deliveryOption: DeliveryOptionTarget
}

input DeliveryGroupTarget {
  """The id of a delivery group of the input."""
  id: ID!
}

input DeliveryOptionTarget {
  """The handle of a delivery option of the input."""
  handle: Handle!
}

input DeliveryDiscountCandidateValue @oneOf {
  fixedAmount: FixedAmount
  percentage: Percentage
}

enum DeliveryDiscountSelectionStrategy {
  ALL
}
'''

_CART_DELIVERY_OPTIONS_TRANSFORM_SDL = '''
"""The cart.delivery-options.transform.run target result."""
input CartDeliveryOptionsTransformRunResult {
  operations: [Operation!]!
}

input Operation @oneOf {
  deliveryOptionHide: DeliveryOptionHideOperation
  deliveryOptionMove: DeliveryOptionMoveOperation
  deliveryOptionRename: DeliveryOptionRenameOperation
}

input DeliveryOptionHideOperation {
  deliveryOptionHandle: String!
}

input DeliveryOptionMoveOperation {
  deliveryOptionHandle: String!
  """The new zero-based position. Validated against: >= 0."""
  index: Int!
}

input DeliveryOptionRenameOperation {
  deliveryOptionHandle: String!
  title: String!
}
'''

_CART_PAYMENT_METHODS_TRANSFORM_SDL = '''
"""The cart.payment-methods.transform.run target result."""
input CartPaymentMethodsTransformRunResult {
  operations: [Operation!]!
}

input Operation @oneOf {
  paymentMethodHide: PaymentMethodHideOperation
  paymentMethodMove: PaymentMethodMoveOperation
  paymentMethodRename: PaymentMethodRenameOperation
}

enum PaymentCustomizationPaymentMethodPlacement {
  ACCELERATED_CHECKOUT
  PAYMENT_METHOD
}

input PaymentMethodHideOperation {
  paymentMethodId: ID!
  placements: [PaymentCustomizationPaymentMethodPlacement!]
}

input PaymentMethodMoveOperation {
  paymentMethodId: ID!
  """The new zero-based position. Validated against: >= 0."""
  index: Int!
}

input PaymentMethodRenameOperation {
  paymentMethodId: ID!
  name: String!
}
'''

_CART_VALIDATIONS_SDL = '''
"""The cart.validations.generate.run target result."""
input CartValidationsGenerateRunResult {
  operations: [Operation!]!
}

input Operation @oneOf {
  validationAdd: ValidationAddOperation
}

input ValidationAddOperation {
  errors: [ValidationError!]!
}

"""A validation error; it blocks checkout."""
input ValidationError {
  message: String!
  """Where the error is shown: "$.cart" or a path such as "$.cart.lines[0].quantity"."""
  target: String!
}
'''

_CART_TRANSFORM_SDL = '''
"""An absolute http(s) URL."""
scalar URL

"""The cart.transform.run target result."""
input CartTransformRunResult {
  operations: [Operation!]!
}

input Operation @oneOf {
  lineExpand: LineExpandOperation
  linesMerge: LinesMergeOperation
  lineUpdate: LineUpdateOperation
}

input AttributeOutput {
  key: String!
  value: String!
}

input ImageInput {
  url: URL!
}

input LineExpandOperation {
  cartLineId: ID!
  expandedCartItems: [ExpandedItem!]!
  image: ImageInput
  price: PriceAdjustment
  title: String
}

input ExpandedItem {
  attributes: [AttributeOutput!]
  merchandiseId: ID!
  price: ExpandedItemPriceAdjustment
  """Validated against: > 0."""
  quantity: Int!
}

input ExpandedItemPriceAdjustment {
  adjustment: ExpandedItemPriceAdjustmentValue!
}

input ExpandedItemPriceAdjustmentValue @oneOf {
  fixedPricePerUnit: ExpandedItemFixedPricePerUnitAdjustment
}

input ExpandedItemFixedPricePerUnitAdjustment {
  """Validated against: >= 0."""
  amount: Decimal!
}

input PriceAdjustment {
  percentageDecrease: PriceAdjustmentValue
}

input PriceAdjustmentValue {
  """Validated against: >= 0 and <= 100."""
  value: Decimal!
}

input LinesMergeOperation {
  attributes: [AttributeOutput!]
  cartLines: [CartLineInput!]!
  image: ImageInput
  parentVariantId: ID!
  price: PriceAdjustment
  title: String
}

input CartLineInput {
  cartLineId: ID!
  """Validated against: > 0 and <= 2000."""
  quantity: Int!
}

input LineUpdateOperation {
  cartLineId: ID!
  image: ImageInput
  price: LineUpdateOperationPriceAdjustment
  title: String
}

input LineUpdateOperationPriceAdjustment {
  adjustment: LineUpdateOperationPriceAdjustmentValue!
}

input LineUpdateOperationPriceAdjustmentValue @oneOf {
  fixedPricePerUnit: LineUpdateOperationFixedPricePerUnitAdjustment
}

input LineUpdateOperationFixedPricePerUnitAdjustment {
  """Validated against: >= 0."""
  amount: Decimal!
}
'''


@dataclass(frozen=True, slots=True)
class _TargetOutput:
    result_type: str
    mutation_field: str
    sdl: str


_TARGET_OUTPUTS: Final[dict[str, _TargetOutput]] = {
    CART_TRANSFORM: _TargetOutput(
        "CartTransformRunResult", "cartTransformRun", _CART_TRANSFORM_SDL
    ),
    CART_LINES_DISCOUNTS: _TargetOutput(
        "CartLinesDiscountsGenerateRunResult",
        "cartLinesDiscountsGenerateRun",
        _DISCOUNT_COMMON + _CART_LINES_DISCOUNTS_SDL,
    ),
    CART_DELIVERY_OPTIONS_TRANSFORM: _TargetOutput(
        "CartDeliveryOptionsTransformRunResult",
        "cartDeliveryOptionsTransformRun",
        _CART_DELIVERY_OPTIONS_TRANSFORM_SDL,
    ),
    CART_DELIVERY_OPTIONS_DISCOUNTS: _TargetOutput(
        "CartDeliveryOptionsDiscountsGenerateRunResult",
        "cartDeliveryOptionsDiscountsGenerateRun",
        _DISCOUNT_COMMON + _CART_DELIVERY_OPTIONS_DISCOUNTS_SDL,
    ),
    CART_PAYMENT_METHODS_TRANSFORM: _TargetOutput(
        "CartPaymentMethodsTransformRunResult",
        "cartPaymentMethodsTransformRun",
        _CART_PAYMENT_METHODS_TRANSFORM_SDL,
    ),
    CART_VALIDATIONS: _TargetOutput(
        "CartValidationsGenerateRunResult",
        "cartValidationsGenerateRun",
        _CART_VALIDATIONS_SDL,
    ),
}

OUTPUT_TARGETS: Final[tuple[str, ...]] = tuple(_TARGET_OUTPUTS)
"""Every target that has an output schema, in checkout order."""


# --------------------------------------------------------------------------------------
# Typed operations: what `functions_sdk.output.validate_output` returns
# --------------------------------------------------------------------------------------


class ProductDiscountSelectionStrategy(enum.StrEnum):
    ALL = "ALL"
    FIRST = "FIRST"
    MAXIMUM = "MAXIMUM"


class OrderDiscountSelectionStrategy(enum.StrEnum):
    FIRST = "FIRST"
    MAXIMUM = "MAXIMUM"


class DeliveryDiscountSelectionStrategy(enum.StrEnum):
    ALL = "ALL"


class PaymentCustomizationPaymentMethodPlacement(enum.StrEnum):
    ACCELERATED_CHECKOUT = "ACCELERATED_CHECKOUT"
    PAYMENT_METHOD = "PAYMENT_METHOD"


# Discounts (shared by the two discount targets)


@dataclass(frozen=True, slots=True)
class AssociatedDiscountCode:
    code: str


@dataclass(frozen=True, slots=True)
class DiscountCode:
    code: str


@dataclass(frozen=True, slots=True)
class EnteredDiscountCodesAcceptOperation:
    codes: tuple[DiscountCode, ...]


@dataclass(frozen=True, slots=True)
class Percentage:
    value: Decimal


@dataclass(frozen=True, slots=True)
class FixedAmount:
    amount: Decimal


# cart.lines.discounts.generate.run


@dataclass(frozen=True, slots=True)
class CartLineTarget:
    id: str
    quantity: int | None = None


@dataclass(frozen=True, slots=True)
class ProductDiscountCandidateFixedAmount:
    amount: Decimal
    applies_to_each_item: bool = False


@dataclass(frozen=True, slots=True)
class ProductDiscountCandidate:
    targets: tuple[CartLineTarget, ...]
    value: Percentage | ProductDiscountCandidateFixedAmount
    message: str | None = None
    associated_discount_code: AssociatedDiscountCode | None = None


@dataclass(frozen=True, slots=True)
class ProductDiscountsAddOperation:
    candidates: tuple[ProductDiscountCandidate, ...]
    selection_strategy: ProductDiscountSelectionStrategy


@dataclass(frozen=True, slots=True)
class OrderSubtotalTarget:
    excluded_cart_line_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CartLineMinimumQuantity:
    ids: tuple[str, ...]
    minimum_quantity: int


@dataclass(frozen=True, slots=True)
class CartLineMinimumSubtotal:
    ids: tuple[str, ...]
    minimum_amount: Decimal


@dataclass(frozen=True, slots=True)
class OrderMinimumSubtotal:
    excluded_cart_line_ids: tuple[str, ...]
    minimum_amount: Decimal


Condition = CartLineMinimumQuantity | CartLineMinimumSubtotal | OrderMinimumSubtotal


@dataclass(frozen=True, slots=True)
class OrderDiscountCandidate:
    targets: tuple[OrderSubtotalTarget, ...]
    value: Percentage | FixedAmount
    message: str | None = None
    conditions: tuple[Condition, ...] | None = None
    associated_discount_code: AssociatedDiscountCode | None = None


@dataclass(frozen=True, slots=True)
class OrderDiscountsAddOperation:
    candidates: tuple[OrderDiscountCandidate, ...]
    selection_strategy: OrderDiscountSelectionStrategy


# cart.delivery-options.discounts.generate.run


@dataclass(frozen=True, slots=True)
class DeliveryGroupTarget:
    id: str


@dataclass(frozen=True, slots=True)
class DeliveryOptionTarget:
    handle: str


@dataclass(frozen=True, slots=True)
class DeliveryDiscountCandidate:
    targets: tuple[DeliveryGroupTarget | DeliveryOptionTarget, ...]
    value: Percentage | FixedAmount
    message: str | None = None
    associated_discount_code: AssociatedDiscountCode | None = None


@dataclass(frozen=True, slots=True)
class DeliveryDiscountsAddOperation:
    candidates: tuple[DeliveryDiscountCandidate, ...]
    selection_strategy: DeliveryDiscountSelectionStrategy


# cart.delivery-options.transform.run


@dataclass(frozen=True, slots=True)
class DeliveryOptionHideOperation:
    delivery_option_handle: str


@dataclass(frozen=True, slots=True)
class DeliveryOptionMoveOperation:
    delivery_option_handle: str
    index: int


@dataclass(frozen=True, slots=True)
class DeliveryOptionRenameOperation:
    delivery_option_handle: str
    title: str


# cart.payment-methods.transform.run


@dataclass(frozen=True, slots=True)
class PaymentMethodHideOperation:
    payment_method_id: str
    placements: tuple[PaymentCustomizationPaymentMethodPlacement, ...] | None = None


@dataclass(frozen=True, slots=True)
class PaymentMethodMoveOperation:
    payment_method_id: str
    index: int


@dataclass(frozen=True, slots=True)
class PaymentMethodRenameOperation:
    payment_method_id: str
    name: str


# cart.validations.generate.run


@dataclass(frozen=True, slots=True)
class ValidationError:
    message: str
    target: str


@dataclass(frozen=True, slots=True)
class ValidationAddOperation:
    errors: tuple[ValidationError, ...]


# cart.transform.run


@dataclass(frozen=True, slots=True)
class AttributeOutput:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class ImageInput:
    url: str


@dataclass(frozen=True, slots=True)
class PriceAdjustmentValue:
    value: Decimal


@dataclass(frozen=True, slots=True)
class PriceAdjustment:
    percentage_decrease: PriceAdjustmentValue | None = None


@dataclass(frozen=True, slots=True)
class ExpandedItemFixedPricePerUnitAdjustment:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ExpandedItemPriceAdjustment:
    adjustment: ExpandedItemFixedPricePerUnitAdjustment


@dataclass(frozen=True, slots=True)
class ExpandedItem:
    merchandise_id: str
    quantity: int
    price: ExpandedItemPriceAdjustment | None = None
    attributes: tuple[AttributeOutput, ...] | None = None


@dataclass(frozen=True, slots=True)
class LineExpandOperation:
    cart_line_id: str
    expanded_cart_items: tuple[ExpandedItem, ...]
    title: str | None = None
    image: ImageInput | None = None
    price: PriceAdjustment | None = None


@dataclass(frozen=True, slots=True)
class CartLineInput:
    cart_line_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class LinesMergeOperation:
    cart_lines: tuple[CartLineInput, ...]
    parent_variant_id: str
    title: str | None = None
    image: ImageInput | None = None
    price: PriceAdjustment | None = None
    attributes: tuple[AttributeOutput, ...] | None = None


@dataclass(frozen=True, slots=True)
class LineUpdateOperationFixedPricePerUnitAdjustment:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class LineUpdateOperationPriceAdjustment:
    adjustment: LineUpdateOperationFixedPricePerUnitAdjustment


@dataclass(frozen=True, slots=True)
class LineUpdateOperation:
    cart_line_id: str
    title: str | None = None
    image: ImageInput | None = None
    price: LineUpdateOperationPriceAdjustment | None = None


CartTransformOperation = LineExpandOperation | LinesMergeOperation | LineUpdateOperation
CartLinesDiscountsOperation = (
    ProductDiscountsAddOperation | OrderDiscountsAddOperation | EnteredDiscountCodesAcceptOperation
)
DeliveryOptionsTransformOperation = (
    DeliveryOptionHideOperation | DeliveryOptionMoveOperation | DeliveryOptionRenameOperation
)
DeliveryOptionsDiscountsOperation = (
    DeliveryDiscountsAddOperation | EnteredDiscountCodesAcceptOperation
)
PaymentMethodsTransformOperation = (
    PaymentMethodHideOperation | PaymentMethodMoveOperation | PaymentMethodRenameOperation
)
ValidationsOperation = ValidationAddOperation

Operation = (
    CartTransformOperation
    | CartLinesDiscountsOperation
    | DeliveryOptionsTransformOperation
    | DeliveryOptionsDiscountsOperation
    | PaymentMethodsTransformOperation
    | ValidationsOperation
)
"""Any typed operation; each target's operations are one of the unions above."""

_DATACLASSES: Final[dict[str, type[Any]]] = {
    cls.__name__: cls
    for cls in (
        AssociatedDiscountCode,
        DiscountCode,
        EnteredDiscountCodesAcceptOperation,
        Percentage,
        FixedAmount,
        CartLineTarget,
        ProductDiscountCandidateFixedAmount,
        ProductDiscountCandidate,
        ProductDiscountsAddOperation,
        OrderSubtotalTarget,
        CartLineMinimumQuantity,
        CartLineMinimumSubtotal,
        OrderMinimumSubtotal,
        OrderDiscountCandidate,
        OrderDiscountsAddOperation,
        DeliveryGroupTarget,
        DeliveryOptionTarget,
        DeliveryDiscountCandidate,
        DeliveryDiscountsAddOperation,
        DeliveryOptionHideOperation,
        DeliveryOptionMoveOperation,
        DeliveryOptionRenameOperation,
        PaymentMethodHideOperation,
        PaymentMethodMoveOperation,
        PaymentMethodRenameOperation,
        ValidationError,
        ValidationAddOperation,
        AttributeOutput,
        ImageInput,
        PriceAdjustmentValue,
        PriceAdjustment,
        ExpandedItemFixedPricePerUnitAdjustment,
        ExpandedItemPriceAdjustment,
        ExpandedItem,
        LineExpandOperation,
        CartLineInput,
        LinesMergeOperation,
        LineUpdateOperationFixedPricePerUnitAdjustment,
        LineUpdateOperationPriceAdjustment,
        LineUpdateOperation,
    )
}

_ENUMS: Final[dict[str, type[enum.StrEnum]]] = {
    cls.__name__: cls
    for cls in (
        ProductDiscountSelectionStrategy,
        OrderDiscountSelectionStrategy,
        DeliveryDiscountSelectionStrategy,
        PaymentCustomizationPaymentMethodPlacement,
    )
}


# --------------------------------------------------------------------------------------
# Value rules: Shopify's documented constraints and references into the input
# --------------------------------------------------------------------------------------

ReferenceKind = Literal[
    "cartLine", "deliveryGroup", "deliveryOption", "paymentMethod", "discountCode"
]
"""What an id in the output refers to; see `functions_sdk.output.References`."""


@dataclass(frozen=True, slots=True)
class Range:
    """A numeric field's allowed interval (inclusive); `None` means unbounded."""

    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None

    def describe(self) -> str:
        if self.maximum is None:
            return f">= {self.minimum}"
        if self.minimum is None:
            return f"<= {self.maximum}"
        return f">= {self.minimum} and <= {self.maximum}"


@dataclass(frozen=True, slots=True)
class Reference:
    """An id or handle (or each one of a list of them) that must exist in the input."""

    kind: ReferenceKind


@dataclass(frozen=True, slots=True)
class Pattern:
    """A string field's required format."""

    regex: re.Pattern[str]
    description: str


FieldRule = Range | Reference | Pattern

_PERCENT = Range(0, 100)
_NON_NEGATIVE = Range(0)
_POSITIVE_INT = Range(1)

# A validation error target: "$.cart", "$.cart.lines[0].quantity", "$.cart.deliveryGroups[1]".
_VALIDATION_TARGET = Pattern(
    re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*)*"),
    'a JSON path into the input such as "$.cart" or "$.cart.lines[0].quantity"',
)

FIELD_RULES: Final[Mapping[tuple[str, str], FieldRule]] = {
    ("Percentage", "value"): _PERCENT,
    ("FixedAmount", "amount"): _NON_NEGATIVE,
    ("ProductDiscountCandidateFixedAmount", "amount"): _NON_NEGATIVE,
    ("CartLineMinimumSubtotal", "minimumAmount"): _NON_NEGATIVE,
    ("OrderMinimumSubtotal", "minimumAmount"): _NON_NEGATIVE,
    ("CartLineTarget", "quantity"): _POSITIVE_INT,
    ("CartLineMinimumQuantity", "minimumQuantity"): _POSITIVE_INT,
    ("DeliveryOptionMoveOperation", "index"): Range(0),
    ("PaymentMethodMoveOperation", "index"): Range(0),
    ("ExpandedItem", "quantity"): _POSITIVE_INT,
    ("CartLineInput", "quantity"): Range(1, 2000),
    ("PriceAdjustmentValue", "value"): _PERCENT,
    ("ExpandedItemFixedPricePerUnitAdjustment", "amount"): _NON_NEGATIVE,
    ("LineUpdateOperationFixedPricePerUnitAdjustment", "amount"): _NON_NEGATIVE,
    ("ValidationError", "target"): _VALIDATION_TARGET,
    ("CartLineTarget", "id"): Reference("cartLine"),
    ("OrderSubtotalTarget", "excludedCartLineIds"): Reference("cartLine"),
    ("CartLineMinimumQuantity", "ids"): Reference("cartLine"),
    ("CartLineMinimumSubtotal", "ids"): Reference("cartLine"),
    ("OrderMinimumSubtotal", "excludedCartLineIds"): Reference("cartLine"),
    ("DiscountCode", "code"): Reference("discountCode"),
    ("DeliveryGroupTarget", "id"): Reference("deliveryGroup"),
    ("DeliveryOptionTarget", "handle"): Reference("deliveryOption"),
    ("DeliveryOptionHideOperation", "deliveryOptionHandle"): Reference("deliveryOption"),
    ("DeliveryOptionMoveOperation", "deliveryOptionHandle"): Reference("deliveryOption"),
    ("DeliveryOptionRenameOperation", "deliveryOptionHandle"): Reference("deliveryOption"),
    ("PaymentMethodHideOperation", "paymentMethodId"): Reference("paymentMethod"),
    ("PaymentMethodMoveOperation", "paymentMethodId"): Reference("paymentMethod"),
    ("PaymentMethodRenameOperation", "paymentMethodId"): Reference("paymentMethod"),
    ("LineExpandOperation", "cartLineId"): Reference("cartLine"),
    ("CartLineInput", "cartLineId"): Reference("cartLine"),
    ("LineUpdateOperation", "cartLineId"): Reference("cartLine"),
}
"""Constraints the type system cannot express, keyed by (input type, field)."""


# --------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------

_DECIMAL_STRING = re.compile(r"-?\d+(\.\d+)?")


def coerce_decimal(value: Any) -> Decimal:
    """Input coercion of the ``Decimal`` scalar: a decimal string or a JSON number.

    Raises `GraphQLError` for anything else (booleans, NaN, infinities, exponents in
    strings, more than `DECIMAL_MAX_DIGITS` digits or a magnitude above
    `DECIMAL_MAX_ABS`).
    """
    kind = type(value)
    if kind is str:
        if len(value) > DECIMAL_MAX_DIGITS + 2 or not _DECIMAL_STRING.fullmatch(value):
            raise GraphQLError(
                f"Decimal cannot represent {value!r}: write a plain decimal string such "
                'as "12.50" or a JSON number.'
            )
        result = Decimal(value)
    elif kind is int:
        result = Decimal(value)
    elif kind is float:
        if not math.isfinite(value):
            raise GraphQLError(f"Decimal cannot represent the non-finite number {value!r}.")
        try:
            result = Decimal(repr(value))
        except InvalidOperation as exc:  # pragma: no cover - repr of a finite float parses
            raise GraphQLError(f"Decimal cannot represent {value!r}.") from exc
    else:
        raise GraphQLError(
            f"Decimal cannot represent a non-numeric value: {value!r}. "
            'Write a decimal string such as "12.50" or a JSON number.'
        )
    # With strings at most 32 characters long and floats at most 17 significant digits,
    # the magnitude bound also bounds the digits.
    if not -DECIMAL_MAX_ABS < result < DECIMAL_MAX_ABS:
        raise GraphQLError(f"Decimal {value!r} is out of range: |value| must be < 1e15.")
    return result


def _coerce_handle(value: Any) -> str:
    if type(value) is not str:
        raise GraphQLError(f"Handle cannot represent a non-string value: {value!r}.")
    return value


def _coerce_url(value: Any) -> str:
    if type(value) is not str:
        raise GraphQLError(f"URL cannot represent a non-string value: {value!r}.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GraphQLError(f"URL must be an absolute http(s) URL, got {value!r}.")
    return value


def _coerce_void(value: Any) -> None:
    raise GraphQLError("Void accepts no value.")


_SCALAR_COERCERS: Final[dict[str, Callable[[Any], Any]]] = {
    "Decimal": coerce_decimal,
    "Handle": _coerce_handle,
    "URL": _coerce_url,
    "Void": _coerce_void,
}


# --------------------------------------------------------------------------------------
# Building and binding the schemas
# --------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(name: str) -> str:
    """``excludedCartLineIds`` → ``excluded_cart_line_ids`` (the dataclass field names)."""
    return _CAMEL.sub("_", name).lower()


def unwrap_one_of(value: dict[str, Any]) -> Any:
    """The `out_type` of every @oneOf type: coercion guarantees exactly one non-null
    entry, and the member itself is the typed value (a `Percentage` or a `FixedAmount`,
    a `CartLineTarget`...)."""
    for member in value.values():
        return member
    raise AssertionError("a @oneOf value has exactly one field")  # pragma: no cover


def _result_operations(value: dict[str, Any]) -> list[Any]:
    operations: list[Any] = value["operations"]
    return operations


def _dataclass_builder(
    cls: type[Any], list_fields: tuple[str, ...]
) -> Callable[[dict[str, Any]], Any]:
    if not list_fields:
        return lambda value: cls(**value)

    def build(value: dict[str, Any]) -> Any:
        for name in list_fields:
            items = value.get(name)
            if items is not None:
                value[name] = tuple(items)
        return cls(**value)

    return build


def _bind(schema: GraphQLSchema, result_type: str) -> None:
    # graphql-core's type constructors store `coerce_input_value`, `out_type` and
    # `out_name` as plain instance attributes; types built from SDL get them here.
    for name, type_ in schema.type_map.items():
        if isinstance(type_, GraphQLScalarType) and name in _SCALAR_COERCERS:
            type_.coerce_input_value = _SCALAR_COERCERS[name]
        elif isinstance(type_, GraphQLEnumType) and name in _ENUMS:
            for value_name, value in type_.values.items():
                value.value = _ENUMS[name](value_name)
        elif isinstance(type_, GraphQLInputObjectType):
            list_fields = []
            for field_name, field in type_.fields.items():
                field.out_name = snake_case(field_name)
                inner = field.type.of_type if is_non_null_type(field.type) else field.type
                if is_list_type(inner):
                    list_fields.append(field.out_name)
            if type_.is_one_of:
                type_.out_type = unwrap_one_of  # type: ignore[method-assign]
            elif name == result_type:
                type_.out_type = _result_operations  # type: ignore[method-assign]
            else:
                cls = _DATACLASSES[name]
                expected = {f.name for f in dataclasses.fields(cls)}
                declared = {f.out_name for f in type_.fields.values()}
                if expected != declared:  # pragma: no cover - guarded by the test suite
                    raise AssertionError(f"{cls.__name__} fields {expected} != SDL {declared}")
                builder = _dataclass_builder(cls, tuple(list_fields))
                _BOUND_DATACLASSES[type_] = cls
                type_.out_type = builder  # type: ignore[method-assign,assignment]


_BOUND_DATACLASSES: dict[GraphQLInputObjectType, type[Any]] = {}


class UnknownOutputTargetError(UnknownTargetError):
    """The target name has no output schema (a `UnknownTargetError`, code
    ``UNKNOWN_TARGET``, so one ``except`` covers both registries)."""


def _target_output(target: str) -> _TargetOutput:
    try:
        return _TARGET_OUTPUTS[target]
    except KeyError:
        raise UnknownOutputTargetError(
            f"Unknown Function API target {target!r}. Use one of: {', '.join(OUTPUT_TARGETS)}.",
            target=target,
        ) from None


@functools.cache
def output_schema(target: str) -> GraphQLSchema:
    """The graphql-core schema holding `target`'s output types, built once and cached.

    Its only root is a Shopify-style mutation (``cartLinesDiscountsGenerateRun(result:
    CartLinesDiscountsGenerateRunResult!): Void!``). Raises `UnknownOutputTargetError`.
    """
    spec = _target_output(target)
    sdl = (
        "schema { mutation: MutationRoot }\n"
        + _SCALARS
        + spec.sdl
        + f'\n"""Handles the function result for the {target} target."""\n'
        + f"type MutationRoot {{\n  {spec.mutation_field}(result: {spec.result_type}!): Void!\n}}\n"
    )
    schema = build_schema(sdl)
    _bind(schema, spec.result_type)
    return schema


def output_type(target: str) -> GraphQLInputObjectType:
    """The result input type of `target` (e.g. ``CartLinesDiscountsGenerateRunResult``),
    bound to this module's dataclasses. Raises `UnknownOutputTargetError`."""
    type_ = output_schema(target).type_map[_target_output(target).result_type]
    assert isinstance(type_, GraphQLInputObjectType)
    return type_


def output_sdl(target: str) -> str:
    """The SDL of `target`'s output schema, as printed for developers
    (``cartwheel fn schema``). Raises `UnknownOutputTargetError`."""
    return print_schema(output_schema(target))


def dataclass_of(type_: GraphQLInputObjectType) -> type[Any] | None:
    """The dataclass `type_` (an output type of `output_schema`) is bound to: None for
    @oneOf types (their member is the value) and for the result types."""
    return _BOUND_DATACLASSES.get(type_)


def field_rule(type_name: str, field_name: str) -> FieldRule | None:
    """The `FIELD_RULES` entry of one input field, if any."""
    return FIELD_RULES.get((type_name, field_name))


def named_type_name(type_: Any) -> str:
    """The name of the named type under list/non-null wrappers."""
    return str(get_named_type(type_).name)
