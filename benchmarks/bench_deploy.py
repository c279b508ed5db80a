"""Deploy latency: upload → READY for the example discount function.

Measures, in one run and on the same module:

- baseline: a plain wasmtime compile of the module (what any deploy must at least pay),
  and the runner's `load_module` (validation + compile);
- inline: `functionDeploy` through the real ASGI stack with no Redis, where the mutation
  returns once the version is READY (checks, version row, precompile to the module
  cache, smoke run);
- worker: `functionDeploy` with Redis, then polling `functionVersion` (every 20 ms, as
  a client would) until a running `cartwheel worker` (separate process, RQ fork per
  job) has made it READY;
- repeat: deploying identical content again (idempotent: no work, the same version).

Every deploy of the inline and worker series uses new bytes (a unique custom section is
appended to the module), so no deploy reuses an earlier deploy's compile. Within one
deploy, the compile of the synchronous module check is stored in the module cache and
the preparation step loads it from there.

Needs PostgreSQL and Redis as for the tests (CARTWHEEL_TEST_PG_URL,
CARTWHEEL_TEST_REDIS_URL). Run: .venv/bin/python benchmarks/bench_deploy.py
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
import wasmtime

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory, upgrade
from cartwheel.settings import Settings
from cartwheel.tenancy import create_shop, issue_token
from functions_sdk.runner import load_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "discount-function"
PG_ADMIN_URL = os.environ.get(
    "CARTWHEEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CARTWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
ROUNDS = 10

DEPLOY = """mutation($wasm: Upload!, $input: FunctionDeployInput!) {
  functionDeploy(wasm: $wasm, input: $input) { created version { id status } } }"""
STATUS = "query($id: ID!) { functionVersion(id: $id) { status errorCode } }"


def unique_module(wasm: bytes) -> bytes:
    """`wasm` plus a custom section with a random name: same code, new bytes."""
    name = f"bench-{uuid.uuid4().hex}".encode()
    payload = bytes([len(name)]) + name
    return wasm + b"\x00" + bytes([len(payload)]) + payload


def once(fn: Callable[[], object]) -> float:
    """Milliseconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def deploy(client: AppClient, token: str, wasm: bytes, handle: str) -> dict[str, Any]:
    variables = {
        "wasm": None,
        "input": {
            "handle": handle,
            "title": "Tiered VIP discount",
            "target": "cart.lines.discounts.generate.run",
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
        files={"0": ("f.wasm", wasm)},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    result: dict[str, Any] = body["data"]["functionDeploy"]
    return result


def wait_ready(client: AppClient, token: str, version_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.post(
            "/graphql",
            json={"query": STATUS, "variables": {"id": version_id}},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        status = body["data"]["functionVersion"]["status"]
        if status == "READY":
            return
        if status == "FAILED":
            raise RuntimeError(body)
        time.sleep(0.02)
    raise TimeoutError(f"version {version_id} not ready after {timeout_s} s")


def claim_redis_db() -> tuple[int, redis.Redis]:
    lease = redis.Redis.from_url(REDIS_URL + "/0")
    for n in range(1, 16):
        if lease.set(f"cartwheel:test-lease:{n}", "bench", nx=True, ex=3600):
            return n, lease
    raise RuntimeError("no free Redis logical database (1..15 are leased)")


def row(name: str, samples: list[float], baseline: float) -> str:
    median = statistics.median(samples)
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1]
    return f"{name:<44} median {median:8.1f} ms   p90 {p90:8.1f} ms   {median / baseline:5.2f}x"


def main() -> None:
    wasm = (EXAMPLE / "discount-function.wasm").read_bytes()
    # The runner's engine configuration (functions_sdk.runner.engine), without its linker.
    engine_config = wasmtime.Config()
    engine_config.consume_fuel = True
    engine_config.epoch_interruption = True
    engine_config.cranelift_opt_level = "speed"
    wt_engine = wasmtime.Engine(engine_config)

    db_name = f"cw_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
    redis_db, lease = claim_redis_db()
    redis_url = f"{REDIS_URL}/{redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    worker: subprocess.Popen[bytes] | None = None
    series: dict[str, list[float]] = {
        "compile": [],
        "load": [],
        "inline": [],
        "worker": [],
        "repeat": [],
    }
    try:
        upgrade(db_url)
        engine = make_engine(Settings(database_url=db_url))
        with session_factory(engine)() as session:
            shop = create_shop(session, handle="bench", name="Bench")
            token = issue_token(session, shop.id, ["admin"])[1]
            session.commit()
        engine.dispose()

        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            inline_settings = Settings(
                data_dir=data, database_url=db_url, module_cache_dir=data / "inline-cache"
            )
            queued_settings = Settings(
                data_dir=data,
                database_url=db_url,
                redis_url=redis_url,
                module_cache_dir=data / "worker-cache",
            )
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "cartwheel"), "worker"],
                env={
                    **os.environ,
                    "DATABASE_URL": db_url,
                    "REDIS_URL": redis_url,
                    "CARTWHEEL_DATA_DIR": str(data),
                    "CARTWHEEL_MODULE_CACHE_DIR": str(data / "worker-cache"),
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with (
                AppClient(create_app(inline_settings)) as inline,
                AppClient(create_app(queued_settings)) as queued,
            ):
                deploy(inline, token, unique_module(wasm), "warmup")
                warm = deploy(queued, token, unique_module(wasm), "worker-warmup")
                wait_ready(queued, token, warm["version"]["id"])
                same = unique_module(wasm)
                deploy(inline, token, same, "repeat")

                def inline_deploy(n: int) -> None:
                    result = deploy(inline, token, unique_module(wasm), f"in-{n}")
                    assert result["version"]["status"] == "READY", result

                def queued_deploy(n: int) -> None:
                    result = deploy(queued, token, unique_module(wasm), f"wk-{n}")
                    wait_ready(queued, token, result["version"]["id"])

                def compile_plain() -> None:
                    wasmtime.Module(wt_engine, unique_module(wasm)).serialize()

                # Round-robin, so that every series sees the same machine load.
                for n in range(ROUNDS):
                    series["compile"].append(once(compile_plain))
                    series["load"].append(once(lambda: load_module(unique_module(wasm))))
                    series["inline"].append(once(functools.partial(inline_deploy, n)))
                    series["worker"].append(once(functools.partial(queued_deploy, n)))
                    series["repeat"].append(once(lambda: deploy(inline, token, same, "repeat")))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        redis.Redis.from_url(redis_url).flushdb()
        lease.delete(f"cartwheel:test-lease:{redis_db}")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()

    baseline = statistics.median(series["compile"])
    print(f"Deploy latency, example discount function ({len(wasm):,} bytes), {ROUNDS} rounds")
    print("ratio = median / median of the plain wasmtime compile (same run, interleaved)")
    print(row("baseline: wasmtime compile + serialize", series["compile"], baseline))
    print(row("runner load_module (validate + compile)", series["load"], baseline))
    print(row("functionDeploy inline → READY (no Redis)", series["inline"], baseline))
    print(row("functionDeploy → READY via RQ worker", series["worker"], baseline))
    print(row("functionDeploy repeat (idempotent)", series["repeat"], baseline))


if __name__ == "__main__":
    main()
