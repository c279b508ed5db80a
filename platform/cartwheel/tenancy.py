"""Tenancy: tokens resolve to one shop, and all data access is scoped to that shop.

`authenticate(session, raw_token)` turns a bearer token into a `TokenContext` (its shop
and scopes). `ShopScope(session, shop_id)` is the only way to read or write a shop's
records: each method adds the shop filter itself, references to other records are
checked to be in the same shop, and another shop's ids are reported as NOT_FOUND, never
returned.

Sessions made by `cartwheel.db.session_factory` go one step further: an ORM query on a
shop-owned model that did not come from a `ShopScope` raises `UnscopedQueryError`, so a
forgotten filter fails in the first test instead of leaking data. Operator jobs that
span shops on purpose (retention, the run-log writer's batch) say so with
``execution_options(**UNSCOPED)``.
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.sql import ColumnElement, visitors
from sqlalchemy.sql.base import ExecutableOption

from cartwheel.errors import (
    AuthenticationError,
    ConflictError,
    ImmutableFieldError,
    InvalidMetafieldError,
    InvalidRequestError,
    NotFoundError,
    PlatformError,
)
from cartwheel.ids import decode_gid, parse_gid
from cartwheel.models import (
    ApiToken,
    Base,
    Cart,
    Customer,
    Function,
    FunctionInstance,
    FunctionVersion,
    Metafield,
    MetafieldOwnerType,
    MetafieldType,
    Product,
    ProductVariant,
    Shop,
    ShopOwned,
    TokenScope,
    utcnow,
)

M = TypeVar("M", bound=ShopOwned)
_E = TypeVar("_E", bound=sa.Executable)

TOKEN_PREFIX = "cwt_"
"""Raw tokens start with this, so secret scanners and people recognize them."""

TOKEN_DISPLAY_CHARS = 12
"""Characters of a raw token kept in clear (`ApiToken.token_prefix`) for listings."""

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`ApiToken.last_used_at` is written at most this often per token (not per request)."""

METAFIELD_VALUE_MAX_BYTES = 512_000
"""Largest metafield value accepted (functions see values up to 10,000 bytes)."""

MAX_LIST_LIMIT = 1_000
"""Most records one `ShopScope.list` call returns."""

SCOPE_OPTION = "cartwheel_shop_id"
UNSCOPED_OPTION = "cartwheel_unscoped"
UNSCOPED: Mapping[str, Any] = {UNSCOPED_OPTION: True}
"""Execution options of a deliberate cross-shop query (operator jobs only)."""

SHOP_ID_PARAM = "cartwheel_shop_id"
SHOP_ID: sa.BindParameter[int] = sa.bindparam(SHOP_ID_PARAM, type_=sa.Integer)
"""The shop's key in a statement built once (see `shop_statement`), bound by
`ShopScope.execute`."""

_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DECIMAL = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_MAX_SAFE_INTEGER = 2**53 - 1

METAFIELD_OWNERS: Mapping[MetafieldOwnerType, type[Base]] = {
    MetafieldOwnerType.SHOP: Shop,
    MetafieldOwnerType.PRODUCT: Product,
    MetafieldOwnerType.PRODUCT_VARIANT: ProductVariant,
    MetafieldOwnerType.CUSTOMER: Customer,
    MetafieldOwnerType.CART: Cart,
    MetafieldOwnerType.FUNCTION_INSTANCE: FunctionInstance,
}
"""The model behind each metafield owner type."""

_OWNER_TYPES: Mapping[type[Base], MetafieldOwnerType] = {
    model: owner_type for owner_type, model in METAFIELD_OWNERS.items()
}

_DEPENDENT_OWNERS: Mapping[
    type[Base], tuple[tuple[MetafieldOwnerType, type[ShopOwned], str], ...]
] = {
    Product: ((MetafieldOwnerType.PRODUCT_VARIANT, ProductVariant, "product_id"),),
    Function: ((MetafieldOwnerType.FUNCTION_INSTANCE, FunctionInstance, "function_id"),),
}
"""Metafield owners deleted by the database's cascade when the key model is deleted."""


