"""The database schema: SQLAlchemy 2.0 typed declarative models.

Every table except `shops` belongs to one shop (`ShopOwned.shop_id`) and is read and
written only through `cartwheel.tenancy.ShopScope`, which adds the shop filter itself.

Conventions:
- integer surrogate keys; the public id is the global id `gid` (``gid://cartwheel/...``);
- money is a `Numeric(19, 4)` amount (a `Decimal` in Python) beside a 3-letter currency code;
- timestamps are timezone-aware UTC (`UTCDateTime`), also on SQLite;
- lists and documents (tags, attributes, addresses) are JSON (JSONB on PostgreSQL);
- states are `str` enums stored as their value in a VARCHAR (no native enum types, so a
  new state is a code change, not a migration that locks a table).

Alembic migrations in `cartwheel/migrations/` match this module exactly
(`tests/server/test_migrations.py` runs autogenerate's comparison to prove it).
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cartwheel.ids import encode_gid

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names: Alembic (and SQLite batch mode) need names to alter."""

MONEY_PRECISION = 19
MONEY_SCALE = 4
"""Money amounts: 15 integer digits and 4 decimals, enough for every ISO 4217 currency."""

RUN_LOG_INPUT_CAP_BYTES = 1_280_000
"""Largest run input kept in a run log: the default input limit at the maximum scale
factor (128 kB x 10), so every input a run accepted can be replayed."""

RUN_LOG_OUTPUT_CAP_BYTES = 200_000
"""Largest run output kept in a run log (the output limit at the maximum scale factor)."""

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Primary/foreign key type: BIGINT, except INTEGER on SQLite where only INTEGER PRIMARY
KEY is the auto-incrementing rowid."""

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""A JSON document: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere."""

Money = sa.Numeric(MONEY_PRECISION, MONEY_SCALE)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    PostgreSQL keeps the zone (`timestamptz`); SQLite has no zone, so values are
    normalized to UTC on the way in and tagged UTC on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _str_enum(cls: type[enum.Enum], length: int = 32) -> sa.Enum:
    return sa.Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class TokenScope(enum.StrEnum):
    """What an API token may do: `admin` (store data, function instances, run logs),
    `deploy` (deploy, activate, roll back), `storefront` (carts and checkout)."""

    ADMIN = "admin"
    DEPLOY = "deploy"
    STOREFRONT = "storefront"


class MetafieldType(enum.StrEnum):
    """Metafield value types (Shopify's names). Values are stored as strings."""

    JSON = "json"
    SINGLE_LINE_TEXT_FIELD = "single_line_text_field"
    NUMBER_INTEGER = "number_integer"
    NUMBER_DECIMAL = "number_decimal"
    BOOLEAN = "boolean"


class MetafieldOwnerType(enum.StrEnum):
    """The kind of record a metafield hangs off."""

    SHOP = "shop"
    PRODUCT = "product"
    PRODUCT_VARIANT = "product_variant"
    CUSTOMER = "customer"
    CART = "cart"
    FUNCTION_INSTANCE = "function_instance"


class DeliveryMethodType(enum.StrEnum):
    """How a delivery option reaches the buyer (Shopify's `DeliveryMethod` values)."""

    SHIPPING = "SHIPPING"
    LOCAL = "LOCAL"
    PICK_UP = "PICK_UP"
    NONE = "NONE"
    RETAIL = "RETAIL"
    PICKUP_POINT = "PICKUP_POINT"


class VersionStatus(enum.StrEnum):
    """Where a deployed version is in the deploy pipeline."""

    PENDING = "pending"
    """Uploaded; validation and precompilation not finished."""
    READY = "ready"
    """Validated and precompiled; may be activated."""
    FAILED = "failed"
    """Rejected; `error_code` and `error_message` say why."""


class InstanceKind(enum.StrEnum):
    """What a function instance is in the shop's checkout."""

    DISCOUNT = "discount"
    DELIVERY_CUSTOMIZATION = "delivery_customization"
    PAYMENT_CUSTOMIZATION = "payment_customization"
    VALIDATION = "validation"
    CART_TRANSFORM = "cart_transform"


class DiscountClass(enum.StrEnum):
    """What a discount may reduce."""

    ORDER = "ORDER"
    PRODUCT = "PRODUCT"
    SHIPPING = "SHIPPING"


