"""`cartwheel fn info`: the project's configuration, module and input query at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from functions_sdk.apis import get_target
from functions_sdk.cli import EXIT_INVALID_INPUT, fn
from functions_sdk.cli._project_common import (
    emit_json,
    fail,
    json_option,
    path_option,
    stdout_console,
)
from functions_sdk.errors import CartwheelError
from functions_sdk.project import Project, load_project
from functions_sdk.query import QUERY_BYTES_LIMIT, QUERY_COST_LIMIT, compile_query


def project_info(project: Project) -> dict[str, Any]:
    """The facts `info` reports: the configuration, the module (size against the limit,
    or not built yet), the input query (size and cost against their limits, or the
    error that would reject it at deploy) and the fixtures."""
    limits = project.limits
    module: dict[str, Any] = {
        "path": str(project.wasm_path),
        "built": project.wasm_path.is_file(),
        "bytes": None,
        "limit_bytes": limits.module_bytes,
    }
    if module["built"]:
        module["bytes"] = project.wasm_path.stat().st_size
    query: dict[str, Any] = {
        "path": str(project.input_query_path),
        "bytes": None,
        "limit_bytes": QUERY_BYTES_LIMIT,
        "cost": None,
        "limit_cost": QUERY_COST_LIMIT,
        "variables": [],
        "error": None,
    }
    try:
        compiled = compile_query(get_target(project.target), project.read_input_query())
    except CartwheelError as exc:
        query["error"] = exc.to_dict()
    else:
        query.update(bytes=compiled.size, cost=compiled.cost, variables=compiled.variable_names)
    try:
        fixtures = [f.name for f in project.fixtures()]
        fixtures_error = None
    except CartwheelError as exc:
        fixtures, fixtures_error = [], exc.to_dict()
    return {
        **project.to_dict(),
        "module": module,
        "input_query": query,
        "fixtures": {"path": str(project.fixtures_dir), "names": fixtures, "error": fixtures_error},
        "limits": limits.to_dict(),
    }


@fn.command("info")
@path_option
@json_option
def info(path: Path | None, as_json: bool) -> None:
    """Show the project: target, export, build command, module size against the limit,
    input query size and cost against their limits, input variables, fixtures.

    Exit codes: 0 shown; 3 no project or an invalid cartwheel.toml.
    """
    try:
        project = load_project(path)
    except CartwheelError as exc:
        fail(exc, as_json=as_json, exit_code=EXIT_INVALID_INPUT)
    facts = project_info(project)
    if as_json:
        emit_json({"ok": True, **facts})
        return
    _report(project, facts)


def _report(project: Project, facts: dict[str, Any]) -> None:
    console = stdout_console()
    console.print(f"[bold]{project.name}[/] ([cyan]{project.handle}[/])  {project.config_path}")
    if project.description:
        console.print(project.description)
    settings = Table(show_header=False, show_edge=False, pad_edge=False)
    settings.add_column(style="dim")
    settings.add_column()
    settings.add_row("target", project.target)
    settings.add_row("export", project.export)
    settings.add_row("build", project.build.command or "(none: prebuilt module)")
    variables = project.input_variables
    settings.add_row(
        "input variables",
        "(none)" if variables is None else f"metafield {variables.namespace}.{variables.key}",
    )
    fixtures = facts["fixtures"]
    settings.add_row(
        "fixtures",
        f"{len(fixtures['names'])} in {fixtures['path']}"
        if fixtures["error"] is None
        else f"[red]{fixtures['error']['message']}[/]",
    )
    console.print(settings)

    usage = Table(show_edge=False, pad_edge=False)
    usage.add_column("")
    usage.add_column("Value", justify="right")
    usage.add_column("Limit", justify="right")
    usage.add_column("")
    module, query = facts["module"], facts["input_query"]
    if module["built"]:
        over = module["bytes"] > module["limit_bytes"]
        usage.add_row(
            f"Module {project.wasm_path.name}",
            f"{module['bytes']:,} B",
            f"{module['limit_bytes']:,} B",
            "[red]over the limit[/]" if over else "[green]ok[/]",
        )
    else:
        usage.add_row(
            f"Module {project.wasm_path.name}",
            "not built",
            f"{module['limit_bytes']:,} B",
            "run `cartwheel fn build`",
        )
    if query["error"] is None:
        usage.add_row(
            "Input query size",
            f"{query['bytes']:,} B",
            f"{query['limit_bytes']:,} B",
            "[green]ok[/]",
        )
        usage.add_row(
            "Input query cost", str(query["cost"]), str(query["limit_cost"]), "[green]ok[/]"
        )
    else:
        usage.add_row("Input query", "[red]invalid[/]", "", f"[red]{query['error']['code']}[/]")
    console.print(usage)
    if query["error"] is not None:
        console.print(f"[red]{query['error']['message']}[/]")
