"""Snapshot loading: everything a checkout needs about one cart, from the database, in a
fixed number of SQL statements whatever the size of the cart.

The result is exactly `functions_sdk.snapshot.Snapshot`, the document input queries run
against. Statements (see `tests/server/test_snapshot.py`, which counts them):

1. the cart with its shop and customer (one JOIN, read as plain columns),
2. the lines with their variants and products (one JOIN, read as plain rows),
3. the collection memberships of those products (an ``IN`` subquery),
4. the metafields of the shop, products, variants and customer (one condition per owner
   type, OR-ed into one statement),
5. the shop's active delivery options,
6. the shop's active payment methods.

Statement 1 also reads the change stamps (row count, latest `updated_at`) of the shop's
delivery options and payment methods, cached per shop behind them (so statements 5 and 6
run only after a change), and of the function registry (`REGISTRY_STAMP`, for
`cartwheel.checkout`, which caches the registry the same way).

Each statement is built once, at import, and only bound per call (`ShopScope.rows`):
building SQLAlchemy statements was most of the cost of loading a small cart. Every
statement reads plain columns into named tuples: loading the cart, its shop and its
customer as mapped objects cost 0.5 ms of CPU, more than the three other statements
together.

Amounts are the cart's prices before any function ran: a line's total equals its
subtotal, the cart's total its subtotal, and tax is not known (null).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cartwheel.errors import NotFoundError
from cartwheel.ids import encode_gid
from cartwheel.models import (
    Cart,
    CartLine,
    CollectionMembership,
    Customer,
    DeliveryMethodType,
    DeliveryOption,
    Function,
    FunctionInstance,
    Metafield,
    MetafieldOwnerType,
    PaymentMethod,
    Product,
    ProductVariant,
    Shop,
    customer_display_name,
    utcnow,
)
from cartwheel.money import to_money
from cartwheel.tenancy import SHOP_ID, ShopScope, shop_statement
from functions_sdk import snapshot as s
from functions_sdk.snapshot import SNAPSHOT_VERSION, Snapshot

PRESENTMENT_CURRENCY_RATE = "1.0"
"""Carts are priced in the shop's currency (no multi-currency presentment yet)."""


def delivery_group_gid(cart_id: int) -> str:
    """The id of a cart's (single) delivery group."""
    return encode_gid("CartDeliveryGroup", cart_id)


class LineFacts(NamedTuple):
    """One cart line with its variant and product: a row of one JOIN, not ORM objects
    (hydrating three mapped objects per line is most of the cost of a large cart)."""

    line_id: int
    quantity: int
    attributes: Sequence[Mapping[str, Any]]
    variant_id: int
    variant_title: str | None
    sku: str | None
    price: Decimal
    compare_at_price: Decimal | None
    requires_shipping: bool
    product_id: int
    product_handle: str
    product_title: str
    vendor: str | None
    product_type: str | None
    is_gift_card: bool
    tags: Sequence[str]

    @classmethod
    def of(cls, line: CartLine) -> LineFacts:
        """The facts of a loaded `CartLine` (its variant and product are read)."""
        variant, product = line.variant, line.variant.product
        return cls(
            line.id,
            line.quantity,
            line.attributes,
            variant.id,
            variant.title,
            variant.sku,
            variant.price,
            variant.compare_at_price,
            variant.requires_shipping,
            product.id,
            product.handle,
            product.title,
            product.vendor,
            product.product_type,
            product.is_gift_card,
            product.tags,
        )


class CartRecord(NamedTuple):
    """The cart's own columns a snapshot reads."""

    id: int
    currency_code: str
    customer_id: int | None
    buyer_email: str | None
    buyer_phone: str | None
    attributes: Sequence[Mapping[str, Any]]
    delivery_address: dict[str, object] | None
    selected_delivery_option_handle: str | None
    discount_codes: Sequence[str]

    @classmethod
    def of(cls, cart: Cart) -> CartRecord:
        """The record of a loaded `Cart`."""
        return cls(*(getattr(cart, c.key) for c in _CART_COLUMNS))