INSTANCE_GID_TYPES: dict[InstanceKind, str] = {
    InstanceKind.DISCOUNT: "Discount",
    InstanceKind.DELIVERY_CUSTOMIZATION: "DeliveryCustomization",
    InstanceKind.PAYMENT_CUSTOMIZATION: "PaymentCustomization",
    InstanceKind.VALIDATION: "Validation",
    InstanceKind.CART_TRANSFORM: "CartTransform",
}
"""Global id type of a function instance per kind (it is the input query's *owner*)."""


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

    __gid_type__: ClassVar[str]
    """The type name in this model's global ids."""

    id: Mapped[int]

    @property
    def gid(self) -> str:
        """This record's global id."""
        return encode_gid(self.__gid_type__, self.id)

    @classmethod
    def gid_types(cls) -> tuple[str, ...]:
        """The type names this model's global ids may carry."""
        return (cls.__gid_type__,)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.__dict__.get('id')}>"


class ShopOwned(Base):
    """A record that belongs to exactly one shop."""

    __abstract__ = True

    __immutable__: ClassVar[frozenset[str]] = frozenset()
    """Columns that `ShopScope.update` refuses to change once written (beyond id/shop_id)."""

    id: Mapped[int] = mapped_column(Id, primary_key=True, sort_order=-2)
    shop_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("shops.id", ondelete="CASCADE"), index=True, sort_order=-1
    )


class Timestamps:
    """`created_at` / `updated_at`, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, sort_order=1)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, sort_order=1
    )


# --- tenants and credentials --------------------------------------------------------


class Shop(Base):
    """A tenant: one merchant's store."""

    __tablename__ = "shops"
    __gid_type__ = "Shop"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    handle: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    currency_code: Mapped[str] = mapped_column(sa.String(3), default="USD")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    """IANA zone name; the shop's `localTime` in snapshots is computed in it."""
    country_code: Mapped[str] = mapped_column(sa.String(2), default="US")
    language_code: Mapped[str] = mapped_column(sa.String(8), default="EN")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(ShopOwned):
    """An API credential of one shop. Only the SHA-256 of the raw token is stored."""

    __tablename__ = "api_tokens"
    __gid_type__ = "ApiToken"
    __immutable__ = frozenset({"token_hash", "token_prefix", "created_at"})

    name: Mapped[str] = mapped_column(sa.String(255))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    """Hex SHA-256 of the raw token (tokens carry 256 random bits, so a fast hash is safe)."""
    token_prefix: Mapped[str] = mapped_column(sa.String(16))
    """The first characters of the raw token, to tell tokens apart in listings."""
    scopes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @staticmethod
    def hash(raw_token: str) -> str:
        """The stored form of `raw_token`."""
        return hashlib.sha256(raw_token.encode()).hexdigest()


# --- catalog --------------------------------------------------------------------------


class Product(Timestamps, ShopOwned):
    """A product; what the buyer sees as one item with variants."""

    __tablename__ = "products"
    __gid_type__ = "Product"
    __table_args__ = (sa.UniqueConstraint("shop_id", "handle"),)

    handle: Mapped[str] = mapped_column(sa.String(255))
    title: Mapped[str] = mapped_column(sa.String(255))
    vendor: Mapped[str | None] = mapped_column(sa.String(255))
    product_type: Mapped[str | None] = mapped_column(sa.String(255))
    is_gift_card: Mapped[bool] = mapped_column(default=False)
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list)

    variants: Mapped[list[ProductVariant]] = relationship(
        back_populates="product",
        order_by="ProductVariant.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class ProductVariant(Timestamps, ShopOwned):
    """A purchasable variant of a product: price, sku, shipping."""

    __tablename__ = "product_variants"
    __gid_type__ = "ProductVariant"

    product_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str | None] = mapped_column(sa.String(255))
    sku: Mapped[str | None] = mapped_column(sa.String(255))
    price: Mapped[Decimal] = mapped_column(Money)
    compare_at_price: Mapped[Decimal | None] = mapped_column(Money)
    currency_code: Mapped[str] = mapped_column(sa.String(3))
    requires_shipping: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)

    product: Mapped[Product] = relationship(back_populates="variants")


class Collection(Timestamps, ShopOwned):
    """A named group of products (used by `inAnyCollection`)."""

    __tablename__ = "collections"
    __gid_type__ = "Collection"
    __table_args__ = (sa.UniqueConstraint("shop_id", "handle"),)

    handle: Mapped[str] = mapped_column(sa.String(255))
    title: Mapped[str] = mapped_column(sa.String(255))


class CollectionMembership(ShopOwned):
    """A product in a collection."""

    __tablename__ = "collection_memberships"
    __gid_type__ = "CollectionMembership"
    __table_args__ = (sa.UniqueConstraint("collection_id", "product_id"),)

    collection_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("collections.id", ondelete="CASCADE")
    )
    product_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("products.id", ondelete="CASCADE"), index=True
    )


