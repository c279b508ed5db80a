"""Deploys through a real `cartwheel worker` process (RQ) on real Redis and PostgreSQL.

- upload → pending → the worker prepares the version → ready → activate;
- a worker SIGKILLed in the middle of the job leaves the version pending and inactive;
  once RQ finds the job abandoned it is retried and the version becomes ready;
- without Redis the same pipeline runs inline and yields the same version.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.jobs import DEPLOY_JOB_ID_PREFIX, DEPLOY_JOB_RETRIES, DEPLOY_QUEUE
from cartwheel.settings import Settings
from cartwheel.tenancy import create_shop, issue_token

ROOT = Path(__file__).resolve().parents[2]
CARTWHEEL = str(Path(sys.executable).parent / "cartwheel")
EXAMPLE = ROOT / "examples" / "discount-function"
TARGET = "cart.lines.discounts.generate.run"

DEPLOY = """
mutation($wasm: Upload!, $input: FunctionDeployInput!) {
  functionDeploy(wasm: $wasm, input: $input) {
    created version { id status active abi contentSha256 moduleSha256 errorCode } } }
"""
VERSION = "query($id: ID!) { functionVersion(id: $id) { status active errorCode } }"
ACTIVATE = """mutation($id: ID!) { functionActivateVersion(versionId: $id)
  { activeVersion { id status } } }"""

# The worker under test, with one fault injected: the smoke run announces itself and
# hangs, so the test can kill the worker while the job is provably half-way through.
HANGING_WORKER = """
import sys, time
from pathlib import Path
import cartwheel.deploy

marker = Path(sys.argv[1])

def hanging_run(*args, **kwargs):
    marker.write_text("smoke run started")
    time.sleep(600)

