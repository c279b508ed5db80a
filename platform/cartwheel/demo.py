"""The demo shop: a small, realistic store to try Cartwheel against.

`seed_demo` creates it once (products with tags and variants, collections, customers
including a VIP, delivery options, payment methods, a cart) and returns the same ids on
every later call. `install_demo_functions` deploys and activates the example functions
(examples/) in it through the server's deploy pipeline and backs them with instances: the
Rust tiered VIP discount as an automatic discount, the C delivery customization.
`issue_demo_tokens` hands out fresh tokens for it. The builders (`create_product`,
`create_cart`) are also what tests and benchmarks use to make carts of any size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cartwheel.deploy import Deployer, DeployRequest, activate_version
from cartwheel.errors import NotFoundError, PlatformError
from cartwheel.models import (
    ApiToken,
    Cart,
    CartLine,
    Collection,
    CollectionMembership,
    Customer,
    DeliveryMethodType,
    DeliveryOption,
    Function,
    FunctionInstance,
    FunctionVersion,
    InstanceKind,
    MetafieldType,
    PaymentMethod,
    Product,
    ProductVariant,
    TokenScope,
    VersionStatus,
)
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, create_shop, issue_token, shop_by_handle
from functions_sdk.project import load_project

DEMO_SHOP_HANDLE = "demo"
"""Handle of the shop `cartwheel demo` seeds."""

DEMO_TOKEN_NAME_PREFIX = "demo "
"""Names of the tokens `issue_demo_tokens` creates (older ones are revoked)."""

VIP_EMAIL = "ada@example.com"


@dataclass(frozen=True, slots=True)
class DemoShop:
    """Keys of the seeded demo records."""

    shop_id: int
    cart_id: int
    vip_customer_id: int
    customer_ids: tuple[int, ...]
    product_ids: tuple[int, ...]
    collection_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _ProductSpec:
    handle: str
    title: str
    vendor: str
    product_type: str
    tags: tuple[str, ...]
    collections: tuple[str, ...]
    variants: tuple[tuple[str, str, str, str | None], ...]
    """(title, sku, price, compare-at price)"""
    requires_shipping: bool = True
    is_gift_card: bool = False


_COLLECTIONS = (
    ("summer", "Summer Collection"),
    ("sale", "Sale"),
    ("accessories", "Accessories"),
    ("new-arrivals", "New Arrivals"),
)

_PRODUCTS = (
    _ProductSpec(
        "pocket-tee",
        "Pocket Tee",
        "Basics Lab",
        "T-Shirt",
        ("cotton", "organic", "summer"),
        ("summer", "new-arrivals"),
        (
            ("S / Stone", "TEE-S-STO", "39.75", None),
            ("M / Stone", "TEE-M-STO", "39.75", None),
            ("L / Navy", "TEE-L-NAV", "39.75", None),
        ),
    ),
    _ProductSpec(
        "linen-shirt",
        "Linen Shirt",
        "Atelier Nord",
        "Shirt",
        ("linen", "summer"),
        ("summer", "sale"),
        (
            ("M / Sand", "LIN-M-SAN", "89.00", "120.00"),
            ("L / Sand", "LIN-L-SAN", "89.00", "120.00"),
        ),
    ),
    _ProductSpec(
        "trail-runner",
        "Trail Runner",
        "Northpeak",
        "Shoes",
        ("running", "outdoor"),
        ("new-arrivals",),
        (("42", "TRL-42", "149.00", None), ("43", "TRL-43", "149.00", None)),
    ),
    _ProductSpec(
        "canvas-tote",
        "Canvas Tote",
        "Basics Lab",
        "Bag",
        ("cotton", "accessories"),
        ("accessories",),
        (("Natural", "TOTE-NAT", "24.00", None),),
    ),
    _ProductSpec(
        "wool-beanie",
        "Wool Beanie",
        "Northpeak",
        "Hat",
        ("wool", "winter", "accessories"),
        ("accessories", "sale"),
        (("Charcoal", "BEANIE-CHA", "18.50", "25.00"),),
    ),
    _ProductSpec(
        "espresso-beans",
        "Espresso Beans 1 kg",
        "Roastery 17",
        "Coffee",
        ("coffee", "consumable"),
        (),
        (("Whole bean", "ESP-1KG", "32.00", None),),
    ),
    _ProductSpec(
        "gift-card",
        "Gift Card",
        "Cartwheel Demo Store",
        "Gift Card",
        ("gift",),
        (),
        (("$50", "GIFT-50", "50.00", None), ("$100", "GIFT-100", "100.00", None)),
        requires_shipping=False,
        is_gift_card=True,
    ),
)

_CUSTOMERS = (
    # email, first, last, phone, tags, orders, spent
    (VIP_EMAIL, "Ada", "Lovelace", "+14165550123", ("vip", "newsletter"), 12, "1840.55"),
    ("grace@example.com", "Grace", "Hopper", None, ("newsletter",), 2, "154.20"),
    ("alan@example.com", "Alan", "Turing", None, (), 0, "0"),
)

_DELIVERY_OPTIONS = (
    ("standard", "Standard (5-7 days)", "6.95", DeliveryMethodType.SHIPPING),
    ("express", "Express (1-2 days)", "19.50", DeliveryMethodType.SHIPPING),
    ("local", "Local delivery", "4.00", DeliveryMethodType.LOCAL),
    ("pickup", "Pick up in store", "0.00", DeliveryMethodType.PICK_UP),
)

_PAYMENT_METHODS = ("Credit card", "PayPal", "Cash on Delivery (COD)", "Gift card")


def create_product(
    scope: ShopScope,
    *,
    handle: str,
    title: str,
    variants: Sequence[tuple[str, str, str, str | None]],
    currency_code: str | None = None,
    requires_shipping: bool = True,
    **fields: Any,
) -> Product:
    """A product with `variants` given as ``(title, sku, price, compare-at price)``."""
    currency = currency_code or scope.shop.currency_code
    product = scope.create(Product, handle=handle, title=title, **fields)
    scope.create_many(
        ProductVariant,
        [
            {
                "product_id": product.id,
                "title": v_title,
                "sku": sku,
                "price": Decimal(price),
                "compare_at_price": None if compare_at is None else Decimal(compare_at),
                "currency_code": currency,
                "requires_shipping": requires_shipping,
                "position": position,
            }
            for position, (v_title, sku, price, compare_at) in enumerate(variants)
        ],
    )
    return product


def create_cart(
    scope: ShopScope,
    lines: Sequence[tuple[int, int]],
    *,
    customer: Customer | None = None,
    **fields: Any,
) -> Cart:
    """A cart with `lines` given as ``(variant key, quantity)``, in that order."""
    cart = scope.create(
        Cart,
        currency_code=fields.pop("currency_code", scope.shop.currency_code),
        customer_id=customer.id if customer is not None else None,
        buyer_email=fields.pop("buyer_email", customer.email if customer else None),
        **fields,
    )
    if lines:
        scope.create_many(
            CartLine,
            [
                {
                    "cart_id": cart.id,
                    "variant_id": variant_id,
                    "quantity": quantity,
                    "position": position,
                }
                for position, (variant_id, quantity) in enumerate(lines)
            ],
        )
    return cart


def seed_demo(session: Session, *, handle: str = DEMO_SHOP_HANDLE) -> DemoShop:
    """Create the demo shop `handle` unless it exists; return its records' keys.

    Idempotent: a second call changes nothing and returns the same keys. The caller
    commits.
    """
    try:
        shop = shop_by_handle(session, handle)
    except NotFoundError:
        return _seed(session, handle)
    return _read_back(ShopScope(session, shop.id))


def _seed(session: Session, handle: str) -> DemoShop:
    shop = create_shop(
        session,
        handle=handle,
        name="Cartwheel Demo Store",
        currency_code="USD",
        timezone="America/Toronto",
        country_code="CA",
    )
    scope = ShopScope(session, shop.id)
    scope.set_metafield(
        shop,
        "cartwheel",
        "loyalty",
        MetafieldType.JSON,
        '{"tiers":["silver","gold"],"pointsPerDollar":2}',
    )
    collections = {
        c_handle: scope.create(Collection, handle=c_handle, title=title)
        for c_handle, title in _COLLECTIONS
    }
    products: dict[str, Product] = {}
    for spec in _PRODUCTS:
        product = create_product(
            scope,
            handle=spec.handle,
            title=spec.title,
            vendor=spec.vendor,
            product_type=spec.product_type,
            tags=list(spec.tags),
            is_gift_card=spec.is_gift_card,
            requires_shipping=spec.requires_shipping,
            variants=spec.variants,
        )
        products[spec.handle] = product
        for c_handle in spec.collections:
            scope.create(
                CollectionMembership,
                collection_id=collections[c_handle].id,
                product_id=product.id,
            )
    scope.set_metafield(
        products["pocket-tee"], "custom", "care", MetafieldType.SINGLE_LINE_TEXT_FIELD,
        "Machine wash cold, line dry.",
    )  # fmt: skip
    scope.set_metafield(
        products["espresso-beans"], "custom", "max_per_order", MetafieldType.NUMBER_INTEGER, "5"
    )
    customers = [
        scope.create(
            Customer,
            email=email,
            first_name=first,
            last_name=last,
            phone=phone,
            tags=list(tags),
            number_of_orders=orders,
            amount_spent=Decimal(spent),
            amount_spent_currency=shop.currency_code,
        )
        for email, first, last, phone, tags, orders, spent in _CUSTOMERS
    ]
    vip = customers[0]
    scope.set_metafield(vip, "custom", "tier", MetafieldType.SINGLE_LINE_TEXT_FIELD, "gold")
    scope.set_metafield(vip, "custom", "points", MetafieldType.NUMBER_INTEGER, "3120")
    for position, (o_handle, title, cost, method) in enumerate(_DELIVERY_OPTIONS):
        scope.create(
            DeliveryOption,
            handle=o_handle,
            title=title,
            cost=Decimal(cost),
            currency_code=shop.currency_code,
            delivery_method_type=method,
            position=position,
        )
    for position, name in enumerate(_PAYMENT_METHODS):
        scope.create(PaymentMethod, name=name, position=position)

    def variant(product: str, index: int = 0) -> int:
        return products[product].variants[index].id

    cart = create_cart(
        scope,
        [(variant("pocket-tee", 1), 2), (variant("linen-shirt"), 1), (variant("canvas-tote"), 1)],
        customer=vip,
        attributes=[{"key": "channel", "value": "online"}, {"key": "gift-wrap", "value": "no"}],
        delivery_address={
            "countryCode": "CA",
            "provinceCode": "ON",
            "city": "Toronto",
            "zip": "M5V 2T6",
        },
        selected_delivery_option_handle="standard",
        discount_codes=["WELCOME10"],
    )
    return DemoShop(
        shop_id=shop.id,
        cart_id=cart.id,
        vip_customer_id=vip.id,
        customer_ids=tuple(c.id for c in customers),
        product_ids=tuple(p.id for p in products.values()),
        collection_ids=tuple(c.id for c in collections.values()),
    )


def _read_back(scope: ShopScope) -> DemoShop:
    customers = scope.list(Customer)
    vip = next((c for c in customers if c.email == VIP_EMAIL), None)
    carts = scope.list(Cart, Cart.customer_id == vip.id) if vip is not None else []
    if vip is None or not carts:
        raise NotFoundError(
            f"Shop {scope.shop.handle!r} exists but is not the demo shop; "
            "seed the demo under another handle."
        )
    return DemoShop(
        shop_id=scope.shop_id,
        cart_id=carts[0].id,
        vip_customer_id=vip.id,
        customer_ids=tuple(c.id for c in customers),
        product_ids=tuple(p.id for p in scope.list(Product)),
        collection_ids=tuple(c.id for c in scope.list(Collection)),
    )


def issue_demo_tokens(session: Session, shop_id: int) -> dict[str, str]:
    """Fresh raw tokens for the demo shop: ``{"admin": ..., "deploy": ..., "storefront": ...}``.

    Tokens from earlier calls are revoked, so only the ones just printed work.
    """
    scope = ShopScope(session, shop_id)
    for token in scope.list(ApiToken, ApiToken.revoked_at.is_(None)):
        if token.name.startswith(DEMO_TOKEN_NAME_PREFIX):
            scope.revoke_token(token.id)
    tokens = {}
    for scope_name in TokenScope:
        _, raw = issue_token(
            session, shop_id, [scope_name.value], name=f"{DEMO_TOKEN_NAME_PREFIX}{scope_name.value}"
        )
        tokens[scope_name.value] = raw
    return tokens


# --- the example functions --------------------------------------------------------------

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
"""The repository's examples/ (a source checkout or an editable install)."""

