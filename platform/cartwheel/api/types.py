"""The admin schema's object and input types, each built from its model with
`from_model`. Ids are global ids (`cartwheel.ids`); money is an amount string and a
currency code, as in the cart snapshot."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Generic, Self, TypeVar

import strawberry

from cartwheel import models as m
from cartwheel.ids import encode_gid

T = TypeVar("T")


def money_string(amount: Decimal) -> str:
    """A money amount as a plain decimal string: at least 2 decimals, no trailing zeros
    beyond them ("19.90", "0.125")."""
    normalized = amount.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normalized = normalized.quantize(Decimal("0.01"))
    return format(normalized, "f")


@strawberry.type(description="An amount of money in a currency.")
class Money:
    amount: str
    currency_code: str

    @classmethod
    def of(cls, amount: Decimal, currency_code: str) -> Money:
        return cls(amount=money_string(amount), currency_code=currency_code)


@strawberry.type(description="Where a list continues.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="One item of a connection, with its cursor.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list, paginated with opaque cursors.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        """The nodes of the edges, in order."""
        return [edge.node for edge in self.edges]


def encode_cursor(*parts: object) -> str:
    """An opaque cursor from the sort key of a row."""
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode()


# --- shop and store data ------------------------------------------------------------


@strawberry.type(description="The shop the token belongs to.")
class Shop:
    id: strawberry.ID
    handle: str
    name: str
    currency_code: str
    timezone: str

    @classmethod
    def from_model(cls, shop: m.Shop) -> Shop:
        return cls(
            id=strawberry.ID(shop.gid),
            handle=shop.handle,
            name=shop.name,
            currency_code=shop.currency_code,
            timezone=shop.timezone,
        )


# The models' str enums are the GraphQL enums (registered once, here).
strawberry.enum(m.MetafieldType, name="MetafieldType")
strawberry.enum(m.DeliveryMethodType, name="DeliveryMethodType")
strawberry.enum(m.DiscountClass, name="DiscountClass")
strawberry.enum(m.VersionStatus, name="FunctionVersionStatus")
MetafieldType = m.MetafieldType
DeliveryMethodType = m.DeliveryMethodType
DiscountClass = m.DiscountClass
VersionStatus = m.VersionStatus


@strawberry.type(description="A typed value attached to a record.")
class Metafield:
    id: strawberry.ID
    owner_id: strawberry.ID
    namespace: str
    key: str
    type: MetafieldType
    value: str

    @classmethod
    def from_model(cls, mf: m.Metafield, owner_gid: str) -> Metafield:
        return cls(
            id=strawberry.ID(mf.gid),
            owner_id=strawberry.ID(owner_gid),
            namespace=mf.namespace,
            key=mf.key,
            type=mf.type,
            value=mf.value,
        )


@strawberry.type(description="A purchasable variant of a product.")
class ProductVariant:
    id: strawberry.ID
    product_id: strawberry.ID
    title: str | None
    sku: str | None
    price: Money
    compare_at_price: Money | None
    requires_shipping: bool
    position: int

    @classmethod
    def from_model(cls, v: m.ProductVariant) -> ProductVariant:
        return cls(
            id=strawberry.ID(v.gid),
            product_id=strawberry.ID(encode_gid("Product", v.product_id)),
            title=v.title,
            sku=v.sku,
            price=Money.of(v.price, v.currency_code),
            compare_at_price=(
                Money.of(v.compare_at_price, v.currency_code)
                if v.compare_at_price is not None
                else None
            ),
            requires_shipping=v.requires_shipping,
            position=v.position,
        )


@strawberry.type(description="A product and its variants.")
class Product:
    id: strawberry.ID
    handle: str
    title: str
    vendor: str | None
    product_type: str | None
    is_gift_card: bool
    tags: list[str]
    variants: list[ProductVariant]

    @classmethod
    def from_model(cls, p: m.Product) -> Product:
        return cls(
            id=strawberry.ID(p.gid),
            handle=p.handle,
            title=p.title,
            vendor=p.vendor,
            product_type=p.product_type,
            is_gift_card=p.is_gift_card,
            tags=list(p.tags),
            variants=[ProductVariant.from_model(v) for v in p.variants],
        )


@strawberry.type(description="A named group of products.")
class Collection:
    id: strawberry.ID
    handle: str
    title: str
    product_ids: list[strawberry.ID]

    @classmethod
    def from_model(cls, c: m.Collection, product_ids: list[int]) -> Collection:
        return cls(
            id=strawberry.ID(c.gid),
            handle=c.handle,
            title=c.title,
            product_ids=[strawberry.ID(encode_gid("Product", i)) for i in product_ids],
        )


@strawberry.type(description="A buyer with an account in the shop.")
class Customer:
    id: strawberry.ID
    email: str | None
    first_name: str | None
    last_name: str | None
    display_name: str
    phone: str | None
    tags: list[str]
    number_of_orders: int
    amount_spent: Money

    @classmethod
    def from_model(cls, c: m.Customer) -> Customer:
        return cls(
            id=strawberry.ID(c.gid),
            email=c.email,
            first_name=c.first_name,
            last_name=c.last_name,
            display_name=c.display_name,
            phone=c.phone,
            tags=list(c.tags),
            number_of_orders=c.number_of_orders,
            amount_spent=Money.of(c.amount_spent, c.amount_spent_currency),
        )


@strawberry.type(description="A way to deliver an order, offered at checkout.")
class DeliveryOption:
    id: strawberry.ID
    handle: str
    title: str
    cost: Money
    delivery_method_type: DeliveryMethodType
    position: int
    active: bool

    @classmethod
    def from_model(cls, d: m.DeliveryOption) -> DeliveryOption:
        return cls(
            id=strawberry.ID(d.gid),
            handle=d.handle,
            title=d.title,
            cost=Money.of(d.cost, d.currency_code),
            delivery_method_type=d.delivery_method_type,
            position=d.position,
            active=d.active,
        )


@strawberry.type(description="A way to pay, offered at checkout.")
class PaymentMethod:
    id: strawberry.ID
    name: str
    position: int
    active: bool

    @classmethod
    def from_model(cls, p: m.PaymentMethod) -> PaymentMethod:
        return cls(id=strawberry.ID(p.gid), name=p.name, position=p.position, active=p.active)


# --- functions ----------------------------------------------------------------------


@strawberry.type(description="The owner metafield whose JSON value supplies query variables.")
class InputVariablesReference:
    namespace: str
    key: str


@strawberry.type(description="An immutable, content-addressed deployment of a function.")
class FunctionVersion:
    id: strawberry.ID
    function_id: strawberry.ID
    status: VersionStatus
    active: bool
    target: str
    content_sha256: str
    module_sha256: str
    module_size: int
    abi: str | None
    input_query: str
    input_variables: InputVariablesReference | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None
    model: strawberry.Private[m.FunctionVersion]

    @strawberry.field
    def function(self) -> Function:
        """The function this version belongs to."""
        return Function.from_model(self.model.function)

    @classmethod
    def from_model(cls, v: m.FunctionVersion, active_version_id: int | None) -> FunctionVersion:
        ref = (
            InputVariablesReference(
                namespace=v.input_variables_namespace, key=v.input_variables_key
            )
            if v.input_variables_namespace and v.input_variables_key
            else None
        )
        return cls(
            id=strawberry.ID(v.gid),
            function_id=strawberry.ID(encode_gid("Function", v.function_id)),
            status=v.status,
            active=v.id == active_version_id,
            target=v.target,
            content_sha256=v.content_sha256,
            module_sha256=v.module_sha256,
            module_size=v.module_size,
            abi=v.abi,
            input_query=v.input_query,
            input_variables=ref,
            error_code=v.error_code,
            error_message=v.error_message,
            created_at=v.created_at,
            finished_at=v.finished_at,
            model=v,
        )


@strawberry.type(description="A function of the shop for one Function API target.")
class Function:
    id: strawberry.ID
    handle: str
    title: str
    target: str
    active_version: FunctionVersion | None
    created_at: datetime

    @classmethod
    def from_model(cls, f: m.Function) -> Function:
        active = f.active_version
        return cls(
            id=strawberry.ID(f.gid),
            handle=f.handle,
            title=f.title,
            target=f.target,
            active_version=(
                FunctionVersion.from_model(active, f.active_version_id) if active else None
            ),
            created_at=f.created_at,
        )


@strawberry.type(description="Which other discount classes a discount combines with.")
class CombinesWith:
    order_discounts: bool
    product_discounts: bool
    shipping_discounts: bool


@strawberry.input(description="Which other discount classes a discount combines with.")
class CombinesWithInput:
    order_discounts: bool = False
    product_discounts: bool = False
    shipping_discounts: bool = False


@strawberry.input(description="A metafield to set on a record (created or replaced).")
class MetafieldInput:
    namespace: str
    key: str
    type: MetafieldType
    value: str


def _instance_common(i: m.FunctionInstance) -> dict[str, object]:
    return {
        "id": strawberry.ID(i.gid),
        "title": i.title,
        "function_id": strawberry.ID(encode_gid("Function", i.function_id)),
        "enabled": i.enabled,
    }


@strawberry.type(description="A discount whose logic is a function.")
class Discount:
    id: strawberry.ID
    title: str
    function_id: strawberry.ID
    enabled: bool
    discount_classes: list[DiscountClass]
    combines_with: CombinesWith
    codes: list[str]
    automatic: bool
    metafields: list[Metafield]

    @classmethod
    def from_model(cls, i: m.FunctionInstance, metafields: list[m.Metafield]) -> Discount:
        return cls(
            **_instance_common(i),  # type: ignore[arg-type]
            discount_classes=[m.DiscountClass(c) for c in i.discount_classes],
            combines_with=CombinesWith(
                order_discounts=i.combines_with_order_discounts,
                product_discounts=i.combines_with_product_discounts,
                shipping_discounts=i.combines_with_shipping_discounts,
            ),
            codes=list(i.discount_codes),
            automatic=i.is_automatic,
            metafields=[Metafield.from_model(mf, i.gid) for mf in metafields],
        )


@strawberry.type(description="The fields every function instance has.")
class _InstanceFields:
    id: strawberry.ID
    title: str
    function_id: strawberry.ID
    enabled: bool
    metafields: list[Metafield]

    @classmethod
    def from_model(cls, i: m.FunctionInstance, metafields: list[m.Metafield]) -> Self:
        return cls(
            **_instance_common(i),  # type: ignore[arg-type]
            metafields=[Metafield.from_model(mf, i.gid) for mf in metafields],
        )


@strawberry.type(description="A delivery customization (hide, move, rename options).")
class DeliveryCustomization(_InstanceFields):
    pass


@strawberry.type(description="A payment customization (hide, move, rename methods).")
class PaymentCustomization(_InstanceFields):
    pass


@strawberry.type(description="A checkout validation.")
class Validation:
    id: strawberry.ID
    title: str
    function_id: strawberry.ID
    enabled: bool
    block_on_failure: bool
    metafields: list[Metafield]

    @classmethod
    def from_model(cls, i: m.FunctionInstance, metafields: list[m.Metafield]) -> Validation:
        return cls(
            **_instance_common(i),  # type: ignore[arg-type]
            block_on_failure=i.block_on_failure,
            metafields=[Metafield.from_model(mf, i.gid) for mf in metafields],
        )


@strawberry.type(
    description="A cart transform: its function expands, merges or updates cart lines "
    "before the other functions run."
)
class CartTransform(_InstanceFields):
    pass


FunctionInstance = Annotated[
    Discount | DeliveryCustomization | PaymentCustomization | Validation | CartTransform,
    strawberry.union("FunctionInstance"),
]


@strawberry.type(description="One logged function run: enough to understand and replay it.")
class FunctionRun:
    id: strawberry.ID
    function_id: strawberry.ID
    version_id: strawberry.ID
    instance_id: strawberry.ID | None
    target: str
    export: str
    status: str
    error_code: str | None
    error_message: str | None
    input: str
    input_bytes: int
    input_truncated: bool
    output: str | None
    output_bytes: int
    logs: str
    logs_truncated: bool
    fuel_consumed: int | None
    peak_memory_bytes: int | None
    duration_ms: float
    created_at: datetime

    @classmethod
    def from_model(cls, r: m.RunLog) -> FunctionRun:
        instance_id = None
        if r.instance_id is not None:
            # The instance may be gone; its id stays meaningful in the log.
            instance_id = strawberry.ID(encode_gid("FunctionInstance", r.instance_id))
        return cls(
            id=strawberry.ID(r.gid),
            function_id=strawberry.ID(encode_gid("Function", r.function_id)),
            version_id=strawberry.ID(encode_gid("FunctionVersion", r.version_id)),
            instance_id=instance_id,
            target=r.target,
            export=r.export,
            status=r.status,
            error_code=r.error_code,
            error_message=r.error_message,
            input=r.input,
            input_bytes=r.input_bytes,
            input_truncated=r.input_truncated,
            output=r.output,
            output_bytes=r.output_bytes,
            logs=r.logs,
            logs_truncated=r.logs_truncated,
            fuel_consumed=r.fuel_consumed,
            peak_memory_bytes=r.peak_memory_bytes,
            duration_ms=r.duration_ms,
            created_at=r.created_at,
        )
