"""Checkout load on the scale-out harness (issue 8, item 2): throughput and p99 with one
and with two API processes behind nginx, and every function run logged exactly once.

Real processes on loopback: nginx, `cartwheel serve` × 2, `cartwheel worker`,
`cartwheel runlog ingest` × 2, the harness's own PostgreSQL and Redis (append-only, as
in production). The shop's example discount is deployed through the admin API, so a
worker prepared it. Bounded: 2 × 8 s of load, at most 4,000 requests per run.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from checkout_load import (
    CheckoutLoad,
    checkout_diagnostics,
    count_run_logs,
    seed_checkout_shop,
    served_checkouts,
)
from scaleout import Harness, HarnessConfig

LOAD_SECONDS = 8.0
CONCURRENCY = 8
MAX_REQUESTS = 4000


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_checkout_load_with_one_and_two_api_processes_logs_every_run() -> None:
    config = HarnessConfig(
        database_url=None,
        redis_url=None,
        api_processes=2,
        workers=1,
        ingesters=2,
        redis_appendonly=True,
        startup_timeout=60,
    )
    with Harness(config) as harness:
        shop = seed_checkout_shop(harness.database_url, harness.url, carts=40, lines_per_cart=10)
        # One checkout runs exactly one function (the discount), successfully.
        document = checkout_diagnostics(harness.url, shop, shop.cart_ids[0])
        assert [f["status"] for f in document["diagnostics"]["functions"]] == ["succeeded"]
        assert document["totals"]["lineDiscounts"] != "0.00"
        harness.wait_runlogs_drained(timeout=30)
        assert count_run_logs(harness.database_url, shop.shop_id).rows == 1

        # One API process: the other is stopped gracefully; nginx sends everything to
        # the one left.
        harness.kill_api(1, signal.SIGTERM)
        served_before = served_checkouts(harness.api_url(0))
        one = CheckoutLoad(
            harness.url,
            shop.storefront_token,
            shop.cart_ids,
            concurrency=CONCURRENCY,
            duration_s=LOAD_SECONDS,
            max_requests=MAX_REQUESTS,
        ).run()
        assert served_checkouts(harness.api_url(0)) - served_before == len(one.ok)

        # Two API processes (nginx takes a restarted process back after fail_timeout).
        harness.start_api(1)
        time.sleep(2.5)
        served_before_1 = served_checkouts(harness.api_url(1))
        two = CheckoutLoad(
            harness.url,
            shop.storefront_token,
            shop.cart_ids,
            concurrency=CONCURRENCY,
            duration_s=LOAD_SECONDS,
            max_requests=MAX_REQUESTS,
        ).run()
        share_1 = served_checkouts(harness.api_url(1)) - served_before_1

        harness.wait_runlogs_drained(timeout=60)
        stored = count_run_logs(harness.database_url, shop.shop_id)

    print(json.dumps({"one_api": one.summary(), "two_api": two.summary(), "run_logs": stored.rows}))
    assert one.failed == []
    assert two.failed == []
    assert len(one.ok) > 50
    assert len(two.ok) > 50
    # Both processes took a real share of the two-process run.
    assert 0.2 * len(two.ok) < share_1 < 0.8 * len(two.ok)
    # Every run performed is in PostgreSQL, once: the diagnostic checkout plus one
    # discount run per priced checkout.
    runs = 1 + len(one.ok) + len(two.ok)
    assert (stored.rows, stored.distinct, stored.failed) == (runs, runs, 0)
