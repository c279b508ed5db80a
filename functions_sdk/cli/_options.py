"""Shared plumbing of the commands that talk to a server (`deploy`, `logs`, `replay`):
the `--server` / `--token` / `--timeout` options and how a client error exits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.markup import escape

from functions_sdk.cli import EXIT_AUTH, EXIT_FUNCTION_FAILED, EXIT_INVALID_INPUT, EXIT_SERVER
from functions_sdk.cli._project_common import emit_json, stderr_console
from functions_sdk.client import DEFAULT_TIMEOUT_S, AdminClient
from functions_sdk.errors import CartwheelError

F = TypeVar("F", bound=Callable[..., Any])

SERVER_ENV = "CARTWHEEL_SERVER"
TOKEN_ENV = "CARTWHEEL_TOKEN"

_AUTH_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN"})
_SERVER_CODES = frozenset(
    {
        "SERVER_UNREACHABLE",
        "SERVER_TIMEOUT",
        "SERVER_ERROR",
        "INTERNAL_ERROR",
        "RATE_LIMITED",
        "DEPLOY_TIMEOUT",
        "DEPENDENCY_UNAVAILABLE",
        "REQUEST_FAILED",
    }
)


def server_options(command: F) -> F:
    """``--server URL`` (env CARTWHEEL_SERVER), ``--token T`` (env CARTWHEEL_TOKEN) and
    ``--timeout SECONDS``, passed to the command as `server`, `token`, `timeout`."""
    command = click.option(
        "--timeout",
        "timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT_S,
        show_default=True,
        help="Seconds to wait for each server response.",
    )(command)
    command = click.option(
        "--token",
        "token",
        envvar=TOKEN_ENV,
        required=True,
        metavar="TOKEN",
        help=f"Admin API token (cwt_...) [env {TOKEN_ENV}]. Deploys need the `deploy` or "
        "`admin` scope; logs and replays need `admin`.",
    )(command)
    return click.option(
        "--server",
        "server",
        envvar=SERVER_ENV,
        required=True,
        metavar="URL",
        help=f"Base URL of the Cartwheel server, e.g. http://127.0.0.1:8000 [env {SERVER_ENV}].",
    )(command)


def make_client(server: str, token: str, timeout: float) -> AdminClient:
    """The admin API client for the shared options."""
    return AdminClient(server, token, timeout_s=timeout)


def exit_code_for(error: CartwheelError) -> int:
    """The documented exit code of a failure: 5 authentication or permission, 4 server
    or network, 1 a failed function version, 3 everything the developer must fix in
    their input (module, query, ids, project)."""
    if error.code in _AUTH_CODES:
        return EXIT_AUTH
    if error.code in _SERVER_CODES:
        return EXIT_SERVER
    if error.code == "VERSION_FAILED":
        return EXIT_FUNCTION_FAILED
    return EXIT_INVALID_INPUT


def fail_with(error: CartwheelError, *, as_json: bool) -> NoReturn:
    """Report `error` (``{"ok": false, "error": {...}}`` with --json, else one line on
    stderr) and exit with `exit_code_for(error)`."""
    if as_json:
        emit_json({"ok": False, "error": error.to_dict()})
    else:
        message = error.message
        locations = error.details.get("locations")
        if isinstance(locations, list) and locations:
            where = ", ".join(
                f"line {loc.get('line')}, column {loc.get('column')}"
                for loc in locations
                if isinstance(loc, dict)
            )
            message = f"{message} (input query {where})"
        stderr_console().print(f"[bold red]error[/] [red]{error.code}[/]: {escape(message)}")
    raise SystemExit(exit_code_for(error))