DEMO_DISCOUNT_TITLE = "Tiered VIP discount"
DEMO_DELIVERY_TITLE = "Remote-area delivery"


@dataclass(frozen=True, slots=True)
class DemoFunction:
    """An example function installed in the demo shop."""

    handle: str
    function_id: int
    version_id: int
    instance_id: int
    instance_kind: InstanceKind
    created: bool
    """False when an earlier `install_demo_functions` had installed it already."""


def demo_discount_configuration(scope: ShopScope) -> dict[str, Any]:
    """The demo discount's configuration (its `cartwheel.function-configuration`
    metafield): 10% off from 3 items, 15% from 10, 5 points more for customers tagged
    `vip`, nothing for the Sale collection. The demo cart (2 tees, a sale shirt, a tote,
    VIP buyer) gets 15% off the tees and the tote."""
    sale = scope.scalars(scope.select(Collection).where(Collection.handle == "sale"))
    return {
        "basis": "QUANTITY",
        "tiers": [
            {"minimum": 3, "percentage": "10", "message": "Buy 3+, save 10%"},
            {"minimum": 10, "percentage": "15", "message": "Buy 10+, save 15%"},
        ],
        "vipTags": ["vip"],
        "vipBonusPercentage": "5",
        "excludedCollectionIds": [c.gid for c in sale],
    }


