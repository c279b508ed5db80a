"""Local scale-out harness: N API processes behind nginx, M RQ workers, run-log
ingesters, on loopback.

The same topology as production (stateless API processes behind a load balancer,
PostgreSQL, Redis, RQ workers; one precompiled-module cache shared by the processes
of the node), started as plain processes on 127.0.0.1 so that load and fault tests
can drive it and kill parts of it.

Command line (migrates the database with `cartwheel db upgrade`, then runs until
Ctrl-C, SIGTERM or `--duration` seconds)::

    .venv/bin/python deploy/harness/scaleout.py up --api 2 --workers 2 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/cartwheel \\
        --redis-url redis://127.0.0.1:6379/0

    # no --database-url / --redis-url: the harness runs its own PostgreSQL cluster
    # (initdb in its work dir) / redis-server on free loopback ports

Library (what the load and fault tests use)::

    with Harness(HarnessConfig(database_url=..., redis_url=None, api_processes=2)) as h:
        httpx.get(h.url + "/healthz")     # through nginx
        h.kill_api(0)                     # SIGKILL one API process
        h.kill_worker(1); h.kill_ingester(0)
        h.start_api(0)                    # same port again, waits for /healthz
        h.stop_redis(); h.start_redis()   # only for the harness's own Redis
        h.stop_postgres("fast"); h.start_postgres()   # only for its own PostgreSQL

Every wait is bounded in time; every address is on the loopback interface.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import httpx

LOOPBACK = "127.0.0.1"
"""The only interface the harness binds to or connects to."""

BIN_DIR = Path(sys.executable).parent
"""The virtualenv's bin/: where `cartwheel`, `rq` and (if installed) `hadolint` live."""

DEFAULT_API_COMMAND: tuple[str, ...] = (
    "{cartwheel}",
    "serve",
    "--host",
    "{host}",
    "--port",
    "{port}",
)
"""One API process. Placeholders: {cartwheel} {python} {host} {port} {index} {redis_url}."""

DEFAULT_WORKER_COMMAND: tuple[str, ...] = ("{cartwheel}", "worker")
"""One RQ worker process (same placeholders; {port} is empty)."""

DEFAULT_INGEST_COMMAND: tuple[str, ...] = ("{cartwheel}", "runlog", "ingest")
"""One run-log ingester (Redis → PostgreSQL); without one, run logs stay in Redis."""

DEFAULT_MIGRATE_COMMAND: tuple[str, ...] = ("{cartwheel}", "db", "upgrade")
"""Run to completion before any API process starts, like compose's `migrate` service."""

NGINX = "/usr/sbin/nginx"
"""Debian's nginx (installed by .ci/run)."""

REDIS_SERVER = "redis-server"

POSTGRES_USER = "postgres"
"""Superuser of the harness's own PostgreSQL cluster (trust authentication, loopback)."""

POSTGRES_DB = "cartwheel"
"""Database the harness creates in its own cluster."""

POSTGRES_STOP_SIGNALS = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
    "crash": signal.SIGKILL,
}
"""PostgreSQL shutdown modes: smart waits for clients to leave (never, with pools);
fast disconnects them and checkpoints; immediate and crash need recovery at restart."""


