"""`functions_sdk.client.AdminClient` against the real app under uvicorn (PostgreSQL):
multipart deploys, versions, activation, instances, run logs, and each failure's code."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import wasmtime
from live_server import EXAMPLES, LiveServer

from functions_sdk.client import (
    AdminClient,
    AuthenticationError,
    ClientError,
    DeployTimeoutError,
    FunctionRunInfo,
    NotFoundError,
    PermissionDeniedError,
    ServerTimeoutError,
    ServerUnreachableError,
)

TARGET = "cart.lines.discounts.generate.run"
WASM = (EXAMPLES / "discount-function/discount-function.wasm").read_bytes()
QUERY = (EXAMPLES / "discount-function/input.graphql").read_text()
VARIABLES = ("cartwheel", "function-configuration")
CONFIG = {
    "basis": "QUANTITY",
    "tiers": [{"minimum": 3, "percentage": "10", "message": "3+ items: 10% off"}],
    "vipTags": ["vip"],
    "vipBonusPercentage": "5",
}


def deploy(client: AdminClient, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "handle": "tiered-vip-discount",
        "title": "Tiered VIP discount",
        "target": TARGET,
        "wasm": WASM,
        "input_query": QUERY,
        "input_variables": VARIABLES,
    }
    return client.deploy(**{**arguments, **overrides})


def wait_for_runs(client: AdminClient, count: int, **filters: Any) -> list[FunctionRunInfo]:
    """Run logs are written off the request path: poll until `count` are there."""
    deadline = time.monotonic() + 15
    while True:
        runs = list(client.function_runs(**filters).runs)
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.1)


def test_deploy_activate_configure_checkout_and_read_the_run(live_server: LiveServer) -> None:
    progress: list[tuple[int, int]] = []
    with AdminClient(live_server.url, live_server.tokens["deploy"]) as client:
        shop = client.shop()
        assert (shop.handle, shop.currency_code) == ("demo", "USD")

        deployed = deploy(client, progress=lambda sent, total: progress.append((sent, total)))
        assert deployed.created is True
        assert deployed.function.handle == "tiered-vip-discount"
        assert deployed.function.active_version_id is None
        version = deployed.version
        # No Redis: the server prepared the version inline.
        assert (version.status, version.active, version.abi) == ("READY", False, "wasi")
        assert version.module_size == len(WASM)
        assert version.error_code is None

        # The multipart body went up in chunks, reported from 0 to its full length.
        total = progress[-1][1]
        assert total > len(WASM)
        assert progress[0] == (0, total)
        assert progress[-1] == (total, total)
        assert [sent for sent, _ in progress] == sorted(sent for sent, _ in progress)
        assert len(progress) > 3

        again = deploy(client)
        assert again.created is False
        assert again.version.id == version.id

        assert client.wait_until_ready(version.id).status == "READY"
        function = client.activate_version(version.id)
        assert function.active_version_id == version.id
        assert client.function_version(version.id).active is True
        assert client.function_by_handle("tiered-vip-discount") == function
        assert [f.handle for f in client.functions()] == ["tiered-vip-discount"]

    with AdminClient(live_server.url, live_server.tokens["admin"]) as admin:
        discount = admin.discount_create(
            function_id=function.id,
            title="Tiered",
            discount_classes=["PRODUCT"],
            metafields=[
                {
                    "namespace": VARIABLES[0],
                    "key": VARIABLES[1],
                    "type": "JSON",
                    "value": json.dumps(CONFIG),
                }
            ],
        )
        assert discount["automatic"] is True

        body = live_server.checkout()
        totals = body["totals"]
        assert isinstance(totals, dict)
        # VIP buyer, 4 items: 10% + 5% on 79.50 + 89.00 + 24.00.
        assert totals["lineDiscounts"] == "28.88"

        (run,) = wait_for_runs(admin, 1)
        assert run.function_id == function.id
        assert run.version_id == version.id
        assert run.instance_id is not None
        assert run.status == "succeeded"
        assert run.error_code is None
        assert run.fuel_consumed
        assert run.fuel_consumed > 10_000
        assert run.created.tzinfo is not None
        document = json.loads(run.input)
        assert len(document["cart"]["lines"]) == 3
        assert run.output is not None
        assert json.loads(run.output)["operations"][0]["productDiscountsAdd"]
        assert admin.function_run(run.id) == run

        live_server.checkout()
        runs = wait_for_runs(admin, 2)
        assert len(runs) == 2
        assert runs[0].created >= runs[1].created  # newest first
        first = admin.function_runs(first=1)
        assert first.has_next_page
        assert first.end_cursor
        second = admin.function_runs(first=1, after=first.end_cursor)
        assert [r.id for r in (*first.runs, *second.runs)] == [r.id for r in runs]
        assert admin.function_runs(status="failed").runs == ()
        assert len(admin.function_runs(function_id=function.id, status="succeeded").runs) == 2
        assert admin.function_runs(since=runs[0].created).runs[0].id == runs[0].id


def test_refusals_carry_the_servers_codes(live_server: LiveServer) -> None:
    with (
        AdminClient(live_server.url, "cwt_not-a-real-token") as client,
        pytest.raises(AuthenticationError) as unauthenticated,
    ):
        client.shop()
    assert unauthenticated.value.code == "UNAUTHENTICATED"
    assert "--token" in unauthenticated.value.message

    with (
        AdminClient(live_server.url, live_server.tokens["storefront"]) as client,
        pytest.raises(PermissionDeniedError) as forbidden,
    ):
        deploy(client)
    assert forbidden.value.code == "FORBIDDEN"
    assert forbidden.value.details.get("requiredScopes")

    with AdminClient(live_server.url, live_server.tokens["deploy"]) as client:
        with pytest.raises(PermissionDeniedError):
            client.function_runs()  # run logs need the admin scope
        with pytest.raises(NotFoundError) as missing:
            client.function_version("gid://cartwheel/FunctionVersion/999999")
        assert missing.value.code == "NOT_FOUND"
        with pytest.raises(NotFoundError):
            client.function_by_handle("nope")

        with pytest.raises(ClientError) as bad_query:
            deploy(client, input_query="query Input {\n  cart { linez { id } }\n}")
        assert bad_query.value.code == "INPUT_QUERY_INVALID"
        assert bad_query.value.details["locations"] == [{"line": 2, "column": 10}]

        with pytest.raises(ClientError) as syntax:
            deploy(client, input_query="query Input { cart { ")
        assert syntax.value.code == "INPUT_QUERY_SYNTAX"

        with pytest.raises(ClientError) as bad_module:
            deploy(client, wasm=b"\0asm not really")
        assert bad_module.value.code == "INVALID_MODULE"

        with pytest.raises(ClientError) as bad_target:
            deploy(client, target="cart.nope.run")
        assert bad_target.value.code == "UNKNOWN_TARGET"
        # None of the refused deploys left a function behind.
        assert client.functions() == []


def test_a_pending_version_times_out_without_a_worker(queued_server: LiveServer) -> None:
    with AdminClient(queued_server.url, queued_server.tokens["deploy"]) as client:
        deployed = deploy(client)
        assert deployed.version.status == "PENDING"
        polls: list[str] = []
        with pytest.raises(DeployTimeoutError) as timed_out:
            client.wait_until_ready(
                deployed.version.id,
                timeout_s=0.5,
                poll_s=0.1,
                on_poll=lambda v: polls.append(v.status),
            )
        assert timed_out.value.code == "DEPLOY_TIMEOUT"
        assert "cartwheel worker" in timed_out.value.message
        assert len(polls) >= 2
        assert set(polls) == {"PENDING"}
        with pytest.raises(ClientError) as not_ready:
            client.activate_version(deployed.version.id)
        assert not_ready.value.code == "VERSION_NOT_READY"
        assert not_ready.value.details["status"] == "pending"


def test_network_failures(unused_url: Callable[[], str]) -> None:
    with (
        AdminClient(unused_url(), "cwt_x") as client,
        pytest.raises(ServerUnreachableError) as refused,
    ):
        client.shop()
    assert refused.value.code == "SERVER_UNREACHABLE"
    assert "cartwheel serve" in refused.value.message

    # A server that accepts the connection and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with AdminClient(f"http://127.0.0.1:{port}", "cwt_x", timeout_s=0.3) as client:
            started = time.monotonic()
            with pytest.raises(ServerTimeoutError) as timed_out:
                client.shop()
            assert time.monotonic() - started < 5
    assert timed_out.value.code == "SERVER_TIMEOUT"


def test_a_failed_preparation_is_a_status_not_an_exception(live_server: LiveServer) -> None:
    loop = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
    )
    with AdminClient(live_server.url, live_server.tokens["deploy"]) as client:
        deployed = deploy(
            client,
            handle="spinner",
            wasm=loop,
            input_query="{ cart { cost { subtotalAmount { amount } } } }",
            input_variables=None,
        )
        version = client.wait_until_ready(deployed.version.id)
    assert version.status == "FAILED"
    assert version.error_code in {"INSTRUCTION_LIMIT_EXCEEDED", "TIMEOUT"}
    assert version.error_message