class UnscopedQueryError(PlatformError):
    """An ORM query on shop-owned data that does not go through `ShopScope`: a bug."""

    code = "UNSCOPED_QUERY"


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenContext:
    """An authenticated API token: the one shop it belongs to and what it may do."""

    token_id: int
    shop_id: int
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        """Whether the token carries `scope` (scopes do not imply each other)."""
        return scope in self.scopes


def parse_scopes(scopes: Iterable[str]) -> list[str]:
    """Validated, de-duplicated scope names in `TokenScope` order.

    Raises `InvalidRequestError` naming an unknown scope and the valid ones.
    """
    wanted = set()
    for scope in scopes:
        try:
            wanted.add(TokenScope(scope))
        except ValueError:
            valid = ", ".join(s.value for s in TokenScope)
            raise InvalidRequestError(
                f"Unknown token scope {scope!r}; use one of: {valid}.", scope=scope
            ) from None
    if not wanted:
        raise InvalidRequestError("A token needs at least one scope (admin, deploy, storefront).")
    return [s.value for s in TokenScope if s in wanted]


def issue_token(
    session: Session, shop_id: int, scopes: Iterable[str], *, name: str = ""
) -> tuple[ApiToken, str]:
    """Create a token for `shop_id`; returns the row and the raw token.

    The raw token is not stored anywhere (only its SHA-256): show it once. Raises
    `InvalidRequestError` for unknown scopes and `NotFoundError` for a missing shop.
    """
    scope_names = parse_scopes(scopes)
    scope = ShopScope(session, shop_id)
    scope.shop  # noqa: B018 - raises NotFoundError for a missing shop
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = scope.create(
        ApiToken,
        name=name or f"{'+'.join(scope_names)} token",
        token_hash=ApiToken.hash(raw),
        token_prefix=raw[:TOKEN_DISPLAY_CHARS],
        scopes=scope_names,
    )
    return token, raw