class ShopFacts(NamedTuple):
    """The shop's columns a snapshot reads."""

    id: int
    currency_code: str
    timezone: str
    country_code: str
    language_code: str

    @classmethod
    def of(cls, shop: Shop) -> ShopFacts:
        """The facts of a loaded `Shop`."""
        return cls(*(getattr(shop, c.key) for c in _SHOP_COLUMNS))


class CustomerFacts(NamedTuple):
    """The buyer's customer record, as a snapshot reads it."""

    id: int
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    tags: Sequence[str]
    number_of_orders: int
    amount_spent: Decimal
    amount_spent_currency: str

    @classmethod
    def of(cls, customer: Customer) -> CustomerFacts:
        """The facts of a loaded `Customer`."""
        return cls(*(getattr(customer, c.key) for c in _CUSTOMER_COLUMNS))

    @property
    def display_name(self) -> str:
        return customer_display_name(self.id, self.first_name, self.last_name, self.email)


_CART_COLUMNS = (
    Cart.id,
    Cart.currency_code,
    Cart.customer_id,
    Cart.buyer_email,
    Cart.buyer_phone,
    Cart.attributes,
    Cart.delivery_address,
    Cart.selected_delivery_option_handle,
    Cart.discount_codes,
)
_SHOP_COLUMNS = (
    Shop.id,
    Shop.currency_code,
    Shop.timezone,
    Shop.country_code,
    Shop.language_code,
)
_CUSTOMER_COLUMNS = (
    Customer.id,
    Customer.email,
    Customer.phone,
    Customer.first_name,
    Customer.last_name,
    Customer.tags,
    Customer.number_of_orders,
    Customer.amount_spent,
    Customer.amount_spent_currency,
)
"""The columns of `CartRecord`, `ShopFacts` and `CustomerFacts`, in field order."""


@dataclass(frozen=True, slots=True)
class DeliveryOptionFacts:
    """One active delivery option of the shop, as the snapshot needs it."""

    handle: str
    title: str
    cost: Decimal
    currency_code: str
    delivery_method_type: DeliveryMethodType

    @classmethod
    def of(cls, option: DeliveryOption) -> DeliveryOptionFacts:
        """The facts of a loaded `DeliveryOption`."""
        return cls(
            option.handle,
            option.title,
            option.cost,
            option.currency_code,
            option.delivery_method_type,
        )


@dataclass(frozen=True, slots=True)
class PaymentMethodFacts:
    """One active payment method of the shop, as the snapshot needs it."""

    gid: str
    name: str

    @classmethod
    def of(cls, method: PaymentMethod) -> PaymentMethodFacts:
        """The facts of a loaded `PaymentMethod`."""
        return cls(method.gid, method.name)


_LINE_COLUMNS = (
    CartLine.id,
    CartLine.quantity,
    CartLine.attributes,
    ProductVariant.id,
    ProductVariant.title,
    ProductVariant.sku,
    ProductVariant.price,
    ProductVariant.compare_at_price,
    ProductVariant.requires_shipping,
    Product.id,
    Product.handle,
    Product.title,
    Product.vendor,
    Product.product_type,
    Product.is_gift_card,
    Product.tags,
)
"""The columns of `LineFacts`, in its field order."""


@dataclass(frozen=True, slots=True)
class CartFacts:
    """Every record a snapshot is made of, loaded; `build_snapshot` turns it into JSON."""

    shop: ShopFacts
    cart: CartRecord
    customer: CustomerFacts | None
    lines: Sequence[LineFacts]
    """In cart order."""
    collection_ids: Mapping[int, Sequence[str]]
    """Collection global ids by product key."""
    metafields: Mapping[tuple[MetafieldOwnerType, int], Sequence[s.Metafield]]
    """Metafields by owner, in snapshot form, ordered by namespace and key."""
    delivery_options: Sequence[DeliveryOptionFacts]
    """The shop's active options, in display order."""
    payment_methods: Sequence[PaymentMethodFacts]
    """The shop's active methods, in display order."""
    registry_stamp: tuple[Any, ...] | None = None
    """The change stamp of the shop's function registry, read in the cart's statement
    (see `REGISTRY_STAMP`); None when the loader did not read it."""


