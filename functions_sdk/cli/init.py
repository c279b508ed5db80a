"""`cartwheel fn init NAME --target T --lang rust|c`: scaffold a function project."""

from __future__ import annotations

from pathlib import Path

import click

from functions_sdk.cli import EXIT_INVALID_INPUT, fn
from functions_sdk.cli._project_common import (
    emit_json,
    fail,
    json_option,
    stdout_console,
    target_option,
)
from functions_sdk.errors import CartwheelError
from functions_sdk.templates import LANGUAGES, create_project, handle_for


@fn.command("init")
@click.argument("name")
@target_option("The Function API target the function implements.")
@click.option(
    "--lang",
    "-l",
    "language",
    type=click.Choice(LANGUAGES),
    default="rust",
    show_default=True,
    help="Source language of the project.",
)
@click.option(
    "--path",
    "path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to create (default: ./<handle>). It must not exist or be empty.",
)
@json_option
def init(name: str, target: str, language: str, path: Path | None, as_json: bool) -> None:
    """Create a function project NAME: cartwheel.toml, input query, source, fixtures.

    The Rust discount (cart.lines.discounts.generate.run) and the C delivery
    customization (cart.delivery-options.transform.run) start from complete example
    functions; other targets start from a starter that returns no operation.

    Exit codes: 0 created; 3 the name is unusable or the folder is not empty.
    """
    try:
        dest = path if path is not None else Path.cwd() / handle_for(name)
        scaffold = create_project(name, target, language, dest.resolve())
    except CartwheelError as exc:
        fail(exc, as_json=as_json, exit_code=EXIT_INVALID_INPUT)
    if as_json:
        emit_json(
            {
                "ok": True,
                "root": str(scaffold.root),
                "name": scaffold.name,
                "handle": scaffold.handle,
                "target": scaffold.target,
                "language": scaffold.language,
                "starter": scaffold.starter,
                "files": [str(f.relative_to(scaffold.root)) for f in scaffold.files],
            }
        )
        return
    console = stdout_console()
    console.print(
        f"[bold green]Created[/] {scaffold.name} ([cyan]{scaffold.handle}[/]) in {scaffold.root}"
    )
    console.print(f"  target   {scaffold.target}")
    console.print(f"  language {scaffold.language} ({scaffold.starter} starter)")
    console.print(f"  files    {len(scaffold.files)}")
    console.print("Next:")
    console.print(f"  cd {scaffold.root}")
    console.print("  cartwheel fn build")
    console.print("  cartwheel fn info")
