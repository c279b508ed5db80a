"""Run logs: the writer's destinations (Redis, database, spool), ingestion, failure of
each dependency mid-flight, and retention. Real PostgreSQL, real Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cartwheel.models import RunLog, Shop
from cartwheel.runlog import (
    PROCESSING_PREFIX,
    RunLogQueue,
    RunLogWriter,
    RunRecord,
    Spool,
    ingest_once,
    insert_records,
    prune,
    run_ingest_loop,
)
from functions_sdk.limits import Limits
from functions_sdk.runner.result import ErrorCode, RunResult, RunStatus


@pytest.fixture
def engine(pg_engine: Engine) -> Engine:
    """The session's PostgreSQL database, migrated to head by Alembic."""
    return pg_engine


@pytest.fixture
def shop_id(engine: Engine) -> int:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE shops, run_logs RESTART IDENTITY CASCADE"))
        return int(
            conn.execute(
                sa.insert(Shop).values(handle="s", name="S").returning(Shop.id)
            ).scalar_one()
        )


def record(shop_id: int, n: int = 0, *, function_id: int = 1, age_days: float = 0) -> RunRecord:
    return RunRecord(
        shop_id=shop_id,
        function_id=function_id,
        version_id=1,
        instance_id=1,
        cart_id=None,
        target="cart.lines.discounts.generate.run",
        export="run",
        status="succeeded",
        error_code=None,
        error_message=None,
        input=f'{{"n": {n}}}',
        input_bytes=10,
        input_truncated=False,
        output='{"operations": []}',
        output_bytes=18,
        logs="",
        logs_truncated=False,
        fuel_consumed=1234,
        peak_memory_bytes=65536,
        duration_ms=0.2,
        variables={"value": {"x": n}},
        created_at=datetime.now(UTC) - timedelta(days=age_days),
    )


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(RunLog)).scalar_one())


def stored_inputs(engine: Engine, function_id: int | None = None) -> list[str]:
    query = sa.select(RunLog.input)
    if function_id is not None:
        query = query.where(RunLog.function_id == function_id)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def test_record_from_run_and_json_round_trip(shop_id: int) -> None:
    result = RunResult(
        status=RunStatus.FAILED,
        error_code=ErrorCode.INSTRUCTION_LIMIT_EXCEEDED,
        message="out of fuel",
        output=b"",
        logs="hello",
        logs_truncated=False,
        logs_bytes=5,
        fuel_consumed=11_000_000,
        fuel_exact=True,
        peak_memory_bytes=131072,
        duration_ms=3.5,
        input_bytes=2,
        output_bytes=0,
        module_bytes=100,
        limits=Limits(),
        abi="wasi",
        export="run",
        module_sha256="ab" * 32,
    )
    rec = RunRecord.from_run(
        result,
        input=b"{}",
        shop_id=shop_id,
        function_id=7,
        version_id=8,
        instance_id=9,
        cart_id=None,
        target="cart.validations.generate.run",
    )
    assert (rec.status, rec.error_code, rec.output, rec.fuel_consumed) == (
        "failed",
        "INSTRUCTION_LIMIT_EXCEEDED",
        None,
        11_000_000,
    )
    assert RunRecord.from_json(rec.to_json()) == rec


def test_writer_without_redis_batches_every_record_from_many_threads(
    engine: Engine, shop_id: int, tmp_path: Path
) -> None:
    writer = RunLogWriter(engine, Spool(tmp_path / "spool.jsonl"))
    threads = [
        threading.Thread(
            target=lambda t=t: [writer.submit(record(shop_id, t * 1000 + i)) for i in range(250)]
        )
        for t in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(30)
    writer.close()
    assert count(engine) == 2000
    assert writer.stats.to_database == 2000
    assert len(set(stored_inputs(engine))) == 2000


def test_writer_through_redis_and_ingestion(
    engine: Engine, shop_id: int, tmp_path: Path, redis_url: str
) -> None:
    run_queue = RunLogQueue.from_url(redis_url)
    writer = RunLogWriter(engine, Spool(tmp_path / "spool.jsonl"), run_queue)
    for i in range(1200):
        writer.submit(record(shop_id, i))
    assert writer.flush(30)
    assert writer.stats.to_redis == 1200
    assert count(engine) == 0
    assert run_queue.length() == 1200
    ingest_queue = RunLogQueue.from_url(redis_url, timeout_s=5)
    assert [ingest_once(ingest_queue, engine, "w1") for _ in range(4)] == [500, 500, 200, 0]
    assert count(engine) == 1200
    writer.close()


def test_writer_gathers_the_runs_of_concurrent_checkouts_into_one_push(
    engine: Engine, shop_id: int, tmp_path: Path, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)

    def pushes() -> int:
        return int(client.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0))

    run_queue = RunLogQueue.from_url(redis_url, timeout_s=5)
    writer = RunLogWriter(engine, Spool(tmp_path / "spool.jsonl"), run_queue, linger_s=0.3)
    before = pushes()
    # Ten checkouts of three functions each, a run every millisecond: the writer
    # lingers after the first and delivers them all at once.
    for i in range(30):
        writer.submit(record(shop_id, i))
        time.sleep(0.001)
    deadline = time.monotonic() + 10
    while run_queue.length() < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run_queue.length() == 30
    assert pushes() - before == 1
    writer.close()

    # `flush` does not wait the linger out.
    patient = RunLogWriter(engine, Spool(tmp_path / "spool.jsonl"), run_queue, linger_s=60)
    started = time.monotonic()
    patient.submit(record(shop_id, 30))
    assert patient.flush(30)
    assert time.monotonic() - started < 5
    assert run_queue.length() == 31
    patient.close()
    client.close()