def load_snapshot(scope: ShopScope, cart_id: int | str, *, now: datetime | None = None) -> Snapshot:
    """The snapshot of cart `cart_id` (key or global id) of the scope's shop.

    `now` (default: the current time) fixes the shop's `localTime`. Raises
    `NotFoundError` when the cart is not in this shop.
    """
    return build_snapshot(load_cart_facts(scope, cart_id), now=now)


SHOP_LISTS_MAX_AGE_S = 30.0
"""Longest a shop's cached delivery options and payment methods are trusted even when
their change stamp is unchanged (bounds staleness should app servers' clocks disagree)."""

SHOP_LISTS_CACHED = 4096
"""Shops whose delivery options and payment methods are cached per process."""


def change_stamp(model: Any, *where: Any) -> list[Any]:
    """Two scalar subqueries, the row count and the latest `updated_at` of the shop's
    rows of `model` matching `where`: any insert, update (`updated_at` is set on every
    update) or delete changes one of them."""
    filtered = (model.shop_id == SHOP_ID, *where)
    return [
        sa.select(sa.func.count()).select_from(model).where(*filtered).scalar_subquery(),
        sa.select(sa.func.max(model.updated_at)).where(*filtered).scalar_subquery(),
    ]


REGISTRY_STAMP: tuple[Any, ...] = (
    *change_stamp(FunctionInstance),
    *change_stamp(Function),
    *change_stamp(Metafield, Metafield.owner_type == MetafieldOwnerType.FUNCTION_INSTANCE),
)
"""The change stamp of what the checkout's function registry is built from (its
instances, functions and instance metafields); see `CheckoutPipeline.active_functions`."""

_LISTS_STAMP = (*change_stamp(DeliveryOption), *change_stamp(PaymentMethod))

_CART = shop_statement(
    sa.select(*_CART_COLUMNS, *_SHOP_COLUMNS, *_CUSTOMER_COLUMNS, *_LISTS_STAMP, *REGISTRY_STAMP)
    .select_from(Cart)
    .join(Shop, Shop.id == Cart.shop_id)
    .outerjoin(Customer, sa.and_(Customer.id == Cart.customer_id, Customer.shop_id == SHOP_ID))
    .where(Cart.shop_id == SHOP_ID, Cart.id == sa.bindparam("cart_id"))
)
_SHOP_AT = len(_CART_COLUMNS)
_CUSTOMER_AT = _SHOP_AT + len(_SHOP_COLUMNS)
_STAMPS_AT = _CUSTOMER_AT + len(_CUSTOMER_COLUMNS)
"""The cart with its shop and customer, and the change stamps of what is cached per shop
(statement 1)."""

_LINES = shop_statement(
    sa.select(*_LINE_COLUMNS)
    .select_from(CartLine)
    .join(
        ProductVariant,
        sa.and_(ProductVariant.id == CartLine.variant_id, ProductVariant.shop_id == SHOP_ID),
    )
    .join(Product, sa.and_(Product.id == ProductVariant.product_id, Product.shop_id == SHOP_ID))
    .where(CartLine.shop_id == SHOP_ID, CartLine.cart_id == sa.bindparam("cart_id"))
    .order_by(CartLine.position, CartLine.id)
)

_CART_VARIANT_IDS = (
    sa.select(CartLine.variant_id)
    .where(CartLine.shop_id == SHOP_ID, CartLine.cart_id == sa.bindparam("cart_id"))
    .scalar_subquery()
)
_CART_PRODUCT_IDS = (
    sa.select(ProductVariant.product_id)
    .where(ProductVariant.shop_id == SHOP_ID, ProductVariant.id.in_(_CART_VARIANT_IDS))
    .scalar_subquery()
)
"""The cart's variants and products, as subqueries: the statements below have a fixed
text whatever the cart (no ``IN`` list to render per call, one prepared statement)."""

