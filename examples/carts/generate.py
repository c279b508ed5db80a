"""Generate the cart snapshot fixtures `small.json` and `large.json`.

Deterministic: the same script always writes the same bytes (a seeded RNG, a fixed
shop clock), so the fixtures can be regenerated and diffed. Run from the repository
root:

    .venv/bin/python examples/carts/generate.py

The snapshots follow `functions_sdk/snapshot.py` (format version 1).
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
CURRENCY = "USD"

COLLECTIONS = {
    1: "Summer sale",
    2: "Outerwear",
    3: "Footwear",
    4: "Home & kitchen",
    5: "Gift ideas",
    6: "New arrivals",
    7: "Clearance",
    8: "Accessories",
}

# (product type, vendor, collection ids, name stems, price range, tags)
CATALOG: list[tuple[str, str, list[int], list[str], tuple[int, int], list[str]]] = [
    (
        "Jacket",
        "Northwind Outfitters",
        [2, 6],
        ["Alpine Shell Jacket", "Storm Parka", "Trail Softshell", "Quilted Liner"],
        (89, 349),
        ["outerwear", "waterproof", "winter"],
    ),
    (
        "Shoes",
        "Cobble & Co",
        [3],
        ["Trail Runner", "Canvas Sneaker", "Leather Chelsea Boot", "Merino Slipper"],
        (45, 220),
        ["footwear", "running", "leather"],
    ),
    (
        "T-Shirt",
        "Basics Lab",
        [1, 6],
        ["Organic Crew Tee", "Pocket Tee", "Long Sleeve Henley", "Graphic Tee"],
        (18, 45),
        ["cotton", "organic", "summer"],
    ),
    (
        "Mug",
        "Kiln House",
        [4, 5],
        ["Stoneware Mug", "Espresso Cup Set", "Travel Tumbler", "Pour-Over Kettle"],
        (12, 95),
        ["kitchen", "ceramic", "gift"],
    ),
    (
        "Bag",
        "Field Goods",
        [8, 5],
        ["Waxed Tote", "Roll-Top Backpack", "Sling Bag", "Weekender Duffel"],
        (35, 260),
        ["accessories", "canvas", "travel"],
    ),
    (
        "Candle",
        "Ember & Wick",
        [4, 5, 7],
        ["Cedar Candle", "Fig Candle", "Sea Salt Candle", "Amber Candle"],
        (16, 48),
        ["home", "gift", "clearance"],
    ),
]
SIZES = ["XS", "S", "M", "L", "XL"]
COLORS = ["Black", "Navy", "Olive", "Sand", "Rust", "Stone"]


def _gid(kind: str, n: int) -> str:
    return f"gid://cartwheel/{kind}/{n}"


def _money(amount: Decimal) -> dict[str, str]:
    return {"amount": str(amount.quantize(Decimal("0.01"))), "currencyCode": CURRENCY}


def _metafield(namespace: str, key: str, type_: str, value: str) -> dict[str, str]:
    return {"namespace": namespace, "key": key, "type": type_, "value": value}


def _line(rng: random.Random, n: int) -> tuple[dict[str, Any], Decimal]:
    ptype, vendor, collections, stems, (lo, hi), tags = CATALOG[rng.randrange(len(CATALOG))]
    stem = rng.choice(stems)
    product_n = 1000 + CATALOG.index(next(c for c in CATALOG if c[0] == ptype)) * 10
    product_n += stems.index(stem)
    size, color = rng.choice(SIZES), rng.choice(COLORS)
    # Facts of the product come from a per-product RNG, so that a product that appears
    # on several lines has the same price, tags and metafields on each.
    prng = random.Random(product_n)
    price = Decimal(prng.randrange(lo * 100, hi * 100)) / 100
    on_sale = prng.random() < 0.3
    product_tags = sorted(prng.sample(tags, prng.randint(1, len(tags))))
    if on_sale:
        product_tags.append("sale")
    product_metafields = [
        _metafield("custom", "care", "multi_line_text_field", "Machine wash cold.\nLine dry."),
    ]
    if prng.random() < 0.4:
        bundle = {"components": prng.randint(2, 4), "sku": f"BND-{product_n}"}
        product_metafields.append(
            _metafield("custom", "bundle", "json", orjson.dumps(bundle).decode())
        )
    materials = ["wool", "cotton", "nylon", "stoneware"]
    variant_metafields = []
    if prng.random() < 0.5:
        material = materials[(SIZES.index(size) + COLORS.index(color)) % len(materials)]
        variant_metafields.append(
            _metafield("custom", "material", "single_line_text_field", material)
        )
    quantity = rng.choice([1, 1, 1, 2, 2, 3, 5])
    subtotal = price * quantity
    compare_at = _money(price * Decimal("1.25")) if on_sale else None
    discounted = subtotal * Decimal("0.9") if rng.random() < 0.1 else subtotal
    attributes = []
    if rng.random() < 0.2:
        attributes.append(
            {"key": "gift_message", "value": rng.choice(["Happy birthday!", "Congrats", None])}
        )
    line = {
        "id": _gid("CartLine", n),
        "quantity": quantity,
        "attributes": attributes,
        "cost": {
            "amountPerQuantity": _money(price),
            "compareAtAmountPerQuantity": compare_at,
            "subtotalAmount": _money(subtotal),
            "totalAmount": _money(discounted),
        },
        "merchandise": {
            "__typename": "ProductVariant",
            "id": _gid(
                "ProductVariant", product_n * 100 + SIZES.index(size) * 10 + COLORS.index(color)
            ),
            "sku": f"{ptype[:3].upper()}-{product_n}-{size}-{color[:3].upper()}"
            if rng.random() < 0.9
            else None,
            "title": f"{size} / {color}",
            "requiresShipping": ptype != "Candle" or rng.random() < 0.8,
            "metafields": variant_metafields,
            "product": {
                "id": _gid("Product", product_n),
                "handle": stem.lower().replace(" ", "-").replace("&", "and"),
                "title": stem,
                "vendor": vendor,
                "productType": ptype,
                "isGiftCard": False,
                "tags": product_tags,
                "collectionIds": [_gid("Collection", c) for c in collections],
                "metafields": product_metafields,
            },
        },
    }
    return line, discounted


def _delivery_groups(rng: random.Random, groups: int) -> list[dict[str, Any]]:
    out = []
    for g in range(1, groups + 1):
        options = [
            {
                "handle": f"standard-{g}",
                "title": "Standard (5-7 days)",
                "cost": _money(Decimal("6.95")),
                "deliveryMethodType": "SHIPPING",
            },
            {
                "handle": f"express-{g}",
                "title": "Express (1-2 days)",
                "cost": _money(Decimal("19.50")),
                "deliveryMethodType": "SHIPPING",
            },
            {
                "handle": f"pickup-{g}",
                "title": "Pick up in store",
                "cost": _money(Decimal("0")),
                "deliveryMethodType": "PICK_UP",
            },
        ]
        if rng.random() < 0.5:
            options.append(
                {
                    "handle": f"local-{g}",
                    "title": None,
                    "cost": _money(Decimal("4.00")),
                    "deliveryMethodType": "LOCAL",
                }
            )
        out.append(
            {
                "id": _gid("CartDeliveryGroup", g),
                "deliveryAddress": {
                    "countryCode": "CA",
                    "provinceCode": "ON",
                    "city": "Toronto",
                    "zip": "M5V 2T6",
                },
                "selectedDeliveryOption": {"handle": f"standard-{g}"} if g == 1 else None,
                "deliveryOptions": options,
            }
        )
    return out


def build(lines: int, seed: int, *, groups: int) -> dict[str, Any]:
    """A snapshot with `lines` cart lines, reproducible from `seed`."""
    rng = random.Random(seed)
    cart_lines = []
    total = Decimal(0)
    for n in range(1, lines + 1):
        line, amount = _line(rng, n)
        cart_lines.append(line)
        total += amount
    subtotal = sum(
        (Decimal(line["cost"]["subtotalAmount"]["amount"]) for line in cart_lines), Decimal(0)
    )
    tax = (total * Decimal("0.13")).quantize(Decimal("0.01"))
    return {
        "version": 1,
        "shop": {
            "id": _gid("Shop", 1),
            "currencyCode": CURRENCY,
            "localTime": "2026-11-21T10:30:00",
            "metafields": [
                _metafield(
                    "cartwheel",
                    "loyalty",
                    "json",
                    '{"tiers":["silver","gold"],"pointsPerDollar":2}',
                ),
            ],
        },
        "localization": {"country": "CA", "language": "EN"},
        "presentmentCurrencyRate": "1.0",
        "cart": {
            "id": _gid("Cart", seed),
            "attributes": [
                {"key": "channel", "value": "online"},
                {"key": "referral", "value": None},
            ],
            "buyerIdentity": {
                "email": "ada@example.com",
                "phone": "+14165550123",
                "isAuthenticated": True,
                "customer": {
                    "id": _gid("Customer", 42),
                    "email": "ada@example.com",
                    "displayName": "Ada Lovelace",
                    "numberOfOrders": 12,
                    "amountSpent": _money(Decimal("1840.55")),
                    "tags": ["vip", "newsletter", "wholesale-eligible"],
                    "metafields": [
                        _metafield("custom", "tier", "single_line_text_field", "gold"),
                        _metafield("custom", "birthday", "date", "1815-12-10"),
                        _metafield("custom", "points", "number_integer", "3120"),
                    ],
                },
            },
            "lines": cart_lines,
            "cost": {
                "subtotalAmount": _money(subtotal),
                "totalAmount": _money(total + tax),
                "totalTaxAmount": _money(tax),
            },
            "deliveryGroups": _delivery_groups(rng, groups),
        },
        "paymentMethods": [
            {"id": _gid("PaymentCustomizationPaymentMethod", 1), "name": "Credit card"},
            {"id": _gid("PaymentCustomizationPaymentMethod", 2), "name": "PayPal"},
            {"id": _gid("PaymentCustomizationPaymentMethod", 3), "name": "Cash on Delivery (COD)"},
            {"id": _gid("PaymentCustomizationPaymentMethod", 4), "name": "Gift card"},
        ],
        "enteredDiscountCodes": [{"code": "WELCOME10", "rejectable": True}],
        "triggeringDiscountCode": None,
    }


def main() -> None:
    for name, lines, seed, groups in (("small", 3, 7, 1), ("large", 200, 2026, 2)):
        snapshot = build(lines, seed, groups=groups)
        (HERE / f"{name}.json").write_bytes(
            orjson.dumps(snapshot, option=orjson.OPT_INDENT_2) + b"\n"
        )


if __name__ == "__main__":
    main()
