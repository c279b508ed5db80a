"""The local scale-out harness (deploy/harness/scaleout.py) on real processes.

Real nginx, real uvicorn processes, real RQ workers, real Redis, on loopback. The API
processes here serve a minimal ASGI app (tests/deploy/asgi_pid_app.py) that reports its
pid, which is what lets a test see the load balancer spread requests and route around
a killed process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
import scaleout
import sqlalchemy as sa
from rq import Queue
from scaleout import Harness, HarnessConfig, HarnessError

from cartwheel.db import head_revision, make_engine, session_factory, transaction
from cartwheel.runlog import RunLogQueue, RunRecord
from cartwheel.settings import Settings
from cartwheel.tenancy import create_shop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPT = ROOT / "deploy" / "harness" / "scaleout.py"

PID_APP_COMMAND = (
    "{python}",
    "-m",
    "uvicorn",
    "--app-dir",
    str(HERE),
    "asgi_pid_app:app",
    "--host",
    "{host}",
    "--port",
    "{port}",
    "--no-access-log",
)
RQ_WORKER_COMMAND = (
    "{python}",
    "-m",
    "rq.cli",
    "worker",
    "--url",
    "{redis_url}",
)
"""RQ's own worker. No fixed --name: a SIGKILLed worker's registration outlives it
(until its heartbeat TTL), and a restart under the same name would be refused."""


def _served_by(client: httpx.Client, url: str, requests: int) -> list[int]:
    """Send `requests` GET /whoami through `url`; every answer must be 200. Bounded."""
    pids = []
    for _ in range(requests):
        response = client.get(url + "/whoami")
        assert response.status_code == 200, response.text
        pids.append(int(response.text))
    return pids


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        scaleout.render_nginx_config(
            prefix=tmp_path, listen_port=scaleout.free_port(), upstream_ports=[18001, 18002, 18003]
        )
    )
    scaleout.check_nginx_config(conf, prefix=tmp_path)

    text = conf.read_text()
    assert text.count("server 127.0.0.1:1800") == 3
    assert "listen 127.0.0.1:" in text


def test_nginx_t_failure_is_reported_with_nginx_message(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        scaleout.render_nginx_config(
            prefix=tmp_path, listen_port=scaleout.free_port(), upstream_ports=[18001]
        ).replace("least_conn;", "least_conn_typo;")
    )
    with pytest.raises(HarnessError, match="least_conn_typo"):
        scaleout.check_nginx_config(conf, prefix=tmp_path)


def test_nginx_config_needs_an_upstream(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one upstream"):
        scaleout.render_nginx_config(prefix=tmp_path, listen_port=8080, upstream_ports=[])


@pytest.mark.parametrize(
    ("database_url", "redis_url"),
    [
        ("postgresql+psycopg://postgres@10.0.0.5:5432/x", None),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/x", "redis://db.example.com:6379/0"),
        ("postgresql+psycopg://postgres@0.0.0.0:5432/x", None),
    ],
)
def test_config_refuses_addresses_off_loopback(database_url: str, redis_url: str | None) -> None:
    with pytest.raises(ValueError, match="loopback"):
        HarnessConfig(database_url=database_url, redis_url=redis_url)


def test_config_accepts_loopback_forms() -> None:
    for host in ("127.0.0.1", "localhost", "[::1]", "127.0.0.2"):
        HarnessConfig(database_url=f"postgresql+psycopg://u@{host}:5432/x", redis_url=None)


def test_process_env_points_every_process_at_the_same_services(pg_url: str) -> None:
    harness = Harness(HarnessConfig(database_url=pg_url, workdir=Path("/nonexistent-unused")))
    env = harness.process_env()
    assert env["DATABASE_URL"] == pg_url
    assert env["REDIS_URL"] == harness.redis_url
    assert env["CARTWHEEL_MODULE_CACHE_DIR"] == str(harness.module_cache_dir)
    assert set(scaleout.HARNESS_ENV_KEYS) <= set(env)


@pytest.mark.slow
def test_harness_balances_routes_around_a_killed_api_and_runs_rq_jobs(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = HarnessConfig(
        database_url=pg_url,
        redis_url=redis_url,
        api_processes=2,
        workers=2,
        api_command=PID_APP_COMMAND,
        worker_command=RQ_WORKER_COMMAND,
        ingesters=0,
        migrate_command=None,
        workdir=tmp_path,
        startup_timeout=30,
        stop_timeout=10,
    )
    with Harness(config) as harness, httpx.Client(timeout=5) as client:
        api_pids = {p.pid for p in harness.apis}
        assert len(api_pids) == 2

        # Both processes serve through the load balancer.
        assert set(_served_by(client, harness.url, 20)) == api_pids

        # An RQ job runs in a work horse forked by one of the harness's workers.
        conn = redis.Redis.from_url(redis_url)
        job = Queue(connection=conn).enqueue("os.getppid")
        deadline = time.monotonic() + 20
        while job.get_status(refresh=True) not in {"finished", "failed"}:
            assert time.monotonic() < deadline, "the RQ job did not finish within 20s"
            time.sleep(0.05)
        assert job.get_status() == "finished"
        assert job.return_value() in {w.pid for w in harness.workers}
        conn.close()

        # A crashed API process: the load balancer keeps serving from the other one.
        killed = harness.apis[0].pid
        harness.kill_api(0)
        assert not harness.apis[0].is_running()
        assert harness.apis[0].returncode() == -signal.SIGKILL
        assert set(_served_by(client, harness.url, 20)) == {harness.apis[1].pid}

        # Restarted on its own port, it takes traffic again once nginx's fail_timeout
        # (2 s) for that upstream has passed.
        harness.start_api(0)
        assert harness.apis[0].pid != killed
        seen: set[int] = set()
        deadline = time.monotonic() + 10
        while seen != {p.pid for p in harness.apis}:
            assert time.monotonic() < deadline, f"only {seen} served after the restart"
            seen |= set(_served_by(client, harness.url, 4))
            time.sleep(0.1)

        # A worker killed and restarted registers again.
        harness.kill_worker(1)
        assert harness.workers[1].returncode() == -signal.SIGKILL
        harness.start_worker(1)

        processes = list(harness.processes())

    assert all(not p.is_running() for p in processes)
    # A graceful stop everywhere: nginx exits 0 on SIGQUIT, RQ's warm shutdown exits 0
    # and uvicorn, after its shutdown, re-raises the SIGTERM it caught.
    assert harness.lb.returncode() == 0
    assert [w.returncode() for w in harness.workers] == [0, 0]
    for api in harness.apis:
        assert api.returncode() == -signal.SIGTERM
        assert "Finished server process" in api.log_tail(), api.log_tail()
    assert not scaleout.port_is_open(harness.lb_port)
    assert not any(scaleout.port_is_open(port) for port in harness.api_ports)
    assert (tmp_path / "logs" / "api-0.log").exists()


@pytest.mark.slow
def test_harness_own_redis_can_be_stopped_and_started(pg_url: str) -> None:
    config = HarnessConfig(
        database_url=pg_url,
        redis_url=None,
        api_processes=1,
        workers=1,
        api_command=PID_APP_COMMAND,
        worker_command=RQ_WORKER_COMMAND,
        ingesters=0,
        migrate_command=None,
        startup_timeout=30,
        stop_timeout=10,
    )
    with Harness(config) as harness:
        workdir = harness.workdir
        assert harness.redis_port is not None
        conn = redis.Redis.from_url(harness.redis_url, socket_timeout=2)
        assert conn.ping()
        assert len(conn.smembers("rq:workers")) == 1

        harness.stop_redis()
        with pytest.raises(redis.exceptions.ConnectionError):
            conn.ping()
        # The API processes do not depend on Redis: the load balancer still answers.
        assert httpx.get(harness.url + "/healthz", timeout=5).status_code == 200

        harness.start_redis()
        assert conn.ping()
        conn.close()
    # The harness made its own temp dir and removes it on stop.
    assert not workdir.exists()


def test_external_redis_cannot_be_stopped_by_the_harness(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    harness = Harness(HarnessConfig(database_url=pg_url, redis_url=redis_url, workdir=tmp_path))
    with pytest.raises(HarnessError, match="external Redis"):
        harness.stop_redis()


def test_api_that_exits_at_startup_fails_fast_with_its_log(pg_url: str, redis_url: str) -> None:
    config = HarnessConfig(
        database_url=pg_url,
        redis_url=redis_url,
        api_processes=1,
        workers=0,
        api_command=("{python}", "-c", "import sys; print('boom: bad settings'); sys.exit(3)"),
        ingesters=0,
        migrate_command=None,
        startup_timeout=30,
    )
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"(?s)api-0 exited with status 3.*boom: bad settings"):
        Harness(config).start()
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_command_line_up_runs_for_a_bounded_duration(pg_url: str, redis_url: str) -> None:
    argv = [
        sys.executable,
        str(SCRIPT),
        "up",
        "--api",
        "2",
        "--workers",
        "1",
        "--database-url",
        pg_url,
        "--redis-url",
        redis_url,
        "--api-command",
        " ".join(PID_APP_COMMAND),
        "--worker-command",
        " ".join(RQ_WORKER_COMMAND),
        "--ingesters",
        "0",
        "--no-migrate",
        "--duration",
        "8",
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            pids = {api["pid"] for api in info["api"]}
            with httpx.Client(timeout=5) as client:
                assert set(_served_by(client, info["url"], 10)) == pids
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert "exited" not in stderr, stderr
    assert not scaleout.port_is_open(int(info["url"].rsplit(":", 1)[1]))


def test_failed_migration_stops_the_start_before_any_api_process(
    pg_url: str, redis_url: str
) -> None:
    config = HarnessConfig(
        database_url=pg_url,
        redis_url=redis_url,
        api_processes=1,
        workers=0,
        api_command=PID_APP_COMMAND,
        migrate_command=(
            "{python}",
            "-c",
            "import os, sys; print('migrating', os.environ['DATABASE_URL']); sys.exit(4)",
        ),
    )
    harness = Harness(config)
    with pytest.raises(HarnessError, match=r"(?s)migrate exited with status 4.*migrating postgres"):
        harness.start()
    assert harness.apis[0].pid is None


@pytest.mark.slow
def test_harness_runs_the_real_app_and_health_follows_redis(pg_url: str, tmp_path: Path) -> None:
    # The real `cartwheel db upgrade`, `cartwheel serve` and `cartwheel worker`
    # processes (the harness's defaults) on the harness's own Redis.
    config = HarnessConfig(
        database_url=pg_url,
        redis_url=None,
        api_processes=2,
        workers=2,
        workdir=tmp_path,
        startup_timeout=60,
        stop_timeout=20,
    )
    with Harness(config) as harness, httpx.Client(timeout=5) as client:
        # `cartwheel db upgrade` ran before the API processes started.
        engine = sa.create_engine(pg_url)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        assert version == head_revision()
        for _ in range(4):
            response = client.get(harness.url + "/healthz")
            assert response.status_code == 200
            assert response.json()["checks"] == {"database": "ok", "redis": "ok"}

        # Redis down: every process reports it (503, naming Redis) through the LB ...
        harness.stop_redis()
        for i in range(2):
            response = client.get(harness.api_url(i) + "/healthz")
            assert response.status_code == 503
            body = response.json()
            assert body["code"] == "DEPENDENCY_UNAVAILABLE"
            assert body["checks"] == {"database": "ok", "redis": "unreachable"}

        # ... and recovers on its own once Redis is back, without a restart.
        harness.start_redis()
        deadline = time.monotonic() + 15
        while client.get(harness.url + "/healthz").status_code != 200:
            assert time.monotonic() < deadline, "health did not recover after Redis came back"
            time.sleep(0.2)
        pids = [p.pid for p in harness.apis]
        # RQ workers ride out the outage (they retry the connection) instead of exiting.
        assert all(w.is_running() for w in harness.workers)

        harness.kill_api(1)
        assert client.get(harness.url + "/healthz").status_code == 200
        apis = list(harness.apis)

    assert [p.pid for p in apis] == pids
    assert apis[0].returncode() in {0, -signal.SIGTERM}
    assert "Application shutdown complete" in apis[0].log_tail()
    # Both workers stopped on SIGTERM, without needing SIGKILL (RQ's warm shutdown exits
    # 0; a worker still in its Redis-reconnect back-off after the outage may instead
    # die of the SIGTERM itself). The run-log ingester drained and reported.
    assert all(w.returncode() in {0, -signal.SIGTERM} for w in harness.workers)
    (ingester,) = harness.ingesters
    assert ingester.returncode() == 0
    assert '{"stored":0}' in ingester.log_tail()


def _wait_health(client: httpx.Client, url: str, status: int, timeout: float) -> None:
    """Poll `url`/healthz until it answers `status`, bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get(url + "/healthz").status_code == status:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url}/healthz did not answer {status}"
        time.sleep(0.2)


