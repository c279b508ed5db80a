"""Snapshot loading: `cartwheel.snapshot.load_snapshot` vs naive per-line lazy loading.

    .venv/bin/python benchmarks/bench_snapshot.py [--runs N] [--pg-url URL] [--no-sqlite]

Both loaders build the same document with `build_snapshot` (checked equal), so the
comparison is only the loading strategy: a fixed number of statements (JOINs and one
``IN`` per relation) against the ORM's lazy loads (one query per line for the variant,
the product, its collections and each metafield owner). Each run starts with an empty
identity map; figures are the median and the best of the timed runs. The database is a
throwaway one on PostgreSQL (the production backend; created and dropped here) and a
temporary SQLite file (the embedded default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from cartwheel.db import make_engine, session_factory, upgrade
from cartwheel.demo import create_cart
from cartwheel.ids import encode_gid
from cartwheel.models import (
    Cart,
    Collection,
    CollectionMembership,
    Customer,
    DeliveryOption,
    Metafield,
    MetafieldOwnerType,
    MetafieldType,
    PaymentMethod,
    Product,
    ProductVariant,
)
from cartwheel.settings import Settings
from cartwheel.snapshot import (
    CartFacts,
    CartRecord,
    CustomerFacts,
    DeliveryOptionFacts,
    LineFacts,
    PaymentMethodFacts,
    ShopFacts,
    build_snapshot,
    load_cart_facts,
)
from cartwheel.tenancy import ShopScope, create_shop
from functions_sdk import snapshot

SIZES = (20, 200)
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
"""Fixed evaluation time, so both loaders build byte-identical documents."""


def naive_cart_facts(scope: ShopScope, cart_id: int) -> CartFacts:
    """The baseline: what straightforward ORM code does, walking relationships lazily."""
    cart = scope.get(Cart, cart_id)
    lines = list(cart.lines)  # one query
    collections: dict[int, list[str]] = {}
    metafields: dict[tuple[MetafieldOwnerType, int], list[snapshot.Metafield]] = {}

    def of(owner: Any) -> list[snapshot.Metafield]:
        return [
            {"namespace": m.namespace, "key": m.key, "type": m.type.value, "value": m.value}
            for m in scope.metafields(owner)
        ]

    shop = scope.shop
    metafields[(MetafieldOwnerType.SHOP, shop.id)] = of(shop)
    for line in lines:
        variant = line.variant  # one query per line
        product = variant.product  # one query per line
        collections[product.id] = [
            encode_gid("Collection", m.collection_id)
            for m in scope.list(
                CollectionMembership,
                CollectionMembership.product_id == product.id,
                order_by=(CollectionMembership.collection_id,),
            )
        ]
        metafields[(MetafieldOwnerType.PRODUCT, product.id)] = of(product)
        metafields[(MetafieldOwnerType.PRODUCT_VARIANT, variant.id)] = of(variant)
    if cart.customer is not None:
        metafields[(MetafieldOwnerType.CUSTOMER, cart.customer.id)] = of(cart.customer)
    return CartFacts(
        shop=ShopFacts.of(shop),
        cart=CartRecord.of(cart),
        customer=CustomerFacts.of(cart.customer) if cart.customer is not None else None,
        lines=[LineFacts.of(line) for line in lines],
        collection_ids=collections,
        metafields={key: value for key, value in metafields.items() if value},
        delivery_options=[
            DeliveryOptionFacts.of(option)
            for option in scope.list(
                DeliveryOption,
                DeliveryOption.active.is_(True),
                order_by=(DeliveryOption.position, DeliveryOption.id),
            )
        ],
        payment_methods=[
            PaymentMethodFacts.of(method)
            for method in scope.list(
                PaymentMethod,
                PaymentMethod.active.is_(True),
                order_by=(PaymentMethod.position, PaymentMethod.id),
            )
        ],
    )


def seed(session: Session) -> tuple[int, dict[int, int]]:
    """A shop with 200 products (a variant, a collection, metafields each) and one cart per
    size; returns the shop key and the cart key per size."""
    shop = create_shop(session, handle="bench", name="Bench", timezone="Europe/Paris")
    scope = ShopScope(session, shop.id)
    scope.set_metafield(shop, "cartwheel", "config", MetafieldType.JSON, '{"x": 1}')
    collections = scope.create_many(
        Collection, [{"handle": f"c{i}", "title": f"C{i}"} for i in range(5)]
    )
    products = scope.create_many(
        Product,
        [
            {"handle": f"p{i}", "title": f"Product {i}", "vendor": "V", "tags": ["a", f"t{i % 7}"]}
            for i in range(max(SIZES))
        ],
    )
    variants = scope.create_many(
        ProductVariant,
        [
            {
                "product_id": p.id,
                "title": "Default",
                "sku": f"SKU-{i}",
                "price": Decimal(f"{10 + i}.50"),
                "currency_code": "USD",
            }
            for i, p in enumerate(products)
        ],
    )
    scope.create_many(
        CollectionMembership,
        [
            {"collection_id": collections[i % 5].id, "product_id": p.id}
            for i, p in enumerate(products)
        ],
    )
    field = {"namespace": "custom", "key": "n", "type": MetafieldType.NUMBER_INTEGER}
    scope.create_many(
        Metafield,
        [
            {**field, "owner_type": MetafieldOwnerType.PRODUCT, "owner_id": p.id, "value": "1"}
            for p in products
        ]
        + [
            {
                **field,
                "owner_type": MetafieldOwnerType.PRODUCT_VARIANT,
                "owner_id": v.id,
                "value": "2",
            }
            for v in variants
        ],
    )
    customer = scope.create(
        Customer, email="vip@example.com", tags=["vip"], amount_spent_currency="USD"
    )
    scope.create(
        DeliveryOption, handle="standard", title="Standard", cost=Decimal(5), currency_code="USD"
    )
    scope.create(PaymentMethod, name="Card")
    carts = {
        size: create_cart(scope, [(v.id, 1) for v in variants[:size]], customer=customer).id
        for size in SIZES
    }
    return shop.id, carts


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[int]]:
    count = [0]

    def record(*_: Any) -> None:
        count[0] += 1

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", record)


def measure(
    engine: sa.Engine,
    shop_id: int,
    cart_id: int,
    loader: Callable[[ShopScope, int], CartFacts],
    runs: int,
) -> tuple[float, float, int, Any]:
    """Median and best milliseconds, and statements, per load (fresh session each run)."""
    factory = session_factory(engine)
    timings = []
    statements = 0
    document: Any = None
    for _ in range(runs):
        with factory() as session, session.begin(), counting(engine) as count:
            start = time.perf_counter()
            document = build_snapshot(loader(ShopScope(session, shop_id), cart_id), now=NOW)
            timings.append((time.perf_counter() - start) * 1000)
            statements = count[0]
    return statistics.median(timings), min(timings), statements, document


def bench(label: str, url: str, runs: int) -> None:
    upgrade(url)
    engine = make_engine(Settings(database_url=url))
    try:
        with session_factory(engine)() as session, session.begin():
            shop_id, carts = seed(session)
        with engine.connect() as conn:
            # planner statistics, as a live database has (a freshly seeded one has none
            # until autovacuum's first pass; see bench_checkout.py)
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        for size in SIZES:
            # warm up both paths (statement caches, connections)
            measure(engine, shop_id, carts[size], load_cart_facts, 2)
            measure(engine, shop_id, carts[size], naive_cart_facts, 2)
            fast_ms, fast_min, fast_n, fast_doc = measure(
                engine, shop_id, carts[size], load_cart_facts, runs
            )
            slow_ms, slow_min, slow_n, slow_doc = measure(
                engine, shop_id, carts[size], naive_cart_facts, runs
            )
            assert fast_doc == slow_doc, "both loaders must build the same snapshot"
            print(
                f"{label:<10} {size:>3} lines | load_snapshot {fast_ms:6.1f} ms "
                f"(best {fast_min:5.1f}, {fast_n} stmts) | naive lazy {slow_ms:7.1f} ms "
                f"(best {slow_min:6.1f}, {slow_n:>4} stmts) | x{slow_ms / fast_ms:.1f}"
            )
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="timed runs per case (median)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL, help="PostgreSQL admin URL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    args = parser.parse_args()

    admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    name = f"cw_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        bench("postgresql", args.pg_url.rsplit("/", 1)[0] + f"/{name}", args.runs)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
