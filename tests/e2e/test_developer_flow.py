"""The merchant developer's whole flow, end to end, with nothing in-process.

`cartwheel fn init` (the Rust discount template) → `fn build` (real cargo, offline
Debian toolchain) → `fn test` on its fixtures → `fn run` on a cart fixture through the
input query → a real deployment: `cartwheel serve` (uvicorn) + `cartwheel worker` (RQ)
+ `cartwheel runlog ingest`, on this session's PostgreSQL and Redis → `fn deploy`
(PENDING, prepared by the worker, READY) → `fn deploy --activate` → an automatic
discount created through the admin API → a storefront checkout that shows the
discount → `fn logs` shows the run → `fn replay` reproduces its output and fuel.

Every `cartwheel` command runs as a subprocess of the installed console script; every
subprocess is stopped when the test ends, passed or failed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions_sdk.client import AdminClient

ROOT = Path(__file__).resolve().parents[2]
CARTWHEEL = Path(sys.executable).parent / "cartwheel"
TARGET = "cart.lines.discounts.generate.run"
CONFIG = {
    "basis": "QUANTITY",
    "tiers": [
        {"minimum": 3, "percentage": "10", "message": "Buy 3+, save 10%"},
        {"minimum": 10, "percentage": "15", "message": "Buy 10+, save 15%"},
    ],
    "vipTags": ["vip"],
    "vipBonusPercentage": "5",
}


def cartwheel(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CARTWHEEL), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cartwheel_json(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> Any:
    done = cartwheel(*args, "--json", env=env, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"cartwheel {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def background(name: str, args: list[str], env: dict[str, str], logs: Path) -> Iterator[Any]:
    """A `cartwheel` subprocess in its own process group, stopped (TERM, then KILL) on
    exit; its output goes to `logs/<name>.log`, shown when the test fails."""
    log = (logs / f"{name}.log").open("w")
    process = subprocess.Popen(
        [str(CARTWHEEL), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def wait_healthy(url: str, processes: list[Any], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"a server process exited early; logs:\n{read_logs(logs)}")
        try:
            response = httpx.get(f"{url}/healthz", timeout=2)
            if response.status_code == 200 and response.json()["checks"].get("redis") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not become healthy in 60 s; logs:\n{read_logs(logs)}")


def read_logs(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(logs.glob("*.log")))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_from_init_to_a_replayed_discounted_checkout(
    migrated_pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": migrated_pg_url,
        "REDIS_URL": redis_url,
        "CARTWHEEL_DATA_DIR": str(tmp_path / "server-data"),
    }
    env.pop("CARTWHEEL_SERVER", None)
    env.pop("CARTWHEEL_TOKEN", None)

    # --- develop: init, build, test, run -------------------------------------------
    created = cartwheel_json(
        "fn", "init", "VIP Discount", "--target", TARGET, "--lang", "rust", env=env, cwd=tmp_path
    )
    project = Path(created["root"])
    assert project == tmp_path / "vip-discount"
    assert created["handle"] == "vip-discount"

    built = cartwheel_json("fn", "build", env=env, cwd=project, timeout=600)
    assert built["within_limit"] is True
    assert built["abi"] == "wasi"
    wasm = project / "vip-discount.wasm"
    assert built["module_bytes"] == wasm.stat().st_size

    tested = cartwheel_json("fn", "test", env=env, cwd=project)
    assert tested["ok"] is True
    assert tested["failed"] == 0
    assert tested["passed"] == len(list((project / "fixtures").glob("*.json"))) > 0

    (project / "configuration.json").write_text(json.dumps(CONFIG))
    owner = {
        "discountClasses": ["PRODUCT"],
        "metafields": [
            {
                "namespace": "cartwheel",
                "key": "function-configuration",
                "type": "json",
                "value": json.dumps(CONFIG),
            }
        ],
    }
    (project / "owner.json").write_text(json.dumps(owner))
    ran = cartwheel_json(
        "fn",
        "run",
        "--wasm",
        str(wasm),
        "--cart",
        str(ROOT / "examples/carts/small.json"),
        "--query",
        "input.graphql",
        "--target",
        TARGET,
        "--variables",
        "configuration.json",
        "--owner",
        "owner.json",
        env=env,
        cwd=project,
    )
    assert ran["ok"] is True
    local_ops = json.loads(ran["output"])["operations"]
    assert local_ops[0]["productDiscountsAdd"]["candidates"]

    # --- a real deployment: API server, deploy worker, run-log ingestion -------------
    demo = cartwheel_json("demo", "--no-functions", env=env)
    tokens = demo["tokens"]
    cart_key = demo["cartId"].rsplit("/", 1)[1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    with ExitStack() as stack:
        server = stack.enter_context(background("serve", ["serve", "--port", str(port)], env, logs))
        worker = stack.enter_context(background("worker", ["worker"], env, logs))
        ingest = stack.enter_context(background("ingest", ["runlog", "ingest"], env, logs))
        wait_healthy(url, [server, worker, ingest], logs)
        dev_env = {**env, "CARTWHEEL_SERVER": url, "CARTWHEEL_TOKEN": tokens["deploy"]}
        try:
            _ship_and_check_out(project, wasm, url, tokens, cart_key, dev_env)
        except BaseException:
            print(read_logs(logs))
            raise


def _ship_and_check_out(
    project: Path,
    wasm: Path,
    url: str,
    tokens: dict[str, str],
    cart_key: str,
    dev_env: dict[str, str],
) -> None:
    # Deploy: the worker prepares the version (PENDING → READY) while the CLI waits.
    deployed = cartwheel_json("fn", "deploy", env=dev_env, cwd=project)
    assert deployed["created"] is True
    version = deployed["version"]
    assert version["status"] == "READY"
    assert version["active"] is False
    assert version["module_size"] == wasm.stat().st_size

    activated = cartwheel_json("fn", "deploy", "--activate", env=dev_env, cwd=project)
    assert activated["created"] is False  # same content: the same version
    assert activated["activated"] is True
    assert activated["version"]["id"] == version["id"]
    assert activated["function"]["active_version_id"] == version["id"]
    function_id = activated["function"]["id"]

    # The merchant creates the automatic discount with its configuration.
    with AdminClient(url, tokens["admin"]) as admin:
        discount = admin.discount_create(
            function_id=function_id,
            title="VIP volume discount",
            discount_classes=["PRODUCT"],
            metafields=[
                {
                    "namespace": "cartwheel",
                    "key": "function-configuration",
                    "type": "JSON",
                    "value": json.dumps(CONFIG),
                }
            ],
        )
    assert discount["automatic"] is True

    # A buyer checks out the demo cart: VIP customer, 2 tees, a shirt, a tote.
    response = httpx.post(
        f"{url}/storefront/carts/{cart_key}/checkout",
        headers={"Authorization": f"Bearer {tokens['storefront']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    checkout = response.json()
    allocations = [a for line in checkout["lines"] for a in line["discountAllocations"]]
    assert [a["message"] for a in allocations] == ["Buy 3+, save 10% + VIP 5%"] * 3
    assert {a["title"] for a in allocations} == {"VIP volume discount"}
    # 15% of 79.50, 89.00 and 24.00 = 11.925 → 11.93, 13.35, 3.60.
    assert [a["amount"] for a in allocations] == ["11.93", "13.35", "3.60"]
    assert checkout["totals"]["lineDiscounts"] == "28.88"
    assert checkout["totals"]["total"] == "170.57"

    # The run reaches the database through Redis and `cartwheel runlog ingest`.
    admin_env = {**dev_env, "CARTWHEEL_TOKEN": tokens["admin"]}
    deadline = time.monotonic() + 60
    runs: list[dict[str, Any]] = []
    while not runs and time.monotonic() < deadline:
        runs = cartwheel_json("fn", "logs", "--function", "vip-discount", env=admin_env)["runs"]
        if not runs:
            time.sleep(0.5)
    assert len(runs) == 1, "the checkout's run was not logged within 60 s"
    (run,) = runs
    assert run["status"] == "succeeded"
    assert run["function_handle"] == "vip-discount"
    assert run["version_id"] == version["id"]
    assert run["fuel_consumed"] > 0
    logged_ops = json.loads(run["output"])["operations"]
    assert logged_ops[0]["productDiscountsAdd"]["candidates"][0]["message"] == (
        "Buy 3+, save 10% + VIP 5%"
    )
    table = cartwheel("fn", "logs", env=admin_env)
    assert table.returncode == 0
    assert "vip-discount" in table.stdout

    # Replay the logged run with the local build: same output, same fuel.
    replayed = cartwheel_json("fn", "replay", run["id"], env=admin_env, cwd=project)
    assert replayed["matches"] is True
    assert replayed["comparison"]["module"] is True  # the local build is what ran
    assert replayed["local"]["fuel_consumed"] == run["fuel_consumed"]
    assert json.loads(replayed["local"]["output"]) == json.loads(run["output"])
    assert replayed["local"]["status"] == "succeeded"