def postgres_bindir() -> Path:
    """Where initdb and postgres live (`pg_config --bindir`, else Debian's newest)."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "postgres").exists():
            return bindir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not candidates:
        raise HarnessError(
            "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql); "
            "install postgresql or pass database_url"
        )
    return candidates[-1].parent


HEALTH_PATH = "/healthz"

HARNESS_ENV_KEYS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CARTWHEEL_DATA_DIR",
    "CARTWHEEL_MODULE_CACHE_DIR",
)
"""Settings the harness sets for every process it starts (all read by Settings.from_env)."""


class HarnessError(RuntimeError):
    """A part of the harness did not start, did not become healthy or did not stop.

    The message names the process and ends with the tail of its log file.
    """


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and any address in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _require_loopback_url(name: str, url: str) -> None:
    host = urlsplit(url).hostname
    if host is None or not is_loopback_host(host):
        raise ValueError(
            f"{name} must point at a loopback address (127.0.0.1, localhost, ::1); got {url!r}. "
            "The harness never sends traffic off this machine."
        )


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """One child process in its own session (so a signal reaches its children too).

    Output goes to `log_path`, never to a pipe (a full pipe would block the child).
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    user: str | None = None
    """Run as this user (only when the harness runs as root, e.g. PostgreSQL)."""
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (again, if it had exited). Raises HarnessError if it is running."""
        if self.is_running():
            raise HarnessError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {shlex.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    user=self.user,
                )
            except OSError as exc:
                raise HarnessError(
                    f"could not start {self.name} ({shlex.join(self.argv)}): {exc}"
                ) from exc

    @property
    def pid(self) -> int | None:
        """The process id of the latest start, or None before the first start."""
        return None if self.popen is None else self.popen.pid

    def is_running(self) -> bool:
        """Whether the latest start is still alive."""
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        """The exit status of the latest start, or None while it runs or before it started."""
        return None if self.popen is None else self.popen.poll()

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process group; a no-op if it has exited."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """Send `sig`, wait up to `timeout` seconds, then SIGKILL. Returns the exit status."""
        if self.popen is None:
            return None
        self.send_signal(sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the process group and reap it (bounded: SIGKILL cannot be ignored)."""
        if self.popen is None:
            return
        self.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def log_tail(self, max_bytes: int = 4000) -> str:
        """The last `max_bytes` of the process's log, for error messages."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return "(no log)"
        return data[-max_bytes:].decode(errors="replace")


def wait_until_healthy(
    proc: ManagedProcess,
    url: str,
    *,
    timeout: float,
    client: httpx.Client | None = None,
) -> None:
    """Poll `url` until it answers 200, bounded by `timeout` seconds.

    Raises HarnessError at once if the process exits, or when the time is up.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_error = "no answer yet"
    own_client = client is None
    http = client or httpx.Client(timeout=2.0)
    try:
        while time.monotonic() < deadline:
            if not proc.is_running():
                raise HarnessError(
                    f"{proc.name} exited with status {proc.returncode()} before {url} "
                    f"answered.\n--- {proc.log_path}:\n{proc.log_tail()}"
                )
            try:
                response = http.get(url)
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    finally:
        if own_client:
            http.close()
    raise HarnessError(
        f"{proc.name} did not answer 200 on {url} within {timeout:.0f}s ({last_error}).\n"
        f"--- {proc.log_path}:\n{proc.log_tail()}"
    )


