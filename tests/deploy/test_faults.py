"""Fault runs on the scale-out harness under checkout load (issue 8, item 3).

Each test starts the real topology on loopback (nginx, `cartwheel serve` × 2,
`cartwheel worker`, `cartwheel runlog ingest` × 2, the harness's own PostgreSQL and
append-only Redis, so they can be stopped without touching the machine's shared
services), seeds a shop whose example discount was deployed through the admin API,
puts a checkout load on it (`CheckoutLoad`: 8 threads for a number of seconds, with a
far-off request cap) and breaks one part in the middle. The figures each run measured
are printed (pytest -s) and summarised in docs/OPERATIONS.md, "Failure modes".
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from checkout_load import (
    CheckoutLoad,
    CheckoutShop,
    LoadResult,
    count_run_logs,
    discount_input_query,
    discount_wasm,
    seed_checkout_shop,
)
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from scaleout import Harness, HarnessConfig

from cartwheel.jobs import DEPLOY_JOB_ID_PREFIX, DEPLOY_QUEUE
from functions_sdk.client import AdminClient, ClientError

CONCURRENCY = 8
# The loads are bounded by time; this cap is only a safety net. It must stay far above
# what a run sends: refusals during an outage answer in milliseconds, and a CI run with
# a 4,000 cap spent it on 3,101 of them before PostgreSQL was back, so nothing was left
# to show the recovery.
MAX_REQUESTS = 100_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def harness() -> Iterator[Harness]:
    config = HarnessConfig(
        database_url=None,
        redis_url=None,
        api_processes=2,
        workers=1,
        ingesters=2,
        redis_appendonly=True,
        startup_timeout=60,
    )
    with Harness(config) as running:
        yield running


@pytest.fixture
def shop(harness: Harness) -> CheckoutShop:
    return seed_checkout_shop(harness.database_url, harness.url, carts=40, lines_per_cart=10)


def _load(harness: Harness, shop: CheckoutShop, seconds: float) -> CheckoutLoad:
    return CheckoutLoad(
        harness.url,
        shop.storefront_token,
        shop.cart_ids,
        concurrency=CONCURRENCY,
        duration_s=seconds,
        max_requests=MAX_REQUESTS,
    )


def _report(name: str, result: LoadResult, **figures: object) -> None:
    print(json.dumps({"fault": name, **result.summary(), **figures}))


def test_api_process_killed_mid_load(harness: Harness, shop: CheckoutShop) -> None:
    with _load(harness, shop, 10.0) as load:
        time.sleep(3.0)
        killed_at = load.elapsed()
        harness.kill_api(1)  # SIGKILL: a crash, nothing drained
        result = load.wait()
    harness.wait_runlogs_drained(timeout=60)
    stored = count_run_logs(harness.database_url, shop.shop_id)

    window = result.failure_window()
    _report(
        "api SIGKILL",
        result,
        killed_at_s=round(killed_at, 3),
        run_logs=stored.rows,
        ok_without_run_log=len(result.ok) - stored.rows,
    )
    before = [s for s in result.samples if s.ended < killed_at]
    after = result.between(killed_at, result.duration_s)
    assert before
    assert all(s.ok for s in before)
    # The other process keeps serving through the load balancer: at most the requests
    # in flight on the killed process fail, and everything sent a second after the
    # kill succeeds.
    assert len(result.failed) <= CONCURRENCY
    assert all(s.ok for s in result.between(killed_at + 1.0, result.duration_s))
    assert sum(s.ok for s in after) > 50
    if window is not None:
        # Only requests in flight at the kill (sent before it) fail.
        assert window[0] >= killed_at - 1.0
        assert window[1] - killed_at < 1.0
    # No run log is stored twice; the killed process can only lose what it held in
    # memory (≤ one 50 ms flush interval) and the runs whose answer it never sent.
    assert stored.rows == stored.distinct
    assert len(result.ok) - stored.rows <= CONCURRENCY + 0.05 * result.throughput + 1


def test_redis_stopped_mid_load_checkouts_continue_and_no_run_log_is_lost(
    harness: Harness, shop: CheckoutShop
) -> None:
    with _load(harness, shop, 12.0) as load:
        time.sleep(3.0)
        stopped_at = load.elapsed()
        harness.stop_redis()  # SIGKILL; its append-only file keeps what it acknowledged
        time.sleep(4.0)
        harness.start_redis()
        restarted_at = load.elapsed()
        result = load.wait()
    drain_started = time.monotonic()
    harness.wait_runlogs_drained(timeout=60)
    drained_in = time.monotonic() - drain_started
    stored = count_run_logs(harness.database_url, shop.shop_id)

    during = result.between(stopped_at, restarted_at)
    _report(
        "redis stopped 4 s",
        result,
        stopped_at_s=round(stopped_at, 3),
        restarted_at_s=round(restarted_at, 3),
        during_outage=len(during),
        p99_during_outage_ms=round(
            LoadResult(during, restarted_at - stopped_at, CONCURRENCY).latency_ms(0.99), 2
        ),
        drained_after_s=round(drained_in, 2),
        run_logs=stored.rows,
    )
    # Checkouts never depend on Redis: every one succeeds, during the outage too.
    assert result.failed == []
    assert len(during) > 50
    # Every run is in PostgreSQL exactly once (written directly while Redis was down,
    # ingested from Redis before and after).
    assert (stored.rows, stored.distinct, stored.failed) == (len(result.ok),) * 2 + (0,)


def test_postgres_restarted_mid_load_fails_fast_and_recovers(
    harness: Harness, shop: CheckoutShop
) -> None:
    with _load(harness, shop, 14.0) as load:
        time.sleep(3.0)
        stopping_at = load.elapsed()
        harness.stop_postgres("fast")
        stopped_at = load.elapsed()
        time.sleep(3.0)
        starting_at = load.elapsed()
        harness.start_postgres()
        started_at = load.elapsed()
        result = load.wait()
    harness.wait_runlogs_drained(timeout=60)
    stored = count_run_logs(harness.database_url, shop.shop_id)

    failed = result.failed
    window = result.failure_window()
    first_ok_after = min((s.started for s in result.ok if s.started >= started_at), default=None)
    _report(
        "postgres fast stop, 3 s down",
        result,
        stopping_at_s=round(stopping_at, 3),
        stopped_at_s=round(stopped_at, 3),
        starting_at_s=round(starting_at, 3),
        started_at_s=round(started_at, 3),
        failed_max_ms=round(1000 * max((s.latency for s in failed), default=0.0), 2),
        first_ok_after_start_s=(
            None if first_ok_after is None else round(first_ok_after - started_at, 3)
        ),
        run_logs=stored.rows,
    )
    assert result.duration_s > started_at + 3.0, "the load ended before PostgreSQL was back"
    # During the outage every checkout fails, fast, with the dedicated code ...
    during = result.between(stopped_at, starting_at)
    assert during
    assert all(s.code == "DATABASE_UNAVAILABLE" and s.status == 503 for s in during)
    assert set(result.codes()) == {"DATABASE_UNAVAILABLE"}
    assert max(s.latency for s in failed) < 1.0
    # ... and recovers by itself: nothing fails a second after PostgreSQL is back.
    assert window is not None
    assert window[1] < started_at + 1.0
    assert all(s.ok for s in result.between(started_at + 1.0, result.duration_s))
    assert sum(s.ok for s in result.between(started_at, result.duration_s)) > 50
    # Every priced checkout's run is logged (run logs of the outage went to Redis and
    # were ingested once PostgreSQL was back), none twice.
    assert stored.rows == stored.distinct
    assert stored.rows >= len(result.ok)


def test_worker_killed_mid_deploy_never_activates_a_half_done_version(
    harness: Harness, shop: CheckoutShop
) -> None:
    redis = Redis.from_url(harness.redis_url)
    with AdminClient(harness.url, shop.admin_token, timeout_s=30) as admin, redis:
        killed_version = None
        for attempt in range(5):
            # A new version (its input query differs by a comment) → a new deploy job.
            deployed = admin.deploy(
                handle="tiered-vip-discount",
                title="Tiered VIP discount",
                target="cart.lines.discounts.generate.run",
                wasm=discount_wasm(),
                input_query=discount_input_query(f"fault run {attempt}"),
                input_variables=("cartwheel", "function-configuration"),
            )
            assert deployed.created
            job_id = DEPLOY_JOB_ID_PREFIX + deployed.version.id.rsplit("/", 1)[1]
            if _kill_worker_once_started(harness, redis, job_id):
                killed_version = deployed.version.id
                break
            admin.wait_until_ready(deployed.version.id, timeout_s=30)
        assert killed_version is not None, "no deploy job was caught running in 5 tries"

        # The version stays pending, is not active and cannot be activated; checkout
        # keeps running the active version.
        version = admin.function_version(killed_version)
        assert version.status == "PENDING"
        assert not version.active
        assert admin.function(shop.function_id).active_version_id == shop.version_id
        with pytest.raises(ClientError) as refused:
            admin.activate_version(killed_version)
        assert refused.value.code == "VERSION_NOT_READY"
        checkout = httpx.post(
            f"{harness.url}/storefront/carts/{shop.cart_ids[0]}/checkout",
            headers={"Authorization": f"Bearer {shop.storefront_token}"},
            timeout=30,
        )
        assert checkout.status_code == 200
        assert checkout.json()["totals"]["lineDiscounts"] != "0.00"

        # The retry: a worker runs again; RQ's maintenance finds the job abandoned once
        # the dead horse's heartbeat expired (90 s: job_monitoring_interval 30 + 60) and
        # requeues it (retries left). The test runs that maintenance step with its clock
        # moved past the expiry instead of sleeping 90 s.
        harness.start_worker(0)
        job = Job.fetch(job_id, connection=redis)
        assert job.get_status() == JobStatus.STARTED
        registry = StartedJobRegistry(queue=Queue(DEPLOY_QUEUE, connection=redis))
        requeued_at = time.monotonic()
        registry.cleanup(timestamp=time.time() + 91)
        retried = admin.wait_until_ready(killed_version, timeout_s=60)
        ready_in = time.monotonic() - requeued_at
        print(
            json.dumps(
                {
                    "fault": "worker SIGKILL mid-deploy",
                    "deploys_until_caught_running": attempt + 1,
                    "retry_ready_after_requeue_s": round(ready_in, 3),
                    "retries_left": Job.fetch(job_id, connection=redis).retries_left,
                }
            )
        )
        assert retried.status == "READY"
        assert Job.fetch(job_id, connection=redis).get_status() == JobStatus.FINISHED
        function = admin.activate_version(killed_version)
        assert function.active_version_id == killed_version
        checkout = httpx.post(
            f"{harness.url}/storefront/carts/{shop.cart_ids[0]}/checkout",
            headers={"Authorization": f"Bearer {shop.storefront_token}"},
            timeout=30,
        )
        assert checkout.status_code == 200
        assert checkout.json()["totals"]["lineDiscounts"] != "0.00"


def _kill_worker_once_started(harness: Harness, redis: Redis, job_id: str) -> bool:
    """SIGKILL worker 0 (and its work horse) as soon as `job_id` is running. False when
    the job finished before it could be caught (then nothing was killed)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = Job.fetch(job_id, connection=redis).get_status()
        if status == JobStatus.STARTED:
            # RQ's work horse runs in a session of its own (setsid), out of reach of a
            # signal to the worker's process group: kill it first, as the end of a pod
            # or a machine would.
            worker_pid = harness.workers[0].pid
            assert worker_pid is not None
            for horse in _children(worker_pid):
                os.kill(horse, signal.SIGKILL)
            harness.kill_worker(0, signal.SIGKILL)
            if Job.fetch(job_id, connection=redis).get_status() == JobStatus.STARTED:
                return True
            harness.start_worker(0)  # it finished just before the kill
            return False
        if status in (JobStatus.FINISHED, JobStatus.FAILED):
            return False
        time.sleep(0.002)
    raise AssertionError(f"deploy job {job_id} did not start within 30 s")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
