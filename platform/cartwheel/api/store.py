"""Store data in the admin API: products, variants, collections, customers, metafields,
delivery options and payment methods. Every field needs the `admin` scope; every
access goes through the token's `ShopScope`, so another shop's ids are NOT_FOUND."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import strawberry
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.interfaces import ORMOption
from strawberry.types import Info

from cartwheel import models as m
from cartwheel.api.context import AdminContext
from cartwheel.api.permissions import ADMIN, field, mutation
from cartwheel.api.types import (
    Collection,
    Connection,
    Customer,
    DeliveryMethodType,
    DeliveryOption,
    Edge,
    Metafield,
    MetafieldType,
    PageInfo,
    PaymentMethod,
    Product,
    ProductVariant,
    encode_cursor,
)
from cartwheel.errors import InvalidRequestError, NotFoundError
from cartwheel.ids import parse_gid
from cartwheel.tenancy import METAFIELD_OWNERS, ShopScope

M = TypeVar("M", bound=m.ShopOwned)
N = TypeVar("N")

MAX_PAGE_SIZE = 100
"""Largest `first` of any list field: bounds the work one request can ask for."""

DEFAULT_PAGE_SIZE = 50

Info_ = Info[AdminContext, None]


def page_size(first: int) -> int:
    """Validate a `first` argument. Raises `InvalidRequestError` (BAD_REQUEST)."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidRequestError(
            f"`first` must be between 1 and {MAX_PAGE_SIZE}; page with `after` for more.",
            field="first",
        )
    return first


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The parts of a cursor made by `encode_cursor`. Raises `InvalidRequestError`
    (INVALID_CURSOR) for a cursor this API did not issue."""
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = []
    if len(decoded) != parts:
        raise InvalidRequestError(
            "Invalid `after` cursor: pass an `endCursor` or edge `cursor` from this API.",
            code="INVALID_CURSOR",
        )
    return decoded


def each(to_node: Callable[[M], N]) -> Callable[[list[M]], list[N]]:
    """A batch converter applying `to_node` to every row."""
    return lambda rows: [to_node(r) for r in rows]


def id_page(
    scope: ShopScope,
    model: type[M],
    first: int,
    after: str | None,
    to_nodes: Callable[[list[M]], list[Any]],
    *where: Any,
    options: Sequence[ORMOption] = (),
) -> Connection[Any]:
    """A page of `model` ordered by key, with cursors on the key.

    `to_nodes` converts the page's rows at once (so it can batch what they need);
    `options` are loader options (e.g. `selectinload`) that avoid a query per row.
    """
    statement = scope.select(model).where(*where)
    if after is not None:
        raw = decode_cursor(after, 1)[0]
        if not raw.isdigit():
            raise InvalidRequestError("Invalid `after` cursor.", code="INVALID_CURSOR")
        statement = statement.where(model.id > int(raw))
    statement = statement.order_by(model.id).limit(page_size(first) + 1).options(*options)
    rows = scope.scalars(statement)
    page = rows[:first]
    edges = [
        Edge(cursor=encode_cursor(row.id), node=node)
        for row, node in zip(page, to_nodes(page), strict=True)
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
        ),
    )


def parse_money(value: str, field: str) -> Decimal:
    """A non-negative decimal amount. Raises `InvalidRequestError` naming `field`."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidRequestError(
            f"{field}: {value!r} is not a non-negative amount with at most 4 decimals "
            "(e.g. '19.99').",
            field=field,
        )
    return amount


def _set(values: dict[str, Any], **candidates: Any) -> dict[str, Any]:
    """Copy the candidates that were given (not UNSET) into `values`."""
    for name, value in candidates.items():
        if value is not strawberry.UNSET:
            values[name] = value
    return values


# --- inputs -------------------------------------------------------------------------


@strawberry.input(description="A new product.")
class ProductCreateInput:
    handle: str
    title: str
    vendor: str | None = None
    product_type: str | None = None
    is_gift_card: bool = False
    tags: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="Changes to a product; omitted fields stay as they are.")
