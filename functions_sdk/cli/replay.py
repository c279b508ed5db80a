"""`cartwheel fn replay RUN_ID`: run a logged run's input through the LOCAL build.

    cartwheel fn logs --function tiered-vip-discount --status failed
    cartwheel fn replay gid://cartwheel/FunctionRun/42

Fetches the run (`functionRun`: its input, output, fuel, status), runs the project's
built module (or `--wasm`) on the same input under the limits checkout applied (the
target's limits, scaled by the cart's line count as checkout scales them), validates the
output against the target's schema as checkout does, and shows the local run beside the
logged one: status, error code, output, instructions. They match when status, error
code, output (as JSON) and instructions are the same — which they are for the deployed
build, since runs are deterministic; a difference means the local build is not the
deployed one, or a fix changed the behaviour.

Exit codes: 0 the replay matches the logged run; 1 it differs, or the local run failed;
3 no project or module, an unknown run, or a run whose input was cut at the log's size
cap; 4 no server / server error; 5 bad token or missing `admin` scope.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click
import orjson
from rich.markup import escape
from rich.table import Table

from functions_sdk.apis import get_target
from functions_sdk.cli import EXIT_FUNCTION_FAILED, fn
from functions_sdk.cli._options import fail_with, make_client, server_options
from functions_sdk.cli._project_common import emit_json, json_option, path_option, stdout_console
from functions_sdk.client import FunctionRunInfo
from functions_sdk.errors import CartwheelError
from functions_sdk.limits import Limits, scale_factor_for_lines
from functions_sdk.project import load_project
from functions_sdk.runner import ErrorCode, RunResult, RunStatus, load_module, run


class ReplayError(CartwheelError):
    """A logged run that cannot be replayed (code RUN_INPUT_TRUNCATED, RUN_NOT_REPLAYABLE)."""

    code = "RUN_NOT_REPLAYABLE"


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayComparison:
    """The local run beside the logged one."""

    status: bool
    error_code: bool
    output: bool
    fuel: bool
    module: bool | None
    """Whether the local module is the logged version's (None: unknown)."""

    @property
    def matches(self) -> bool:
        return self.status and self.error_code and self.output and self.fuel

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "matches": self.matches}


def replay_limits(target_name: str, input_json: bytes, *, scale: float | None = None) -> Limits:
    """The limits checkout ran with: the target's, scaled by `scale` if given, else by
    the cart's line count when the input shows the lines (as checkout scales them), else
    unscaled. (Run logs do not record the limits; checkout derives them this way.)"""
    limits = get_target(target_name).limits
    if scale is not None:
        return limits.scaled(scale)
    try:
        data = orjson.loads(input_json)
        lines = data.get("cart", {}).get("lines") if isinstance(data, dict) else None
    except orjson.JSONDecodeError:
        lines = None
    if isinstance(lines, list):
        return limits.scaled(scale_factor_for_lines(len(lines)))
    return limits


def _validated(target: str, result: RunResult, payload: bytes) -> RunResult:
    """`result` with checkout's output validation applied (INVALID_OUTPUT when the output
    does not fit the target's schema)."""
    from functions_sdk.output import InvalidOutputError, validate_output

    if not result.ok:
        return result
    try:
        validate_output(target, result.output, input=orjson.loads(payload))
    except InvalidOutputError as exc:
        return dataclasses.replace(
            result,
            status=RunStatus.FAILED,
            error_code=ErrorCode.INVALID_OUTPUT,
            message=exc.message,
        )
    return result


def _same_json(a: str | bytes | None, b: str | bytes | None) -> bool:
    if not a or not b:
        return not a and not b
    try:
        return bool(orjson.loads(a) == orjson.loads(b))
    except orjson.JSONDecodeError:
        return a == b