_MEMBERSHIPS = shop_statement(
    sa.select(CollectionMembership.product_id, CollectionMembership.collection_id)
    .where(
        CollectionMembership.shop_id == SHOP_ID,
        CollectionMembership.product_id.in_(_CART_PRODUCT_IDS),
    )
    .order_by(CollectionMembership.product_id, CollectionMembership.collection_id)
)

_METAFIELDS = shop_statement(
    sa.select(
        Metafield.owner_type,
        Metafield.owner_id,
        Metafield.namespace,
        Metafield.key,
        Metafield.type,
        Metafield.value,
    )
    .where(
        Metafield.shop_id == SHOP_ID,
        sa.or_(
            sa.and_(Metafield.owner_type == MetafieldOwnerType.SHOP, Metafield.owner_id == SHOP_ID),
            sa.and_(
                Metafield.owner_type == MetafieldOwnerType.PRODUCT,
                Metafield.owner_id.in_(_CART_PRODUCT_IDS),
            ),
            sa.and_(
                Metafield.owner_type == MetafieldOwnerType.PRODUCT_VARIANT,
                Metafield.owner_id.in_(_CART_VARIANT_IDS),
            ),
            sa.and_(
                Metafield.owner_type == MetafieldOwnerType.CUSTOMER,
                Metafield.owner_id == sa.bindparam("customer_id"),
            ),
        ),
    )
    .order_by(Metafield.namespace, Metafield.key, Metafield.id)
)
"""The metafields of the shop, the cart's products and variants and its customer (a null
customer matches nothing)."""

_DELIVERY_OPTIONS = shop_statement(
    sa.select(
        DeliveryOption.handle,
        DeliveryOption.title,
        DeliveryOption.cost,
        DeliveryOption.currency_code,
        DeliveryOption.delivery_method_type,
    )
    .where(DeliveryOption.shop_id == SHOP_ID, DeliveryOption.active.is_(True))
    .order_by(DeliveryOption.position, DeliveryOption.id)
)
"""The fields of `DeliveryOptionFacts`, in order (plain rows: a set-based update is seen
even when the option is in the session)."""

_PAYMENT_METHODS = shop_statement(
    sa.select(PaymentMethod.id, PaymentMethod.name)
    .where(PaymentMethod.shop_id == SHOP_ID, PaymentMethod.active.is_(True))
    .order_by(PaymentMethod.position, PaymentMethod.id)
)


def load_cart_facts(scope: ShopScope, cart_id: int | str) -> CartFacts:
    """The records behind cart `cart_id`, in at most 6 statements whatever its size (4
    while the shop's delivery options and payment methods are unchanged: they are cached
    per shop behind a change stamp read with the cart).

    The statements are built once (module level) and only bound per call. Raises
    `NotFoundError` when the cart is not in this shop.
    """
    key = scope.key(Cart, cart_id)
    found = None if key is None else scope.rows(_CART, {"cart_id": key}).first()
    if found is None:
        raise NotFoundError(f"No Cart {cart_id!r} in this shop.", id=str(cart_id), type="Cart")
    cart = CartRecord._make(found[:_SHOP_AT])
    shop = ShopFacts._make(found[_SHOP_AT:_CUSTOMER_AT])
    customer = (
        CustomerFacts._make(found[_CUSTOMER_AT:_STAMPS_AT])
        if cart.customer_id is not None and found[_CUSTOMER_AT] is not None
        else None
    )
    stamps = found[_STAMPS_AT:]
    lists_stamp = tuple(stamps[: len(_LISTS_STAMP)])
    registry_stamp = tuple(stamps[len(_LISTS_STAMP) :])
    lines = [LineFacts._make(row) for row in scope.rows(_LINES, {"cart_id": cart.id})]
    collections: dict[int, list[str]] = {}
    metafields: dict[tuple[MetafieldOwnerType, int], list[s.Metafield]] = {}
    if lines:
        memberships = scope.rows(_MEMBERSHIPS, {"cart_id": cart.id})
        for product_id, collection_id in memberships:
            collections.setdefault(product_id, []).append(encode_gid("Collection", collection_id))
    rows = scope.rows(_METAFIELDS, {"cart_id": cart.id, "customer_id": cart.customer_id})
    for owner_type, owner_id, namespace, key_, type_, value in rows:
        metafields.setdefault((owner_type, owner_id), []).append(
            {"namespace": namespace, "key": key_, "type": type_.value, "value": value}
        )

    lists = _cached_shop_lists(scope, lists_stamp) or _load_shop_lists(scope, lists_stamp)
    delivery_options, payment_methods = lists
    return CartFacts(
        shop=shop,
        cart=cart,
        customer=customer,
        lines=lines,
        collection_ids=collections,
        metafields=metafields,
        delivery_options=delivery_options,
        payment_methods=payment_methods,
        registry_stamp=registry_stamp,
    )