def test_a_dead_consumer_batch_is_adopted(engine: Engine, shop_id: int, redis_url: str) -> None:
    run_queue = RunLogQueue.from_url(redis_url, timeout_s=5)
    run_queue.push([record(shop_id, i) for i in range(10)])
    # A consumer claims a batch and dies before inserting it (its heartbeat expires).
    assert len(run_queue.claim("dead", count=4)) == 4
    run_queue.client.delete("cartwheel:runlog:consumer:dead")
    stop = threading.Event()
    stop.set()
    assert run_ingest_loop(run_queue, engine, stop, consumer="alive") == 10
    assert count(engine) == 10
    assert not run_queue.client.exists(PROCESSING_PREFIX + "dead")


def test_a_stopping_consumer_hands_its_batch_back_at_once(
    engine: Engine, shop_id: int, redis_url: str
) -> None:
    run_queue = RunLogQueue.from_url(redis_url, timeout_s=5)
    run_queue.push([record(shop_id, i) for i in range(5)])
    # "c" holds a batch whose insert failed, then is told to stop.
    assert len(run_queue.claim("c", count=3)) == 3
    assert run_queue.release("c") == 3
    assert not run_queue.client.exists(PROCESSING_PREFIX + "c")
    assert not run_queue.client.exists("cartwheel:runlog:consumer:c")
    # Another consumer takes everything without waiting for a heartbeat to expire.
    stop = threading.Event()
    stop.set()
    assert run_ingest_loop(run_queue, engine, stop, consumer="d") == 5
    assert count(engine) == 5
    assert run_queue.length() == 0


def test_a_failed_insert_leaves_the_batch_claimed_for_retry(
    engine: Engine, shop_id: int, redis_url: str
) -> None:
    run_queue = RunLogQueue.from_url(redis_url, timeout_s=5)
    run_queue.push([record(shop_id, i) for i in range(3)])
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE run_logs RENAME TO run_logs_away"))
    try:
        with pytest.raises(sa.exc.ProgrammingError):
            ingest_once(run_queue, engine, "c")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE run_logs_away RENAME TO run_logs"))
    assert run_queue.client.llen(PROCESSING_PREFIX + "c") == 3
    assert ingest_once(run_queue, engine, "c") == 3
    assert count(engine) == 3


def test_a_run_delivered_twice_is_stored_once(engine: Engine, shop_id: int, redis_url: str) -> None:
    records = [record(shop_id, i) for i in range(6)]
    assert len({r.run_id for r in records}) == 6
    assert RunRecord.from_json(records[0].to_json()) == records[0]
    run_queue = RunLogQueue.from_url(redis_url, timeout_s=5)
    # The writer's push timed out after Redis had applied it, so the batch also went
    # straight to the database ...
    run_queue.push(records[:3])
    insert_records(engine, records[:3])
    assert ingest_once(run_queue, engine, "first") == 3
    assert count(engine) == 3
    # ... and a consumer inserted a batch, then died before its ack.
    run_queue.push(records[3:])
    claimed = run_queue.claim("dead")
    assert [r.run_id for r in claimed] == [r.run_id for r in records[3:]]
    insert_records(engine, claimed)
    run_queue.client.delete("cartwheel:runlog:consumer:dead")
    stop = threading.Event()
    stop.set()
    assert run_ingest_loop(run_queue, engine, stop, consumer="alive") == 3
    assert count(engine) == 6
    with engine.connect() as conn:
        stored = set(conn.execute(sa.select(RunLog.run_id)).scalars())
    assert stored == {r.run_id for r in records}


