"""Serving the app on several worker processes, each with its own listening socket.

uvicorn's `--workers` has every process accept on one shared socket. Whichever process
wakes first accepts every pending connection in one go (asyncio and uvloop drain the
backlog), so a handful of long-lived keep-alive connections — a load balancer's upstream
pool, a load generator — can all land on one worker while the others idle: in
`benchmarks/bench_checkout.py` one of two workers held all 16 connections in some runs
(114 checkouts/s instead of about 300).

Here each worker binds its own socket to the same address with ``SO_REUSEPORT``, so the
kernel spreads new connections over the workers by a hash of their addresses (as
nginx's ``reuseport`` and gunicorn's ``--reuse-port`` do). The supervisor is the
parent process: it restarts a worker that dies, stops every worker gracefully on SIGTERM
or SIGINT (uvicorn's own shutdown in each: in-flight requests finish, the lifespan
flushes run logs), and gives up with an error when a worker dies before it ever served
(a bad configuration fails the same way on every restart).

Platforms without ``SO_REUSEPORT`` fall back to uvicorn's shared-socket supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from types import FrameType

import uvicorn

logger = logging.getLogger("uvicorn.error")

APP = "cartwheel.cli:app_from_env"
"""The factory every worker calls (it reads `Settings.from_env()`)."""

SHUTDOWN_TIMEOUT_S = 30.0
"""How long the supervisor waits for workers to finish after SIGTERM before SIGKILL."""

POLL_INTERVAL_S = 0.5
"""How often the supervisor checks its workers."""

EXIT_STARTUP_FAILURE = 3
"""The supervisor's exit status when workers keep failing to start."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What each worker serves: the address and uvicorn's logging options."""

    host: str
    port: int
    access_log: bool = False
    log_level: str = "info"


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` with ``SO_REUSEPORT`` (not yet listening).

    Raises `OSError` when the address cannot be bound (for example, a process without
    ``SO_REUSEPORT`` listens on it).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _config(options: ServeOptions) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        access_log=options.access_log,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, telling the supervisor once it listens (its lifespan startup,
    which opens the database, has run by then)."""

    def __init__(self, config: uvicorn.Config, ready: EventType) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._ready.set()


def _worker_main(options: ServeOptions, ready: EventType) -> None:
    """One worker process: uvicorn on its own ``SO_REUSEPORT`` socket."""
    config = _config(options)
    sock = reuse_port_socket(options.host, options.port)
    _Server(config, ready).run(sockets=[sock])


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    ready: EventType
    started_at: float


class Supervisor:
    """Runs `workers` uvicorn processes on one address, one socket each, and keeps them
    running until SIGTERM or SIGINT."""

    def __init__(self, options: ServeOptions, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.options = options
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._stop = threading.Event()

    def run(self) -> int:
        """Serve until asked to stop; returns the process exit status (0, or
        `EXIT_STARTUP_FAILURE` when workers died right after starting).

        Raises `OSError` when the address cannot be bound (checked before any worker
        starts, so the error is reported once).
        """
        _config(self.options)  # configures uvicorn's logging in this process too
        reuse_port_socket(self.options.host, self.options.port).close()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        logger.info(
            "Started parent process [%d]: %d workers on %s:%d, one SO_REUSEPORT socket each",
            os.getpid(),
            self.workers,
            self.options.host,
            self.options.port,
        )
        try:
            for _ in range(self.workers):
                self._workers.append(self._spawn())
            status = self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("Stopping parent process [%d]", os.getpid())
        return status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _spawn(self) -> _Worker:
        ready = self._context.Event()
        process = self._context.Process(
            target=_worker_main, args=(self.options, ready), name="cartwheel-worker"
        )
        process.start()
        return _Worker(process, ready, time.monotonic())

    def _watch(self) -> int:
        while not self._stop.wait(POLL_INTERVAL_S):
            for n, worker in enumerate(self._workers):
                process = worker.process
                if process.is_alive() or self._stop.is_set():
                    continue
                process.join()
                if not worker.ready.is_set():
                    # It never listened: a broken configuration (database URL, app
                    # import, address) fails the same way on every restart.
                    logger.error(
                        "Worker [%s] exited with status %s %.1f s after it started, before "
                        "it was serving: the configuration or the app is broken (see its "
                        "error above); stopping.",
                        process.pid,
                        process.exitcode,
                        time.monotonic() - worker.started_at,
                    )
                    return EXIT_STARTUP_FAILURE
                logger.warning(
                    "Worker [%s] died (status %s); starting a new one.",
                    process.pid,
                    process.exitcode,
                )
                self._workers[n] = self._spawn()
        return 0

    def _stop_all(self) -> None:
        processes = [w.process for w in self._workers]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("Worker [%s] did not stop in time; killing it.", process.pid)
                process.kill()
                process.join()


def serve_workers(options: ServeOptions, workers: int) -> int:
    """Serve `cartwheel.cli:app_from_env` on `workers` processes. Returns the exit
    status (see `Supervisor.run`)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(
            APP,
            factory=True,
            host=options.host,
            port=options.port,
            workers=workers,
            log_level=options.log_level,
            access_log=options.access_log,
        )
        return 0
    return Supervisor(options, workers).run()
