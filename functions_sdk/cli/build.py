"""`cartwheel fn build`: run the project's build command and check the module size."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from functions_sdk.cli import EXIT_INVALID_INPUT, fn
from functions_sdk.cli._project_common import (
    emit_json,
    fail,
    json_option,
    path_option,
    stderr_console,
    stdout_console,
)
from functions_sdk.errors import CartwheelError
from functions_sdk.project import BuildError, BuildResult, build, load_project
from functions_sdk.runner import CompiledModule, load_module


@fn.command("build")
@path_option
@json_option
def build_command(path: Path | None, as_json: bool) -> None:
    """Build the function: run [build] command of cartwheel.toml in the project folder,
    then check the module at [build] path as a deploy would: its size against the
    target's limit, wasm validity, its imports against the sandbox's allowlist and its
    entry export.

    Exit codes: 0 built and valid; 3 no project, a failed build (its output's tail is
    shown), no module, a module over the size limit or one the sandbox rejects.
    """
    try:
        project = load_project(path)
        if not as_json:
            with stderr_console().status(f"Building {project.handle}: {project.build.command}"):
                result = build(project)
        else:
            result = build(project)
    except CartwheelError as exc:
        fail(exc, as_json=as_json, exit_code=EXIT_INVALID_INPUT)
    if not result.within_limit:
        fail(
            BuildError(
                f"The module is {result.module_bytes:,} bytes, over the "
                f"{result.limit_bytes:,}-byte limit. Build in release mode with size "
                'optimisations (Rust: opt-level = "z", lto = true, strip = true; C: -Oz -s) '
                "and drop unused dependencies.",
                code="MODULE_TOO_LARGE",
                module_bytes=result.module_bytes,
                limit_bytes=result.limit_bytes,
                path=str(result.module_path),
            ),
            as_json=as_json,
            exit_code=EXIT_INVALID_INPUT,
        )
    try:
        module = load_module(
            result.module_path.read_bytes(), limits=project.limits, export=project.export
        )
    except CartwheelError as exc:
        fail(exc, as_json=as_json, exit_code=EXIT_INVALID_INPUT)
    if as_json:
        emit_json(
            {
                "ok": True,
                **result.to_dict(),
                "sha256": module.sha256,
                "abi": module.abi,
                "entry": module.entry,
                "imports": list(module.imports),
            }
        )
    else:
        _report(result, module)


def _report(result: BuildResult, module: CompiledModule) -> None:
    console = stdout_console()
    console.print(
        f"[bold green]Built[/] {result.project.handle} in {result.duration_s:.1f} s: "
        f"{result.module_path}"
    )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("")
    table.add_column("Size", justify="right")
    table.add_column("Limit", justify="right")
    table.add_column("Used", justify="right")
    table.add_row(
        "Module",
        f"{result.module_bytes:,} B",
        f"{result.limit_bytes:,} B",
        f"{100 * result.module_bytes / result.limit_bytes:.0f} %",
    )
    console.print(table)
    console.print(
        f"{module.abi.upper()} module, entry {module.entry}, {len(module.imports)} imports "
        f"allowed by the sandbox, sha256 {module.sha256[:16]}…"
    )
