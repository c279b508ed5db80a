"""Shared plumbing of the project commands (`init`, `build`, `info`): the `--path` and
`--json` options and how a `CartwheelError` is reported."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from functions_sdk.apis import TARGETS
from functions_sdk.errors import CartwheelError

F = TypeVar("F", bound=Callable[..., Any])

json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document instead of the report."
)


def target_option(help: str = "The Function API target.") -> Callable[[F], F]:
    """``--target/-t``, one of the registered Function API targets (required)."""
    return click.option(
        "--target",
        "-t",
        "target",
        required=True,
        type=click.Choice([t.name for t in TARGETS]),
        help=help,
    )


path_option: Callable[[F], F] = click.option(
    "--path",
    "path",
    type=click.Path(path_type=Path),
    default=None,
    help="The project folder or its cartwheel.toml (default: the current folder or its "
    "nearest parent holding a cartwheel.toml).",
)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print `data` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(error: CartwheelError, *, as_json: bool, exit_code: int) -> NoReturn:
    """Report `error` (as ``{"error": {code, message, ...}}`` with --json, else on
    stderr) and exit with `exit_code`."""
    if as_json:
        emit_json({"ok": False, "error": error.to_dict()})
    else:
        stderr_console().print(
            f"[bold red]error[/] [red]{error.code}[/]: {error.message}", markup=True
        )
    raise SystemExit(exit_code)