def install_demo_functions(
    settings: Settings,
    factory: sessionmaker[Session],
    shop_id: int,
    *,
    examples_dir: Path = EXAMPLES_DIR,
) -> list[DemoFunction]:
    """Deploy, activate and instantiate the example functions in the demo shop.

    Uses the server's deploy pipeline (`Deployer`) with inline preparation, so the
    versions are ready when this returns, with or without Redis. Idempotent: deploys of
    unchanged examples return their versions, an active version stays active, and an
    instance is created only when the function has none (a merchant's edits to its
    configuration are kept). Commits.

    Raises `NotFoundError` when `examples_dir` has no examples (an install without the
    repository), and `PlatformError` when an example's version fails its preparation.
    """
    discount_dir = examples_dir / "discount-function"
    delivery_dir = examples_dir / "delivery-customization"
    if not (discount_dir / "cartwheel.toml").is_file():
        raise NotFoundError(
            f"No example functions in {examples_dir}: run `cartwheel demo` from a source "
            "checkout, or pass --no-functions."
        )
    with factory() as session:
        discount_config = demo_discount_configuration(ShopScope(session, shop_id))
    delivery_config = json.loads((delivery_dir / "configuration.json").read_text())
    return [
        _install(
            settings,
            factory,
            shop_id,
            discount_dir,
            InstanceKind.DISCOUNT,
            DEMO_DISCOUNT_TITLE,
            discount_config,
            {
                "discount_classes": ["PRODUCT"],
                "discount_codes": [],
                "combines_with_order_discounts": True,
                "combines_with_shipping_discounts": True,
            },
        ),
        _install(
            settings,
            factory,
            shop_id,
            delivery_dir,
            InstanceKind.DELIVERY_CUSTOMIZATION,
            DEMO_DELIVERY_TITLE,
            delivery_config,
            {},
        ),
    ]


