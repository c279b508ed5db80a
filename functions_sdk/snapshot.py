"""The cart snapshot: the data an input query executes against.

One JSON document per checkout. The server builds exactly this from its database
(`cartwheel.snapshot.load_snapshot`); a developer writes it by hand or copies a fixture
(`examples/carts/*.json`) to run input queries locally. Shapes follow Shopify's Function
API input types; where Shopify computes a field (`hasAnyTag`, `inAnyCollection`, a
metafield lookup), the snapshot holds the raw facts (`tags`, `collectionIds`,
`metafields`) and the query executor computes the field.

Conventions:
- ids are global ids: ``gid://cartwheel/<Type>/<n>``;
- money is ``{"amount": "<decimal string>", "currencyCode": "USD"}``;
- metafields are lists of ``{"namespace", "key", "type", "value"}`` with ``value`` as a
  string, as stored (``jsonValue`` is parsed from it by the executor);
- optional facts are ``null``, lists are never ``null``.

The *owner* of a run (the discount, customization or validation whose configuration
the function reads) is not part of the snapshot: it differs per function instance and is
passed beside it (`Owner`).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

SNAPSHOT_VERSION = 1


class Money(TypedDict):
    amount: str
    currencyCode: str


class Metafield(TypedDict):
    namespace: str
    key: str
    type: str
    value: str


class Attribute(TypedDict):
    key: str
    value: str | None


class Product(TypedDict):
    id: str
    handle: str
    title: str
    vendor: str | None
    productType: str | None
    isGiftCard: bool
    tags: list[str]
    collectionIds: list[str]
    metafields: list[Metafield]


# Functional syntax: a `__typename` key in a class body would be name-mangled by Python.
ProductVariant = TypedDict(
    "ProductVariant",
    {
        "__typename": Literal["ProductVariant"],
        "id": str,
        "sku": str | None,
        "title": str | None,
        "requiresShipping": bool,
        "metafields": list[Metafield],
        "product": Product,
    },
)


class CartLineCost(TypedDict):
    amountPerQuantity: Money
    compareAtAmountPerQuantity: Money | None
    subtotalAmount: Money
    totalAmount: Money


class CartLine(TypedDict):
    id: str
    quantity: int
    attributes: list[Attribute]
    cost: CartLineCost
    merchandise: ProductVariant


class Customer(TypedDict):
    id: str
    email: str | None
    displayName: str
    numberOfOrders: int
    amountSpent: Money
    tags: list[str]
    metafields: list[Metafield]


class BuyerIdentity(TypedDict):
    email: str | None
    phone: str | None
    isAuthenticated: bool
    customer: Customer | None


class CartCost(TypedDict):
    subtotalAmount: Money
    totalAmount: Money
    totalTaxAmount: Money | None


class MailingAddress(TypedDict):
    countryCode: str | None
    provinceCode: str | None
    city: str | None
    zip: str | None


class DeliveryOption(TypedDict):
    handle: str
    title: str | None
    cost: Money
    deliveryMethodType: Literal["SHIPPING", "LOCAL", "PICK_UP", "NONE", "RETAIL", "PICKUP_POINT"]


class SelectedDeliveryOption(TypedDict):
    handle: str


class DeliveryGroup(TypedDict):
    id: str
    deliveryAddress: MailingAddress | None
    selectedDeliveryOption: SelectedDeliveryOption | None
    deliveryOptions: list[DeliveryOption]


class Cart(TypedDict):
    id: str
    attributes: list[Attribute]
    buyerIdentity: BuyerIdentity | None
    lines: list[CartLine]
    cost: CartCost
    deliveryGroups: list[DeliveryGroup]


class PaymentMethod(TypedDict):
    id: str
    name: str


class DiscountCode(TypedDict):
    code: str
    rejectable: bool


class Shop(TypedDict):
    id: str
    currencyCode: str
    localTime: str
    """ISO 8601 local date-time of the shop at evaluation (fixed in fixtures)."""
    metafields: list[Metafield]


class Localization(TypedDict):
    country: str
    language: str


class Snapshot(TypedDict):
    version: int
    shop: Shop
    localization: Localization
    presentmentCurrencyRate: str
    cart: Cart
    paymentMethods: list[PaymentMethod]
    enteredDiscountCodes: list[DiscountCode]
    triggeringDiscountCode: NotRequired[str | None]


class Owner(TypedDict):
    """The function instance a run belongs to: `discount`, `deliveryCustomization`,
    `paymentCustomization`, `validation` or `cartTransform` in the input query,
    depending on the target."""

    id: str
    metafields: list[Metafield]
    discountClasses: NotRequired[list[Literal["ORDER", "PRODUCT", "SHIPPING"]]]