class ProductUpdateInput:
    handle: str | None = strawberry.UNSET
    title: str | None = strawberry.UNSET
    vendor: str | None = strawberry.UNSET
    product_type: str | None = strawberry.UNSET
    is_gift_card: bool | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET


@strawberry.input(description="A variant; prices are decimal strings in the shop currency.")
class ProductVariantInput:
    title: str | None = strawberry.UNSET
    sku: str | None = strawberry.UNSET
    price: str | None = strawberry.UNSET
    compare_at_price: str | None = strawberry.UNSET
    requires_shipping: bool | None = strawberry.UNSET
    position: int | None = strawberry.UNSET


@strawberry.input(description="A collection's handle and title.")
class CollectionInput:
    handle: str | None = strawberry.UNSET
    title: str | None = strawberry.UNSET


@strawberry.input(description="A customer's fields; omitted fields stay as they are.")
class CustomerInput:
    email: str | None = strawberry.UNSET
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    number_of_orders: int | None = strawberry.UNSET
    amount_spent: str | None = strawberry.UNSET


@strawberry.input(description="A delivery option; cost is a decimal string in the shop currency.")
class DeliveryOptionInput:
    handle: str | None = strawberry.UNSET
    title: str | None = strawberry.UNSET
    cost: str | None = strawberry.UNSET
    delivery_method_type: DeliveryMethodType | None = strawberry.UNSET
    position: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input(description="A payment method.")
class PaymentMethodInput:
    name: str | None = strawberry.UNSET
    position: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input(description="A metafield to create or replace on the record `ownerId`.")
class MetafieldsSetInput:
    owner_id: strawberry.ID
    namespace: str
    key: str
    type: MetafieldType
    value: str


def _required(values: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if values.get(n) in (None, "")]
    if missing:
        raise InvalidRequestError(f"Missing required field(s): {', '.join(missing)}.")


def _variant_values(scope: ShopScope, data: ProductVariantInput) -> dict[str, Any]:
    values = _set(
        {},
        title=data.title,
        sku=data.sku,
        requires_shipping=data.requires_shipping,
        position=data.position,
    )
    if data.price is not strawberry.UNSET:
        if data.price is None:
            raise InvalidRequestError("price cannot be null.", field="price")
        values["price"] = parse_money(data.price, "price")
    if data.compare_at_price is not strawberry.UNSET:
        values["compare_at_price"] = (
            parse_money(data.compare_at_price, "compareAtPrice")
            if data.compare_at_price is not None
            else None
        )
    return values


def _collection_nodes(scope: ShopScope, collections: list[m.Collection]) -> list[Collection]:
    members: dict[int, list[int]] = {c.id: [] for c in collections}
    if members:
        for x in scope.list(
            m.CollectionMembership,
            m.CollectionMembership.collection_id.in_(sorted(members)),
            order_by=(m.CollectionMembership.product_id,),
        ):
            members[x.collection_id].append(x.product_id)
    return [Collection.from_model(c, members[c.id]) for c in collections]


def _collection_node(scope: ShopScope, c: m.Collection) -> Collection:
    return _collection_nodes(scope, [c])[0]


def _metafield_owner(scope: ShopScope, owner_id: str) -> m.Base:
    type_name, _ = parse_gid(owner_id)
    if type_name == "Shop":
        if scope.shop.gid != owner_id:
            raise NotFoundError(f"ownerId: no Shop {owner_id!r} here.", field="ownerId")
        return scope.shop
    for model in METAFIELD_OWNERS.values():
        if issubclass(model, m.ShopOwned) and type_name in model.gid_types():
            return scope.get(model, owner_id)
    raise InvalidRequestError(
        f"ownerId: a {type_name} cannot own metafields.", code="INVALID_ID", field="ownerId"
    )


# --- queries ------------------------------------------------------------------------


