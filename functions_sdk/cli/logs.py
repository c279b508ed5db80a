"""`cartwheel fn logs`: the shop's recent function runs, newest first.

    cartwheel fn logs --function tiered-vip-discount --status failed --since 1h
    cartwheel fn logs --follow

A rich table (time, run number, function, status or error code, instructions,
duration), or with `--json` one document ``{"ok": true, "runs": [...]}`` (`--follow
--json` prints one JSON object per run, a line each). `--follow` keeps polling for runs
newer than the last one shown, until interrupted or `--max-seconds`.

Exit codes: 0 listed; 3 an unknown function or a bad `--since`; 4 no server / server
error; 5 a bad token or one without the `admin` scope.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from functions_sdk.cli import fn
from functions_sdk.cli._options import fail_with, make_client, server_options
from functions_sdk.cli._project_common import emit_json, json_option, stdout_console
from functions_sdk.client import MAX_PAGE_SIZE, AdminClient, FunctionRunInfo, NotFoundError
from functions_sdk.errors import CartwheelError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class InvalidSinceError(CartwheelError):
    """`--since` is neither a duration nor an ISO 8601 time."""

    code = "INVALID_SINCE"


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """A `--since` value: a duration back from now (``90s``, ``15m``, ``2h``, ``7d``) or
    an ISO 8601 time (``2026-01-31T12:00:00Z``; without a zone, UTC)."""
    match = _DURATION.match(value)
    if match is not None:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSinceError(
            f"--since {value!r} is neither a duration (90s, 15m, 2h, 7d) nor an ISO 8601 "
            "time (2026-01-31T12:00:00Z).",
            since=value,
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@fn.command("logs")
@server_options
@click.option(
    "--function", "function_ref", metavar="HANDLE|ID", help="Only the runs of this function."
)
@click.option(
    "--status",
    type=click.Choice(["succeeded", "failed"]),
    help="Only runs that succeeded, or only runs that failed.",
)
@click.option("--since", help="Only runs since a duration ago (15m, 2h, 7d) or an ISO time.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Most runs listed (before --follow).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep polling for new runs.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between polls with --follow.",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop following after this many seconds (default: until interrupted).",
)
@json_option
def logs_command(
    server: str,
    token: str,
    timeout: float,
    function_ref: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    follow: bool,
    interval: float,
    max_seconds: float | None,
    as_json: bool,
) -> None:
    """List recent function runs of the shop, newest first (needs an `admin` token).

    Exit codes: 0 listed; 3 unknown function or bad --since; 4 server unreachable or
    failing; 5 bad token or missing scope.
    """
    try:
        since_time = parse_since(since) if since is not None else None
        with make_client(server, token, timeout) as client:
            function_id, handles = _resolve(client, function_ref)
            runs = _recent(client, function_id, status, since_time, limit)
            if not follow:
                if as_json:
                    emit_json({"ok": True, "runs": [_run_document(r, handles) for r in runs]})
                else:
                    _table(runs, handles)
                return
            # Oldest first when following, like `tail -f`.
            for run in reversed(runs):
                _print_one(run, handles, as_json)
            _follow(
                client,
                runs,
                function_id,
                status,
                since_time,
                handles,
                interval,
                max_seconds,
                as_json,
            )
    except CartwheelError as exc:
        fail_with(exc, as_json=as_json)
    except KeyboardInterrupt:
        return


def _resolve(client: AdminClient, ref: str | None) -> tuple[str | None, dict[str, str]]:
    """The function id of `--function` (a gid or a handle) and every function's handle."""
    functions = client.functions()
    handles = {f.id: f.handle for f in functions}
    if ref is None:
        return None, handles
    if ref.startswith("gid://"):
        if ref not in handles:
            client.function(ref)  # raises NOT_FOUND with the server's message
        return ref, handles
    for function in functions:
        if function.handle == ref:
            return function.id, handles
    known = ", ".join(sorted(handles.values())) or "none yet"
    raise NotFoundError(
        f"No function with handle {ref!r} in this shop (functions: {known}). Pass a handle "
        "or a gid://cartwheel/Function/N id.",
        handle=ref,
    )