@pytest.mark.slow
def test_harness_own_postgres_restarts_and_the_real_app_recovers_by_itself() -> None:
    config = HarnessConfig(
        database_url=None,
        redis_url=None,
        api_processes=2,
        workers=1,
        startup_timeout=60,
        stop_timeout=20,
    )
    with Harness(config) as harness, httpx.Client(timeout=10) as client:
        workdir = harness.workdir
        assert harness.postgres_port is not None
        assert harness.database_url.startswith(
            f"postgresql+psycopg://postgres@127.0.0.1:{harness.postgres_port}/cartwheel"
        )
        assert client.get(harness.url + "/healthz").json()["checks"]["database"] == "ok"

        for mode in ("fast", "crash"):
            harness.stop_postgres(mode)
            assert harness.postgres is not None
            assert not harness.postgres.is_running()
            # During the outage each process answers at once, naming the database.
            for i in range(2):
                started = time.monotonic()
                response = client.get(harness.api_url(i) + "/healthz")
                assert time.monotonic() - started < 5
                assert response.status_code == 503
                assert response.json()["checks"]["database"] == "unreachable"
            # Back up (after crash recovery, for "crash"): the same processes recover.
            harness.start_postgres()
            for i in range(2):
                _wait_health(client, harness.api_url(i), 200, timeout=20)
        assert all(p.is_running() for p in harness.apis)
    assert not workdir.exists()


