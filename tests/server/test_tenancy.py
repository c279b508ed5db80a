"""Tenancy: tokens resolve to one shop; shop A's token can never read, list, update or
delete shop B's records, by id or by listing, for every model and every operation of
`ShopScope`. Runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cartwheel.errors import (
    AuthenticationError,
    ConflictError,
    ImmutableFieldError,
    InvalidIdError,
    InvalidMetafieldError,
    InvalidRequestError,
    NotFoundError,
)
from cartwheel.models import (
    SHOP_OWNED_MODELS,
    ApiToken,
    Cart,
    CartLine,
    Collection,
    CollectionMembership,
    Customer,
    DeliveryOption,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
    Metafield,
    MetafieldOwnerType,
    MetafieldType,
    PaymentMethod,
    Product,
    ProductVariant,
    RunLog,
    ShopOwned,
    VersionStatus,
    utcnow,
    version_digest,
)
from cartwheel.tenancy import (
    SHOP_ID,
    UNSCOPED,
    ShopScope,
    TokenContext,
    UnscopedQueryError,
    authenticate,
    create_shop,
    issue_token,
    shop_statement,
    validate_metafield_value,
)


@dataclass
class Tenant:
    scope: ShopScope
    token: str
    records: dict[type[ShopOwned], ShopOwned]


def _populate(session: Session, handle: str) -> Tenant:
    """A shop with one record of every shop-owned model."""
    shop = create_shop(session, handle=handle, name=handle.title())
    scope = ShopScope(session, shop.id)
    token, raw = issue_token(session, shop.id, ["admin"], name="isolation")
    product = scope.create(Product, handle="hat", title="Hat", tags=["wool"])
    variant = scope.create(
        ProductVariant, product_id=product.id, price=Decimal("20.00"), currency_code="USD"
    )
    collection = scope.create(Collection, handle="winter", title="Winter")
    membership = scope.create(
        CollectionMembership, collection_id=collection.id, product_id=product.id
    )
    customer = scope.create(Customer, email=f"{handle}@example.com", amount_spent_currency="USD")
    cart = scope.create(Cart, currency_code="USD", customer_id=customer.id)
    line = scope.create(CartLine, cart_id=cart.id, variant_id=variant.id, quantity=1)
    metafield = scope.set_metafield(product, "custom", "fit", MetafieldType.JSON, '{"a": 1}')
    option = scope.create(
        DeliveryOption, handle="standard", title="Standard", cost=Decimal(5), currency_code="USD"
    )
    method = scope.create(PaymentMethod, name="Card")
    function = scope.create(Function, handle="f", title="F", target="cart.validations.generate.run")
    version = scope.create(
        FunctionVersion,
        function_id=function.id,
        content_sha256=version_digest("0" * 64, function.target, "{ cart { id } }"),
        module_sha256="0" * 64,
        module_size=8,
        module_bytes=b"\0asm\1\0\0\0",
        target=function.target,
        input_query="{ cart { id } }",
    )
    instance = scope.create(
        FunctionInstance, function_id=function.id, kind=InstanceKind.VALIDATION, title="V"
    )
    run = scope.create(
        RunLog,
        function_id=function.id,
        version_id=version.id,
        target=function.target,
        status="success",
        input="{}",
        input_bytes=2,
        duration_ms=1.5,
    )
    records: dict[type[ShopOwned], ShopOwned] = {
        ApiToken: token,
        Product: product,
        ProductVariant: variant,
        Collection: collection,
        CollectionMembership: membership,
        Customer: customer,
        Cart: cart,
        CartLine: line,
        Metafield: metafield,
        DeliveryOption: option,
        PaymentMethod: method,
        Function: function,
        FunctionVersion: version,
        FunctionInstance: instance,
        RunLog: run,
    }
    assert set(records) == set(SHOP_OWNED_MODELS)
    return Tenant(scope, raw, records)


@pytest.fixture
def tenants(any_db_session: Session) -> tuple[Tenant, Tenant]:
    return _populate(any_db_session, "shop-a"), _populate(any_db_session, "shop-b")


def _as_a(session: Session, a: Tenant) -> ShopScope:
    """Shop A's scope, reached the way a request reaches it: through A's token."""
    context = authenticate(session, a.token)
    return ShopScope(session, context.shop_id)


# A field each model lets `update` change, with a new value (None: nothing is mutable).
UPDATES: dict[type[ShopOwned], tuple[str, Callable[[Any], Any]] | None] = {
    ApiToken: ("name", lambda r: "renamed"),
    Product: ("title", lambda r: "Renamed"),
    ProductVariant: ("sku", lambda r: "SKU-2"),
    Collection: ("title", lambda r: "Renamed"),
    CollectionMembership: ("product_id", lambda r: r.product_id),
    Customer: ("first_name", lambda r: "Renamed"),
    Cart: ("buyer_email", lambda r: "renamed@example.com"),
    CartLine: ("quantity", lambda r: 7),
    Metafield: ("value", lambda r: '{"a": 2}'),
    DeliveryOption: ("title", lambda r: "Renamed"),
    PaymentMethod: ("position", lambda r: 9),
    Function: ("title", lambda r: "Renamed"),
    FunctionVersion: ("status", lambda r: VersionStatus.FAILED),
    FunctionInstance: ("title", lambda r: "Renamed"),
    RunLog: None,
}

MODELS = pytest.mark.parametrize("model", SHOP_OWNED_MODELS, ids=lambda m: m.__name__)


def _snapshot_of(session: Session, record: ShopOwned) -> dict[str, Any]:
    """The row of `record` as stored (read back by B's own scope, bypassing the identity map)."""
    table = type(record).__table__
    assert isinstance(table, sa.Table)
    row = session.execute(
        sa.select(table).where(table.c.id == record.id, table.c.shop_id == record.shop_id)
    ).one()
    return dict(row._mapping)


@MODELS
def test_read_by_id_and_gid(tenants: tuple[Tenant, Tenant], model: type[ShopOwned]) -> None:
    a, b = tenants
    scope = _as_a(a.scope.session, a)
    own, theirs = a.records[model], b.records[model]
    assert scope.get(model, own.id) is own
    assert scope.get(model, own.gid) is own
    assert scope.find(model, theirs.id) is None
    assert scope.find(model, theirs.gid) is None
    for key in (theirs.id, theirs.gid):
        with pytest.raises(NotFoundError) as caught:
            scope.get(model, key)
        assert caught.value.code == "NOT_FOUND"
        assert caught.value.http_status == 404


@MODELS
def test_list_count_select_and_batch_reads(
    tenants: tuple[Tenant, Tenant], model: type[ShopOwned]
) -> None:
    a, b = tenants
    scope = _as_a(a.scope.session, a)
    own, theirs = a.records[model], b.records[model]
    listed = scope.list(model)
    assert own in listed
    assert all(r.shop_id == scope.shop_id for r in listed)
    assert theirs not in listed
    assert scope.list(model, model.id == theirs.id) == []
    assert scope.list(model, after_id=0, limit=1_000_000) == listed
    assert scope.count(model) == len(listed)
    assert scope.count(model, model.id == theirs.id) == 0
    assert scope.scalars(scope.select(model).where(model.id == theirs.id)) == []
    # a hostile filter is AND-ed with the shop filter, never replaces it
    assert scope.scalars(scope.select(model).where(model.shop_id == theirs.shop_id)) == []
    assert scope.get_many(model, [own.id, theirs.id]) == {own.id: own}
    ids = scope.session.scalars(scope.select_columns(model, model.id)).all()
    assert own.id in ids
    assert theirs.id not in ids


@MODELS
def test_update(tenants: tuple[Tenant, Tenant], model: type[ShopOwned]) -> None:
    a, b = tenants
    session = a.scope.session
    scope = _as_a(session, a)
    own, theirs = a.records[model], b.records[model]
    before = _snapshot_of(session, theirs)
    spec = UPDATES[model]
    if spec is None:
        field, value = "created_at", utcnow()
        with pytest.raises(ImmutableFieldError):
            scope.update(own, **{field: value})
    else:
        field, make = spec
        value = make(own)
        assert getattr(scope.update(model, own.id, **{field: value}), field) == value
        assert getattr(scope.update(own, **{field: value}), field) == value
        value = make(theirs)
    with pytest.raises(NotFoundError):
        scope.update(model, theirs.id, **{field: value})
    with pytest.raises(NotFoundError):
        scope.update(model, theirs.gid, **{field: value})
    with pytest.raises(NotFoundError):
        scope.update(theirs, **{field: value})
    session.expire_all()
    assert _snapshot_of(session, theirs) == before


@MODELS
def test_set_based_update_and_delete_statements(
    tenants: tuple[Tenant, Tenant], model: type[ShopOwned]
) -> None:
    a, b = tenants
    session = a.scope.session
    scope = _as_a(session, a)
    theirs = b.records[model]
    before = _snapshot_of(session, theirs)
    # even a statement aimed at B's id by name touches nothing of B's
    changed = session.execute(
        scope.update_statement(model).where(model.id == theirs.id).values(id=model.id)
    )
    assert changed.rowcount == 0  # type: ignore[attr-defined]
    deleted = session.execute(scope.delete_statement(model).where(model.id == theirs.id))
    assert deleted.rowcount == 0  # type: ignore[attr-defined]
    assert _snapshot_of(session, theirs) == before
    own_count = scope.count(model)
    assert session.execute(scope.delete_statement(model)).rowcount >= own_count  # type: ignore[attr-defined]
    assert scope.count(model) == 0
    assert b.scope.count(model) >= 1


@MODELS
def test_delete(tenants: tuple[Tenant, Tenant], model: type[ShopOwned]) -> None:
    a, b = tenants
    session = a.scope.session
    scope = _as_a(session, a)
    own, theirs = a.records[model], b.records[model]
    with pytest.raises(NotFoundError):
        scope.delete(model, theirs.id)
    with pytest.raises(NotFoundError):
        scope.delete(model, theirs.gid)
    with pytest.raises(NotFoundError):
        scope.delete(theirs)
    assert b.scope.get(model, theirs.id) is theirs
    scope.delete(model, own.id)
    assert scope.find(model, own.id) is None
    assert b.scope.count(model) >= 1


def test_every_shop_owned_model_has_an_update_spec() -> None:
    assert set(UPDATES) == set(SHOP_OWNED_MODELS)


REFERENCES = [
    (ProductVariant, "product_id", Product),
    (CollectionMembership, "collection_id", Collection),
    (CollectionMembership, "product_id", Product),
    (Cart, "customer_id", Customer),
    (CartLine, "cart_id", Cart),
    (CartLine, "variant_id", ProductVariant),
    (FunctionVersion, "function_id", Function),
    (FunctionInstance, "function_id", Function),
    (Function, "active_version_id", FunctionVersion),
]


@pytest.mark.parametrize(
    ("model", "field", "referenced"),
    REFERENCES,
    ids=[f"{m.__name__}.{f}" for m, f, _ in REFERENCES],
)
def test_references_to_another_shop_are_not_found(
    tenants: tuple[Tenant, Tenant],
    model: type[ShopOwned],
    field: str,
    referenced: type[ShopOwned],
) -> None:
    a, b = tenants
    scope = _as_a(a.scope.session, a)
    own = a.records[model]
    if field in model.__immutable__:
        # fixed at creation: the check happens there
        values = dict(CREATE_VALUES[model])
        with pytest.raises(NotFoundError) as caught:
            scope.create(model, **values, **{field: b.records[referenced].id})
        assert caught.value.details["field"] == field
        scope.create(model, **values, **{field: a.records[referenced].id})
        return
    with pytest.raises(NotFoundError) as caught:
        scope.update(own, **{field: b.records[referenced].id})
    assert caught.value.details["field"] == field
    # and the same value of A's own shop is accepted
    scope.update(own, **{field: a.records[referenced].id})


CREATE_VALUES: dict[type[ShopOwned], dict[str, Any]] = {
    FunctionVersion: {
        "content_sha256": "1" * 64,
        "module_sha256": "1" * 64,
        "module_size": 8,
        "target": "cart.validations.generate.run",
        "input_query": "{ cart { id } }",
    },
    FunctionInstance: {"kind": InstanceKind.DISCOUNT, "title": "D"},
}


def test_create_with_a_reference_to_another_shop(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    scope = _as_a(a.scope.session, a)
    with pytest.raises(NotFoundError):
        scope.create(
            CartLine,
            cart_id=a.records[Cart].id,
            variant_id=b.records[ProductVariant].id,
            quantity=1,
        )
    with pytest.raises(NotFoundError):
        scope.create(
            ProductVariant,
            product_id=b.records[Product].id,
            price=Decimal(1),
            currency_code="USD",
        )
    with pytest.raises(NotFoundError):
        scope.create_many(
            CartLine,
            [
                {
                    "cart_id": a.records[Cart].id,
                    "variant_id": a.records[ProductVariant].id,
                    "quantity": 1,
                },
                {
                    "cart_id": a.records[Cart].id,
                    "variant_id": b.records[ProductVariant].id,
                    "quantity": 1,
                },
            ],
        )
    assert b.scope.count(CartLine) == 1
    assert b.scope.count(ProductVariant) == 1
    assert scope.count(CartLine) == 1  # all or nothing


def test_metafields_of_another_shops_owner(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    scope = _as_a(a.scope.session, a)
    their_product = b.records[Product]
    with pytest.raises(NotFoundError):
        scope.set_metafield(their_product, "custom", "x", "boolean", "true")
    with pytest.raises(NotFoundError):
        scope.metafields(their_product)
    with pytest.raises(NotFoundError):
        scope.set_metafield(b.scope.shop, "custom", "x", "boolean", "true")
    with pytest.raises(NotFoundError):
        scope.create(
            Metafield,
            owner_type=MetafieldOwnerType.PRODUCT,
            owner_id=their_product.id,
            namespace="custom",
            key="x",
            type=MetafieldType.BOOLEAN,
            value="true",
        )
    assert scope.metafields_of({MetafieldOwnerType.PRODUCT: [their_product.id]}) == {}
    own = a.records[Product]
    assert [m.key for m in scope.metafields(own)] == ["fit"]
    assert list(scope.metafields_of({MetafieldOwnerType.PRODUCT: [own.id, their_product.id]})) == [
        (MetafieldOwnerType.PRODUCT, own.id)
    ]


def test_revoking_another_shops_token(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    scope = _as_a(a.scope.session, a)
    with pytest.raises(NotFoundError):
        scope.revoke_token(b.records[ApiToken].id)
    assert authenticate(b.scope.session, b.token).shop_id == b.scope.shop_id


def test_the_active_version_belongs_to_the_function(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    other = a.scope.create(Function, handle="other", title="Other", target="t")
    with pytest.raises(InvalidRequestError, match="another function"):
        a.scope.update(other, active_version_id=a.records[FunctionVersion].id)
    assert a.scope.update(other, active_version_id=None).active_version_id is None


def test_a_function_instance_gid_names_its_kind(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    instance = a.records[FunctionInstance]
    assert instance.gid.startswith("gid://cartwheel/Validation/")
    assert a.scope.get(FunctionInstance, instance.gid) is instance
    assert a.scope.find(FunctionInstance, f"gid://cartwheel/Discount/{instance.id}") is None
    with pytest.raises(InvalidIdError):
        a.scope.get(FunctionInstance, f"gid://cartwheel/Product/{instance.id}")


# --- tokens --------------------------------------------------------------------------------


def test_token_resolves_to_exactly_one_shop(any_db_session: Session) -> None:
    shop = create_shop(any_db_session, handle="solo", name="Solo")
    token, raw = issue_token(any_db_session, shop.id, ["deploy", "admin", "deploy"], name="ci")
    assert raw.startswith("cwt_")
    # only the hash is stored
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {token.token_hash, token.token_prefix, token.name}
    assert token.scopes == ["admin", "deploy"]
    context = authenticate(any_db_session, raw)
    assert context == TokenContext(token.id, shop.id, frozenset({"admin", "deploy"}))
    assert context.has_scope("deploy")
    assert not context.has_scope("storefront")


def test_unknown_malformed_and_revoked_tokens_are_rejected(any_db_session: Session) -> None:
    shop = create_shop(any_db_session, handle="solo", name="Solo")
    token, raw = issue_token(any_db_session, shop.id, ["admin"])
    for bad in ("", "Bearer x", "cwt_" + "x" * 43, raw + "x", raw.upper()):
        with pytest.raises(AuthenticationError) as caught:
            authenticate(any_db_session, bad)
        assert caught.value.code == "UNAUTHENTICATED"
        assert caught.value.http_status == 401
        assert "cartwheel token create" in caught.value.message
    ShopScope(any_db_session, shop.id).revoke_token(token.gid)
    with pytest.raises(AuthenticationError):
        authenticate(any_db_session, raw)


def test_last_used_is_recorded_at_most_once_a_minute(any_db_session: Session) -> None:
    shop = create_shop(any_db_session, handle="solo", name="Solo")
    token, raw = issue_token(any_db_session, shop.id, ["storefront"])
    assert token.last_used_at is None
    first = utcnow()
    authenticate(any_db_session, raw, now=first)
    assert token.last_used_at == first
    authenticate(any_db_session, raw, now=first + timedelta(seconds=30))
    assert token.last_used_at == first
    later = first + timedelta(minutes=2)
    authenticate(any_db_session, raw, now=later)
    any_db_session.flush()
    any_db_session.expire(token)
    assert token.last_used_at == later


def test_scopes_are_validated(any_db_session: Session) -> None:
    shop = create_shop(any_db_session, handle="solo", name="Solo")
    with pytest.raises(InvalidRequestError, match="root"):
        issue_token(any_db_session, shop.id, ["root"])
    with pytest.raises(InvalidRequestError, match="at least one scope"):
        issue_token(any_db_session, shop.id, [])
    with pytest.raises(NotFoundError):
        issue_token(any_db_session, shop.id + 1000, ["admin"])


# --- guard, conflicts, validation ----------------------------------------------------------


def test_unscoped_queries_are_refused(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    session = a.scope.session
    with pytest.raises(UnscopedQueryError) as caught:
        session.scalars(sa.select(Product)).all()
    assert "ShopScope" in caught.value.message
    with pytest.raises(UnscopedQueryError):
        session.get(Customer, a.records[Customer].id + 10_000)
    with pytest.raises(UnscopedQueryError):
        session.execute(sa.update(Product).values(title="x"))
    with pytest.raises(UnscopedQueryError):
        session.execute(sa.delete(Product))
    # operator jobs opt out explicitly
    assert len(session.scalars(sa.select(Product).execution_options(**UNSCOPED)).all()) == 2
    # relationships of records fetched through a scope load normally
    session.expire_all()
    product = a.scope.get(Product, a.records[Product].id)
    assert [v.id for v in product.variants] == [a.records[ProductVariant].id]


_PRODUCT_TITLES = shop_statement(
    sa.select(Product.title).where(Product.shop_id == SHOP_ID).order_by(Product.id)
)


def test_statements_built_once_are_bound_to_the_scopes_shop(
    tenants: tuple[Tenant, Tenant],
) -> None:
    a, b = tenants
    b.scope.update(Product, b.records[Product].id, title="B's hat")
    assert a.scope.execute(_PRODUCT_TITLES).scalars().all() == ["Hat"]
    assert b.scope.execute(_PRODUCT_TITLES).scalars().all() == ["B's hat"]
    # the scope binds the shop itself: a caller's value cannot widen or change it
    assert a.scope.execute(_PRODUCT_TITLES, {SHOP_ID.key: b.scope.shop_id}).scalars().all() == [
        "Hat"
    ]


def test_statements_built_once_must_filter_on_the_shop(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    with pytest.raises(UnscopedQueryError):
        shop_statement(sa.select(Product.title).where(Product.id > 0))
    # only statements checked by shop_statement run through ShopScope.execute
    with pytest.raises(UnscopedQueryError) as caught:
        a.scope.execute(sa.select(Product.title).where(Product.shop_id == SHOP_ID))
    assert "shop_statement" in caught.value.message


def test_duplicates_conflict_and_keep_the_transaction_usable(
    tenants: tuple[Tenant, Tenant],
) -> None:
    a, b = tenants
    with pytest.raises(ConflictError) as caught:
        a.scope.create(Product, handle="hat", title="Another hat")
    assert caught.value.http_status == 409
    # the same handle in another shop is fine, and the session still works
    assert b.scope.count(Product, Product.handle == "hat") == 1
    assert a.scope.create(Product, handle="cap", title="Cap").id > 0
    with pytest.raises(ConflictError):
        create_shop(a.scope.session, handle="shop-a", name="Again")


def test_ids_and_shop_are_not_writable(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    product = a.records[Product]
    with pytest.raises(ImmutableFieldError):
        a.scope.update(product, shop_id=b.scope.shop_id)
    with pytest.raises(ImmutableFieldError):
        a.scope.update(product, id=product.id + 1)
    with pytest.raises(InvalidRequestError):
        a.scope.create(Product, shop_id=b.scope.shop_id, handle="x", title="x")
    with pytest.raises(ImmutableFieldError, match="module_sha256"):
        a.scope.update(a.records[FunctionVersion], module_sha256="1" * 64)
    with pytest.raises(InvalidRequestError, match="no field"):
        a.scope.update(product, colour="red")


def test_deleting_an_owner_deletes_its_metafields(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    variant = a.records[ProductVariant]
    a.scope.set_metafield(variant, "custom", "size", "single_line_text_field", "L")
    a.scope.delete(a.records[Product])
    assert a.scope.count(Metafield) == 0
    assert a.scope.count(ProductVariant) == 0
    assert a.scope.count(CartLine) == 0
    assert b.scope.count(Metafield) == 1


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        (MetafieldType.JSON, '{"tiers": ["gold"]}', "{tiers"),
        (MetafieldType.SINGLE_LINE_TEXT_FIELD, "gold", "two\nlines"),
        (MetafieldType.NUMBER_INTEGER, "-42", "4.2"),
        (MetafieldType.NUMBER_DECIMAL, "12.50", "12,50"),
        (MetafieldType.BOOLEAN, "true", "yes"),
    ],
)
def test_metafield_values_match_their_type(type_: MetafieldType, good: str, bad: str) -> None:
    validate_metafield_value(type_, good)
    with pytest.raises(InvalidMetafieldError) as caught:
        validate_metafield_value(type_, bad)
    assert caught.value.code == "INVALID_METAFIELD"
    assert type_.value in caught.value.message


def test_set_metafield_replaces_and_validates(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    product = a.records[Product]
    first = a.scope.set_metafield(product, "custom", "limit", "number_integer", "5")
    again = a.scope.set_metafield(product, "custom", "limit", "number_integer", "6")
    assert again.id == first.id
    assert again.value == "6"
    with pytest.raises(InvalidMetafieldError):
        a.scope.set_metafield(product, "custom", "limit", "number_integer", "six")
    with pytest.raises(InvalidMetafieldError):
        a.scope.set_metafield(product, "custom", "limit", "date", "2026-01-01")
    assert a.scope.get(Metafield, first.id).value == "6"