def authenticate(session: Session, raw_token: str, *, now: datetime | None = None) -> TokenContext:
    """The shop and scopes of `raw_token`.

    Records the use (`last_used_at`, at most once per `LAST_USED_RESOLUTION`) in the
    session's transaction. Raises `AuthenticationError` (UNAUTHENTICATED) for a token
    that is malformed, unknown or revoked.
    """
    if not raw_token.startswith(TOKEN_PREFIX) or len(raw_token) > 256:
        raise AuthenticationError(
            "Malformed API token: Cartwheel tokens start with 'cwt_'. "
            "Create one with `cartwheel token create --shop <handle> --scope <scope>`."
        )
    row = session.execute(
        _TOKEN_BY_HASH, {"token_hash": ApiToken.hash(raw_token)}, execution_options=UNSCOPED
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        raise AuthenticationError(
            "Unknown or revoked API token. Create a new one with "
            "`cartwheel token create --shop <handle> --scope <scope>`."
        )
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        token = session.get(ApiToken, row.id, execution_options=UNSCOPED)
        assert token is not None  # just read, in this transaction
        token.last_used_at = now
    return TokenContext(token_id=row.id, shop_id=row.shop_id, scopes=frozenset(row.scopes))


_TOKEN_BY_HASH = sa.select(
    ApiToken.id, ApiToken.shop_id, ApiToken.scopes, ApiToken.revoked_at, ApiToken.last_used_at
).where(ApiToken.token_hash == sa.bindparam("token_hash"))
"""The columns `authenticate` needs (built once: it runs on every request; the token is
loaded as a record only to record its use)."""


# --- shops (operator level) ---------------------------------------------------------------


def create_shop(
    session: Session,
    *,
    handle: str,
    name: str,
    currency_code: str = "USD",
    timezone: str = "UTC",
    country_code: str = "US",
    language_code: str = "EN",
) -> Shop:
    """Create a tenant. Raises `InvalidRequestError` for a bad handle, currency or zone,
    `ConflictError` when the handle is taken."""
    if not _HANDLE.match(handle):
        raise InvalidRequestError(
            f"Shop handle {handle!r} is invalid: use 1-64 lowercase letters, digits and "
            "dashes, starting with a letter or digit.",
            field="handle",
        )
    _check_currency(currency_code)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequestError(
            f"Unknown time zone {timezone!r}: use an IANA name such as 'Europe/Paris'.",
            field="timezone",
        ) from None
    shop = Shop(
        handle=handle,
        name=name,
        currency_code=currency_code,
        timezone=timezone,
        country_code=country_code.upper(),
        language_code=language_code.upper(),
    )
    with _savepoint(session, f"A shop with handle {handle!r} already exists; pick another."):
        session.add(shop)
    return shop


def shop_by_handle(session: Session, handle: str) -> Shop:
    """The shop with `handle`. Raises `NotFoundError`."""
    shop = session.scalars(sa.select(Shop).where(Shop.handle == handle)).one_or_none()
    if shop is None:
        raise NotFoundError(
            f"No shop with handle {handle!r}. Create it with `cartwheel shop create {handle}`.",
            handle=handle,
        )
    return shop


def _check_currency(code: str) -> None:
    from babel.numbers import is_currency

    if not is_currency(code):
        raise InvalidRequestError(
            f"Unknown currency code {code!r}: use an ISO 4217 code such as USD, EUR or JPY.",
            field="currency_code",
        )


# --- the shop-scoped layer ----------------------------------------------------------------


class ShopScope:
    """Every read and write of one shop's records.

    Records are addressed by integer key or by global id; a record of another shop, or
    of another type than asked for, is `NotFoundError` (NOT_FOUND), exactly like one that
    does not exist. The scope never commits: the caller owns the transaction.
    """

    __slots__ = ("_shop", "session", "shop_id")

    def __init__(self, session: Session, shop_id: int) -> None:
        self.session = session
        self.shop_id = shop_id
        self._shop: Shop | None = None

    def __repr__(self) -> str:
        return f"<ShopScope shop_id={self.shop_id}>"

    @property
    def shop(self) -> Shop:
        """The shop itself. Raises `NotFoundError` when it does not exist."""
        if self._shop is None:
            shop = self.session.get(Shop, self.shop_id)
            if shop is None:
                raise NotFoundError(f"Shop {self.shop_id} does not exist.")
            self._shop = shop
        return self._shop

    def update_shop(self, **values: Any) -> Shop:
        """Change the shop's own settings (name, currency, time zone, country, language)."""
        allowed = {"name", "currency_code", "timezone", "country_code", "language_code"}
        unknown = set(values) - allowed
        if unknown:
            raise ImmutableFieldError(
                f"Cannot change {', '.join(sorted(unknown))} of a shop; "
                f"changeable: {', '.join(sorted(allowed))}."
            )
        if "currency_code" in values:
            _check_currency(values["currency_code"])
        shop = self.shop
        with _savepoint(self.session, "The shop could not be updated."):
            for name, value in values.items():
                setattr(shop, name, value)
        return shop

    # queries

    def select(self, model: type[M]) -> sa.Select[M]:
        """``SELECT model`` already filtered to this shop; add criteria and run it with
        `scalars`. With `select_columns`, `update_statement` and `delete_statement`, the
        way to build custom statements over shop data."""
        return (
            sa.select(model)
            .where(model.shop_id == self.shop_id)
            .execution_options(**{SCOPE_OPTION: self.shop_id})
        )

    def update_statement(self, model: type[ShopOwned]) -> sa.Update:
        """``UPDATE model`` already filtered to this shop, for set-based changes (add
        criteria with ``.where`` and values with ``.values``; run with `session.execute`).
        Bypasses `update`'s checks: the caller validates references and immutability.
        Sets `updated_at` (models that have it) like `update` does: change stamps
        (e.g. the snapshot's cached delivery options) rely on it."""
        statement = (
            sa.update(model)
            .where(model.shop_id == self.shop_id)
            .execution_options(synchronize_session=False, **{SCOPE_OPTION: self.shop_id})
        )
        if "updated_at" in model.__table__.c:
            statement = statement.values(updated_at=utcnow())
        return statement

    def delete_statement(self, model: type[ShopOwned]) -> sa.Delete:
        """``DELETE FROM model`` already filtered to this shop (see `update_statement`).
        Metafields of deleted owners are not removed: prefer `delete` for owners."""
        return (
            sa.delete(model)
            .where(model.shop_id == self.shop_id)
            .execution_options(synchronize_session=False, **{SCOPE_OPTION: self.shop_id})
        )

    def select_columns(self, model: type[ShopOwned], *columns: Any) -> sa.Select[Any]:
        """``SELECT columns FROM model`` filtered to this shop: plain rows, no ORM objects
        (for hot paths that read many small records). Other shop tables joined in must be
        filtered to the shop in their ON clause too."""
        return (
            sa.select(*columns)
            .select_from(model)
            .where(model.shop_id == self.shop_id)
            .execution_options(**{SCOPE_OPTION: self.shop_id})
        )

    def execute(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> sa.Result[*tuple[Any, ...]]:
        """Run a statement built once with `shop_statement` (its `SHOP_ID` bound to this
        shop, `params` to the rest). Hot paths use it to skip building the statement per
        call. Raises `UnscopedQueryError` for a statement that does not filter on
        `SHOP_ID`."""
        _check_shop_statement(statement)
        return self.session.execute(
            statement,
            {**(params or {}), SHOP_ID_PARAM: self.shop_id},
            execution_options={SCOPE_OPTION: self.shop_id},
        )

    def rows(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> sa.CursorResult[*tuple[Any, ...]]:
        """`execute` for a statement of plain columns, on the session's connection without
        the ORM layer (the cheapest way to read many small rows; pending changes of the
        session are flushed first, as an ORM query would). Raises `UnscopedQueryError` as
        `execute` does."""
        _check_shop_statement(statement)
        session = self.session
        if session.autoflush and (session.new or session.dirty or session.deleted):
            session.flush()
        return session.connection().execute(
            statement,
            {**(params or {}), SHOP_ID_PARAM: self.shop_id},
            execution_options={SCOPE_OPTION: self.shop_id},
        )

    def key(self, model: type[M], id: int | str) -> int | None:
        """The integer key `id` (key or global id of `model`) names, or None for a key no
        record can have. Raises `InvalidIdError` for a global id that does not parse or
        names another type."""
        return self._key(model, id)

    def scalars(self, statement: sa.Select[M]) -> builtins.list[M]:
        """Run a statement built from `select` and return its records."""
        return builtins.list(self.session.scalars(statement).unique())

    def find(
        self, model: type[M], id: int | str, *, options: Sequence[ExecutableOption] = ()
    ) -> M | None:
        """The record `id` (key or global id) of this shop, or None. `options` are loader
        options (e.g. ``joinedload(Cart.customer)``)."""
        key = self._key(model, id)
        if key is None:
            return None
        statement = self.select(model).where(model.id == key).options(*options)
        record = self.session.scalars(statement).unique().one_or_none()
        if record is not None and isinstance(id, str) and parse_gid(id)[0] not in _types(record):
            return None
        return record

    def get(self, model: type[M], id: int | str, *, options: Sequence[ExecutableOption] = ()) -> M:
        """The record `id` (key or global id) of this shop (`options` as for `find`).

        Raises `NotFoundError` when it does not exist in this shop and `InvalidIdError`
        for a global id that does not parse or names another type.
        """
        record = self.find(model, id, options=options)
        if record is None:
            raise NotFoundError(
                f"No {model.__gid_type__} {id!r} in this shop.", id=str(id), type=model.__name__
            )
        return record

    def get_many(self, model: type[M], ids: Iterable[int]) -> dict[int, M]:
        """The records of this shop among `ids`, by key (one query; missing ids absent)."""
        keys = sorted(set(ids))
        if not keys:
            return {}
        rows = self.session.scalars(self.select(model).where(model.id.in_(keys)))
        return {row.id: row for row in rows}

    def list(
        self,
        model: type[M],
        *where: ColumnElement[bool],
        order_by: Sequence[Any] | None = None,
        limit: int | None = None,
        after_id: int | None = None,
    ) -> builtins.list[M]:
        """This shop's records of `model` matching `where`, by id unless `order_by`.

        `after_id` pages by key (records with a greater id); `limit` is capped at
        `MAX_LIST_LIMIT`.
        """
        statement = self.select(model).where(*where)
        if after_id is not None:
            statement = statement.where(model.id > after_id)
        statement = statement.order_by(*(order_by or (model.id,)))
        statement = statement.limit(min(limit or MAX_LIST_LIMIT, MAX_LIST_LIMIT))
        return builtins.list(self.session.scalars(statement))

    def count(self, model: type[M], *where: ColumnElement[bool]) -> int:
        """How many of this shop's records of `model` match `where`."""
        statement = (
            sa.select(sa.func.count())
            .select_from(model)
            .where(model.shop_id == self.shop_id, *where)
            .execution_options(**{SCOPE_OPTION: self.shop_id})
        )
        return int(self.session.scalar(statement) or 0)

    # writes

    def create(self, model: type[M], **values: Any) -> M:
        """Insert a record of this shop and return it with its key.

        References (`product_id`, `cart_id`...) must name records of this shop
        (`NotFoundError` otherwise). Raises `ConflictError` on a duplicate
        (e.g. a handle already used in this shop) and `InvalidMetafieldError` for a
        metafield value that does not match its type.
        """
        return self.create_many(model, [values])[0]

    def create_many(self, model: type[M], rows: Sequence[Mapping[str, Any]]) -> builtins.list[M]:
        """Insert several records of this shop at once, with the checks of `create`.

        The number of statements does not grow with `rows` (one reference check per
        foreign key column, batched inserts); all rows are inserted or none.
        """
        for values in rows:
            for reserved in ("id", "shop_id"):
                if reserved in values:
                    raise InvalidRequestError(
                        f"{reserved} is assigned by the platform, not the caller."
                    )
        self._check_references(model, rows)
        if model is Metafield:
            self._check_metafields(rows)
        records = [model(shop_id=self.shop_id, **values) for values in rows]
        with _savepoint(self.session, f"This {model.__gid_type__} conflicts with an existing one."):
            self.session.add_all(records)
        return records

    @overload
    def update(self, target: M, /, **values: Any) -> M: ...
    @overload
    def update(self, target: type[M], id: int | str, /, **values: Any) -> M: ...

    def update(self, target: M | type[M], id: int | str | None = None, /, **values: Any) -> M:
        """Change fields of a record of this shop: `update(record, **values)` or
        `update(Model, id, **values)`.

        Raises `NotFoundError` for a record of another shop, `ImmutableFieldError` for
        keys, the shop and fields that never change (e.g. a version's module), and the
        errors of `create` for references and metafield values.
        """
        record = self._resolve(target, id)
        model = type(record)
        frozen = {"id", "shop_id"} | model.__immutable__
        changed = sorted(name for name in values if name in frozen)
        if changed:
            raise ImmutableFieldError(
                f"{', '.join(changed)} of a {model.__gid_type__} cannot change; "
                "create a new record instead.",
                fields=changed,
            )
        self._check_references(model, [values])
        if isinstance(record, Function) and values.get("active_version_id") is not None:
            version = self.get(FunctionVersion, values["active_version_id"])
            if version.function_id != record.id:
                raise InvalidRequestError(
                    f"{version.gid} is a version of another function; activate one of "
                    f"{record.gid}'s own versions.",
                    field="active_version_id",
                )
        if isinstance(record, Metafield):
            merged = {"type": record.type, "value": record.value, **values}
            self._check_metafields(
                [{"owner_type": record.owner_type, "owner_id": record.owner_id, **merged}]
            )
        unknown = sorted(name for name in values if not hasattr(model, name))
        if unknown:
            raise InvalidRequestError(f"{model.__name__} has no field {', '.join(unknown)}.")
        with _savepoint(self.session, f"This {model.__gid_type__} conflicts with an existing one."):
            for name, value in values.items():
                setattr(record, name, value)
        return record

    @overload
    def delete(self, target: M, /) -> None: ...
    @overload
    def delete(self, target: type[M], id: int | str, /) -> None: ...

    def delete(self, target: M | type[M], id: int | str | None = None, /) -> None:
        """Delete a record of this shop (its dependents go with it: a product's variants,
        a cart's lines, a record's metafields). Raises `NotFoundError` for a record of
        another shop."""
        record = self._resolve(target, id)
        # Metafields point at their owner polymorphically (no foreign key), so they are
        # removed here, with those of the dependents the database cascades to.
        owned: dict[MetafieldOwnerType, builtins.list[int]] = {}
        owner_type = _OWNER_TYPES.get(type(record))
        if owner_type is not None:
            owned[owner_type] = [record.id]
        for child_type, child, parent_column in _DEPENDENT_OWNERS.get(type(record), ()):
            owned[child_type] = builtins.list(
                self.session.scalars(
                    sa.select(child.id)
                    .where(
                        child.shop_id == self.shop_id,
                        getattr(child, parent_column) == record.id,
                    )
                    .execution_options(**{SCOPE_OPTION: self.shop_id})
                )
            )
        for kind, ids in owned.items():
            if ids:
                self.session.execute(
                    sa.delete(Metafield)
                    .where(
                        Metafield.shop_id == self.shop_id,
                        Metafield.owner_type == kind,
                        Metafield.owner_id.in_(ids),
                    )
                    .execution_options(**{SCOPE_OPTION: self.shop_id})
                )
        self.session.delete(record)
        self.session.flush()

    # metafields

    def set_metafield(
        self,
        owner: Base,
        namespace: str,
        key: str,
        type: MetafieldType | str,
        value: str,
    ) -> Metafield:
        """Create or replace the metafield `namespace.key` of `owner` (a record of this
        shop, or the shop itself). Raises `InvalidMetafieldError` for a value that does
        not match `type`."""
        owner_type = self._owner_type(owner)
        existing = self.session.scalars(
            self.select(Metafield).where(
                Metafield.owner_type == owner_type,
                Metafield.owner_id == owner.id,
                Metafield.namespace == namespace,
                Metafield.key == key,
            )
        ).one_or_none()
        if existing is not None:
            return self.update(existing, type=_metafield_type(type), value=value)
        return self.create(
            Metafield,
            owner_type=owner_type,
            owner_id=owner.id,
            namespace=namespace,
            key=key,
            type=_metafield_type(type),
            value=value,
        )

    def metafields(self, owner: Base) -> builtins.list[Metafield]:
        """The metafields of `owner` (a record of this shop or the shop), by namespace, key."""
        owner_type = self._owner_type(owner)
        return self.list(
            Metafield,
            Metafield.owner_type == owner_type,
            Metafield.owner_id == owner.id,
            order_by=(Metafield.namespace, Metafield.key),
        )

    def metafields_of(
        self, owners: Mapping[MetafieldOwnerType, Iterable[int]]
    ) -> dict[tuple[MetafieldOwnerType, int], builtins.list[Metafield]]:
        """The metafields of many owners in one query, keyed by ``(owner_type, owner_id)``."""
        clauses = [
            sa.and_(Metafield.owner_type == owner_type, Metafield.owner_id.in_(sorted(set(ids))))
            for owner_type, ids in owners.items()
            if ids
        ]
        found: dict[tuple[MetafieldOwnerType, int], builtins.list[Metafield]] = {}
        if not clauses:
            return found
        statement = (
            self.select(Metafield)
            .where(sa.or_(*clauses))
            .order_by(Metafield.namespace, Metafield.key, Metafield.id)
        )
        for metafield in self.session.scalars(statement):
            found.setdefault((metafield.owner_type, metafield.owner_id), []).append(metafield)
        return found

    # tokens

    def revoke_token(self, id: int | str) -> ApiToken:
        """Revoke a token of this shop (idempotent). Raises `NotFoundError`."""
        token = self.get(ApiToken, id)
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            self.session.flush()
        return token

    # internals

    def _key(self, model: type[M], id: int | str) -> int | None:
        if isinstance(id, str):
            return decode_gid(id, *model.gid_types())
        if isinstance(id, bool) or not isinstance(id, int):
            raise InvalidRequestError(f"An id must be an integer or a global id, got {id!r}.")
        return id if id > 0 else None

    def _resolve(self, target: M | type[M], id: int | str | None) -> M:
        if isinstance(target, type):
            if id is None:
                raise TypeError("pass the id of the record to change")
            return self.get(target, id)
        if id is not None:
            raise TypeError("pass either a record, or a model and an id")
        if target.shop_id != self.shop_id:
            raise NotFoundError(
                f"No {type(target).__gid_type__} {target.id} in this shop.", id=str(target.id)
            )
        return target

    def _check_references(self, model: type[ShopOwned], rows: Sequence[Mapping[str, Any]]) -> None:
        table = model.__table__
        assert isinstance(table, sa.Table)
        for name in sorted({name for values in rows for name in values}):
            column = table.columns.get(name)
            if column is None:
                continue
            for fk in column.foreign_keys:
                referenced = _model_for_table(fk.column.table)
                if referenced is None:
                    continue
                wanted = {values[name] for values in rows if values.get(name) is not None}
                self._require(referenced, wanted, field=name)

    def _require(self, model: type[ShopOwned], keys: set[Any], *, field: str) -> None:
        """Raise `NotFoundError` naming `field` unless every key is a `model` of this shop."""
        for key in keys:
            if isinstance(key, bool) or not isinstance(key, int):
                raise InvalidRequestError(
                    f"{field}: expected the integer key of a {model.__gid_type__}, got {key!r}.",
                    field=field,
                )
        missing = sorted(keys - set(self.get_many(model, keys)))
        if missing:
            raise NotFoundError(
                f"{field}: no {model.__gid_type__} {missing[0]!r} in this shop.", field=field
            )

    def _owner_type(self, owner: Base) -> MetafieldOwnerType:
        owner_type = _OWNER_TYPES.get(type(owner))
        if owner_type is None:
            raise InvalidRequestError(f"A {type(owner).__name__} cannot own metafields.")
        if isinstance(owner, Shop):
            if owner.id != self.shop_id:
                raise NotFoundError(f"No Shop {owner.id} here.")
        elif isinstance(owner, ShopOwned) and owner.shop_id != self.shop_id:
            raise NotFoundError(f"No {owner.__gid_type__} {owner.id} in this shop.")
        return owner_type

    def _check_metafields(self, rows: Sequence[Mapping[str, Any]]) -> None:
        owners: dict[MetafieldOwnerType, set[Any]] = {}
        for values in rows:
            owner_type = MetafieldOwnerType(values["owner_type"])
            owners.setdefault(owner_type, set()).add(values["owner_id"])
            validate_metafield_value(_metafield_type(values["type"]), values["value"])
        for owner_type, ids in owners.items():
            model = METAFIELD_OWNERS[owner_type]
            if model is Shop:
                if ids != {self.shop_id}:
                    raise NotFoundError("owner: metafields of another shop.", field="owner_id")
                continue
            assert issubclass(model, ShopOwned)
            self._require(model, ids, field="owner_id")


def _metafield_type(value: MetafieldType | str) -> MetafieldType:
    try:
        return MetafieldType(value)
    except ValueError:
        valid = ", ".join(t.value for t in MetafieldType)
        raise InvalidMetafieldError(
            f"Unknown metafield type {value!r}; use one of: {valid}.", field="type"
        ) from None


def validate_metafield_value(type: MetafieldType, value: str) -> None:
    """Check that `value` (the stored string form) is a valid `type` value.

    Raises `InvalidMetafieldError` (INVALID_METAFIELD) saying what a valid value is.
    """
    if not isinstance(value, str):
        raise InvalidMetafieldError(
            f"Metafield values are strings (JSON encoded for json); got {value!r}.",
            field="value",
        )
    if len(value.encode()) > METAFIELD_VALUE_MAX_BYTES:
        raise InvalidMetafieldError(
            f"Metafield value is larger than {METAFIELD_VALUE_MAX_BYTES} bytes.", field="value"
        )
    problem: str | None = None
    if type is MetafieldType.JSON:
        try:
            json.loads(value)
        except ValueError as exc:
            problem = f"is not valid JSON ({exc})"
    elif type is MetafieldType.SINGLE_LINE_TEXT_FIELD:
        if "\n" in value or "\r" in value:
            problem = "contains a line break; use a json metafield for multi-line text"
    elif type is MetafieldType.NUMBER_INTEGER:
        if not _INTEGER.match(value) or abs(int(value)) > _MAX_SAFE_INTEGER:
            problem = f"is not an integer between -{_MAX_SAFE_INTEGER} and {_MAX_SAFE_INTEGER}"
    elif type is MetafieldType.NUMBER_DECIMAL:
        try:
            ok = _DECIMAL.match(value) is not None and Decimal(value).is_finite()
        except InvalidOperation:
            ok = False
        if not ok:
            problem = "is not a decimal number such as '12.50'"
    elif type is MetafieldType.BOOLEAN and value not in ("true", "false"):
        problem = "is not 'true' or 'false'"
    if problem:
        raise InvalidMetafieldError(
            f"Metafield value {value[:80]!r} {problem} (type {type.value}).", field="value"
        )


def _types(record: Base) -> tuple[str, ...]:
    return (parse_gid(record.gid)[0],)


def _model_for_table(table: sa.FromClause) -> type[ShopOwned] | None:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table and issubclass(mapper.class_, ShopOwned):
            return mapper.class_
    return None


@contextmanager
def _savepoint(session: Session, conflict: str) -> Iterator[None]:
    """Make the changes of the block in a savepoint and flush them, so a constraint
    violation becomes `ConflictError` and leaves the caller's transaction usable.

    Changes must be made *inside* the block: entering a savepoint flushes what is
    already pending, outside of it.
    """
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        detail = str(exc.orig).splitlines()[0]
        if _is_check_violation(exc.orig):
            raise InvalidRequestError(
                f"A value is out of range ({detail}); quantities must be positive.",
                detail=detail,
            ) from None
        raise ConflictError(conflict, detail=detail) from None


def _is_check_violation(error: BaseException | None) -> bool:
    """A CHECK constraint failed, by the driver's error code (SQLSTATE 23514 on
    PostgreSQL, SQLITE_CONSTRAINT_CHECK on SQLite)."""
    return (
        getattr(error, "sqlstate", None) == "23514"
        or getattr(error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_CHECK"
    )


# --- statements built once -------------------------------------------------------------------


def shop_statement(statement: _E) -> _E:
    """Mark `statement` (built once, at import time) as filtered to one shop: each
    shop-owned table it reads is filtered on ``shop_id == SHOP_ID`` by its author (in the
    WHERE clause, or in the ON clause of a join). Checks that `SHOP_ID` occurs and
    returns `statement`, ready for `ShopScope.execute`."""
    if not _binds_shop_id(statement):
        raise UnscopedQueryError(
            "A shop statement must filter on tenancy.SHOP_ID (``Model.shop_id == SHOP_ID``)."
        )
    _SHOP_STATEMENTS[id(statement)] = statement
    return statement


_SHOP_STATEMENTS: dict[int, sa.Executable] = {}
"""Statements `shop_statement` checked, by identity (they live as long as the process)."""


def _binds_shop_id(statement: sa.Executable) -> bool:
    if not isinstance(statement, sa.ClauseElement):
        return False
    return any(
        isinstance(element, sa.BindParameter) and element.key == SHOP_ID_PARAM
        for element in visitors.iterate(statement)
    )


def _check_shop_statement(statement: sa.Executable) -> None:
    if _SHOP_STATEMENTS.get(id(statement)) is not statement:
        raise UnscopedQueryError(
            "ShopScope.execute runs statements built once with tenancy.shop_statement; "
            "build per-call statements with ShopScope.select or ShopScope.select_columns."
        )


# --- the guard ------------------------------------------------------------------------------


def guard_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Make sessions of `factory` refuse ORM queries on shop-owned models that bypass
    `ShopScope` (raising `UnscopedQueryError`). Returns `factory`."""
    event.listen(factory, "do_orm_execute", _refuse_unscoped)
    return factory


def _refuse_unscoped(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_relationship_load or state.is_column_load:
        # Loads reached from a record already fetched through a scope.
        return
    options = state.execution_options
    if options.get(SCOPE_OPTION) is not None or options.get(UNSCOPED_OPTION):
        return
    owned = [m.class_.__name__ for m in state.all_mappers if issubclass(m.class_, ShopOwned)]
    if owned:
        raise UnscopedQueryError(
            f"Query on {', '.join(owned)} without a shop scope: go through "
            "`ShopScope(session, shop_id)` (or pass execution_options(**UNSCOPED) in an "
            "operator job that spans shops on purpose)."
        )