cartwheel.deploy.run = hanging_run
from cartwheel.cli import main
main(["worker", "--burst"])
"""


@dataclass
class Env:
    client: AppClient
    token: str
    settings: Settings
    worker_env: dict[str, str]
    redis_url: str

    def gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        body: dict[str, Any] = response.json()
        return body

    def deploy(self) -> dict[str, Any]:
        return deploy_example(self.client, self.token)


def deploy_example(client: AppClient, token: str) -> dict[str, Any]:
    variables = {
        "wasm": None,
        "input": {
            "handle": "tiered-vip-discount",
            "title": "Tiered VIP discount",
            "target": TARGET,
            "inputQuery": (EXAMPLE / "input.graphql").read_text(),
            "inputVariables": {"namespace": "cartwheel", "key": "function-configuration"},
        },
    }
    response = client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": DEPLOY, "variables": variables}),
            "map": json.dumps({"0": ["variables.wasm"]}),
        },
        files={"0": ("f.wasm", (EXAMPLE / "discount-function.wasm").read_bytes())},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["functionDeploy"]
    return result


def new_token(database_url: str, handle: str) -> str:
    engine = make_engine(Settings(database_url=database_url))
    with session_factory(engine)() as session:
        shop = create_shop(session, handle=handle, name=handle)
        token = issue_token(session, shop.id, ["admin"])[1]
        session.commit()
    engine.dispose()
    return token


@pytest.fixture
def env(migrated_pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=migrated_pg_url,
        redis_url=redis_url,
        module_cache_dir=tmp_path / "cache",
    )
    worker_env = {
        **os.environ,
        "DATABASE_URL": migrated_pg_url,
        "REDIS_URL": redis_url,
        "CARTWHEEL_DATA_DIR": str(tmp_path),
        "CARTWHEEL_MODULE_CACHE_DIR": str(tmp_path / "cache"),
    }
    token = new_token(migrated_pg_url, "worker-shop")
    with AppClient(create_app(settings)) as client:
        yield Env(client, token, settings, worker_env, redis_url)


def run_worker(env: Env, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARTWHEEL, "worker", "--burst"],
        env=env.worker_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_deploy_through_a_real_worker(env: Env, tmp_path: Path) -> None:
    deployed = env.deploy()
    version = deployed["version"]
    assert version["status"] == "PENDING"  # Redis configured: the job waits for a worker
    not_yet = env.gql(ACTIVATE, {"id": version["id"]})["errors"][0]
    assert not_yet["extensions"]["code"] == "VERSION_NOT_READY"

    worker = run_worker(env, tmp_path)
    assert worker.returncode == 0, worker.stderr
    assert "Job OK" in worker.stderr or "Successfully completed" in worker.stderr, worker.stderr

    status = env.gql(VERSION, {"id": version["id"]})["data"]["functionVersion"]
    assert status == {"status": "READY", "active": False, "errorCode": None}
    activated = env.gql(ACTIVATE, {"id": version["id"]})["data"]["functionActivateVersion"]
    assert activated["activeVersion"] == {"id": version["id"], "status": "READY"}
    # Deploying the same content again is the same version, and queues nothing.
    again = env.deploy()
    assert again["created"] is False
    assert again["version"]["id"] == version["id"]
    assert Queue(DEPLOY_QUEUE, connection=redis.Redis.from_url(env.redis_url)).count == 0


def test_worker_killed_mid_job_leaves_the_version_inactive_and_the_retry_succeeds(
    env: Env, tmp_path: Path
) -> None:
    version = env.deploy()["version"]
    marker = tmp_path / "smoke-run-started"
    worker = subprocess.Popen(
        [sys.executable, "-c", HANGING_WORKER, str(marker)],
        env=env.worker_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the worker and its work horse
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert worker.poll() is None, "the worker exited before the job started"
            assert time.monotonic() < deadline, "the job never reached its smoke run"
            time.sleep(0.05)
    finally:
        # The machine dies: the worker and its work horse, with no chance to clean up.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    # Half-way through (precompiled, smoke run started): still pending, never active.
    status = env.gql(VERSION, {"id": version["id"]})["data"]["functionVersion"]
    assert status == {"status": "PENDING", "active": False, "errorCode": None}
    refused = env.gql(ACTIVATE, {"id": version["id"]})["errors"][0]
    assert refused["extensions"]["code"] == "VERSION_NOT_READY"

    connection = redis.Redis.from_url(env.redis_url)
    queue = Queue(DEPLOY_QUEUE, connection=connection)
    job_id = DEPLOY_JOB_ID_PREFIX + version["id"].rsplit("/", 1)[1]
    registry = StartedJobRegistry(queue=queue)
    assert job_id in [j.split(":")[0] for j in registry.get_job_ids(cleanup=False)]
    # RQ's maintenance (run by every live worker) requeues a job whose worker stopped
    # heartbeating once the heartbeat TTL (≥ 60 s) has passed; move its clock past it.
    registry.cleanup(timestamp=time.time() + 3_600)
    job = Job.fetch(job_id, connection=connection)
    assert job.get_status() == "queued"
    assert job.retries_left == DEPLOY_JOB_RETRIES - 1

    retry = run_worker(env, tmp_path)
    assert retry.returncode == 0, retry.stderr
    status = env.gql(VERSION, {"id": version["id"]})["data"]["functionVersion"]
    assert status == {"status": "READY", "active": False, "errorCode": None}
    activated = env.gql(ACTIVATE, {"id": version["id"]})["data"]["functionActivateVersion"]
    assert activated["activeVersion"]["id"] == version["id"]


def test_inline_pipeline_gives_the_same_version(env: Env, tmp_path: Path) -> None:
    queued = env.deploy()["version"]
    assert run_worker(env, tmp_path).returncode == 0
    via_worker = env.gql(
        "query($id: ID!) { functionVersion(id: $id) { status abi contentSha256 moduleSha256 "
        "errorCode } }",
        {"id": queued["id"]},
    )["data"]["functionVersion"]

    # Another shop, same content, no Redis: the job runs inside the mutation.
    inline_settings = Settings(
        data_dir=tmp_path / "inline",
        database_url=env.settings.database_url,
        module_cache_dir=tmp_path / "inline-cache",
    )
    token = new_token(env.settings.database_url, "inline-shop")
    with AppClient(create_app(inline_settings)) as client:
        inline = deploy_example(client, token)["version"]
    assert inline["status"] == "READY"
    assert {k: inline[k] for k in via_worker} == via_worker
    assert list((tmp_path / "inline-cache").rglob("*")), "inline precompile wrote no artifact"


def test_a_version_has_one_live_job(env: Env, tmp_path: Path) -> None:
    first = env.deploy()["version"]
    again = env.deploy()
    assert again["created"] is False
    assert again["version"]["status"] == "PENDING"
    queue = Queue(DEPLOY_QUEUE, connection=redis.Redis.from_url(env.redis_url))
    assert queue.count == 1  # the identical deploy found the queued job, added none
    assert run_worker(env, tmp_path).returncode == 0
    status = env.gql(VERSION, {"id": first["id"]})["data"]["functionVersion"]
    assert status["status"] == "READY"


def test_redis_down_at_enqueue_keeps_the_version_and_a_redeploy_queues_it(
    env: Env, tmp_path: Path
) -> None:
    down = Settings(
        data_dir=tmp_path / "down",
        database_url=env.settings.database_url,
        redis_url="redis://127.0.0.1:1/0",  # nothing listens there
        module_cache_dir=tmp_path / "cache",
    )
    with AppClient(create_app(down)) as client:
        response = client.post(
            "/graphql",
            data={
                "operations": json.dumps(
                    {
                        "query": DEPLOY,
                        "variables": {
                            "wasm": None,
                            "input": {
                                "handle": "tiered-vip-discount",
                                "title": "Tiered VIP discount",
                                "target": TARGET,
                                "inputQuery": (EXAMPLE / "input.graphql").read_text(),
                                "inputVariables": {
                                    "namespace": "cartwheel",
                                    "key": "function-configuration",
                                },
                            },
                        },
                    }
                ),
                "map": json.dumps({"0": ["variables.wasm"]}),
            },
            files={"0": ("f.wasm", (EXAMPLE / "discount-function.wasm").read_bytes())},
            headers={"Authorization": f"Bearer {env.token}"},
        )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUEUE_UNAVAILABLE"
    assert "Deploy the same content again" in error["message"]
    # Redis is back: the identical deploy finds the pending version and queues its job.
    again = env.deploy()
    assert again["created"] is False
    assert again["version"]["status"] == "PENDING"
    assert run_worker(env, tmp_path).returncode == 0
    status = env.gql(VERSION, {"id": again["version"]["id"]})["data"]["functionVersion"]
    assert status["status"] == "READY"
