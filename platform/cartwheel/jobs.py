"""Background jobs on RQ: the deploy queue and its job functions.

A deploy's slow half (precompile + smoke run, `cartwheel.deploy.prepare_version`) runs
as the job `prepare_version_job` on the `cartwheel-deploy` queue, picked up by
`cartwheel worker`. Jobs are retried (`DEPLOY_JOB_RETRIES`): a job that raised, or whose
worker died mid-job (RQ finds it abandoned in the started registry and requeues it),
runs again from the start. That is safe because the job is idempotent and commits its
outcome in one transaction at the very end: a version is `pending` until then, and only
a `ready` version can ever be activated.

The job runs in a worker process that has no app: it builds its own engine from the
environment (`Settings.from_env()`), once per process (RQ forks a work horse per job, so
"once" is per job there; an engine never crosses a fork).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cartwheel.errors import PlatformError
from cartwheel.settings import Settings

logger = logging.getLogger(__name__)

DEPLOY_QUEUE = "cartwheel-deploy"
"""Queue of deploy jobs (precompile + smoke run of new versions)."""

WORKER_QUEUES: tuple[str, ...] = (DEPLOY_QUEUE,)
"""Queues `cartwheel worker` listens to by default, in priority order."""

DEPLOY_JOB_RETRIES = 3
"""Attempts after the first before a deploy job is given up (the version is then failed)."""

DEPLOY_JOB_TIMEOUT_S = 300
"""Longest a deploy job may run (compiling a 256 kB module takes well under a second)."""

DEPLOY_JOB_ID_PREFIX = "cartwheel-prepare-version-"
"""Job ids are derived from the version id, so a version is never queued twice."""


def deploy_queue(redis: Redis) -> Queue:
    """The deploy queue on `redis`."""
    return Queue(DEPLOY_QUEUE, connection=redis)


class QueueUnavailableError(PlatformError):
    """Redis did not take a job; nothing was lost, the caller may retry."""

    code = "QUEUE_UNAVAILABLE"
    http_status = 503


ACTIVE_JOB_STATES = frozenset(
    {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
)
"""Job states in which a job will still run: no second job is queued for its version."""


def enqueue_prepare_version(queue: Queue, shop_id: int, version_id: int) -> Job:
    """Queue the precompile + smoke run of version `version_id` (with retries), unless
    its job is already queued or running: a version has at most one live job.

    Raises `QueueUnavailableError` (QUEUE_UNAVAILABLE) when Redis does not answer.
    """
    job_id = f"{DEPLOY_JOB_ID_PREFIX}{version_id}"
    try:
        try:
            existing = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            existing = None
        if existing is not None and existing.get_status(refresh=False) in ACTIVE_JOB_STATES:
            return existing
        return _enqueue(queue, shop_id, version_id, job_id)
    except RedisError as exc:
        raise QueueUnavailableError(
            f"The deploy queue is unavailable ({type(exc).__name__}); the version is saved "
            "as pending. Deploy the same content again to queue it once Redis is back.",
            version_id=version_id,
        ) from exc


def _enqueue(queue: Queue, shop_id: int, version_id: int, job_id: str) -> Job:
    return queue.enqueue(
        prepare_version_job,
        shop_id,
        version_id,
        job_id=job_id,
        retry=Retry(max=DEPLOY_JOB_RETRIES),
        job_timeout=DEPLOY_JOB_TIMEOUT_S,
        description=f"prepare function version {version_id}",
    )


@dataclass
class _WorkerState:
    pid: int
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]


_state: _WorkerState | None = None


def _worker_state() -> _WorkerState:
    global _state
    if _state is None or _state.pid != os.getpid():
        from cartwheel.db import make_engine, session_factory

        settings = Settings.from_env()
        engine = make_engine(settings)
        _state = _WorkerState(os.getpid(), settings, engine, session_factory(engine))
    return _state


def prepare_version_job(shop_id: int, version_id: int) -> str:
    """RQ job: run `cartwheel.deploy.prepare_version`; returns the version's status.

    When it raises and no retry is left, the version is marked failed
    (DEPLOY_JOB_FAILED) so it does not stay pending forever.
    """
    from cartwheel.deploy import mark_version_failed, prepare_version

    state = _worker_state()
    try:
        status = prepare_version(state.settings, state.session_factory, shop_id, version_id)
    except Exception as exc:
        job = get_current_job()
        if job is None or not job.retries_left:
            logger.exception("deploy job for version %s failed for good", version_id)
            mark_version_failed(
                state.session_factory,
                shop_id,
                version_id,
                "DEPLOY_JOB_FAILED",
                f"The deploy job failed on the platform side ({type(exc).__name__}); "
                "deploy again, and report it if it persists.",
            )
        raise
    return status.value