def _install(
    settings: Settings,
    factory: sessionmaker[Session],
    shop_id: int,
    project_dir: Path,
    kind: InstanceKind,
    title: str,
    configuration: dict[str, Any],
    instance_values: dict[str, Any],
) -> DemoFunction:
    project = load_project(project_dir)
    variables = project.input_variables
    deployer = Deployer(settings, factory)  # no queue: prepared inline
    with factory() as session:
        outcome = deployer.deploy(
            ShopScope(session, shop_id),
            DeployRequest(
                handle=project.handle,
                title=project.name,
                target=project.target,
                wasm=project.read_wasm(),
                input_query=project.read_input_query(),
                input_variables_namespace=variables.namespace if variables else None,
                input_variables_key=variables.key if variables else None,
            ),
        )
        deployer.schedule(shop_id, outcome.version)
        version_id, function_id = outcome.version.id, outcome.version.function_id
    with factory() as session:
        scope = ShopScope(session, shop_id)
        version = scope.get(FunctionVersion, version_id)
        if version.status is not VersionStatus.READY:
            raise PlatformError(
                f"The example {project.handle} failed its preparation "
                f"({version.error_code}: {version.error_message}); rebuild it (see "
                f"{project_dir / 'README.md'}).",
                code="DEMO_FUNCTION_FAILED",
            )
        function = scope.get(Function, function_id)
        if function.active_version_id != version.id:
            activate_version(scope, function, version)
        existing = scope.list(
            FunctionInstance,
            FunctionInstance.function_id == function_id,
            FunctionInstance.kind == kind,
        )
        if existing:
            instance, created = existing[0], False
        else:
            instance = scope.create(
                FunctionInstance,
                function_id=function_id,
                kind=kind,
                title=title,
                enabled=True,
                **instance_values,
            )
            if variables is not None:
                scope.set_metafield(
                    instance,
                    variables.namespace,
                    variables.key,
                    MetafieldType.JSON,
                    json.dumps(configuration),
                )
            created = True
        session.commit()
        return DemoFunction(
            handle=project.handle,
            function_id=function_id,
            version_id=version_id,
            instance_id=instance.id,
            instance_kind=kind,
            created=created or outcome.created,
        )
