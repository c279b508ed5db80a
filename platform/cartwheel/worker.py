"""`cartwheel worker`: an RQ worker for Cartwheel's queues.

Each job runs in a forked work horse (RQ's default), so a crashing job cannot take the
worker down. Jobs of a worker that died (killed, machine lost) are found abandoned in
RQ's started-job registry by the maintenance pass of any live worker once their
heartbeat expires, and retried (`cartwheel.jobs.DEPLOY_JOB_RETRIES`).
"""

from __future__ import annotations

import logging

import click
from redis import Redis
from rq import Queue, Worker

from cartwheel.jobs import WORKER_QUEUES

MAINTENANCE_INTERVAL_S = 60
"""Seconds between a worker's maintenance passes, which requeue the jobs of dead
workers. RQ's default (600 s) would leave a deploy whose worker died pending for up to
11 minutes; at 60 s it is retried within about 2.5 minutes of the death."""


def run_worker(
    redis_url: str,
    queues: tuple[str, ...] = WORKER_QUEUES,
    *,
    burst: bool = False,
    name: str | None = None,
    maintenance_interval_s: int = MAINTENANCE_INTERVAL_S,
) -> bool:
    """Work on `queues` until stopped (or, with `burst`, until they are empty).

    Returns whether any job was performed (RQ's `Worker.work` result).
    """
    # Import the job code once here: every forked work horse inherits it instead of
    # importing wasmtime, the Function APIs and the models again per job.
    import cartwheel.deploy  # noqa: F401

    connection = Redis.from_url(redis_url)
    try:
        worker = Worker(
            [Queue(q, connection=connection) for q in queues],
            connection=connection,
            name=name,
            maintenance_interval=maintenance_interval_s,
        )
        return bool(worker.work(burst=burst, logging_level="INFO"))
    finally:
        connection.close()


@click.command(name="worker")
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    required=True,
    help="Redis holding the queues [env: REDIS_URL].",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    default=WORKER_QUEUES,
    show_default=True,
    help="Queue to work on (repeatable), highest priority first.",
)
@click.option("--burst", is_flag=True, help="Quit once the queues are empty.")
@click.option("--name", default=None, help="Worker name (default: a random id chosen by RQ).")
@click.option(
    "--maintenance-interval",
    type=click.IntRange(min=1),
    default=MAINTENANCE_INTERVAL_S,
    show_default=True,
    help="Seconds between maintenance passes (requeue abandoned jobs, expire registries).",
)
def worker(
    redis_url: str,
    queues: tuple[str, ...],
    burst: bool,
    name: str | None,
    maintenance_interval: int,
) -> None:
    """Run background jobs: function deploys (precompile + smoke run).

    Needs the same DATABASE_URL / CARTWHEEL_* environment as the API server.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_worker(
        redis_url, queues, burst=burst, name=name, maintenance_interval_s=maintenance_interval
    )
