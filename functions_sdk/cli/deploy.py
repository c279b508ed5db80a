"""`cartwheel fn deploy`: upload the built function to a Cartwheel server.

    cartwheel fn deploy --server http://127.0.0.1:8000 --token cwt_... --activate

Sends the module at `[build] path`, the input query, the target, the input variables
metafield reference and the name/handle of `cartwheel.toml` (`functionDeploy`, a GraphQL
multipart upload), shows the upload and the server's preparation (precompile + smoke
run) as they happen, then prints the version. Deploys are idempotent: identical content
returns the version deployed before.

Exit codes: 0 deployed (and activated with --activate); 1 the version FAILED its
preparation (its error code is shown); 3 no project, no built module, or the server
refused the module or the input query (its code and the query's line/column shown);
4 no server at the URL, a server error or a version still pending at --wait-timeout;
5 a missing, bad or revoked token, or one without the `deploy` scope.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from functions_sdk.cli import EXIT_FUNCTION_FAILED, fn
from functions_sdk.cli._options import fail_with, make_client, server_options
from functions_sdk.cli._project_common import (
    emit_json,
    json_option,
    path_option,
    stderr_console,
    stdout_console,
)
from functions_sdk.client import (
    DEFAULT_READY_TIMEOUT_S,
    AdminClient,
    DeployResult,
    FunctionInfo,
    FunctionVersionInfo,
)
from functions_sdk.errors import CartwheelError
from functions_sdk.project import Project, load_project


class VersionFailedError(CartwheelError):
    """The server could not prepare the version (code VERSION_FAILED; the version's own
    error code is in `versionErrorCode`)."""

    code = "VERSION_FAILED"


@fn.command("deploy")
@path_option
@server_options
@click.option(
    "--activate", is_flag=True, help="Make the version the one checkout runs once it is ready."
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the server has prepared the version (READY or FAILED).",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_READY_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the version to become ready.",
)
@json_option
def deploy_command(
    path: Path | None,
    server: str,
    token: str,
    timeout: float,
    activate: bool,
    wait: bool,
    wait_timeout: float,
    as_json: bool,
) -> None:
    """Deploy the built function of the project to a Cartwheel server.

    Run `cartwheel fn build` first. Exit codes: 0 deployed; 1 the version failed its
    preparation; 3 no project or module, or the server refused the module or query;
    4 server unreachable or failing; 5 bad token or missing scope.
    """
    if activate and not wait:
        raise click.UsageError("--activate needs the version to be ready: drop --no-wait.")
    try:
        project = load_project(path)
        wasm = project.read_wasm()
        query = project.read_input_query()
    except CartwheelError as exc:
        fail_with(exc, as_json=as_json)
    try:
        with make_client(server, token, timeout) as client:
            deployed, version, function = _deploy(
                client, project, wasm, query, wait, wait_timeout, activate, as_json
            )
    except CartwheelError as exc:
        fail_with(exc, as_json=as_json)
    if as_json:
        emit_json(
            {
                "ok": version.status != "FAILED",
                "server": server,
                "created": deployed.created,
                "function": function.to_dict(),
                "version": version.to_dict(),
                "activated": activate and version.status == "READY",
            }
        )
    else:
        _report(server, deployed, version, function, activate)
    if version.status == "FAILED":
        if as_json:
            raise SystemExit(EXIT_FUNCTION_FAILED)
        fail_with(
            VersionFailedError(
                f"Version {version.id} failed its preparation ({version.error_code}). Fix "
                "the function, check it with `cartwheel fn run`, rebuild and deploy again.",
                versionId=version.id,
                versionErrorCode=version.error_code,
            ),
            as_json=False,
        )


def _deploy(
    client: AdminClient,
    project: Project,
    wasm: bytes,
    query: str,
    wait: bool,
    wait_timeout: float,
    activate: bool,
    as_json: bool,
) -> tuple[DeployResult, FunctionVersionInfo, FunctionInfo]:
    variables = (
        (project.input_variables.namespace, project.input_variables.key)
        if project.input_variables is not None
        else None
    )
    console = stderr_console()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as progress:
        upload = progress.add_task(
            f"Uploading {project.handle} ({project.wasm_path.name})", total=len(wasm)
        )

        def on_upload(sent: int, total: int) -> None:
            progress.update(upload, completed=sent, total=total)

        deployed = client.deploy(
            handle=project.handle,
            title=project.name,
            target=project.target,
            wasm=wasm,
            input_query=query,
            input_variables=variables,
            filename=project.wasm_path.name,
            progress=on_upload,
        )
        progress.update(upload, description=f"Uploaded {project.handle}")
        version = deployed.version
        if wait and version.status == "PENDING":
            waiting = progress.add_task(f"Preparing {version.id} (PENDING)", total=None)

            def on_poll(current: FunctionVersionInfo) -> None:
                progress.update(waiting, description=f"Preparing {current.id} ({current.status})")

            version = client.wait_until_ready(version.id, timeout_s=wait_timeout, on_poll=on_poll)
        function = deployed.function
        if activate and version.status == "READY":
            if version.active:
                function = client.function(function.id)
            else:
                progress.add_task(f"Activating {version.id}", total=None)
                function = client.activate_version(version.id)
                version = client.function_version(version.id)
    return deployed, version, function


def _report(
    server: str,
    deployed: DeployResult,
    version: FunctionVersionInfo,
    function: FunctionInfo,
    activate: bool,
) -> None:
    console = stdout_console()
    colour = {"READY": "green", "PENDING": "yellow", "FAILED": "red"}[version.status]
    if deployed.created:
        console.print(f"[bold green]Deployed[/] {function.handle} to {escape(server)}")
    else:
        console.print(
            f"[bold]Unchanged[/]: {function.handle} with this content was deployed before "
            "(deploys are idempotent)"
        )
    table = Table(show_header=False, show_edge=False, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("function", f"{function.id} ({function.title})")
    table.add_row("target", version.target)
    table.add_row("version", version.id)
    table.add_row("status", f"[{colour}]{version.status}[/]")
    table.add_row("module", f"{version.module_size:,} B, sha256 {version.module_sha256[:16]}…")
    if version.error_code:
        table.add_row(
            "error", f"[red]{version.error_code}[/]: {escape(version.error_message or '')}"
        )
    table.add_row("active", "yes" if version.active else "no")
    console.print(table)
    if version.status == "PENDING":
        console.print(
            "The version is still being prepared; poll it with `cartwheel fn deploy` again "
            "(idempotent) and activate it with --activate."
        )
    elif version.status == "READY" and not version.active and not activate:
        console.print("Activate it with `cartwheel fn deploy --activate` (idempotent).")
    elif version.active:
        console.print("Checkout now runs this version.")