@strawberry.type
class StoreQuery:
    @field(ADMIN, description="A product by id.")
    def product(self, info: Info_, id: strawberry.ID) -> Product:
        return Product.from_model(info.context.scope.get(m.Product, id))

    @field(ADMIN, description="The shop's products by id.")
    def products(
        self, info: Info_, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Product]:
        return id_page(
            info.context.scope,
            m.Product,
            first,
            after,
            each(Product.from_model),
            options=(selectinload(m.Product.variants),),
        )

    @field(ADMIN, description="A variant by id.")
    def product_variant(self, info: Info_, id: strawberry.ID) -> ProductVariant:
        return ProductVariant.from_model(info.context.scope.get(m.ProductVariant, id))

    @field(ADMIN, description="A collection by id.")
    def collection(self, info: Info_, id: strawberry.ID) -> Collection:
        scope = info.context.scope
        return _collection_node(scope, scope.get(m.Collection, id))

    @field(ADMIN, description="The shop's collections.")
    def collections(
        self, info: Info_, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Collection]:
        scope = info.context.scope
        return id_page(
            scope, m.Collection, first, after, lambda rows: _collection_nodes(scope, rows)
        )

    @field(ADMIN, description="A customer by id.")
    def customer(self, info: Info_, id: strawberry.ID) -> Customer:
        return Customer.from_model(info.context.scope.get(m.Customer, id))

    @field(ADMIN, description="The shop's customers.")
    def customers(
        self, info: Info_, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Customer]:
        return id_page(info.context.scope, m.Customer, first, after, each(Customer.from_model))

    @field(ADMIN, description="The shop's delivery options.")
    def delivery_options(
        self, info: Info_, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[DeliveryOption]:
        return id_page(
            info.context.scope, m.DeliveryOption, first, after, each(DeliveryOption.from_model)
        )

    @field(ADMIN, description="The shop's payment methods.")
    def payment_methods(
        self, info: Info_, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[PaymentMethod]:
        return id_page(
            info.context.scope, m.PaymentMethod, first, after, each(PaymentMethod.from_model)
        )

    @field(ADMIN, description="The metafields of a record (or the shop).")
    def metafields(self, info: Info_, owner_id: strawberry.ID) -> list[Metafield]:
        scope = info.context.scope
        owner = _metafield_owner(scope, owner_id)
        return [Metafield.from_model(mf, owner.gid) for mf in scope.metafields(owner)]


# --- mutations ----------------------------------------------------------------------


def _commit(info: Info_) -> None:
    info.context.session.commit()


@strawberry.type
class StoreMutation:
    @mutation(ADMIN, description="Create a product.")
    def product_create(self, info: Info_, input: ProductCreateInput) -> Product:
        scope = info.context.scope
        product = scope.create(
            m.Product,
            handle=input.handle,
            title=input.title,
            vendor=input.vendor,
            product_type=input.product_type,
            is_gift_card=input.is_gift_card,
            tags=list(input.tags),
        )
        _commit(info)
        return Product.from_model(product)

    @mutation(ADMIN, description="Change a product.")
    def product_update(self, info: Info_, id: strawberry.ID, input: ProductUpdateInput) -> Product:
        scope = info.context.scope
        values = _set(
            {},
            handle=input.handle,
            title=input.title,
            vendor=input.vendor,
            product_type=input.product_type,
            is_gift_card=input.is_gift_card,
            tags=input.tags,
        )
        for name in ("handle", "title", "is_gift_card", "tags"):
            if name in values and values[name] is None:
                raise InvalidRequestError(f"{name} cannot be null.", field=name)
        product = scope.update(m.Product, id, **values)
        _commit(info)
        return Product.from_model(product)

    @mutation(ADMIN, description="Delete a product and its variants.")
    def product_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.Product, id)
        _commit(info)
        return id

    @mutation(ADMIN, description="Add a variant to a product.")
    def product_variant_create(
        self, info: Info_, product_id: strawberry.ID, input: ProductVariantInput
    ) -> ProductVariant:
        scope = info.context.scope
        product = scope.get(m.Product, product_id)
        values = _variant_values(scope, input)
        _required(values, "price")
        variant = scope.create(
            m.ProductVariant,
            product_id=product.id,
            currency_code=scope.shop.currency_code,
            **values,
        )
        _commit(info)
        return ProductVariant.from_model(variant)

    @mutation(ADMIN, description="Change a variant.")
    def product_variant_update(
        self, info: Info_, id: strawberry.ID, input: ProductVariantInput
    ) -> ProductVariant:
        scope = info.context.scope
        variant = scope.update(m.ProductVariant, id, **_variant_values(scope, input))
        _commit(info)
        return ProductVariant.from_model(variant)

    @mutation(ADMIN, description="Delete a variant.")
    def product_variant_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.ProductVariant, id)
        _commit(info)
        return id

    @mutation(ADMIN, description="Create a collection.")
    def collection_create(self, info: Info_, input: CollectionInput) -> Collection:
        scope = info.context.scope
        values = _set({}, handle=input.handle, title=input.title)
        _required(values, "handle", "title")
        collection = scope.create(m.Collection, **values)
        _commit(info)
        return _collection_node(scope, collection)

    @mutation(ADMIN, description="Change a collection.")
    def collection_update(
        self, info: Info_, id: strawberry.ID, input: CollectionInput
    ) -> Collection:
        scope = info.context.scope
        values = _set({}, handle=input.handle, title=input.title)
        if any(v is None for v in values.values()):
            raise InvalidRequestError("handle and title cannot be null.")
        collection = scope.update(m.Collection, id, **values)
        _commit(info)
        return _collection_node(scope, collection)

    @mutation(ADMIN, description="Delete a collection.")
    def collection_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.Collection, id)
        _commit(info)
        return id

    @mutation(ADMIN, description="Add products to a collection (idempotent).")
    def collection_add_products(
        self, info: Info_, id: strawberry.ID, product_ids: list[strawberry.ID]
    ) -> Collection:
        scope = info.context.scope
        collection = scope.get(m.Collection, id)
        wanted = {scope.get(m.Product, pid).id for pid in product_ids}
        present = {
            x.product_id
            for x in scope.list(
                m.CollectionMembership, m.CollectionMembership.collection_id == collection.id
            )
        }
        for product_id in sorted(wanted - present):
            scope.create(m.CollectionMembership, collection_id=collection.id, product_id=product_id)
        _commit(info)
        return _collection_node(scope, collection)

    @mutation(ADMIN, description="Remove products from a collection.")
    def collection_remove_products(
        self, info: Info_, id: strawberry.ID, product_ids: list[strawberry.ID]
    ) -> Collection:
        scope = info.context.scope
        collection = scope.get(m.Collection, id)
        unwanted = {scope.get(m.Product, pid).id for pid in product_ids}
        for membership in scope.list(
            m.CollectionMembership, m.CollectionMembership.collection_id == collection.id
        ):
            if membership.product_id in unwanted:
                scope.delete(membership)
        _commit(info)
        return _collection_node(scope, collection)

    @mutation(ADMIN, description="Create a customer.")
    def customer_create(self, info: Info_, input: CustomerInput) -> Customer:
        scope = info.context.scope
        values = _customer_values(input)
        values.setdefault("amount_spent_currency", scope.shop.currency_code)
        customer = scope.create(m.Customer, **values)
        _commit(info)
        return Customer.from_model(customer)

    @mutation(ADMIN, description="Change a customer.")
    def customer_update(self, info: Info_, id: strawberry.ID, input: CustomerInput) -> Customer:
        customer = info.context.scope.update(m.Customer, id, **_customer_values(input))
        _commit(info)
        return Customer.from_model(customer)

    @mutation(ADMIN, description="Delete a customer.")
    def customer_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.Customer, id)
        _commit(info)
        return id

    @mutation(ADMIN, description="Create a delivery option.")
    def delivery_option_create(self, info: Info_, input: DeliveryOptionInput) -> DeliveryOption:
        scope = info.context.scope
        values = _delivery_values(input)
        _required(values, "handle", "title", "cost")
        option = scope.create(m.DeliveryOption, currency_code=scope.shop.currency_code, **values)
        _commit(info)
        return DeliveryOption.from_model(option)

    @mutation(ADMIN, description="Change a delivery option.")
    def delivery_option_update(
        self, info: Info_, id: strawberry.ID, input: DeliveryOptionInput
    ) -> DeliveryOption:
        option = info.context.scope.update(m.DeliveryOption, id, **_delivery_values(input))
        _commit(info)
        return DeliveryOption.from_model(option)

    @mutation(ADMIN, description="Delete a delivery option.")
    def delivery_option_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.DeliveryOption, id)
        _commit(info)
        return id

    @mutation(ADMIN, description="Create a payment method.")
    def payment_method_create(self, info: Info_, input: PaymentMethodInput) -> PaymentMethod:
        values = _payment_values(input)
        _required(values, "name")
        method = info.context.scope.create(m.PaymentMethod, **values)
        _commit(info)
        return PaymentMethod.from_model(method)

    @mutation(ADMIN, description="Change a payment method.")
    def payment_method_update(
        self, info: Info_, id: strawberry.ID, input: PaymentMethodInput
    ) -> PaymentMethod:
        method = info.context.scope.update(m.PaymentMethod, id, **_payment_values(input))
        _commit(info)
        return PaymentMethod.from_model(method)

    @mutation(ADMIN, description="Delete a payment method.")
    def payment_method_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.PaymentMethod, id)
        _commit(info)
        return id

    @mutation(
        ADMIN,
        description="Create or replace metafields (all or none: one transaction).",
    )
    def metafields_set(self, info: Info_, metafields: list[MetafieldsSetInput]) -> list[Metafield]:
        if len(metafields) > 25:
            raise InvalidRequestError("Set at most 25 metafields per call.", field="metafields")
        scope = info.context.scope
        result = []
        for item in metafields:
            owner = _metafield_owner(scope, item.owner_id)
            mf = scope.set_metafield(owner, item.namespace, item.key, item.type, item.value)
            result.append(Metafield.from_model(mf, owner.gid))
        _commit(info)
        return result

    @mutation(ADMIN, description="Delete a metafield.")
    def metafield_delete(self, info: Info_, id: strawberry.ID) -> strawberry.ID:
        info.context.scope.delete(m.Metafield, id)
        _commit(info)
        return id


