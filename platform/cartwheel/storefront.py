"""The storefront API: carts and checkout evaluation, REST/JSON under `/storefront`.

Authenticated with a bearer token carrying the `storefront` (or `admin`) scope; every
record is read and written through the token's shop scope. Routes (docs/CHECKOUT.md has
the request and response bodies):

    POST   /storefront/carts                              create a cart (201)
    GET    /storefront/carts/{cart}                       read it
    POST   /storefront/carts/{cart}/lines                 add lines
    PATCH  /storefront/carts/{cart}/lines/{line}          change a quantity (0 removes)
    DELETE /storefront/carts/{cart}/lines/{line}          remove a line
    PUT    /storefront/carts/{cart}/buyer-identity        email, phone, customer
    PUT    /storefront/carts/{cart}/delivery-address      address of the delivery group
    PUT    /storefront/carts/{cart}/selected-delivery-option
    PUT    /storefront/carts/{cart}/discount-codes        replace the entered codes
    POST   /storefront/carts/{cart}/checkout[?debug=1]    evaluate the checkout

`{cart}` and `{line}` are numeric keys: the last segment of the global ids the API
returns (``gid://cartwheel/Cart/42`` → ``/storefront/carts/42``). Errors are
``{"error": {"code", "message", ...}}`` with the error's HTTP status (the app's
handler). Per-function diagnostics (`?debug=1`) are returned only to admin tokens or
when the server runs with `CARTWHEEL_DEBUG`: function logs are the merchant's, not the
buyer's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
import orjson
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from cartwheel.apply import PricedCheckout
from cartwheel.checkout import CheckoutPipeline, CheckoutResult
from cartwheel.db import autocommit_session_factory, retry_on_dropped_connection
from cartwheel.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from cartwheel.models import Cart, CartLine, Customer, DeliveryOption, ProductVariant, TokenScope
from cartwheel.money import format_amount
from cartwheel.runlog import RunLogWriter
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, TokenContext, authenticate
from functions_sdk.runner import ModuleCache

PREFIX = "/storefront"
"""Where the storefront API is mounted."""

MAX_CART_LINES = 500
"""Lines per cart (Shopify's limit)."""

MAX_LINE_QUANTITY = 10_000
"""Units per cart line."""

MAX_DISCOUNT_CODES = 20
"""Discount codes a buyer may enter on one cart."""

_ADDRESS_FIELDS = ("countryCode", "provinceCode", "city", "zip")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Storefront:
    """The storefront routes and the checkout pipeline behind them.

    Built with the app (`create_app`), started by its lifespan (`start`) with the app's
    engine and session factory, closed at shutdown (`close` flushes the run logs).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._factory: sessionmaker[Session] | None = None
        self._read_factory: sessionmaker[Session] | None = None
        self._pipeline: CheckoutPipeline | None = None
        self._threads: anyio.CapacityLimiter | None = None

    def start(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        """Create the checkout pipeline (module cache, run-log writer)."""
        assert self.settings.module_cache_dir is not None  # Settings fills it
        self._factory = factory
        self._read_factory = autocommit_session_factory(engine)
        # Created here, in the event loop that will use it.
        self._threads = anyio.CapacityLimiter(self.settings.storefront_threads)
        self._pipeline = CheckoutPipeline(
            module_cache=ModuleCache(self.settings.module_cache_dir),
            run_log=RunLogWriter.from_settings(self.settings, engine),
        )

    def close(self) -> None:
        """Stop the pipeline and flush every run log still in memory."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    @property
    def pipeline(self) -> CheckoutPipeline:
        """The running pipeline. Raises `RuntimeError` before `start`."""
        if self._pipeline is None:
            raise RuntimeError("Storefront.start() was not called (the app lifespan does it).")
        return self._pipeline

    def mount(self) -> Mount:
        """The `/storefront` mount for the app's routes."""
        return Mount(PREFIX, routes=self.routes())

    def routes(self) -> list[Route]:
        """The storefront routes, relative to `PREFIX`."""
        return [
            Route("/carts", self._endpoint(self._create_cart), methods=["POST"]),
            Route(
                "/carts/{cart}", self._endpoint(self._get_cart, reads_only=True), methods=["GET"]
            ),
            Route("/carts/{cart}/lines", self._endpoint(self._add_lines), methods=["POST"]),
            Route(
                "/carts/{cart}/lines/{line}",
                self._endpoint(self._update_line),
                methods=["PATCH"],
            ),
            Route(
                "/carts/{cart}/lines/{line}",
                self._endpoint(self._remove_line),
                methods=["DELETE"],
            ),
            Route(
                "/carts/{cart}/buyer-identity",
                self._endpoint(self._buyer_identity),
                methods=["PUT"],
            ),
            Route(
                "/carts/{cart}/delivery-address",
                self._endpoint(self._delivery_address),
                methods=["PUT"],
            ),
            Route(
                "/carts/{cart}/selected-delivery-option",
                self._endpoint(self._select_delivery_option),
                methods=["PUT"],
            ),
            Route(
                "/carts/{cart}/discount-codes",
                self._endpoint(self._discount_codes),
                methods=["PUT"],
            ),
            Route(
                "/carts/{cart}/checkout",
                self._endpoint(self._checkout, reads_only=True),
                methods=["POST"],
            ),
        ]

    # -- plumbing ----------------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[_Call], tuple[int, Any]], *, reads_only: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint running `handler` in a worker thread, in a session of its own:
        a transaction, or for `reads_only` handlers (checkout evaluation, reading a
        cart) autocommitted statements (`cartwheel.db.autocommit_session_factory`)."""

        async def endpoint(request: Request) -> Response:
            body: Any = None
            if request.method in {"POST", "PUT", "PATCH"}:
                raw = await request.body()
                if raw:
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise InvalidRequestError(
                            "The request body is not valid JSON; send a JSON object."
                        ) from None
            token = _bearer(request)
            call = _Call(request.path_params, dict(request.query_params), body, token)
            # At most `storefront_threads` at once (see Settings): the rest queue here.
            status, payload = await anyio.to_thread.run_sync(
                self._in_session, handler, call, reads_only, limiter=self._threads
            )
            return Response(
                orjson.dumps(payload), status_code=status, media_type="application/json"
            )

        return endpoint

    def _in_session(
        self, handler: Callable[[_Call], tuple[int, Any]], call: _Call, reads_only: bool
    ) -> tuple[int, Any]:
        # A dead pooled connection (a database restart) fails the first statement, the
        # token lookup: the request then runs again once on a fresh connection.
        return retry_on_dropped_connection(
            lambda: self._in_session_once(handler, call, reads_only),
            first_statement=lambda: call.context is None,
        )

    def _in_session_once(
        self, handler: Callable[[_Call], tuple[int, Any]], call: _Call, reads_only: bool
    ) -> tuple[int, Any]:
        factory = self._read_factory if reads_only else self._factory
        if factory is None:
            raise RuntimeError("Storefront.start() was not called (the app lifespan does it).")
        with factory() as session, session.begin():
            context = authenticate(session, call.token)
            if not (
                context.has_scope(TokenScope.STOREFRONT.value)
                or context.has_scope(TokenScope.ADMIN.value)
            ):
                raise PermissionDeniedError(
                    "This token lacks the `storefront` scope; create a storefront token "
                    "with `cartwheel token create --scope storefront`."
                )
            call.scope = ShopScope(session, context.shop_id)
            call.context = context
            return handler(call)

    # -- carts -------------------------------------------------------------------------

    def _create_cart(self, call: _Call) -> tuple[int, Any]:
        body = _object(call.body)
        scope = call.require_scope()
        cart = scope.create(Cart, currency_code=scope.shop.currency_code)
        _apply_cart_fields(scope, cart, body)
        if "lines" in body:
            _add_lines(scope, cart, body["lines"])
        scope.session.flush()
        return 201, _cart_json(scope, cart)

    def _get_cart(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        return 200, _cart_json(scope, _cart(scope, call))

    def _add_lines(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        _add_lines(scope, cart, _object(call.body).get("lines"))
        return 200, _cart_json(scope, cart)

    def _update_line(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        line = _line(scope, cart, call.path["line"])
        quantity = _quantity(_object(call.body).get("quantity"), allow_zero=True)
        if quantity == 0:
            scope.delete(line)
        else:
            scope.update(line, quantity=quantity)
        return 200, _cart_json(scope, cart)

    def _remove_line(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        scope.delete(_line(scope, cart, call.path["line"]))
        return 200, _cart_json(scope, cart)

    def _buyer_identity(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        _apply_cart_fields(scope, cart, {"buyerIdentity": _object(call.body)})
        return 200, _cart_json(scope, cart)

    def _delivery_address(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        _apply_cart_fields(scope, cart, {"deliveryAddress": call.body})
        return 200, _cart_json(scope, cart)

    def _select_delivery_option(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        handle = _object(call.body).get("handle")
        if handle is not None and (
            not isinstance(handle, str)
            or not scope.count(
                DeliveryOption, DeliveryOption.handle == handle, DeliveryOption.active.is_(True)
            )
        ):
            raise InvalidRequestError(
                f"No active delivery option {handle!r} in this shop; pick one of the "
                "handles the checkout lists.",
                field="handle",
            )
        scope.update(cart, selected_delivery_option_handle=handle)
        return 200, _cart_json(scope, cart)

    def _discount_codes(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        cart = _cart(scope, call)
        _apply_cart_fields(scope, cart, {"discountCodes": _object(call.body).get("discountCodes")})
        return 200, _cart_json(scope, cart)

    # -- checkout ----------------------------------------------------------------------

    def _checkout(self, call: _Call) -> tuple[int, Any]:
        scope = call.require_scope()
        # The snapshot loads the cart (NOT_FOUND when it is not this shop's): no extra read.
        result = self.pipeline.evaluate(scope, _key(str(call.path["cart"])))
        debug = call.query.get("debug", "").lower() in {"1", "true", "yes"}
        allowed = self.settings.debug or (
            call.context is not None and call.context.has_scope(TokenScope.ADMIN.value)
        )
        return 200, checkout_json(result.cart_id, result, diagnostics=debug and allowed)


@dataclass
class _Call:
    """One storefront request, as the handler in the worker thread sees it."""

    path: dict[str, Any]
    query: dict[str, str]
    body: Any
    token: str
    scope: ShopScope | None = None
    context: TokenContext | None = None

    def require_scope(self) -> ShopScope:
        assert self.scope is not None  # set by Storefront._in_session
        return self.scope


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "Send the storefront token as `Authorization: Bearer cwt_...`; create one with "
            "`cartwheel token create --scope storefront`."
        )
    return token.strip()


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def _key(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


def _cart(scope: ShopScope, call: _Call) -> Cart:
    return scope.get(Cart, _key(str(call.path["cart"])))


def _line(scope: ShopScope, cart: Cart, raw: str) -> CartLine:
    line = scope.get(CartLine, _key(raw))
    if line.cart_id != cart.id:
        raise NotFoundError(f"No cart line {raw!r} in this cart.", id=raw, type="CartLine")
    return line


def _quantity(raw: Any, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= MAX_LINE_QUANTITY:
        raise InvalidRequestError(
            f"quantity must be an integer from {low} to {MAX_LINE_QUANTITY}, got {raw!r}.",
            field="quantity",
        )
    return raw


def _add_lines(scope: ShopScope, cart: Cart, raw: Any) -> None:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequestError(
            'lines must be a non-empty list of {"merchandiseId", "quantity"} objects.',
            field="lines",
        )
    existing = scope.list(CartLine, CartLine.cart_id == cart.id, limit=MAX_CART_LINES + 1)
    by_variant = {line.variant_id: line for line in existing if not line.attributes}
    position = max((line.position for line in existing), default=-1) + 1
    added = 0
    for n, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("merchandiseId"), str):
            raise InvalidRequestError(
                f"lines[{n}] needs a merchandiseId (a ProductVariant global id).",
                field=f"lines[{n}].merchandiseId",
            )
        variant = scope.get(ProductVariant, _key(item["merchandiseId"]))
        quantity = _quantity(item.get("quantity", 1))
        attributes = _attributes(item.get("attributes"), f"lines[{n}].attributes")
        same = by_variant.get(variant.id)
        if same is not None and not attributes:
            scope.update(same, quantity=min(same.quantity + quantity, MAX_LINE_QUANTITY))
            continue
        line = scope.create(
            CartLine,
            cart_id=cart.id,
            variant_id=variant.id,
            quantity=quantity,
            position=position,
            attributes=attributes,
        )
        position += 1
        added += 1
        if not attributes:
            by_variant[variant.id] = line
    if len(existing) + added > MAX_CART_LINES:
        raise InvalidRequestError(
            f"A cart holds at most {MAX_CART_LINES} lines; remove some first.", field="lines"
        )


def _attributes(raw: Any, field: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(a, dict)
        and isinstance(a.get("key"), str)
        and (a.get("value") is None or isinstance(a.get("value"), str))
        for a in raw
    ):
        raise InvalidRequestError(
            'attributes must be a list of {"key": string, "value": string | null}.', field=field
        )
    return [{"key": a["key"], "value": a.get("value")} for a in raw]


def _apply_cart_fields(scope: ShopScope, cart: Cart, body: dict[str, Any]) -> None:
    values: dict[str, Any] = {}
    if "buyerIdentity" in body:
        buyer = _object(body["buyerIdentity"])
        email, phone = buyer.get("email"), buyer.get("phone")
        if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
            raise InvalidRequestError(f"Invalid email {email!r}.", field="buyerIdentity.email")
        if phone is not None and (not isinstance(phone, str) or len(phone) > 32):
            raise InvalidRequestError(
                "phone must be a string of at most 32 characters.", field="buyerIdentity.phone"
            )
        customer_id = None
        if buyer.get("customerId") is not None:
            customer_id = scope.get(Customer, _key(str(buyer["customerId"]))).id
        values.update(buyer_email=email, buyer_phone=phone, customer_id=customer_id)
    if "deliveryAddress" in body:
        address = body["deliveryAddress"]
        if address is not None:
            address = _object(address)
            unknown = set(address) - set(_ADDRESS_FIELDS)
            if unknown or not all(
                address.get(f) is None or isinstance(address.get(f), str) for f in _ADDRESS_FIELDS
            ):
                raise InvalidRequestError(
                    f"deliveryAddress takes string fields {', '.join(_ADDRESS_FIELDS)}.",
                    field="deliveryAddress",
                )
            address = {f: address.get(f) for f in _ADDRESS_FIELDS}
        values["delivery_address"] = address
    if "discountCodes" in body:
        codes = body["discountCodes"]
        if (
            not isinstance(codes, list)
            or len(codes) > MAX_DISCOUNT_CODES
            or not all(isinstance(c, str) and 0 < len(c.strip()) <= 255 for c in codes)
        ):
            raise InvalidRequestError(
                f"discountCodes must be a list of at most {MAX_DISCOUNT_CODES} non-empty strings.",
                field="discountCodes",
            )
        seen: dict[str, str] = {}
        for code in codes:
            seen.setdefault(code.strip().casefold(), code.strip())
        values["discount_codes"] = list(seen.values())
    if "attributes" in body:
        values["attributes"] = _attributes(body["attributes"], "attributes")
    if values:
        scope.update(cart, **values)


def _cart_json(scope: ShopScope, cart: Cart) -> dict[str, Any]:
    lines = scope.list(
        CartLine,
        CartLine.cart_id == cart.id,
        order_by=(CartLine.position, CartLine.id),
        limit=MAX_CART_LINES,
    )
    variants = scope.get_many(ProductVariant, [line.variant_id for line in lines])
    return {
        "id": cart.gid,
        "currencyCode": cart.currency_code,
        "lines": [
            {
                "id": line.gid,
                "merchandiseId": variants[line.variant_id].gid,
                "quantity": line.quantity,
                "attributes": line.attributes,
            }
            for line in lines
        ],
        "buyerIdentity": {
            "email": cart.buyer_email,
            "phone": cart.buyer_phone,
            "customerId": Customer(id=cart.customer_id).gid if cart.customer_id else None,
        },
        "deliveryAddress": cart.delivery_address,
        "selectedDeliveryOptionHandle": cart.selected_delivery_option_handle,
        "discountCodes": list(cart.discount_codes),
        "attributes": cart.attributes,
    }


def checkout_json(
    cart_id: str, result: CheckoutResult, *, diagnostics: bool = False
) -> dict[str, Any]:
    """The storefront's checkout document: every amount a decimal string with exactly
    the currency's decimals."""
    priced: PricedCheckout = result.priced
    currency = priced.currency

    def money(amount: Decimal) -> str:
        return format_amount(amount, currency)

    def allocation(a: Any) -> dict[str, Any]:
        return {
            "discountId": a.instance_id,
            "title": a.title,
            "discountClass": a.discount_class.value,
            "code": a.code,
            "message": a.message,
            "amount": money(a.amount),
        }

    body: dict[str, Any] = {
        "cartId": cart_id,
        "currencyCode": currency,
        "blocked": priced.blocked,
        "errors": [{"message": e.message, "target": e.target} for e in priced.errors],
        "lines": [
            {
                "id": line.id,
                "merchandiseId": line.merchandise_id,
                "title": line.title,
                "quantity": line.quantity,
                "unitPrice": money(line.unit_price),
                "subtotal": money(line.subtotal),
                "discountAllocations": [allocation(a) for a in line.allocations],
                "total": money(line.total),
                "components": list(line.components),
            }
            for line in priced.lines
        ],
        "discounts": [allocation(d) for d in priced.discounts],
        "discountCodes": [
            {"code": c.code, "applicable": c.status == "APPLIED", "status": c.status.value}
            for c in priced.codes
        ],
        "deliveryGroups": [
            {
                "id": group.id,
                "selectedDeliveryOptionHandle": group.selected,
                "deliveryOptions": [
                    {
                        "handle": o.key,
                        "title": o.title,
                        "deliveryMethodType": o.method_type,
                        "cost": money(o.cost),
                        "discount": money(o.discount),
                        "total": money(o.total),
                    }
                    for o in group.options
                ],
            }
            for group in priced.groups
        ],
        "paymentMethods": [{"id": m.key, "name": m.title} for m in priced.payment_methods],
        "totals": {
            "subtotal": money(priced.subtotal),
            "lineDiscounts": money(priced.line_discounts),
            "orderDiscounts": money(priced.order_discounts),
            "shipping": money(priced.shipping),
            "shippingDiscounts": money(priced.shipping_discounts),
            "discounts": money(priced.discount_total),
            "total": money(priced.total),
        },
    }
    if diagnostics:
        body["diagnostics"] = {
            "functions": [
                {
                    "instanceId": d.instance_id,
                    "title": d.title,
                    "target": d.target,
                    "status": d.status,
                    "errorCode": d.error_code,
                    "message": d.message,
                    "operations": d.operations,
                    "durationMs": round(d.duration_ms, 3),
                    "fuelConsumed": d.fuel_consumed,
                    "logs": d.logs,
                    "errors": list(d.errors),
                }
                for d in result.diagnostics
            ],
            "timingsMs": {stage: round(ms, 3) for stage, ms in result.timings.items()},
        }
    return body
