"""`cartwheel fn schema --target T [--output]`: print a target's input (or output) schema
as GraphQL SDL."""

from __future__ import annotations

import sys

import click

from functions_sdk.apis import get_target
from functions_sdk.cli import fn
from functions_sdk.cli._project_common import emit_json, json_option, target_option


@fn.command("schema")
@target_option()
@click.option(
    "--output",
    "output",
    is_flag=True,
    help="Print the output schema (what the function must write) instead of the input.",
)
@json_option
def schema(target: str, output: bool, as_json: bool) -> None:
    """Print the input schema of a target (GraphQL SDL): what an input query may select.
    With --output, print its output schema: what the function must write on stdout.

    With --json: {"ok", "target", "order", "sdl", "output_sdl"}.

    Exit codes: 0 printed; 2 unknown target.
    """
    t = get_target(target)
    if as_json:
        emit_json(
            {
                "ok": True,
                "target": t.name,
                "order": t.order,
                "sdl": t.input_sdl(),
                "output_sdl": t.output_sdl(),
            }
        )
        return
    sys.stdout.write((t.output_sdl() if output else t.input_sdl()) + "\n")