def test_database_down_spools_then_replays_automatically(
    engine: Engine, shop_id: int, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    writer = RunLogWriter(engine, spool)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE run_logs RENAME TO run_logs_away"))
    try:
        for i in range(50):
            writer.submit(record(shop_id, i))
        assert writer.flush(30)
        assert writer.stats.to_spool == 50
        assert spool.pending()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE run_logs_away RENAME TO run_logs"))
    writer.submit(record(shop_id, 50))  # the next successful write triggers the replay
    assert writer.flush(30)
    writer.close()
    assert count(engine) == 51
    assert not spool.pending()
    assert writer.stats.replayed == 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(port: int, directory: Path) -> None:
    subprocess.run(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(directory),
            "--daemonize",
            "yes",
        ],
        check=True,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("private redis-server did not start")


def test_redis_stopped_mid_flight_loses_no_run_and_keeps_submit_fast(
    engine: Engine, shop_id: int, tmp_path: Path
) -> None:
    """A private Redis (never the shared one) is shut down while 4 threads submit and an
    ingestion loop runs; records go to the database directly meanwhile. Redis restarts
    from its append-only file and the rest is ingested: every record is stored once."""
    port = _free_port()
    _start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    writer = RunLogWriter(engine, Spool(tmp_path / "spool.jsonl"), RunLogQueue.from_url(url))
    stop_ingest = threading.Event()
    # A short heartbeat: if Redis dies while i1 holds a batch, i1 cannot hand it back,
    # and i2 adopts it once the heartbeat has expired (60 s in production).
    ingest_queue = RunLogQueue.from_url(url, timeout_s=1, heartbeat_ttl_s=2)
    ingester = threading.Thread(
        target=run_ingest_loop,
        args=(ingest_queue, engine, stop_ingest),
        kwargs={"consumer": "i1"},
        daemon=True,
    )
    ingester.start()
    submit_times: list[float] = []

    def produce(t: int) -> None:
        for i in range(1500):
            start = time.perf_counter()
            writer.submit(record(shop_id, t * 10_000 + i))
            submit_times.append(time.perf_counter() - start)
            if i % 50 == 0:
                time.sleep(0.002)

    producers = [threading.Thread(target=produce, args=(t,), daemon=True) for t in range(4)]
    try:
        for p in producers:
            p.start()
        while len(submit_times) < 2000:  # Redis goes away mid-flight, a third of the way in
            time.sleep(0.001)
        redis.Redis(port=port).shutdown(nosave=False)
        for p in producers:
            p.join()
        assert writer.flush(60)
    finally:
        stop_ingest.set()
        ingester.join(30)
    assert writer.stats.to_database > 0, "records written directly while Redis was down"
    # Redis comes back with what it had accepted; a new ingestion run drains it.
    _start_redis(port, tmp_path)
    time.sleep(2.1)  # i1's last heartbeat (set before the shutdown) has expired
    try:
        again = threading.Event()
        again.set()
        run_ingest_loop(RunLogQueue.from_url(url, timeout_s=1), engine, again, consumer="i2")
    finally:
        redis.Redis(port=port).shutdown(nosave=True)
    writer.close()
    inputs = stored_inputs(engine)
    assert len(inputs) == 6000
    assert len(set(inputs)) == 6000
    submit_times.sort()
    # A submit is a queue append: it never waits for Redis (50 ms socket timeout) or the
    # database, even on a loaded machine.
    assert submit_times[int(len(submit_times) * 0.99)] < 0.02, "submit stays off the I/O path"


def test_prune_by_age_and_by_count_per_function(engine: Engine, shop_id: int) -> None:
    from cartwheel.runlog import insert_records

    records = [record(shop_id, i, function_id=1, age_days=i / 10) for i in range(30)]
    records += [record(shop_id, i, function_id=2, age_days=40) for i in range(5)]
    records += [record(shop_id, i, function_id=3) for i in range(3)]
    insert_records(engine, records)
    result = prune(engine, max_age_days=30, max_per_function=10)
    assert (result.by_age, result.by_count) == (5, 20)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(RunLog.function_id, sa.func.count()).group_by(RunLog.function_id)
        ).all()
    assert dict(rows) == {1: 10, 3: 3}
    # The newest ten of function 1 are the ones kept.
    assert sorted(int(i.split()[1].rstrip("}")) for i in stored_inputs(engine, 1)) == list(
        range(10)
    )


def test_cli_ingest_once_and_prune(
    engine: Engine, shop_id: int, redis_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from cartwheel.cli import main

    RunLogQueue.from_url(redis_url).push(
        [record(shop_id, i, age_days=40 * (i % 2)) for i in range(6)]
    )
    env = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "CARTWHEEL_DATA_DIR": str(tmp_path),
        "CARTWHEEL_RUN_LOG_RETENTION_DAYS": "30",
    }
    result = CliRunner().invoke(main, ["runlog", "ingest", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == {"stored": 6}
    result = CliRunner().invoke(main, ["runlog", "prune"], env=env)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == {"by_age": 3, "by_count": 0}
    assert count(engine) == 3
