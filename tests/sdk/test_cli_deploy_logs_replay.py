"""`cartwheel fn deploy`, `logs` and `replay` through the real `cartwheel` entry point,
against the real app under uvicorn (PostgreSQL): `--json` parsed back, human output, and
every documented failure with its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from click.testing import CliRunner, Result
from live_server import EXAMPLES, LiveServer

from cartwheel.cli import main
from functions_sdk.cli import (
    EXIT_AUTH,
    EXIT_FUNCTION_FAILED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
)
from functions_sdk.cli.logs import InvalidSinceError, parse_since
from functions_sdk.cli.replay import replay_limits
from functions_sdk.client import AdminClient

CARTWHEEL = Path(sys.executable).parent / "cartwheel"
CONFIG = {
    "basis": "QUANTITY",
    "tiers": [{"minimum": 3, "percentage": "10", "message": "3+ items: 10% off"}],
    "vipTags": ["vip"],
    "vipBonusPercentage": "5",
}


def cli(*args: str, server: str | None = None, token: str | None = None) -> Result:
    env = {"CARTWHEEL_SERVER": server, "CARTWHEEL_TOKEN": token}
    return CliRunner().invoke(main, ["fn", *args], env=env, catch_exceptions=False)


def cli_json(*args: str, code: int = EXIT_OK, **kwargs: Any) -> Any:
    result = cli(*args, "--json", **kwargs)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def error_of(result: Result, code: int) -> dict[str, Any]:
    assert result.exit_code == code, (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert document["ok"] is False
    error: dict[str, Any] = document["error"]
    return error


def configure_discount(live: LiveServer, function_id: str) -> None:
    with AdminClient(live.url, live.tokens["admin"]) as admin:
        admin.discount_create(
            function_id=function_id,
            title="Tiered",
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


def wait_for_logged_runs(live: LiveServer, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        runs: list[dict[str, Any]] = cli_json("logs", server=live.url, token=live.tokens["admin"])[
            "runs"
        ]
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.1)


def test_deploy_activate_checkout_logs_and_replay(
    live_server: LiveServer, discount_project: Path
) -> None:
    live = live_server
    deploy_token = live.tokens["deploy"]
    admin_token = live.tokens["admin"]
    path = str(discount_project)

    deployed = cli_json("deploy", "--path", path, "--activate", server=live.url, token=deploy_token)
    assert deployed["ok"] is True
    assert deployed["created"] is True
    assert deployed["activated"] is True
    version = deployed["version"]
    assert version["status"] == "READY"
    assert version["active"] is True
    assert version["target"] == "cart.lines.discounts.generate.run"
    assert version["module_size"] == (discount_project / "discount-function.wasm").stat().st_size
    function = deployed["function"]
    assert function["handle"] == "tiered-vip-discount"
    assert function["title"] == "Tiered VIP discount"
    assert function["active_version_id"] == version["id"]

    # Idempotent, and the human report says so.
    again = cli("deploy", "--path", path, server=live.url, token=deploy_token)
    assert again.exit_code == EXIT_OK, again.stderr
    assert "Unchanged" in again.stdout
    assert version["id"] in again.stdout

    configure_discount(live, function["id"])
    assert live.checkout()["totals"]["lineDiscounts"] == "28.88"  # type: ignore[index]
    (run,) = wait_for_logged_runs(live, 1)
    assert run["function_handle"] == "tiered-vip-discount"
    assert run["status"] == "succeeded"
    assert run["version_id"] == version["id"]
    assert run["fuel_consumed"] > 10_000
    assert json.loads(run["output"])["operations"]

    filtered = cli_json(
        "logs",
        "--function",
        "tiered-vip-discount",
        "--status",
        "succeeded",
        "--since",
        "10m",
        server=live.url,
        token=admin_token,
    )
    assert [r["id"] for r in filtered["runs"]] == [run["id"]]
    by_id = cli_json("logs", "--function", function["id"], server=live.url, token=admin_token)
    assert [r["id"] for r in by_id["runs"]] == [run["id"]]
    assert cli_json("logs", "--status", "failed", server=live.url, token=admin_token) == {
        "ok": True,
        "runs": [],
    }
    future = cli_json("logs", "--since", "2999-01-01T00:00:00Z", server=live.url, token=admin_token)
    assert future["runs"] == []
    table = cli("logs", server=live.url, token=admin_token)
    assert table.exit_code == EXIT_OK
    number = run["id"].rsplit("/", 1)[1]
    assert "tiered-vip-discount" in table.stdout
    assert f"{run['fuel_consumed']:,}" in table.stdout
    assert f" {number} " in table.stdout

    replayed = cli_json("replay", number, "--path", path, server=live.url, token=admin_token)
    assert replayed["ok"] is True
    assert replayed["matches"] is True
    assert replayed["comparison"] == {
        "status": True,
        "error_code": True,
        "output": True,
        "fuel": True,
        "module": True,
        "matches": True,
    }
    assert replayed["local"]["fuel_consumed"] == run["fuel_consumed"]
    assert json.loads(replayed["local"]["output"]) == json.loads(run["output"])
    assert replayed["local"]["limits"]["instructions"] == 11_000_000
    human = cli("replay", run["id"], "--path", path, server=live.url, token=admin_token)
    assert human.exit_code == EXIT_OK
    assert "reproduces the logged run" in human.stdout

    # Another module on the same input: the replay tells the difference and exits 1.
    other = EXAMPLES / "delivery-customization/delivery-customization.wasm"
    differs = cli_json(
        "replay",
        run["id"],
        "--wasm",
        str(other),
        code=EXIT_FUNCTION_FAILED,
        server=live.url,
        token=admin_token,
    )
    assert differs["matches"] is False
    assert differs["comparison"]["module"] is False
    assert differs["comparison"]["fuel"] is False
    shown = cli("replay", run["id"], "--wasm", str(other), server=live.url, token=admin_token)
    assert shown.exit_code == EXIT_FUNCTION_FAILED
    assert "differs" in shown.stdout
    assert "not the version that ran" in shown.stdout


def test_logs_follow_prints_new_runs_as_they_are_logged(
    live_server: LiveServer, discount_project: Path
) -> None:
    live = live_server
    deployed = cli_json(
        "deploy",
        "--path",
        str(discount_project),
        "--activate",
        server=live.url,
        token=live.tokens["deploy"],
    )
    configure_discount(live, deployed["function"]["id"])
    live.checkout()
    (first,) = wait_for_logged_runs(live, 1)

    env = {
        **os.environ,
        "CARTWHEEL_SERVER": live.url,
        "CARTWHEEL_TOKEN": live.tokens["admin"],
    }
    follower = subprocess.Popen(
        [
            str(CARTWHEEL),
            "fn",
            "logs",
            "--follow",
            "--json",
            "--interval",
            "0.2",
            "--max-seconds",
            "6",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Two more checkouts while it follows.
        timer = threading.Timer(2.0, lambda: (live.checkout(), live.checkout()))
        timer.start()
        out, err = follower.communicate(timeout=60)
        timer.join()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == EXIT_OK, err
    runs = [json.loads(line) for line in out.splitlines()]
    assert runs[0]["id"] == first["id"]  # the recent run first, then the new ones
    assert len(runs) == 3
    assert len({r["id"] for r in runs}) == 3
    assert runs[1]["created_at"] <= runs[2]["created_at"]  # oldest first, like tail -f


def test_deploy_failures_exit_with_their_codes(
    live_server: LiveServer, discount_project: Path, unused_url: Any, tmp_path: Path
) -> None:
    live = live_server
    path = str(discount_project)
    token = live.tokens["deploy"]

    down = error_of(cli("deploy", "--path", path, "--json", server=unused_url(), token=token), 4)
    assert down["code"] == "SERVER_UNREACHABLE"
    assert "cartwheel serve" in down["message"]

    bad = cli("deploy", "--path", path, server=live.url, token="cwt_revoked-or-made-up")
    assert bad.exit_code == EXIT_AUTH
    assert "UNAUTHENTICATED" in bad.stderr
    wrong_scope = error_of(
        cli("deploy", "--path", path, "--json", server=live.url, token=live.tokens["storefront"]),
        EXIT_AUTH,
    )
    assert wrong_scope["code"] == "FORBIDDEN"
    assert wrong_scope["requiredScopes"]

    missing = cli("deploy", "--path", path, server=live.url, token=None)
    assert missing.exit_code == EXIT_USAGE
    assert "--token" in missing.stderr

    query = discount_project / "input.graphql"
    original = query.read_text()
    query.write_text("query Input {\n  cart {\n    linez { id }\n  }\n}\n")
    invalid = error_of(
        cli("deploy", "--path", path, "--json", server=live.url, token=token), EXIT_INVALID_INPUT
    )
    assert invalid["code"] == "INPUT_QUERY_INVALID"
    assert invalid["locations"] == [{"line": 3, "column": 5}]
    assert "linez" in invalid["message"]
    human = cli("deploy", "--path", path, server=live.url, token=token)
    assert human.exit_code == EXIT_INVALID_INPUT
    assert "INPUT_QUERY_INVALID" in human.stderr
    assert "(input query line 3, column 5)" in human.stderr
    query.write_text("query Input { cart { ")
    syntax = cli("deploy", "--path", path, server=live.url, token=token)
    assert syntax.exit_code == EXIT_INVALID_INPUT
    assert "INPUT_QUERY_SYNTAX" in syntax.stderr
    query.write_text(original)

    (discount_project / "discount-function.wasm").unlink()
    not_built = error_of(
        cli("deploy", "--path", path, "--json", server=live.url, token=token), EXIT_INVALID_INPUT
    )
    assert not_built["code"] == "MODULE_NOT_BUILT"
    assert "cartwheel fn build" in not_built["message"]
    (discount_project / "discount-function.wasm").write_bytes(b"\0asm\x01\0\0\0garbage")
    garbage = error_of(
        cli("deploy", "--path", path, "--json", server=live.url, token=token), EXIT_INVALID_INPUT
    )
    assert garbage["code"] == "INVALID_MODULE"

    (tmp_path / "empty").mkdir()
    no_project = error_of(
        cli("deploy", "--path", str(tmp_path / "empty"), "--json", server=live.url, token=token),
        EXIT_INVALID_INPUT,
    )
    assert no_project["code"] == "PROJECT_NOT_FOUND"

    with AdminClient(live.url, token) as client:
        assert client.functions() == []  # nothing refused was recorded


def test_a_version_that_fails_preparation_exits_1(
    live_server: LiveServer, discount_project: Path
) -> None:
    wat = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
    (discount_project / "discount-function.wasm").write_bytes(bytes(wasmtime.wat2wasm(wat)))
    (discount_project / "input.graphql").write_text("{ cart { lines { id } } }")
    toml = discount_project / "cartwheel.toml"
    toml.write_text(toml.read_text().split("[input.variables]")[0])
    result = cli(
        "deploy",
        "--path",
        str(discount_project),
        "--activate",
        "--json",
        server=live_server.url,
        token=live_server.tokens["deploy"],
    )
    assert result.exit_code == EXIT_FUNCTION_FAILED, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["activated"] is False
    assert document["version"]["status"] == "FAILED"
    assert document["version"]["error_code"] in {"INSTRUCTION_LIMIT_EXCEEDED", "TIMEOUT"}
    human = cli(
        "deploy",
        "--path",
        str(discount_project),
        server=live_server.url,
        token=live_server.tokens["deploy"],
    )
    assert human.exit_code == EXIT_FUNCTION_FAILED
    assert "VERSION_FAILED" in human.stderr
    assert "FAILED" in human.stdout


def test_deploy_gives_up_waiting_without_a_worker(
    queued_server: LiveServer, discount_project: Path
) -> None:
    result = cli(
        "deploy",
        "--path",
        str(discount_project),
        "--wait-timeout",
        "0.5",
        "--json",
        server=queued_server.url,
        token=queued_server.tokens["deploy"],
    )
    error = error_of(result, EXIT_SERVER)
    assert error["code"] == "DEPLOY_TIMEOUT"
    assert "cartwheel worker" in error["message"]
    pending = cli_json(
        "deploy",
        "--path",
        str(discount_project),
        "--no-wait",
        server=queued_server.url,
        token=queued_server.tokens["deploy"],
    )
    assert pending["created"] is False
    assert pending["version"]["status"] == "PENDING"
    usage = cli(
        "deploy",
        "--no-wait",
        "--activate",
        server=queued_server.url,
        token=queued_server.tokens["deploy"],
    )
    assert usage.exit_code == EXIT_USAGE


def test_logs_and_replay_failures_exit_with_their_codes(
    live_server: LiveServer, discount_project: Path, unused_url: Any
) -> None:
    live = live_server
    admin = live.tokens["admin"]
    unknown = error_of(
        cli("logs", "--function", "nope", "--json", server=live.url, token=admin),
        EXIT_INVALID_INPUT,
    )
    assert unknown["code"] == "NOT_FOUND"
    bad_since = error_of(
        cli("logs", "--since", "yesterday", "--json", server=live.url, token=admin),
        EXIT_INVALID_INPUT,
    )
    assert bad_since["code"] == "INVALID_SINCE"
    deploy_scope = error_of(
        cli("logs", "--json", server=live.url, token=live.tokens["deploy"]), EXIT_AUTH
    )
    assert deploy_scope["code"] == "FORBIDDEN"
    assert (
        error_of(cli("logs", "--json", server=unused_url(), token=admin), EXIT_SERVER)["code"]
        == "SERVER_UNREACHABLE"
    )

    path = str(discount_project)
    no_run = error_of(
        cli("replay", "999999", "--path", path, "--json", server=live.url, token=admin),
        EXIT_INVALID_INPUT,
    )
    assert no_run["code"] == "NOT_FOUND"
    (discount_project / "discount-function.wasm").unlink()
    not_built = error_of(
        cli("replay", "1", "--path", path, "--json", server=live.url, token=admin),
        EXIT_INVALID_INPUT,
    )
    assert not_built["code"] == "MODULE_NOT_BUILT"
    # --wasm must exist: a usage error before any request.
    no_wasm = cli("replay", "1", "--wasm", "/nonexistent.wasm", server=live.url, token=admin)
    assert no_wasm.exit_code == EXIT_USAGE
    assert "/nonexistent.wasm" in no_wasm.stderr


def test_replay_limits_follow_checkouts_scaling() -> None:
    target = "cart.lines.discounts.generate.run"
    lines = [{"id": f"gid://cartwheel/CartLine/{n}"} for n in range(400)]
    assert replay_limits(target, json.dumps({"cart": {"lines": lines}}).encode()).instructions == (
        22_000_000
    )
    assert replay_limits(target, b'{"cart": {"lines": []}}').instructions == 11_000_000
    assert replay_limits(target, b'{"discount": null}').instructions == 11_000_000
    assert replay_limits(target, b'{"discount": null}', scale=3).instructions == 33_000_000


def test_since_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("90s", now=now) == now - timedelta(seconds=90)
    assert parse_since("15m", now=now) == now - timedelta(minutes=15)
    assert parse_since("2h", now=now) == now - timedelta(hours=2)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("2026-01-30T08:00:00Z") == datetime(2026, 1, 30, 8, tzinfo=UTC)
    assert parse_since("2026-01-30T08:00:00") == datetime(2026, 1, 30, 8, tzinfo=UTC)
    assert parse_since("2026-01-30T08:00:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(InvalidSinceError):
        parse_since("yesterday")
