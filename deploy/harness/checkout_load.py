"""Checkout load on the scale-out harness: a seeded shop and a bounded loopback load
generator.

What the load and fault runs (tests/deploy/test_load.py, test_faults.py) and the
benchmark (benchmarks/bench_scaleout.py) drive:

- `seed_checkout_shop` makes a shop the way a merchant would: store data and tokens in
  the database, then the example Rust discount (examples/discount-function) deployed
  through the admin API behind the load balancer (`functionDeploy` → an RQ worker
  prepares it → `functionActivateVersion`) and an automatic discount backed by it.
  Its carts all qualify for the discount, so every checkout runs exactly one function.
- `CheckoutLoad` posts `POST /storefront/carts/{id}/checkout` from a pool of threads,
  each with its own keep-alive `httpx.Client`, for at most `duration_s` seconds and
  `max_requests` requests. Every request becomes a `Sample` (start, latency, status,
  error code), so a test can see when a fault started and stopped hurting.
- `count_run_logs` counts the shop's run logs in PostgreSQL, and how many are distinct
  (a duplicate is a byte-identical copy of a record: same run, stored twice).

Loopback only: every URL is checked.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from scaleout import is_loopback_host

ROOT = Path(__file__).resolve().parents[2]
DISCOUNT_EXAMPLE = ROOT / "examples" / "discount-function"
"""The example Rust tiered discount (committed .wasm)."""

DISCOUNT_TARGET = "cart.lines.discounts.generate.run"
CONFIG_NAMESPACE = "cartwheel"
CONFIG_KEY = "function-configuration"
DISCOUNT_CONFIG: dict[str, Any] = {
    "basis": "QUANTITY",
    "tiers": [
        {"minimum": 3, "percentage": "10", "message": "Buy 3+, save 10%"},
        {"minimum": 10, "percentage": "15", "message": "Buy 10+, save 15%"},
    ],
    "vipTags": ["vip"],
    "vipBonusPercentage": "5",
    "excludedCollectionIds": [],
}
"""The discount's configuration: every seeded cart (≥ 3 items) gets 10 % or 15 % off."""


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host is None or not is_loopback_host(host):
        raise ValueError(f"load runs stay on loopback; got {url!r}")


# --------------------------------------------------------------------------------------
# The shop
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutShop:
    """A seeded shop: its key, tokens, the deployed discount and carts to check out."""

    shop_id: int
    admin_token: str
    storefront_token: str
    function_id: str
    """Global id of the discount function (`gid://cartwheel/Function/N`)."""
    version_id: str
    """Global id of its active version."""
    cart_ids: tuple[int, ...]


def discount_wasm() -> bytes:
    """The example discount's committed module."""
    return (DISCOUNT_EXAMPLE / "discount-function.wasm").read_bytes()


def discount_input_query(variant: str = "") -> str:
    """The example's input query; a non-empty `variant` appends a comment, which makes
    a deploy of otherwise identical content a new version."""
    query = (DISCOUNT_EXAMPLE / "input.graphql").read_text()
    return query + (f"# {variant}\n" if variant else "")


def seed_checkout_shop(
    database_url: str,
    lb_url: str,
    *,
    carts: int = 50,
    lines_per_cart: int = 10,
    ready_timeout_s: float = 60.0,
) -> CheckoutShop:
    """Create a shop with `carts` carts of `lines_per_cart` lines (1-3 units each) and
    the example discount deployed, activated and backing an automatic discount.

    The store data and the tokens are written to the database directly (like
    `cartwheel demo`); the function goes through the admin API at `lb_url`, so an RQ
    worker of the harness prepares the version. Raises `RuntimeError` if the version
    does not become READY.
    """
    from functions_sdk.client import AdminClient

    _require_loopback(lb_url)
    from cartwheel.db import make_engine, session_factory
    from cartwheel.demo import create_cart, create_product
    from cartwheel.models import (
        DeliveryMethodType,
        DeliveryOption,
        PaymentMethod,
        ProductVariant,
    )
    from cartwheel.settings import Settings
    from cartwheel.tenancy import ShopScope, create_shop, issue_token

    engine = make_engine(Settings(database_url=database_url))
    try:
        with session_factory(engine)() as session, session.begin():
            handle = f"load-{uuid.uuid4().hex[:10]}"
            shop = create_shop(session, handle=handle, name="Load test", currency_code="USD")
            session.flush()
            scope = ShopScope(session, shop.id)
            for n in range(max(lines_per_cart, 1)):
                create_product(
                    scope,
                    handle=f"product-{n}",
                    title=f"Product {n}",
                    variants=[("Default", f"SKU-{n}", f"{5 + n % 40}.{n % 100:02d}", None)],
                )
            variant_ids = [v.id for v in scope.list(ProductVariant, order_by=(ProductVariant.id,))]
            scope.create(
                DeliveryOption,
                handle="standard",
                title="Standard",
                cost=Decimal("5.00"),
                currency_code="USD",
                delivery_method_type=DeliveryMethodType.SHIPPING,
            )
            scope.create(PaymentMethod, name="Card")
            cart_ids = tuple(
                create_cart(
                    scope,
                    [(variant_ids[i], 1 + (c + i) % 3) for i in range(lines_per_cart)],
                ).id
                for c in range(carts)
            )
            _, admin = issue_token(session, shop.id, ["admin"], name="load admin")
            _, storefront = issue_token(session, shop.id, ["storefront"], name="load storefront")
            shop_id = shop.id
    finally:
        engine.dispose()

    with AdminClient(lb_url, admin, timeout_s=30) as client:
        deployed = client.deploy(
            handle="tiered-vip-discount",
            title="Tiered VIP discount",
            target=DISCOUNT_TARGET,
            wasm=discount_wasm(),
            input_query=discount_input_query(),
            input_variables=(CONFIG_NAMESPACE, CONFIG_KEY),
        )
        version = client.wait_until_ready(deployed.version.id, timeout_s=ready_timeout_s)
        if version.status != "READY":
            raise RuntimeError(
                f"the example discount did not become READY: {version.error_code} "
                f"{version.error_message}"
            )
        client.activate_version(version.id)
        client.discount_create(
            function_id=deployed.function.id,
            title="Buy 3+, save 10%",
            discount_classes=["PRODUCT"],
            metafields=[
                {
                    "namespace": CONFIG_NAMESPACE,
                    "key": CONFIG_KEY,
                    "type": "JSON",
                    "value": json.dumps(DISCOUNT_CONFIG),
                }
            ],
        )
    return CheckoutShop(
        shop_id=shop_id,
        admin_token=admin,
        storefront_token=storefront,
        function_id=deployed.function.id,
        version_id=version.id,
        cart_ids=cart_ids,
    )