def _recent(
    client: AdminClient,
    function_id: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
) -> list[FunctionRunInfo]:
    runs: list[FunctionRunInfo] = []
    after: str | None = None
    while len(runs) < limit:
        page = client.function_runs(
            function_id=function_id,
            status=status,
            since=since,
            first=min(MAX_PAGE_SIZE, limit - len(runs)),
            after=after,
        )
        runs.extend(page.runs)
        if not page.has_next_page:
            break
        after = page.end_cursor
    return runs


def _follow(
    client: AdminClient,
    shown: list[FunctionRunInfo],
    function_id: str | None,
    status: str | None,
    since: datetime | None,
    handles: dict[str, str],
    interval: float,
    max_seconds: float | None,
    as_json: bool,
) -> None:
    """Poll for runs newer than the newest shown; print them oldest first."""
    seen = {r.id for r in shown}
    newest = max((r.created for r in shown), default=since or datetime.now(UTC))
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while deadline is None or time.monotonic() < deadline:
        pause = interval if deadline is None else min(interval, deadline - time.monotonic())
        if pause > 0:
            time.sleep(pause)
        # Every run at or after the newest shown, all pages (the cursor walks back in
        # time); runs sharing its timestamp are told apart by id.
        fresh: list[FunctionRunInfo] = []
        after: str | None = None
        while True:
            page = client.function_runs(
                function_id=function_id,
                status=status,
                since=newest,
                first=MAX_PAGE_SIZE,
                after=after,
            )
            fresh.extend(r for r in page.runs if r.id not in seen)
            if not page.has_next_page:
                break
            after = page.end_cursor
        if fresh:
            missing = {r.function_id for r in fresh} - handles.keys()
            if missing:
                handles.update({f.id: f.handle for f in client.functions()})
        for run in reversed(fresh):
            seen.add(run.id)
            newest = max(newest, run.created)
            _print_one(run, handles, as_json)


def _run_document(run: FunctionRunInfo, handles: dict[str, str]) -> dict[str, object]:
    document = run.to_dict()
    document["function_handle"] = handles.get(run.function_id)
    return document


def _print_one(run: FunctionRunInfo, handles: dict[str, str], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(_run_document(run, handles), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    stdout_console().print(
        f"{_time(run)}  {run.id.rsplit('/', 1)[-1]}  "
        f"{escape(handles.get(run.function_id, run.function_id))}  {_status(run)}  "
        f"{_fuel(run)} instr  {run.duration_ms:.2f} ms"
    )


def _time(run: FunctionRunInfo) -> str:
    return run.created.astimezone(UTC).strftime("%m-%d %H:%M:%S")


def _status(run: FunctionRunInfo) -> str:
    if run.status == "succeeded" and not run.error_code:
        return "[green]succeeded[/]"
    return f"[red]{escape(run.error_code or run.status)}[/]"


def _fuel(run: FunctionRunInfo) -> str:
    return "—" if run.fuel_consumed is None else f"{run.fuel_consumed:,}"


def _table(runs: list[FunctionRunInfo], handles: dict[str, str]) -> None:
    console = stdout_console()
    if not runs:
        console.print("No runs yet. Check out a cart in the shop to run its functions.")
        return
    table = Table(
        title=f"{len(runs)} most recent runs (UTC)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("Time", no_wrap=True)
    table.add_column("Run", no_wrap=True)  # the gid's number: `fn replay` takes either
    table.add_column("Function", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Instr.", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            _time(run),
            run.id.rsplit("/", 1)[-1],
            escape(handles.get(run.function_id, run.function_id)),
            _status(run),
            _fuel(run),
            f"{run.duration_ms:.2f}",
        )
    console.print(table)
    console.print("Replay one locally with `cartwheel fn replay RUN` (its number or id).")