_ShopLists = tuple[tuple[DeliveryOptionFacts, ...], tuple[PaymentMethodFacts, ...]]
_shop_lists: OrderedDict[tuple[Any, int], tuple[tuple[Any, ...], float, _ShopLists]] = OrderedDict()
"""By database URL and shop key: stamp, when loaded, the lists."""
_shop_lists_lock = threading.Lock()


def _lists_key(scope: ShopScope) -> tuple[Any, int]:
    return (scope.session.get_bind().engine.url, scope.shop_id)


def _cached_shop_lists(scope: ShopScope, stamp: tuple[Any, ...]) -> _ShopLists | None:
    cached = _shop_lists.get(_lists_key(scope))
    if (
        cached is not None
        and cached[0] == stamp
        and time.monotonic() - cached[1] < SHOP_LISTS_MAX_AGE_S
    ):
        return cached[2]
    return None


def _load_shop_lists(scope: ShopScope, stamp: tuple[Any, ...]) -> _ShopLists:
    loaded = time.monotonic()
    lists = (
        tuple(DeliveryOptionFacts(*row) for row in scope.rows(_DELIVERY_OPTIONS)),
        tuple(
            PaymentMethodFacts(encode_gid(PaymentMethod.__gid_type__, id_), name)
            for id_, name in scope.rows(_PAYMENT_METHODS)
        ),
    )
    key = _lists_key(scope)
    with _shop_lists_lock:
        _shop_lists[key] = (stamp, loaded, lists)
        _shop_lists.move_to_end(key)
        while len(_shop_lists) > SHOP_LISTS_CACHED:
            _shop_lists.popitem(last=False)
    return lists