def render_nginx_config(*, prefix: Path, listen_port: int, upstream_ports: Sequence[int]) -> str:
    """nginx.conf for a loopback load balancer in front of `upstream_ports`.

    Runs in the foreground (`daemon off`) with every path under `prefix`. A dead
    upstream (connection refused) is skipped and the request retried on the next one;
    nginx never retries a POST that already reached an upstream.
    """
    if not upstream_ports:
        raise ValueError("the load balancer needs at least one upstream port")
    servers = "\n".join(
        f"        server {LOOPBACK}:{port} max_fails=1 fail_timeout=2s;" for port in upstream_ports
    )
    return f"""\
# Generated by deploy/harness/scaleout.py; loopback only.
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 2m;

    upstream cartwheel_api {{
        least_conn;
{servers}
        keepalive 64;
    }}

    server {{
        listen {LOOPBACK}:{listen_port} backlog=1024;

        location / {{
            proxy_pass http://cartwheel_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


def check_nginx_config(conf: Path, *, prefix: Path, nginx: str = NGINX) -> None:
    """Run `nginx -t` on `conf`; raises HarnessError with nginx's message when it fails."""
    proc = subprocess.run(
        [nginx, "-t", "-q", "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(f"nginx -t rejected {conf}:\n{proc.stderr or proc.stdout}")


@dataclass(frozen=True)
class HarnessConfig:
    """What to start. `database_url=None` starts a private PostgreSQL cluster and
    `redis_url=None` a private redis-server, each on a free loopback port, which fault
    tests can stop and start."""

    database_url: str | None = None
    redis_url: str | None = None
    api_processes: int = 2
    workers: int = 2
    api_command: Sequence[str] = DEFAULT_API_COMMAND
    worker_command: Sequence[str] = DEFAULT_WORKER_COMMAND
    ingesters: int = 1
    ingest_command: Sequence[str] = DEFAULT_INGEST_COMMAND
    migrate_command: Sequence[str] | None = DEFAULT_MIGRATE_COMMAND
    """None: the database is already migrated (or the API command needs no database)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for API processes and workers (e.g. CARTWHEEL_* limits)."""
    workdir: Path | None = None
    """Logs, nginx prefix, module cache. None: a fresh temp dir, removed by stop()."""
    lb_port: int | None = None
    startup_timeout: float = 60.0
    stop_timeout: float = 20.0
    wait_for_workers: bool = True
    """Wait until every worker has registered with RQ (needs RQ workers)."""
    redis_appendonly: bool = False
    """Run the harness's own Redis with `appendonly yes`, as production does (the Compose
    file): whatever it acknowledged survives `stop_redis` (a SIGKILL) and is there again
    after `start_redis`. False: it restarts empty."""
    nginx: str = NGINX

    def __post_init__(self) -> None:
        if self.api_processes < 1:
            raise ValueError("api_processes must be at least 1")
        if self.workers < 0:
            raise ValueError("workers must be 0 or more")
        if self.ingesters < 0:
            raise ValueError("ingesters must be 0 or more")
        if self.database_url is not None:
            _require_loopback_url("database_url", self.database_url)
        if self.redis_url is not None:
            _require_loopback_url("redis_url", self.redis_url)


class Harness:
    """Starts, watches and stops the local scale-out topology. Use as a context manager."""

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self._own_workdir = config.workdir is None
        self.workdir = Path(config.workdir or tempfile.mkdtemp(prefix="cartwheel-harness-"))
        self.lb_port = config.lb_port or free_port()
        self.api_ports = [free_port() for _ in range(config.api_processes)]
        self.redis_port = free_port() if config.redis_url is None else None
        self.redis_url = config.redis_url or f"redis://{LOOPBACK}:{self.redis_port}/0"
        self.postgres_port = free_port() if config.database_url is None else None
        self.database_url = config.database_url or (
            f"postgresql+psycopg://{POSTGRES_USER}@{LOOPBACK}:{self.postgres_port}/"
            f"{POSTGRES_DB}?connect_timeout=3"
        )
        self.postgres_dir = self.workdir / "postgres"
        self.module_cache_dir = self.workdir / "module-cache"
        self.nginx_prefix = self.workdir / "nginx"
        self.nginx_conf = self.nginx_prefix / "nginx.conf"
        env = self.process_env()
        self.apis = [
            ManagedProcess(
                name=f"api-{i}",
                argv=self._argv(config.api_command, index=i, port=port),
                env=env,
                log_path=self.workdir / "logs" / f"api-{i}.log",
                cwd=self.workdir,
            )
            for i, port in enumerate(self.api_ports)
        ]
        self.workers = [
            ManagedProcess(
                name=f"worker-{i}",
                argv=self._argv(config.worker_command, index=i, port=None),
                env=env,
                log_path=self.workdir / "logs" / f"worker-{i}.log",
                cwd=self.workdir,
            )
            for i in range(config.workers)
        ]
        self.ingesters = [
            ManagedProcess(
                name=f"ingest-{i}",
                argv=self._argv(config.ingest_command, index=i, port=None),
                env=env,
                log_path=self.workdir / "logs" / f"ingest-{i}.log",
                cwd=self.workdir,
            )
            for i in range(config.ingesters)
        ]
        self.lb = ManagedProcess(
            name="nginx",
            argv=[
                config.nginx,
                "-e",
                str(self.nginx_prefix / "error.log"),
                "-p",
                str(self.nginx_prefix),
                "-c",
                str(self.nginx_conf),
            ],
            env=dict(os.environ),
            log_path=self.workdir / "logs" / "nginx.log",
        )
        self.redis: ManagedProcess | None = None
        if self.redis_port is not None:
            self.redis = ManagedProcess(
                name="redis",
                argv=[
                    REDIS_SERVER,
                    "--bind",
                    LOOPBACK,
                    "--port",
                    str(self.redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "yes" if config.redis_appendonly else "no",
                    "--dir",
                    str(self.workdir),
                ],
                env=dict(os.environ),
                log_path=self.workdir / "logs" / "redis.log",
            )
        self.postgres: ManagedProcess | None = None
        if self.postgres_port is not None:
            self.postgres = ManagedProcess(
                name="postgres",
                argv=[
                    str(postgres_bindir() / "postgres"),
                    "-D",
                    str(self.postgres_dir / "data"),
                    "-p",
                    str(self.postgres_port),
                    "-k",
                    str(self.postgres_dir),
                    "-c",
                    f"listen_addresses={LOOPBACK}",
                    "-c",
                    "max_connections=300",
                ],
                env=dict(os.environ),
                log_path=self.workdir / "logs" / "postgres.log",
                user=POSTGRES_USER if os.geteuid() == 0 else None,
            )
        self._started = False

    # ---- addresses -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The load balancer's base URL (what clients use)."""
        return f"http://{LOOPBACK}:{self.lb_port}"

    def api_url(self, index: int) -> str:
        """One API process's own base URL, bypassing the load balancer."""
        return f"http://{LOOPBACK}:{self.api_ports[index]}"

    def process_env(self) -> dict[str, str]:
        """The environment every API process and worker gets."""
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "CARTWHEEL_DATA_DIR": str(self.workdir / "data"),
                # One cache for all processes: they stand for the processes of one node.
                "CARTWHEEL_MODULE_CACHE_DIR": str(self.module_cache_dir),
            }
        )
        env.update(self.config.env)
        return env

    def _argv(self, template: Sequence[str], *, index: int, port: int | None) -> list[str]:
        values = {
            "cartwheel": str(BIN_DIR / "cartwheel"),
            "python": sys.executable,
            "host": LOOPBACK,
            "port": "" if port is None else str(port),
            "index": str(index),
            "redis_url": self.redis_url,
        }
        return [part.format(**values) for part in template]

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> Harness:
        """Start Redis (if owned), the API processes, nginx and the workers; wait for health.

        On any failure everything already started is stopped and HarnessError raised.
        """
        if self._started:
            raise HarnessError("the harness is already started")
        self._started = True
        try:
            for path in (self.workdir / "logs", self.workdir / "data", self.module_cache_dir):
                path.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                # nginx's workers (nobody) and PostgreSQL (postgres) must reach their dirs.
                self.workdir.chmod(0o755)
            if self.postgres is not None:
                self._init_postgres()
            if self.redis is not None:
                self.start_redis()
            if self.config.migrate_command is not None:
                self.migrate()
            for i in range(len(self.apis)):
                self.apis[i].start()
            for i in range(len(self.apis)):
                self._wait_api(i)
            self._start_lb()
            for worker in self.workers:
                worker.start()
            for ingester in self.ingesters:
                ingester.start()
            if self.workers and self.config.wait_for_workers:
                self._wait_workers_registered(self.workers)
            self._wait_ingesters_ready(self.ingesters)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything, in the order a rolling shutdown would: LB, API, workers, Redis.

        Each process gets SIGTERM and `stop_timeout` seconds, then SIGKILL. Idempotent.
        """
        timeout = self.config.stop_timeout
        self.lb.stop(timeout=timeout, sig=signal.SIGQUIT)
        for api in self.apis:
            api.send_signal(signal.SIGTERM)
        for api in self.apis:
            api.stop(timeout=timeout)
        # Ingesters after the API processes, which flush their run logs at shutdown.
        for proc in (*self.ingesters, *self.workers):
            proc.send_signal(signal.SIGTERM)
        for proc in (*self.ingesters, *self.workers):
            proc.stop(timeout=timeout)
        if self.redis is not None:
            self.redis.stop(timeout=timeout)
        if self.postgres is not None:
            self.postgres.stop(timeout=timeout, sig=POSTGRES_STOP_SIGNALS["fast"])
        self._started = False
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def processes(self) -> Iterator[ManagedProcess]:
        """Every managed process (running or not)."""
        yield self.lb
        yield from self.apis
        yield from self.workers
        yield from self.ingesters
        if self.redis is not None:
            yield self.redis
        if self.postgres is not None:
            yield self.postgres

    def migrate(self) -> None:
        """Run the migrate command to completion (bounded by `startup_timeout`).

        Raises HarnessError with the command's output when it fails or times out.
        """
        assert self.config.migrate_command is not None
        proc = ManagedProcess(
            name="migrate",
            argv=self._argv(self.config.migrate_command, index=0, port=None),
            env=self.process_env(),
            log_path=self.workdir / "logs" / "migrate.log",
            cwd=self.workdir,
        )
        proc.start()
        assert proc.popen is not None
        try:
            status = proc.popen.wait(timeout=self.config.startup_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise HarnessError(
                f"migrate did not finish within {self.config.startup_timeout:.0f}s.\n"
                f"--- {proc.log_path}:\n{proc.log_tail()}"
            ) from None
        if status != 0:
            raise HarnessError(
                f"migrate exited with status {status}.\n--- {proc.log_path}:\n{proc.log_tail()}"
            )

    # ---- fault helpers -------------------------------------------------------------

    def kill_api(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to API process `index` (SIGKILL: a crash; SIGTERM: a graceful stop)
        and wait for it to exit."""
        api = self.apis[index]
        if sig == signal.SIGKILL:
            api.kill()
        else:
            api.stop(timeout=self.config.stop_timeout, sig=sig)

    def start_api(self, index: int) -> None:
        """Start API process `index` again on its own port and wait for /healthz."""
        self.apis[index].start()
        self._wait_api(index)

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to worker `index` and wait for it to exit."""
        worker = self.workers[index]
        if sig == signal.SIGKILL:
            worker.kill()
        else:
            worker.stop(timeout=self.config.stop_timeout, sig=sig)

    def start_worker(self, index: int) -> None:
        """Start worker `index` again and, with `wait_for_workers`, wait until it registers."""
        self.workers[index].start()
        if self.config.wait_for_workers:
            self._wait_workers_registered([self.workers[index]])

    def kill_ingester(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to run-log ingester `index` and wait for it to exit."""
        ingester = self.ingesters[index]
        if sig == signal.SIGKILL:
            ingester.kill()
        else:
            ingester.stop(timeout=self.config.stop_timeout, sig=sig)

    def start_ingester(self, index: int) -> None:
        """Start run-log ingester `index` again."""
        self.ingesters[index].start()
        self._wait_ingesters_ready([self.ingesters[index]])

    def runlog_backlog(self) -> int:
        """Run records not yet in PostgreSQL: the Redis queue plus every ingester's
        processing list (what load tests wait on before counting run logs)."""
        from redis import Redis

        from cartwheel.runlog import PROCESSING_PREFIX, QUEUE_KEY

        with Redis.from_url(self.redis_url, socket_timeout=5) as conn:
            total = int(conn.llen(QUEUE_KEY))
            for key in conn.scan_iter(match=PROCESSING_PREFIX + "*"):
                total += int(conn.llen(key))
        return total

    def wait_runlogs_drained(self, timeout: float = 60.0, settle: float = 1.0) -> None:
        """Wait until `runlog_backlog()` is 0 and has stayed 0 for `settle` seconds,
        bounded by `timeout` seconds. The settle time covers records still in an API
        process's writer (delivered every `cartwheel.runlog.FLUSH_INTERVAL_S`), which
        the backlog cannot see.

        Raises HarnessError with the backlog left (and the ingesters' state) on timeout.
        """
        deadline = time.monotonic() + timeout
        empty_since: float | None = None
        while True:
            backlog = self.runlog_backlog()
            now = time.monotonic()
            if backlog == 0:
                empty_since = empty_since if empty_since is not None else now
                if now - empty_since >= settle:
                    return
            else:
                empty_since = None
            if now >= deadline:
                states = ", ".join(
                    f"{p.name}: {'running' if p.is_running() else p.returncode()}"
                    for p in self.ingesters
                )
                raise HarnessError(
                    f"{backlog} run records still in Redis after {timeout:.0f}s "
                    f"(ingesters: {states or 'none'})"
                )
            time.sleep(0.1)

    def stop_redis(self) -> None:
        """Stop the harness's own redis-server with SIGKILL: nothing is saved, except the
        append-only file with `redis_appendonly` (every acknowledged write is in it)."""
        self._owned_redis().kill()

    def start_redis(self) -> None:
        """Start the harness's own redis-server (empty, or from its append-only file with
        `redis_appendonly`) and wait until it answers PING (and has loaded the file)."""
        redis_proc = self._owned_redis()
        redis_proc.start()
        assert self.redis_port is not None
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if not redis_proc.is_running():
                raise HarnessError(f"redis-server exited:\n{redis_proc.log_tail()}")
            if _redis_ping(self.redis_port):
                return
            time.sleep(0.05)
        raise HarnessError(f"redis-server did not answer PING:\n{redis_proc.log_tail()}")

    def stop_postgres(self, mode: str = "fast") -> None:
        """Stop the harness's own PostgreSQL: `fast` (clients disconnected, clean),
        `immediate` or `crash` (SIGKILL of every backend; recovery at the next start)."""
        if mode not in POSTGRES_STOP_SIGNALS:
            raise ValueError(f"mode must be one of {sorted(POSTGRES_STOP_SIGNALS)}, got {mode!r}")
        postgres = self._owned_postgres()
        if mode == "crash":
            postgres.kill()
        else:
            postgres.stop(timeout=self.config.stop_timeout, sig=POSTGRES_STOP_SIGNALS[mode])

    def start_postgres(self) -> None:
        """Start the harness's own PostgreSQL and wait until it accepts connections."""
        import psycopg

        postgres = self._owned_postgres()
        postgres.start()
        assert self.postgres_port is not None
        deadline = time.monotonic() + self.config.startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not postgres.is_running():
                raise HarnessError(
                    f"postgres exited with status {postgres.returncode()}.\n"
                    f"--- {postgres.log_path}:\n{postgres.log_tail()}"
                )
            try:
                with psycopg.connect(
                    host=LOOPBACK,
                    port=self.postgres_port,
                    user=POSTGRES_USER,
                    dbname="postgres",
                    connect_timeout=1,
                ):
                    return
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            time.sleep(0.1)
        raise HarnessError(
            f"postgres did not accept connections within {self.config.startup_timeout:.0f}s "
            f"({last_error}).\n--- {postgres.log_path}:\n{postgres.log_tail()}"
        )

    def _owned_postgres(self) -> ManagedProcess:
        if self.postgres is None:
            raise HarnessError(
                "this harness uses an external PostgreSQL (database_url was given); "
                "pass database_url=None to let the harness run one it can stop"
            )
        return self.postgres

    def _init_postgres(self) -> None:
        """initdb a fresh cluster (trust auth, loopback), start it, create POSTGRES_DB."""
        import psycopg

        postgres = self._owned_postgres()
        bindir = Path(postgres.argv[0]).parent
        self.postgres_dir.mkdir(parents=True, exist_ok=True)
        if postgres.user is not None:
            shutil.chown(self.postgres_dir, user=postgres.user, group=postgres.user)
        initdb = ManagedProcess(
            name="initdb",
            argv=[
                str(bindir / "initdb"),
                "-D",
                str(self.postgres_dir / "data"),
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            env=dict(os.environ),
            log_path=self.workdir / "logs" / "initdb.log",
            user=postgres.user,
        )
        initdb.start()
        assert initdb.popen is not None
        try:
            status = initdb.popen.wait(timeout=self.config.startup_timeout)
        except subprocess.TimeoutExpired:
            initdb.kill()
            status = None
        if status != 0:
            raise HarnessError(f"initdb failed ({status}):\n{initdb.log_tail()}")
        self.start_postgres()
        with psycopg.connect(
            host=LOOPBACK,
            port=self.postgres_port,
            user=POSTGRES_USER,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{POSTGRES_DB}"')

    def _owned_redis(self) -> ManagedProcess:
        if self.redis is None:
            raise HarnessError(
                "this harness uses an external Redis (redis_url was given); "
                "pass redis_url=None to let the harness run one it can stop"
            )
        return self.redis

    # ---- internals -----------------------------------------------------------------

    def _wait_api(self, index: int) -> None:
        wait_until_healthy(
            self.apis[index],
            self.api_url(index) + HEALTH_PATH,
            timeout=self.config.startup_timeout,
        )

    def _start_lb(self) -> None:
        self.nginx_prefix.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # nginx's workers drop to `nobody`: they must be able to reach the prefix.
            self.nginx_prefix.chmod(0o755)
        self.nginx_conf.write_text(
            render_nginx_config(
                prefix=self.nginx_prefix, listen_port=self.lb_port, upstream_ports=self.api_ports
            )
        )
        check_nginx_config(self.nginx_conf, prefix=self.nginx_prefix, nginx=self.config.nginx)
        self.lb.start()
        wait_until_healthy(self.lb, self.url + HEALTH_PATH, timeout=self.config.startup_timeout)

    def _check_still_running(self, procs: Sequence[ManagedProcess], grace: float = 1.0) -> None:
        """Processes without a readiness signal: fail if any exits within `grace` seconds
        (a configuration error shows up at once)."""
        deadline = time.monotonic() + grace
        while True:
            for proc in procs:
                if not proc.is_running():
                    raise HarnessError(
                        f"{proc.name} exited with status {proc.returncode()}.\n"
                        f"--- {proc.log_path}:\n{proc.log_tail()}"
                    )
            if not procs or time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def _wait_ingesters_ready(self, ingesters: Sequence[ManagedProcess]) -> None:
        """Wait until each ingester has set its heartbeat in Redis, which it does once
        its signal handlers are installed: a SIGTERM before that would end it with -15
        instead of a drained exit. Ingesters with a non-default command are only
        checked to stay up (they may set no heartbeat)."""
        if tuple(self.config.ingest_command) != DEFAULT_INGEST_COMMAND:
            self._check_still_running(ingesters)
            return
        from redis import Redis

        from cartwheel.runlog import HEARTBEAT_PREFIX

        host = socket.gethostname()
        deadline = time.monotonic() + self.config.startup_timeout
        with Redis.from_url(self.redis_url) as conn:
            while time.monotonic() < deadline:
                waiting = []
                for ingester in ingesters:
                    if not ingester.is_running():
                        raise HarnessError(
                            f"{ingester.name} exited with status {ingester.returncode()}.\n"
                            f"--- {ingester.log_path}:\n{ingester.log_tail()}"
                        )
                    if not conn.exists(f"{HEARTBEAT_PREFIX}{host}:{ingester.pid}"):
                        waiting.append(ingester)
                if not waiting:
                    return
                time.sleep(0.1)
        raise HarnessError(
            f"run-log ingesters did not start consuming from {self.redis_url} within "
            f"{self.config.startup_timeout:.0f}s"
        )

    def _wait_workers_registered(self, workers: Sequence[ManagedProcess]) -> None:
        from redis import Redis
        from rq import Worker

        pids = {w.pid for w in workers}
        deadline = time.monotonic() + self.config.startup_timeout
        with Redis.from_url(self.redis_url) as conn:
            while time.monotonic() < deadline:
                for worker in workers:
                    if not worker.is_running():
                        raise HarnessError(
                            f"{worker.name} exited with status {worker.returncode()}.\n"
                            f"--- {worker.log_path}:\n{worker.log_tail()}"
                        )
                registered = {w.pid for w in Worker.all(connection=conn)}
                if pids <= registered:
                    return
                time.sleep(0.1)
        raise HarnessError(
            f"workers did not register with RQ on {self.redis_url} within "
            f"{self.config.startup_timeout:.0f}s"
        )


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scaleout.py",
        description="Run N Cartwheel API processes behind nginx plus M RQ workers on loopback.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the topology and keep it running")
    up.add_argument("--api", type=int, default=2, help="API processes (default 2)")
    up.add_argument("--workers", type=int, default=2, help="RQ workers (default 2)")
    up.add_argument("--ingesters", type=int, default=1, help="run-log ingesters (default 1)")
    up.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or None,
        help="SQLAlchemy URL on loopback (default: $DATABASE_URL, else a private PostgreSQL)",
    )
    up.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        help="Redis URL on loopback (default: $REDIS_URL, else a private redis-server)",
    )
    up.add_argument("--lb-port", type=int, default=None, help="load balancer port (default: free)")
    up.add_argument(
        "--api-command",
        default=None,
        help="override the API command (shell words; placeholders {cartwheel} {host} {port})",
    )
    up.add_argument("--worker-command", default=None, help="override the worker command")
    up.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not run `cartwheel db upgrade` first (the database is already migrated)",
    )
    up.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: never)"
    )
    up.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: temp)")
    args = parser.parse_args(argv)

    config = HarnessConfig(
        database_url=args.database_url,
        redis_url=args.redis_url,
        api_processes=args.api,
        workers=args.workers,
        ingesters=args.ingesters,
        lb_port=args.lb_port,
        api_command=(
            tuple(shlex.split(args.api_command)) if args.api_command else DEFAULT_API_COMMAND
        ),
        worker_command=(
            tuple(shlex.split(args.worker_command))
            if args.worker_command
            else DEFAULT_WORKER_COMMAND
        ),
        migrate_command=None if args.no_migrate else DEFAULT_MIGRATE_COMMAND,
        workdir=args.workdir,
    )
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    harness = Harness(config)
    with harness:
        print(
            json.dumps(
                {
                    "url": harness.url,
                    "api": [
                        {"url": harness.api_url(i), "pid": p.pid}
                        for i, p in enumerate(harness.apis)
                    ],
                    "workers": [p.pid for p in harness.workers],
                    "ingesters": [p.pid for p in harness.ingesters],
                    "redis_url": harness.redis_url,
                    "database_url": harness.database_url,
                    "workdir": str(harness.workdir),
                }
            ),
            flush=True,
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        reported: set[str] = set()
        while not stopping and (deadline is None or time.monotonic() < deadline):
            for proc in harness.processes():
                if proc.name not in reported and proc.returncode() is not None:
                    reported.add(proc.name)
                    print(f"{proc.name} exited with status {proc.returncode()}", file=sys.stderr)
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