# --- buyers and carts -----------------------------------------------------------------


class Customer(Timestamps, ShopOwned):
    """A buyer with an account in the shop."""

    __tablename__ = "customers"
    __gid_type__ = "Customer"

    email: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    first_name: Mapped[str | None] = mapped_column(sa.String(255))
    last_name: Mapped[str | None] = mapped_column(sa.String(255))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    number_of_orders: Mapped[int] = mapped_column(default=0)
    amount_spent: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    amount_spent_currency: Mapped[str] = mapped_column(sa.String(3))

    @property
    def display_name(self) -> str:
        """Full name, else email, else "Customer <id>" (Shopify's `displayName`)."""
        return customer_display_name(self.id, self.first_name, self.last_name, self.email)


def customer_display_name(
    customer_id: int, first_name: str | None, last_name: str | None, email: str | None
) -> str:
    """Full name, else email, else "Customer <id>" (Shopify's `displayName`)."""
    name = " ".join(p for p in (first_name, last_name) if p)
    return name or email or f"Customer {customer_id}"


class Cart(Timestamps, ShopOwned):
    """A buyer's cart: lines, buyer identity, delivery address, entered discount codes."""

    __tablename__ = "carts"
    __gid_type__ = "Cart"

    currency_code: Mapped[str] = mapped_column(sa.String(3))
    customer_id: Mapped[int | None] = mapped_column(
        Id, sa.ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    buyer_email: Mapped[str | None] = mapped_column(sa.String(320))
    buyer_phone: Mapped[str | None] = mapped_column(sa.String(32))
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    """``[{"key": str, "value": str | None}]`` as the buyer set them."""
    delivery_address: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    """``{"countryCode", "provinceCode", "city", "zip"}`` (each may be null), or null."""
    selected_delivery_option_handle: Mapped[str | None] = mapped_column(sa.String(255))
    discount_codes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    """Discount codes the buyer entered, in order."""

    customer: Mapped[Customer | None] = relationship()
    lines: Mapped[list[CartLine]] = relationship(
        back_populates="cart",
        order_by="(CartLine.position, CartLine.id)",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class CartLine(ShopOwned):
    """A quantity of one variant in a cart."""

    __tablename__ = "cart_lines"
    __gid_type__ = "CartLine"
    __table_args__ = (sa.CheckConstraint("quantity > 0", name="quantity_positive"),)

    cart_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("carts.id", ondelete="CASCADE"), index=True
    )
    variant_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("product_variants.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int]
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    position: Mapped[int] = mapped_column(default=0)

    cart: Mapped[Cart] = relationship(back_populates="lines")
    variant: Mapped[ProductVariant] = relationship()


# --- shop configuration -----------------------------------------------------------------


class Metafield(Timestamps, ShopOwned):
    """A typed value attached to a record (configuration, custom data)."""

    __tablename__ = "metafields"
    __gid_type__ = "Metafield"
    __table_args__ = (sa.UniqueConstraint("shop_id", "owner_type", "owner_id", "namespace", "key"),)
    __immutable__ = frozenset({"owner_type", "owner_id"})

    owner_type: Mapped[MetafieldOwnerType] = mapped_column(_str_enum(MetafieldOwnerType))
    owner_id: Mapped[int] = mapped_column(Id)
    namespace: Mapped[str] = mapped_column(sa.String(255))
    key: Mapped[str] = mapped_column(sa.String(64))
    type: Mapped[MetafieldType] = mapped_column(_str_enum(MetafieldType, 64))
    value: Mapped[str] = mapped_column(sa.Text)


class DeliveryOption(Timestamps, ShopOwned):
    """A way to deliver an order, offered at checkout for shippable carts."""

    __tablename__ = "delivery_options"
    __gid_type__ = "DeliveryOption"
    __table_args__ = (sa.UniqueConstraint("shop_id", "handle"),)

    handle: Mapped[str] = mapped_column(sa.String(255))
    title: Mapped[str] = mapped_column(sa.String(255))
    cost: Mapped[Decimal] = mapped_column(Money)
    currency_code: Mapped[str] = mapped_column(sa.String(3))
    delivery_method_type: Mapped[DeliveryMethodType] = mapped_column(
        _str_enum(DeliveryMethodType), default=DeliveryMethodType.SHIPPING
    )
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class PaymentMethod(Timestamps, ShopOwned):
    """A way to pay, offered at checkout."""

    __tablename__ = "payment_methods"
    __gid_type__ = "PaymentCustomizationPaymentMethod"
    """Shopify's type name for a payment method as payment customizations see it."""
    __table_args__ = (sa.UniqueConstraint("shop_id", "name"),)

    name: Mapped[str] = mapped_column(sa.String(255))
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


# --- function registry ------------------------------------------------------------------


class Function(Timestamps, ShopOwned):
    """A function of the shop for one Function API target; its code lives in versions."""

    __tablename__ = "functions"
    __gid_type__ = "Function"
    __table_args__ = (sa.UniqueConstraint("shop_id", "handle"),)
    __immutable__ = frozenset({"target"})

    handle: Mapped[str] = mapped_column(sa.String(255))
    title: Mapped[str] = mapped_column(sa.String(255))
    target: Mapped[str] = mapped_column(sa.String(128))
    active_version_id: Mapped[int | None] = mapped_column(
        Id,
        sa.ForeignKey(
            "function_versions.id",
            ondelete="SET NULL",
            use_alter=True,
            name="fk_functions_active_version_id_function_versions",
        ),
    )
    """The version checkout runs (None: nothing active). Activation and rollback move it."""

    active_version: Mapped[FunctionVersion | None] = relationship(
        foreign_keys=[active_version_id], post_update=True
    )
    versions: Mapped[list[FunctionVersion]] = relationship(
        back_populates="function",
        foreign_keys="FunctionVersion.function_id",
        order_by="FunctionVersion.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    instances: Mapped[list[FunctionInstance]] = relationship(
        back_populates="function", cascade="all, delete-orphan", passive_deletes=True
    )


class FunctionVersion(ShopOwned):
    """An immutable, content-addressed deployment of a function.

    Identity is `content_sha256` (`version_digest` of module, target, query and variables
    reference): deploying the same content again finds this version instead of adding one.
    Only the pipeline's outcome changes after insert (status, error, artifact reference).
    """

    __tablename__ = "function_versions"
    __gid_type__ = "FunctionVersion"
    __table_args__ = (
        sa.UniqueConstraint("function_id", "content_sha256"),
        sa.Index(None, "shop_id", "module_sha256"),
    )
    __immutable__ = frozenset(
        {
            "function_id",
            "content_sha256",
            "module_sha256",
            "module_size",
            "module_bytes",
            "module_ref",
            "target",
            "input_query",
            "input_variables_namespace",
            "input_variables_key",
            "created_at",
        }
    )

    function_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("functions.id", ondelete="CASCADE"), index=True
    )
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    module_sha256: Mapped[str] = mapped_column(sa.String(64))
    """Hex SHA-256 of the wasm bytes: the module cache key."""
    module_size: Mapped[int]
    module_bytes: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    """The wasm module itself, unless it lives in a blob store (`module_ref`)."""
    module_ref: Mapped[str | None] = mapped_column(sa.String(512))
    """Blob-store reference of the wasm module when it is not stored inline."""
    artifact_ref: Mapped[str | None] = mapped_column(sa.String(512))
    """Reference of the precompiled (serialized) module, set when the version is ready."""
    abi: Mapped[str | None] = mapped_column(sa.String(16))
    """"wasi" or "extism", as detected at validation."""
    target: Mapped[str] = mapped_column(sa.String(128))
    input_query: Mapped[str] = mapped_column(sa.Text)
    input_variables_namespace: Mapped[str | None] = mapped_column(sa.String(255))
    input_variables_key: Mapped[str | None] = mapped_column(sa.String(64))
    """The owner metafield whose JSON value supplies the query's variables."""
    status: Mapped[VersionStatus] = mapped_column(
        _str_enum(VersionStatus), default=VersionStatus.PENDING
    )
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the pipeline reached `ready` or `failed`."""

    function: Mapped[Function] = relationship(back_populates="versions", foreign_keys=[function_id])


def version_digest(
    module_sha256: str,
    target: str,
    input_query: str,
    input_variables_namespace: str | None = None,
    input_variables_key: str | None = None,
) -> str:
    """The content address of a version: SHA-256 over everything that defines a run."""
    h = hashlib.sha256()
    for part in (
        module_sha256,
        target,
        input_query,
        input_variables_namespace or "",
        input_variables_key or "",
    ):
        data = part.encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


class FunctionInstance(Timestamps, ShopOwned):
    """A function put to work in checkout: a discount, a customization, a validation...

    Its configuration is metafields owned by it (`MetafieldOwnerType.FUNCTION_INSTANCE`);
    checkout runs the function's active version with this instance as the query's owner.
    """

    __tablename__ = "function_instances"
    __gid_type__ = "FunctionInstance"
    __table_args__ = (sa.Index(None, "shop_id", "kind", "enabled"),)
    __immutable__ = frozenset({"function_id", "kind"})

    function_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("functions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[InstanceKind] = mapped_column(_str_enum(InstanceKind))
    title: Mapped[str] = mapped_column(sa.String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    combines_with_order_discounts: Mapped[bool] = mapped_column(default=False)
    combines_with_product_discounts: Mapped[bool] = mapped_column(default=False)
    combines_with_shipping_discounts: Mapped[bool] = mapped_column(default=False)
    discount_classes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    """`DiscountClass` values the discount may apply (discounts only)."""
    discount_codes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    """Codes that trigger the discount; empty means automatic (discounts only)."""
    block_on_failure: Mapped[bool] = mapped_column(default=False)
    """Validations: whether a failed run blocks checkout (fail-closed)."""

    function: Mapped[Function] = relationship(back_populates="instances")

    @property
    def gid(self) -> str:
        """The global id, typed by kind (``gid://cartwheel/Discount/3``): the input
        query's owner id."""
        return encode_gid(INSTANCE_GID_TYPES[self.kind], self.id)

    @classmethod
    def gid_types(cls) -> tuple[str, ...]:
        return tuple(INSTANCE_GID_TYPES.values())

    @property
    def is_automatic(self) -> bool:
        """A discount that applies without a code."""
        return not self.discount_codes


# --- run logs -----------------------------------------------------------------------------


class RunLog(ShopOwned):
    """One function run at checkout (or a replay): enough to understand and replay it.

    Written off the hot path and never updated. Function, version and instance ids are
    plain columns, not foreign keys: logs outlive the records they describe until
    retention removes them.
    """

    __tablename__ = "run_logs"
    __gid_type__ = "FunctionRun"
    # The composite indexes lead with shop_id; a lone shop_id index would only slow inserts.
    __table_args__ = (
        sa.Index(None, "shop_id", "function_id", "created_at", "id"),
        sa.Index(None, "shop_id", "created_at", "id"),
    )
    __immutable__ = frozenset(
        {
            "function_id",
            "version_id",
            "instance_id",
            "cart_id",
            "target",
            "export",
            "status",
            "error_code",
            "error_message",
            "input",
            "input_bytes",
            "input_truncated",
            "output",
            "output_bytes",
            "logs",
            "logs_truncated",
            "fuel_consumed",
            "peak_memory_bytes",
            "duration_ms",
            "variables",
            "created_at",
            "run_id",
        }
    )

    shop_id: Mapped[int] = mapped_column(
        Id, sa.ForeignKey("shops.id", ondelete="CASCADE"), sort_order=-1
    )
    function_id: Mapped[int] = mapped_column(Id)
    version_id: Mapped[int] = mapped_column(Id)
    instance_id: Mapped[int | None] = mapped_column(Id)
    cart_id: Mapped[int | None] = mapped_column(Id)
    target: Mapped[str] = mapped_column(sa.String(128))
    export: Mapped[str] = mapped_column(sa.String(64), default="run")
    status: Mapped[str] = mapped_column(sa.String(32))
    """The runner's `RunStatus` value."""
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    input: Mapped[str] = mapped_column(sa.Text)
    """The input JSON, cut at `RUN_LOG_INPUT_CAP_BYTES` (then `input_truncated`)."""
    input_bytes: Mapped[int]
    input_truncated: Mapped[bool] = mapped_column(default=False)
    output: Mapped[str | None] = mapped_column(sa.Text)
    output_bytes: Mapped[int] = mapped_column(default=0)
    logs: Mapped[str] = mapped_column(sa.Text, default="")
    logs_truncated: Mapped[bool] = mapped_column(default=False)
    fuel_consumed: Mapped[int | None] = mapped_column(sa.BigInteger)
    peak_memory_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    duration_ms: Mapped[float] = mapped_column(sa.Float)
    variables: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    """The input query variables of the run, with the metafield they came from."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    run_id: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    """Unique key of the run, set where it happened: a record delivered twice (Redis
    push retried on the database, a batch re-ingested after a crash) is stored once.
    NULL only for rows written before the column existed."""


SHOP_OWNED_MODELS: tuple[type[ShopOwned], ...] = (
    ApiToken,
    Product,
    ProductVariant,
    Collection,
    CollectionMembership,
    Customer,
    Cart,
    CartLine,
    Metafield,
    DeliveryOption,
    PaymentMethod,
    Function,
    FunctionVersion,
    FunctionInstance,
    RunLog,
)
"""Every tenant table's model (tests iterate over it to prove isolation for all)."""