def build_snapshot(facts: CartFacts, *, now: datetime | None = None) -> Snapshot:
    """The snapshot document of `facts` (pure: no database access)."""
    shop, cart_row, lines = facts.shop, facts.cart, facts.lines
    collections, delivery_options = facts.collection_ids, facts.delivery_options
    payment_methods = facts.payment_methods
    customer = facts.customer

    def metafields(owner_type: MetafieldOwnerType, owner_id: int) -> list[s.Metafield]:
        return list(facts.metafields.get((owner_type, owner_id), ()))

    currency = cart_row.currency_code
    product_docs: dict[int, s.Product] = {}
    line_docs: list[s.CartLine] = []
    subtotal = Decimal(0)
    for line in lines:
        product = product_docs.get(line.product_id)
        if product is None:
            product = product_docs[line.product_id] = {
                "id": encode_gid(Product.__gid_type__, line.product_id),
                "handle": line.product_handle,
                "title": line.product_title,
                "vendor": line.vendor,
                "productType": line.product_type,
                "isGiftCard": line.is_gift_card,
                "tags": list(line.tags),
                "collectionIds": list(collections.get(line.product_id, ())),
                "metafields": metafields(MetafieldOwnerType.PRODUCT, line.product_id),
            }
        line_amount = line.price * line.quantity
        subtotal += line_amount
        compare_at = line.compare_at_price
        line_docs.append(
            {
                "id": encode_gid(CartLine.__gid_type__, line.line_id),
                "quantity": line.quantity,
                "attributes": _attributes(line.attributes),
                "cost": {
                    "amountPerQuantity": to_money(line.price, currency),
                    "compareAtAmountPerQuantity": (
                        to_money(compare_at, currency) if compare_at is not None else None
                    ),
                    "subtotalAmount": to_money(line_amount, currency),
                    "totalAmount": to_money(line_amount, currency),
                },
                "merchandise": {
                    "__typename": "ProductVariant",
                    "id": encode_gid(ProductVariant.__gid_type__, line.variant_id),
                    "sku": line.sku,
                    "title": line.variant_title,
                    "requiresShipping": line.requires_shipping,
                    "metafields": metafields(MetafieldOwnerType.PRODUCT_VARIANT, line.variant_id),
                    "product": product,
                },
            }
        )

    buyer: s.BuyerIdentity | None = None
    if customer is not None or cart_row.buyer_email or cart_row.buyer_phone:
        customer_doc: s.Customer | None = None
        if customer is not None:
            customer_doc = {
                "id": encode_gid(Customer.__gid_type__, customer.id),
                "email": customer.email,
                "displayName": customer.display_name,
                "numberOfOrders": customer.number_of_orders,
                "amountSpent": to_money(customer.amount_spent, customer.amount_spent_currency),
                "tags": list(customer.tags),
                "metafields": metafields(MetafieldOwnerType.CUSTOMER, customer.id),
            }
        buyer = {
            "email": cart_row.buyer_email or (customer.email if customer else None),
            "phone": cart_row.buyer_phone or (customer.phone if customer else None),
            "isAuthenticated": customer is not None,
            "customer": customer_doc,
        }

    address = _address(cart_row.delivery_address)
    delivery_groups: list[s.DeliveryGroup] = []
    if any(line.requires_shipping for line in lines):
        options: list[s.DeliveryOption] = [
            {
                "handle": option.handle,
                "title": option.title,
                "cost": to_money(option.cost, option.currency_code),
                "deliveryMethodType": option.delivery_method_type.value,
            }
            for option in delivery_options
        ]
        selected = cart_row.selected_delivery_option_handle
        delivery_groups.append(
            {
                "id": delivery_group_gid(cart_row.id),
                "deliveryAddress": address,
                "selectedDeliveryOption": (
                    {"handle": selected}
                    if selected is not None and any(o["handle"] == selected for o in options)
                    else None
                ),
                "deliveryOptions": options,
            }
        )

    local_time = (now or utcnow()).astimezone(ZoneInfo(shop.timezone)).replace(tzinfo=None)
    country = (address["countryCode"] if address else None) or shop.country_code
    return {
        "version": SNAPSHOT_VERSION,
        "shop": {
            "id": encode_gid(Shop.__gid_type__, shop.id),
            "currencyCode": shop.currency_code,
            "localTime": local_time.isoformat(timespec="seconds"),
            "metafields": metafields(MetafieldOwnerType.SHOP, shop.id),
        },
        "localization": {"country": country, "language": shop.language_code},
        "presentmentCurrencyRate": PRESENTMENT_CURRENCY_RATE,
        "cart": {
            "id": encode_gid(Cart.__gid_type__, cart_row.id),
            "attributes": _attributes(cart_row.attributes),
            "buyerIdentity": buyer,
            "lines": line_docs,
            "cost": {
                "subtotalAmount": to_money(subtotal, currency),
                "totalAmount": to_money(subtotal, currency),
                "totalTaxAmount": None,
            },
            "deliveryGroups": delivery_groups,
        },
        "paymentMethods": [{"id": m.gid, "name": m.name} for m in payment_methods],
        "enteredDiscountCodes": [
            {"code": code, "rejectable": True} for code in cart_row.discount_codes
        ],
    }


def _attributes(raw: Sequence[Mapping[str, Any]]) -> list[s.Attribute]:
    return [
        {
            "key": str(item["key"]),
            "value": None if item.get("value") is None else str(item["value"]),
        }
        for item in raw
    ]


def _address(raw: dict[str, object] | None) -> s.MailingAddress | None:
    if raw is None:
        return None

    def field(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None else str(value)

    return {
        "countryCode": field("countryCode"),
        "provinceCode": field("provinceCode"),
        "city": field("city"),
        "zip": field("zip"),
    }