def test_external_postgres_cannot_be_stopped_by_the_harness(pg_url: str, tmp_path: Path) -> None:
    harness = Harness(HarnessConfig(database_url=pg_url, workdir=tmp_path))
    with pytest.raises(HarnessError, match="external PostgreSQL"):
        harness.stop_postgres()


@pytest.mark.slow
def test_harness_ingesters_move_every_run_log_into_postgres() -> None:
    # Own PostgreSQL and Redis: the shop created here stays out of the shared databases.
    config = HarnessConfig(
        database_url=None,
        redis_url=None,
        api_processes=1,
        workers=0,
        ingesters=2,
        startup_timeout=60,
    )
    with Harness(config) as harness:
        engine = make_engine(Settings(database_url=harness.database_url))
        try:
            with transaction(session_factory(engine)) as session:
                shop = create_shop(
                    session,
                    handle="harness",
                    name="Harness",
                    currency_code="USD",
                    timezone="UTC",
                    country_code="US",
                )
                shop_id = shop.id
            records = [_run_record(shop_id, n) for n in range(1200)]
            queue = RunLogQueue.from_url(harness.redis_url, timeout_s=5)
            for start in range(0, len(records), 300):
                queue.push(records[start : start + 300])
            queue.client.close()

            harness.wait_runlogs_drained(timeout=60)
            assert harness.runlog_backlog() == 0
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.text("SELECT count(*), count(DISTINCT input) FROM run_logs")
                ).one()
        finally:
            engine.dispose()
    assert tuple(stored) == (1200, 1200)


def _run_record(shop_id: int, n: int) -> RunRecord:
    return RunRecord(
        shop_id=shop_id,
        function_id=1,
        version_id=1,
        instance_id=None,
        cart_id=None,
        target="cart.lines.discounts.generate.run",
        export="run",
        status="succeeded",
        error_code=None,
        error_message=None,
        input=json.dumps({"n": n}),
        input_bytes=10,
        input_truncated=False,
        output='{"operations":[]}',
        output_bytes=17,
        logs="",
        logs_truncated=False,
        fuel_consumed=1000,
        peak_memory_bytes=65536,
        duration_ms=0.5,
        variables=None,
        created_at=datetime.now(UTC),
    )