def checkout_diagnostics(lb_url: str, shop: CheckoutShop, cart_id: int) -> dict[str, Any]:
    """One checkout with `?debug=1` and the admin token: the checkout document with its
    per-function diagnostics (which functions ran, with what status)."""
    _require_loopback(lb_url)
    response = httpx.post(
        f"{lb_url}/storefront/carts/{cart_id}/checkout?debug=1",
        headers={"Authorization": f"Bearer {shop.admin_token}"},
        timeout=30,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------------------
# Run logs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunLogCount:
    """Run logs of one shop in PostgreSQL."""

    rows: int
    distinct: int
    """Rows that are not copies of another row (same instance, cart, time, duration,
    fuel and status: the same run)."""
    failed: int


def count_run_logs(database_url: str, shop_id: int) -> RunLogCount:
    """Count `shop_id`'s run logs (rows, distinct runs, failed runs)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT (instance_id, cart_id, created_at, "
                    "duration_ms, fuel_consumed, status)), "
                    "count(*) FILTER (WHERE status <> 'succeeded') "
                    "FROM run_logs WHERE shop_id = :shop"
                ),
                {"shop": shop_id},
            ).one()
    finally:
        engine.dispose()
    return RunLogCount(rows=int(row[0]), distinct=int(row[1]), failed=int(row[2]))


# --------------------------------------------------------------------------------------
# The load generator
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One checkout request as the client saw it."""

    started: float
    """Seconds since the load started."""
    latency: float
    """Seconds from sending to the full answer (or the transport error)."""
    status: int | None
    """HTTP status; None when no answer came (connection refused or reset, timeout)."""
    code: str | None
    """The error's `code` (JSON answers), `HTTP_<status>` for other failed answers, the
    transport error's class name without an answer; None for a priced checkout."""

    @property
    def ok(self) -> bool:
        """A 200 whose body was a priced checkout with the discount applied."""
        return self.code is None

    @property
    def ended(self) -> float:
        return self.started + self.latency


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-quantile (0-1) of `values`, nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class LoadResult:
    """Every sample of one load run, and the figures derived from them."""

    samples: list[Sample]
    duration_s: float
    concurrency: int

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    @property
    def throughput(self) -> float:
        """Priced checkouts per second over the whole run."""
        return len(self.ok) / self.duration_s if self.duration_s > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        """The `q`-quantile of the successful requests' latency, in milliseconds."""
        return percentile([s.latency for s in self.ok], q) * 1000

    def codes(self) -> Counter[str]:
        """How often each failure code occurred."""
        return Counter(s.code for s in self.failed if s.code is not None)

    def failure_window(self) -> tuple[float, float] | None:
        """(first failed request's start, last failed request's end), in seconds since
        the start; None when nothing failed."""
        failed = self.failed
        if not failed:
            return None
        return min(s.started for s in failed), max(s.ended for s in failed)

    def between(self, start: float, end: float) -> list[Sample]:
        """Samples that started in [start, end)."""
        return [s for s in self.samples if start <= s.started < end]

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        window = self.failure_window()
        return {
            "requests": len(self.samples),
            "ok": len(self.ok),
            "failed": len(self.failed),
            "codes": dict(self.codes()),
            "seconds": round(self.duration_s, 2),
            "concurrency": self.concurrency,
            "checkouts_per_s": round(self.throughput, 1),
            "p50_ms": round(self.latency_ms(0.50), 2),
            "p99_ms": round(self.latency_ms(0.99), 2),
            "max_ms": round(max((s.latency for s in self.ok), default=0.0) * 1000, 2),
            "failure_window_s": (
                None if window is None else [round(window[0], 3), round(window[1], 3)]
            ),
        }


def discount_applied(body: dict[str, Any]) -> bool:
    """The default check of a 200 answer: a priced checkout with a line discount."""
    totals = body.get("totals") or {}
    return not body.get("blocked") and totals.get("lineDiscounts") not in (None, "0.00")


class CheckoutLoad:
    """Bounded checkout load: `concurrency` threads post checkouts of `cart_ids` (round
    robin) to `url` until `duration_s` passed, `max_requests` were sent or `stop()`.

    Use as a context manager (`with CheckoutLoad(...) as load: ...; result =
    load.wait()`): leaving the block stops and joins every thread, also on failure.
    """

    def __init__(
        self,
        url: str,
        token: str,
        cart_ids: Sequence[int],
        *,
        concurrency: int = 8,
        duration_s: float = 10.0,
        max_requests: int = 100_000,
        timeout_s: float = 10.0,
        check: Callable[[dict[str, Any]], bool] = discount_applied,
    ) -> None:
        _require_loopback(url)
        if not cart_ids:
            raise ValueError("the load needs at least one cart")
        self.url = url.rstrip("/")
        self.token = token
        self.cart_ids = tuple(cart_ids)
        self.concurrency = concurrency
        self.duration_s = duration_s
        self.max_requests = max_requests
        self.timeout_s = timeout_s
        self.check = check
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._ended = 0.0
        self._errors: list[BaseException] = []

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> CheckoutLoad:
        """Start the threads; returns at once."""
        if self._threads:
            raise RuntimeError("this load already ran")
        self._t0 = time.monotonic()
        self._threads = [
            threading.Thread(target=self._worker, name=f"load-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def elapsed(self) -> float:
        """Seconds since `start()` (what `Sample.started` is measured in)."""
        return time.monotonic() - self._t0

    def stop(self) -> None:
        """Ask every thread to finish its current request and stop."""
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> LoadResult:
        """Wait for the threads (bounded: duration + request timeout + 10 s by default)
        and return the result. Raises the first unexpected error of a thread."""
        limit = timeout_s if timeout_s is not None else self.duration_s + self.timeout_s + 10
        deadline = time.monotonic() + limit
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            self.stop()
            raise RuntimeError(f"load threads still running after {limit:.0f}s")
        if self._errors:
            raise self._errors[0]
        with self._lock:
            samples = sorted(self._samples, key=lambda s: s.started)
        duration = (self._ended or time.monotonic()) - self._t0
        return LoadResult(samples, duration, self.concurrency)

    def run(self) -> LoadResult:
        """Start, wait, return the result."""
        with self:
            return self.wait()

    def __enter__(self) -> CheckoutLoad:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    # -- the threads --------------------------------------------------------------------

    def _worker(self) -> None:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
        }
        try:
            with httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=self.timeout_s,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            ) as client:
                deadline = self._t0 + self.duration_s
                while not self._stop.is_set() and time.monotonic() < deadline:
                    n = next(self._counter)
                    if n >= self.max_requests:
                        break
                    self._one(client, self.cart_ids[n % len(self.cart_ids)])
        except BaseException as exc:  # surfaced by wait()
            with self._lock:
                self._errors.append(exc)
        finally:
            with self._lock:
                self._ended = max(self._ended, time.monotonic())

    def _one(self, client: httpx.Client, cart_id: int) -> None:
        started = time.monotonic()
        status: int | None = None
        try:
            response = client.post(f"/storefront/carts/{cart_id}/checkout", content=b"")
            status = response.status_code
            code = self._code(response)
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        sample = Sample(started - self._t0, time.monotonic() - started, status, code)
        with self._lock:
            self._samples.append(sample)

    def _code(self, response: httpx.Response) -> str | None:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return f"HTTP_{response.status_code}"
        if response.status_code == 200:
            return None if isinstance(body, dict) and self.check(body) else "UNEXPECTED_BODY"
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("code") or f"HTTP_{response.status_code}")
        return f"HTTP_{response.status_code}"


def served_checkouts(api_url: str) -> int:
    """Storefront requests one API process answered with 200 so far (its own `/metrics`:
    `cartwheel_http_requests_total` for the storefront routes), to see which processes
    took a load."""
    _require_loopback(api_url)
    text = httpx.get(api_url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("cartwheel_http_requests_total{")
            and 'method="POST"' in line
            and 'route="other"' in line
            and 'status="200"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