def _customer_values(data: CustomerInput) -> dict[str, Any]:
    values = _set(
        {},
        email=data.email,
        first_name=data.first_name,
        last_name=data.last_name,
        phone=data.phone,
        tags=data.tags,
        number_of_orders=data.number_of_orders,
    )
    for name in ("tags", "number_of_orders"):
        if name in values and values[name] is None:
            raise InvalidRequestError(f"{name} cannot be null.", field=name)
    if data.amount_spent is not strawberry.UNSET:
        if data.amount_spent is None:
            raise InvalidRequestError("amountSpent cannot be null.", field="amountSpent")
        values["amount_spent"] = parse_money(data.amount_spent, "amountSpent")
    return values


def _delivery_values(data: DeliveryOptionInput) -> dict[str, Any]:
    values = _set(
        {},
        handle=data.handle,
        title=data.title,
        delivery_method_type=data.delivery_method_type,
        position=data.position,
        active=data.active,
    )
    if data.cost is not strawberry.UNSET:
        if data.cost is None:
            raise InvalidRequestError("cost cannot be null.", field="cost")
        values["cost"] = parse_money(data.cost, "cost")
    return values


def _payment_values(data: PaymentMethodInput) -> dict[str, Any]:
    return _set({}, name=data.name, position=data.position, active=data.active)