@fn.command("replay")
@click.argument("run_id")
@path_option
@click.option(
    "--wasm",
    "wasm_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay with this module instead of the project's build.",
)
@click.option(
    "--scale",
    type=click.FloatRange(1, 10),
    default=None,
    help="Scale factor of the instruction/input/output limits (default: from the cart's "
    "line count in the input, as checkout scales; set it when the input query does not "
    "select the cart's lines and the cart had more than 200).",
)
@server_options
@json_option
def replay_command(
    run_id: str,
    path: Path | None,
    wasm_path: Path | None,
    scale: float | None,
    server: str,
    token: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Replay the logged run RUN_ID (gid://cartwheel/FunctionRun/N, or N as `fn logs`
    lists it) with the local build and compare (admin token).

    Exit codes: 0 same output and instructions; 1 different, or the local run failed;
    3 no project/module, unknown or truncated run; 4 server; 5 token.
    """
    if run_id.isdigit():
        run_id = f"gid://cartwheel/FunctionRun/{run_id}"
    try:
        if wasm_path is not None:
            wasm = wasm_path.read_bytes()
            export: str | None = None
        else:
            project = load_project(path)
            wasm = project.read_wasm()
            export = project.export
        with make_client(server, token, timeout) as client:
            logged = client.function_run(run_id)
            try:
                deployed_sha: str | None = client.function_version(logged.version_id).module_sha256
            except CartwheelError as exc:
                if exc.code != "NOT_FOUND":
                    raise
                deployed_sha = None  # the version is gone; the log outlives it
        if logged.input_truncated:
            raise ReplayError(
                f"The input of {logged.id} was cut at the run log's size cap "
                f"({logged.input_bytes:,} bytes in full), so it cannot be replayed exactly. "
                "Rebuild the input with `cartwheel fn run --cart ... --query ...`.",
                code="RUN_INPUT_TRUNCATED",
            )
        if not logged.input:
            raise ReplayError(
                f"{logged.id} failed before the function started ({logged.error_code}): there "
                "is no input to replay.",
            )
        payload = logged.input.encode()
        limits = replay_limits(logged.target, payload, scale=scale)
        export = export or logged.export
        module = load_module(wasm, limits=limits, export=export)
    except CartwheelError as exc:
        fail_with(exc, as_json=as_json)
    result = _validated(logged.target, run(module, payload, limits, export=export), payload)
    comparison = ReplayComparison(
        status=result.status.value == logged.status,
        error_code=(result.error_code.value if result.error_code else None) == logged.error_code,
        output=_same_json(result.output, logged.output),
        fuel=result.fuel_consumed == logged.fuel_consumed,
        module=None if deployed_sha is None else deployed_sha == module.sha256,
    )
    if as_json:
        emit_json(
            {
                "ok": comparison.matches and result.ok,
                "run_id": logged.id,
                "matches": comparison.matches,
                "comparison": comparison.to_dict(),
                "logged": _logged_document(logged),
                "local": {**result.to_dict(), "module_sha256": module.sha256},
            }
        )
    else:
        _report(logged, result, comparison, module.sha256)
    if not (comparison.matches and result.ok):
        raise SystemExit(EXIT_FUNCTION_FAILED)


def _logged_document(logged: FunctionRunInfo) -> dict[str, Any]:
    document = logged.to_dict()
    document.pop("input")
    return document


def _pretty(data: str | bytes | None) -> str:
    if not data:
        return "(none)"
    try:
        return json.dumps(orjson.loads(data), indent=2, ensure_ascii=False)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _report(
    logged: FunctionRunInfo, result: RunResult, comparison: ReplayComparison, module_sha: str
) -> None:
    console = stdout_console()
    console.print(f"Replaying [bold]{logged.id}[/] ({logged.target}, {logged.created_at})")
    if comparison.module is False:
        console.print(
            f"[yellow]The local module (sha256 {module_sha[:16]}…) is not the version that "
            "ran: differences may come from your changes.[/]"
        )
    table = Table(title_justify="left")
    table.add_column("")
    table.add_column("Logged run")
    table.add_column("Local replay")
    table.add_column("")

    def mark(same: bool) -> str:
        return "[green]same[/]" if same else "[bold red]differs[/]"

    local_code = result.error_code.value if result.error_code else "—"
    local_fuel = "—" if result.fuel_consumed is None else f"{result.fuel_consumed:,}"
    logged_fuel = "—" if logged.fuel_consumed is None else f"{logged.fuel_consumed:,}"
    table.add_row("Status", logged.status, result.status.value, mark(comparison.status))
    table.add_row("Error code", logged.error_code or "—", local_code, mark(comparison.error_code))
    table.add_row("Instructions", logged_fuel, local_fuel, mark(comparison.fuel))
    table.add_row(
        "Output size",
        f"{logged.output_bytes:,} B",
        f"{result.output_bytes:,} B",
        mark(comparison.output),
    )
    table.add_row("Duration", f"{logged.duration_ms:.2f} ms", f"{result.duration_ms:.2f} ms", "")
    console.print(table)
    if not comparison.output:
        console.rule("Logged output")
        console.print(escape(_pretty(logged.output)))
    console.rule("Local output")
    console.print(escape(_pretty(result.output)))
    if result.logs:
        console.rule("Local logs")
        console.print(escape(result.logs))
    if comparison.matches and result.ok:
        console.print("[bold green]✓ The local build reproduces the logged run.[/]")
    elif comparison.matches:
        console.print(
            f"[bold yellow]The local build reproduces the logged failure[/] "
            f"({local_code}: {escape(result.message)})"
        )
    else:
        console.print("[bold red]✗ The local run differs from the logged run.[/]")
