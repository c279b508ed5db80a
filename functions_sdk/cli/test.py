"""`cartwheel fn test`: run the project's fixtures against its built module."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from functions_sdk.cli import EXIT_FUNCTION_FAILED, EXIT_INVALID_INPUT, fn
from functions_sdk.cli._project_common import (
    emit_json,
    fail,
    json_option,
    path_option,
    stdout_console,
)
from functions_sdk.errors import CartwheelError
from functions_sdk.project import FixtureOutcome, load_project, run_fixtures


@fn.command("test")
@path_option
@json_option
def test_command(path: Path | None, as_json: bool) -> None:
    """Run every fixture (fixtures/*.json) against the built module, under the target's
    limits: the output must equal the fixture's "output" and be valid for the target,
    or the run must end with the fixture's "error" code.

    Exit codes: 0 every fixture passed; 1 a fixture failed; 3 no project, no module
    (run `cartwheel fn build`), an invalid fixture or module.
    """
    try:
        project = load_project(path)
        outcomes = run_fixtures(project)
    except CartwheelError as exc:
        fail(exc, as_json=as_json, exit_code=EXIT_INVALID_INPUT)
    failed = [o for o in outcomes if not o.passed]
    if as_json:
        emit_json(
            {
                "ok": not failed,
                "handle": project.handle,
                "module": str(project.wasm_path),
                "passed": len(outcomes) - len(failed),
                "failed": len(failed),
                "fixtures": [o.to_dict() for o in outcomes],
            }
        )
    else:
        _report(project.handle, outcomes)
    if failed:
        raise SystemExit(EXIT_FUNCTION_FAILED)


def _report(handle: str, outcomes: list[FixtureOutcome]) -> None:
    console = stdout_console()
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Fixture")
    table.add_column("Result")
    table.add_column("Instructions", justify="right")
    table.add_column("Run")
    for outcome in outcomes:
        result = outcome.result
        fuel = "-" if result.fuel_consumed is None else f"{result.fuel_consumed:,}"
        run_status = result.status.value if result.error_code is None else result.error_code.value
        table.add_row(
            outcome.fixture.name,
            "[green]pass[/]" if outcome.passed else "[bold red]FAIL[/]",
            fuel,
            run_status,
        )
    console.print(table)
    for outcome in outcomes:
        for problem in outcome.problems:
            console.print(f"[red]{outcome.fixture.name}[/]: {problem}")
    failed = sum(not o.passed for o in outcomes)
    summary = f"{len(outcomes) - failed} passed, {failed} failed ({handle})"
    console.print(f"[bold red]{summary}[/]" if failed else f"[bold green]{summary}[/]")
