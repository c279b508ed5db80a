"""Input schemas of the Function API targets, as Strawberry types.

Field names and shapes follow Shopify's Function API input types so that an input query
written for Shopify runs unchanged. The resolvers read the cart snapshot
(`functions_sdk.snapshot`) directly: a type's parent value is the snapshot's dict for
it, plain fields are read by key (the schema's `default_resolver`), computed fields
(`hasAnyTag`, `metafield`, `attribute`, `jsonValue`, ...) have a resolver here.

This schema executed by graphql-core is the *reference* execution of an input query.
Checkout does not use it: `functions_sdk.query` compiles a query into a plan that
projects the snapshot straight to JSON and is tested byte for byte against this one.
The fact helpers (`find_metafield`, `metafield_json_value`, ...) are shared by both so
that the semantics live in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NewType

import orjson
import strawberry
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from functions_sdk.snapshot import Attribute as AttributeData
from functions_sdk.snapshot import DeliveryGroup as DeliveryGroupData
from functions_sdk.snapshot import DeliveryOption as DeliveryOptionData
from functions_sdk.snapshot import Metafield as MetafieldData

METAFIELD_VALUE_BYTES_LIMIT = 10_000
"""Metafield values longer than this (UTF-8 bytes) are not returned (the field is null),
as on Shopify."""

APP_NAMESPACE = "$app"
"""Namespace used by `metafield(key:)` when `namespace` is omitted: the app-reserved
namespace, as on Shopify."""

_JSON_METAFIELD_TYPES = frozenset(
    {"json", "json_string", "money", "dimension", "volume", "weight", "rating", "link"}
)

# -- fact helpers (shared with the compiled executor) ---------------------------------


def find_metafield(
    metafields: Sequence[MetafieldData], namespace: str | None, key: str
) -> MetafieldData | None:
    """The metafield `namespace.key` of an owner, or None if it has none or its value is
    over `METAFIELD_VALUE_BYTES_LIMIT` bytes."""
    ns = APP_NAMESPACE if namespace is None else namespace
    for m in metafields:
        if m["key"] == key and m["namespace"] == ns:
            value = m["value"]
            # len(str) <= len(bytes) <= 4 * len(str): only encode when it can matter.
            if len(value) * 4 > METAFIELD_VALUE_BYTES_LIMIT and (
                len(value.encode()) > METAFIELD_VALUE_BYTES_LIMIT
            ):
                return None
            return m
    return None


def metafield_json_value(metafield: MetafieldData) -> Any:
    """`Metafield.jsonValue`: the value as JSON, by metafield type.

    JSON-shaped types (`json`, `list.*`, `money`, `dimension`, `volume`, `weight`,
    `rating`, `link`) are parsed; `number_integer` is an integer; `boolean` a boolean;
    everything else (text, `number_decimal`, dates, references) is the stored string, so
    decimals keep their precision. A value that does not parse as its type is returned
    as the stored string rather than failing the run.
    """
    type_ = metafield["type"]
    value = metafield["value"]
    try:
        if type_ in _JSON_METAFIELD_TYPES or type_.startswith("list."):
            return orjson.loads(value)
        if type_ == "number_integer":
            return int(value)
        if type_ == "boolean":
            if value in ("true", "false"):
                return value == "true"
            return value
    except ValueError:
        return value
    return value


def find_attribute(attributes: Sequence[AttributeData], key: str) -> AttributeData | None:
    """The attribute `key` of a cart or cart line, or None."""
    for a in attributes:
        if a["key"] == key:
            return a
    return None


def has_tags(tags: Sequence[str], wanted: Sequence[str] | None) -> list[dict[str, Any]]:
    """`hasTags(tags:)`: one `{tag, hasTag}` per requested tag, in request order."""
    present = set(tags)
    return [{"tag": t, "hasTag": t in present} for t in wanted or ()]


def in_collections(
    collection_ids: Sequence[str], wanted: Sequence[str] | None
) -> list[dict[str, Any]]:
    """`inCollections(ids:)`: one `{collectionId, isMember}` per requested id."""
    present = set(collection_ids)
    return [{"collectionId": c, "isMember": c in present} for c in wanted or ()]


def selected_delivery_option(group: DeliveryGroupData) -> DeliveryOptionData | None:
    """The delivery option of a group whose handle the buyer selected, or None."""
    selected = group["selectedDeliveryOption"]
    if selected is None:
        return None
    handle = selected["handle"]
    for option in group["deliveryOptions"]:
        if option["handle"] == handle:
            return option
    return None


def _read_key(source: Any, name: str) -> object:
    # Parent values are the snapshot's dicts; a key that an optional fact leaves out
    # (`triggeringDiscountCode`, `discountClasses`) reads as null.
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name)


# -- scalars and enums ---------------------------------------------------------------

Decimal = NewType("Decimal", str)
"""A decimal number as a string, e.g. `"29.95"` (never a float)."""
Date = NewType("Date", str)
"""An ISO 8601 date, `YYYY-MM-DD`."""
CurrencyCode = NewType("CurrencyCode", str)
"""An ISO 4217 currency code, e.g. `USD`."""
CountryCode = NewType("CountryCode", str)
"""An ISO 3166-1 alpha-2 country code, e.g. `CA`."""
LanguageCode = NewType("LanguageCode", str)
"""An ISO 639-1 language code in upper case, e.g. `EN`."""


def _string_scalar(name: str, description: str) -> Any:
    return strawberry.scalar(name=name, description=description, serialize=str, parse_value=str)


SCALARS: dict[object, Any] = {
    Decimal: _string_scalar("Decimal", 'A decimal number as a string, e.g. `"29.95"`.'),
    Date: _string_scalar("Date", "An ISO 8601 date, `YYYY-MM-DD`."),
    CurrencyCode: _string_scalar("CurrencyCode", "An ISO 4217 currency code, e.g. `USD`."),
    CountryCode: _string_scalar("CountryCode", "An ISO 3166-1 alpha-2 country code."),
    LanguageCode: _string_scalar("LanguageCode", "An ISO 639-1 language code, upper case."),
}
"""The custom scalars of the input schemas (Strawberry `scalar_map`)."""


@strawberry.enum(description="How a delivery option reaches the buyer.")
class DeliveryMethod(enum.Enum):
    SHIPPING = "SHIPPING"
    LOCAL = "LOCAL"
    PICK_UP = "PICK_UP"
    NONE = "NONE"
    RETAIL = "RETAIL"
    PICKUP_POINT = "PICKUP_POINT"


@strawberry.enum(description="The classes a discount may apply to.")
class DiscountClass(enum.Enum):
    ORDER = "ORDER"
    PRODUCT = "PRODUCT"
    SHIPPING = "SHIPPING"


StringList = Annotated[
    list[str] | None,
    strawberry.argument(description="Tags to test; null or omitted means none."),
]
IdList = Annotated[
    list[strawberry.ID] | None,
    strawberry.argument(description="Collection ids to test; null or omitted means none."),
]
Namespace = Annotated[
    str | None,
    strawberry.argument(description="The metafield's namespace; omitted means `$app`."),
]

# -- resolvers of computed fields (the parent value is the snapshot's dict) -----------


def _json_value(parent: strawberry.Parent[MetafieldData]) -> JSON | None:
    return metafield_json_value(parent)  # type: ignore[no-any-return]


def _metafield(
    parent: strawberry.Parent[Mapping[str, Any]], key: str, namespace: Namespace = None
) -> Metafield | None:
    return find_metafield(parent["metafields"], namespace, key)  # type: ignore[return-value]


def _attribute(parent: strawberry.Parent[Mapping[str, Any]], key: str) -> Attribute | None:
    return find_attribute(parent["attributes"], key)  # type: ignore[return-value]


def _has_any_tag(
    parent: strawberry.Parent[Mapping[str, Any]],
    tags: StringList = (),  # type: ignore[assignment]
) -> bool:
    return not set(tags or ()).isdisjoint(parent["tags"])


def _has_tags(
    parent: strawberry.Parent[Mapping[str, Any]],
    tags: StringList = (),  # type: ignore[assignment]
) -> list[HasTagResponse]:
    return has_tags(parent["tags"], tags)  # type: ignore[return-value]


def _in_any_collection(
    parent: strawberry.Parent[Mapping[str, Any]],
    ids: IdList = (),  # type: ignore[assignment]
) -> bool:
    return not set(ids or ()).isdisjoint(parent["collectionIds"])


def _in_collections(
    parent: strawberry.Parent[Mapping[str, Any]],
    ids: IdList = (),  # type: ignore[assignment]
) -> list[CollectionMembership]:
    return in_collections(parent["collectionIds"], ids)  # type: ignore[return-value]


def _selected_delivery_option(
    parent: strawberry.Parent[DeliveryGroupData],
) -> CartDeliveryOption | None:
    return selected_delivery_option(parent)  # type: ignore[return-value]


def _local_date(parent: strawberry.Parent[str]) -> Date:
    return Date(parent[:10])


def _country_code(parent: strawberry.Parent[str]) -> CountryCode:
    return CountryCode(parent)


def _language_code(parent: strawberry.Parent[str]) -> LanguageCode:
    return LanguageCode(parent)


def _discount_classes(parent: strawberry.Parent[Mapping[str, Any]]) -> list[DiscountClass]:
    return parent.get("discountClasses", [])  # type: ignore[no-any-return]


def _field(resolver: Any, description: str) -> Any:
    return strawberry.field(resolver=resolver, description=description)


def _is_typename(name: str) -> Any:
    # Union members are told apart by the snapshot's `__typename`.
    def is_type_of(cls: type, obj: Any, _info: Any) -> bool:
        return isinstance(obj, Mapping) and obj.get("__typename") == name

    return classmethod(is_type_of)


# -- object types ----------------------------------------------------------------------


@strawberry.type(description="An amount of money in a currency.")
class MoneyV2:
    amount: Decimal
    currencyCode: CurrencyCode


@strawberry.type(description="A metafield: typed configuration or data on a resource.")
class Metafield:
    type: str
    value: str
    jsonValue: JSON | None = _field(
        _json_value, "The value parsed as JSON according to its `type` (null for a JSON null)."
    )


@strawberry.type(description="A custom key-value pair on a cart or a cart line.")
class Attribute:
    key: str
    value: str | None


@strawberry.type(description="Whether a resource has one tag.")
class HasTagResponse:
    tag: str
    hasTag: bool


@strawberry.type(description="Whether a product belongs to one collection.")
class CollectionMembership:
    collectionId: strawberry.ID
    isMember: bool


@strawberry.type(description="A product.")
class Product:
    id: strawberry.ID
    handle: str
    title: str
    vendor: str | None
    productType: str | None
    isGiftCard: bool
    hasAnyTag: bool = _field(_has_any_tag, "Whether the product has at least one of `tags`.")
    hasTags: list[HasTagResponse] = _field(
        _has_tags, "For each of `tags`, whether the product has it."
    )
    inAnyCollection: bool = _field(
        _in_any_collection, "Whether the product is in at least one of `ids`."
    )
    inCollections: list[CollectionMembership] = _field(
        _in_collections, "For each of `ids`, whether the product is in it."
    )
    metafield: Metafield | None = _field(_metafield, "A metafield of the product.")


@strawberry.type(description="A variant of a product: the merchandise of most cart lines.")
class ProductVariant:
    id: strawberry.ID
    sku: str | None
    title: str | None
    requiresShipping: bool
    product: Product
    metafield: Metafield | None = _field(_metafield, "A metafield of the variant.")

    is_type_of = _is_typename("ProductVariant")


@strawberry.type(
    description="Merchandise created at checkout rather than in the catalog. Never present "
    "in a Cartwheel snapshot; declared so that Shopify queries that mention it validate."
)
class CustomProduct:
    title: str
    requiresShipping: bool
    isGiftCard: bool

    is_type_of = _is_typename("CustomProduct")


Merchandise = Annotated[
    ProductVariant | CustomProduct,
    strawberry.union("Merchandise", description="What a line buys."),
]


@strawberry.type(description="The cost of a cart line.")
class CartLineCost:
    amountPerQuantity: MoneyV2
    compareAtAmountPerQuantity: MoneyV2 | None
    subtotalAmount: MoneyV2
    totalAmount: MoneyV2


@strawberry.type(description="A line of the cart: merchandise and a quantity.")
class CartLine:
    id: strawberry.ID
    quantity: int
    cost: CartLineCost
    merchandise: Merchandise
    attribute: Attribute | None = _field(_attribute, "The line attribute `key`, or null.")


@strawberry.type(description="A customer of the shop.")
class Customer:
    id: strawberry.ID
    email: str | None
    displayName: str
    numberOfOrders: int
    amountSpent: MoneyV2
    hasAnyTag: bool = _field(_has_any_tag, "Whether the customer has at least one of `tags`.")
    hasTags: list[HasTagResponse] = _field(
        _has_tags, "For each of `tags`, whether the customer has it."
    )
    metafield: Metafield | None = _field(_metafield, "A metafield of the customer.")


@strawberry.type(description="Who is buying.")
class BuyerIdentity:
    email: str | None
    phone: str | None
    isAuthenticated: bool
    customer: Customer | None


@strawberry.type(description="The cost of the whole cart.")
class CartCost:
    subtotalAmount: MoneyV2
    totalAmount: MoneyV2
    totalTaxAmount: MoneyV2 | None


@strawberry.type(description="A delivery address.")
class MailingAddress:
    countryCode: CountryCode | None
    provinceCode: str | None
    city: str | None
    zip: str | None


@strawberry.type(description="A way to deliver a delivery group.")
class CartDeliveryOption:
    handle: str
    title: str | None
    cost: MoneyV2
    deliveryMethodType: DeliveryMethod


@strawberry.type(description="Lines delivered together, with their delivery options.")
class CartDeliveryGroup:
    id: strawberry.ID
    deliveryAddress: MailingAddress | None
    deliveryOptions: list[CartDeliveryOption]
    selectedDeliveryOption: CartDeliveryOption | None = _field(
        _selected_delivery_option, "The option the buyer selected, or null."
    )


@strawberry.type(description="The cart being checked out.")
class Cart:
    lines: list[CartLine]
    buyerIdentity: BuyerIdentity | None
    cost: CartCost
    deliveryGroups: list[CartDeliveryGroup]
    attribute: Attribute | None = _field(_attribute, "The cart attribute `key`, or null.")


@strawberry.type(description="The shop's local time at evaluation.")
class LocalTime:
    date: Date = _field(_local_date, "The shop's local date.")


@strawberry.type(description="The shop running the checkout.")
class Shop:
    localTime: LocalTime
    metafield: Metafield | None = _field(_metafield, "A metafield of the shop.")


@strawberry.type(description="A country.")
class Country:
    isoCode: CountryCode = _field(_country_code, "The ISO code of the country.")


@strawberry.type(description="A language.")
class Language:
    isoCode: LanguageCode = _field(_language_code, "The ISO code of the language.")


@strawberry.type(description="The buyer's country and language.")
class Localization:
    country: Country
    language: Language


@strawberry.type(description="A payment method offered at checkout.")
class PaymentCustomizationPaymentMethod:
    id: strawberry.ID
    name: str


@strawberry.type(description="A discount code the buyer entered.")
class EnteredDiscountCode:
    code: str
    rejectable: bool


@strawberry.type(description="The discount that owns this function run (its configuration).")
class Discount:
    discountClasses: list[DiscountClass] = _field(
        _discount_classes, "The classes the discount may apply to."
    )
    metafield: Metafield | None = _field(_metafield, "A metafield of the discount.")


@strawberry.type(description="The delivery customization that owns this function run.")
class DeliveryCustomization:
    metafield: Metafield | None = _field(_metafield, "A metafield of the customization.")


@strawberry.type(description="The payment customization that owns this function run.")
class PaymentCustomization:
    metafield: Metafield | None = _field(_metafield, "A metafield of the customization.")


@strawberry.type(description="The validation that owns this function run.")
class Validation:
    metafield: Metafield | None = _field(_metafield, "A metafield of the validation.")


@strawberry.type(description="The cart transform that owns this function run.")
class CartTransform:
    metafield: Metafield | None = _field(_metafield, "A metafield of the cart transform.")


# -- roots: one `Input` per target -----------------------------------------------------


@strawberry.type(name="Input")
class _CommonInput:
    cart: Cart
    shop: Shop
    localization: Localization
    presentmentCurrencyRate: Decimal


@strawberry.type(name="Input", description="Input of the discount targets.")
class DiscountInput(_CommonInput):
    discount: Discount
    enteredDiscountCodes: list[EnteredDiscountCode]
    triggeringDiscountCode: str | None


@strawberry.type(name="Input", description="Input of `cart.delivery-options.transform.run`.")
class DeliveryCustomizationInput(_CommonInput):
    deliveryCustomization: DeliveryCustomization


@strawberry.type(name="Input", description="Input of `cart.payment-methods.transform.run`.")
class PaymentCustomizationInput(_CommonInput):
    paymentCustomization: PaymentCustomization
    paymentMethods: list[PaymentCustomizationPaymentMethod]


@strawberry.type(name="Input", description="Input of `cart.validations.generate.run`.")
class ValidationInput(_CommonInput):
    validation: Validation


@strawberry.type(name="Input", description="Input of `cart.transform.run`.")
class CartTransformInput(_CommonInput):
    cartTransform: CartTransform


def build_schema(root: type) -> strawberry.Schema:
    """A Strawberry schema whose query root is `root` (one of the `*Input` types) and
    whose plain fields read the snapshot's dicts by key."""
    return strawberry.Schema(
        query=root,
        config=StrawberryConfig(
            auto_camel_case=False, default_resolver=_read_key, scalar_map=SCALARS
        ),
    )
